/**
 * The chat page: a client of the public API (GET /models, POST /chat/completions with stream:
 * true), nothing more. Conversations live in this browser's localStorage; a reply's thinking
 * (reasoning_content) streams live under "Thinking…", then collapses to "Thought for N seconds",
 * and is never sent back in the next turn's context (only role and content are). The answer is
 * markdown rendered by marked and sanitized by DOMPurify before it reaches the page, so model output
 * cannot run script; the thinking is shown as plain text.
 *
 * It knows the page, the API's request and stream fields and localStorage; not the server.
 */
import DOMPurify from 'dompurify';
import { marked } from 'marked';
import { type Settings, applyTheme, authHeaders, byId, effectiveTheme, el, errorMessage, getJson, loadSettings, saveSettings } from './common.ts';
import { sseEvents } from './sse.ts';

interface Pricing {
  currency: string;
  prompt_cache_hit: number;
  prompt_cache_miss: number;
  completion: number;
}

interface ModelInfo {
  id: string;
  pricing?: Pricing;
}

interface Stats {
  promptTokens: number;
  cacheHitTokens: number;
  completionTokens: number;
  reasoningTokens: number;
  /** At the server's prices; null when it published none. */
  cost: number | null;
  currency: string | null;
  /** Completion tokens over the time from the first token to the last. */
  tokensPerSecond: number | null;
}

interface Message {
  role: 'user' | 'assistant';
  content: string;
  reasoning?: string;
  /** How long the reply thought, ms; null while it still does. */
  thoughtMs?: number | null;
  stats?: Stats;
  finish?: string;
  error?: string;
  stopped?: boolean;
  model?: string;
}

interface Conversation {
  id: string;
  title: string;
  model: string;
  messages: Message[];
  updated: number;
}

export const CONVERSATIONS_KEY = 'tinyseek.conversations';

// ---------------------------------------------------------------- state

let settings: Settings = loadSettings();
let models: ModelInfo[] = [];
let conversations: Conversation[] = loadConversations();
let current: Conversation | null = conversations[0] ?? null;
/** The reply being streamed, if any; `view` is the one renderConversation put on the page. */
let live: { conv: Conversation; msg: Message; abort: AbortController; view: AssistantView | null } | null = null;

function loadConversations(): Conversation[] {
  try {
    const v: unknown = JSON.parse(localStorage.getItem(CONVERSATIONS_KEY) ?? '[]');
    if (!Array.isArray(v)) return [];
    return v
      .filter((c): c is Conversation => !!c && typeof c === 'object' && typeof c.id === 'string' && Array.isArray(c.messages))
      .sort((a, b) => b.updated - a.updated);
  } catch {
    return [];
  }
}

function persist(): void {
  try {
    localStorage.setItem(CONVERSATIONS_KEY, JSON.stringify(conversations));
  } catch (e) {
    setStatus(`conversations not saved: ${(e as Error).message} (delete old conversations to free browser storage)`);
  }
}

let persistTimer: number | null = null;
/** Saves at most every 300 ms while a reply streams, so a reload mid-reply keeps what came. */
function persistSoon(): void {
  if (persistTimer !== null) return;
  persistTimer = window.setTimeout(() => {
    persistTimer = null;
    persist();
  }, 300);
}

// ---------------------------------------------------------------- elements

const messagesEl = byId('messages');
const listEl = byId('conversations');
const input = byId<HTMLTextAreaElement>('input');
const sendButton = byId<HTMLButtonElement>('send');
const stopButton = byId<HTMLButtonElement>('stop');
const modelSelect = byId<HTMLSelectElement>('model');
const statusEl = byId('status');
const dialog = byId<HTMLDialogElement>('settings-dialog');

function setStatus(text: string): void {
  statusEl.textContent = text;
  statusEl.hidden = text === '';
}

// ---------------------------------------------------------------- rendering

DOMPurify.addHook('afterSanitizeAttributes', (node) => {
  if (node instanceof HTMLAnchorElement) {
    node.target = '_blank';
    node.rel = 'noopener noreferrer';
  }
});

/** Markdown to sanitized HTML: nothing the model writes can add script, handlers or frames. */
export function renderMarkdown(text: string): string {
  const html = marked.parse(text, { async: false, gfm: true, breaks: true });
  return DOMPurify.sanitize(html, { FORBID_TAGS: ['style', 'form', 'input', 'button', 'textarea', 'select'] });
}

const currencySymbol = (c: string | null): string => (c === 'CNY' ? '¥' : c === 'USD' ? '$' : c ? `${c} ` : '');

function statsText(s: Stats): string {
  const parts = [`${s.completionTokens} tokens`];
  if (s.reasoningTokens) parts.push(`${s.reasoningTokens} thinking`);
  parts.push(`${s.cacheHitTokens}/${s.promptTokens} prompt tokens cache-hit`);
  if (s.cost !== null) parts.push(`${currencySymbol(s.currency)}${s.cost.toFixed(6)}`);
  if (s.tokensPerSecond !== null) parts.push(`${s.tokensPerSecond.toFixed(1)} tokens/s`);
  return parts.join(' · ');
}

const seconds = (ms: number): string => {
  const n = Math.max(1, Math.round(ms / 1000));
  return `${n} second${n === 1 ? '' : 's'}`;
};

/** One assistant reply on the page; update() redraws it from its message. */
class AssistantView {
  readonly root = el('article', 'message assistant');
  private readonly details = el('details', 'thinking');
  private readonly summary = el('summary');
  private readonly reasoning = el('div', 'reasoning');
  private readonly answer = el('div', 'answer markdown');
  private readonly meta = el('div', 'stats');
  private readonly actions = el('div', 'actions');
  private wasThinking = false;
  private shownContent: string | null = null;

  constructor(
    private readonly msg: Message,
    private readonly isLast: boolean,
  ) {
    this.details.append(this.summary, this.reasoning);
    this.root.append(this.details, this.answer, this.meta, this.actions);
    if (isLast) {
      const regen = el('button', 'regenerate', 'Regenerate');
      regen.type = 'button';
      regen.title = 'Sample this reply again';
      regen.addEventListener('click', () => regenerate());
      this.actions.append(regen);
    }
    const copy = el('button', 'copy', 'Copy');
    copy.type = 'button';
    copy.addEventListener('click', () => void navigator.clipboard?.writeText(msg.content));
    this.actions.append(copy);
    this.update(false);
  }

  update(streaming: boolean): void {
    const m = this.msg;
    const thinking = streaming && !!m.reasoning && (m.thoughtMs === null || m.thoughtMs === undefined);
    this.root.dataset.state = m.error ? 'error' : m.stopped ? 'stopped' : streaming ? (thinking ? 'thinking' : 'answering') : 'done';
    this.details.hidden = !m.reasoning;
    if (m.reasoning) {
      this.reasoning.textContent = m.reasoning;
      this.summary.textContent = thinking ? 'Thinking…' : m.thoughtMs ? `Thought for ${seconds(m.thoughtMs)}` : 'Thought';
      if (thinking && !this.wasThinking) this.details.open = true;
      if (!thinking && this.wasThinking) this.details.open = false; // collapses once; a click opens it again
      this.wasThinking = thinking;
    }
    if (m.content !== this.shownContent) {
      this.answer.innerHTML = renderMarkdown(m.content);
      this.shownContent = m.content;
    }
    const notes: string[] = [];
    if (m.stats) notes.push(statsText(m.stats));
    if (m.stopped) notes.push('stopped');
    if (m.finish === 'length') notes.push('cut at max_tokens');
    if (m.model) notes.push(m.model);
    this.meta.textContent = notes.join(' · ');
    this.meta.hidden = streaming && !m.stopped;
    let err = this.root.querySelector('.error');
    if (m.error) {
      if (!err) {
        err = el('div', 'error');
        this.root.insertBefore(err, this.meta);
      }
      err.textContent = m.error;
    } else err?.remove();
    this.actions.hidden = streaming || !this.isLast;
  }
}

function userView(msg: Message, index: number): HTMLElement {
  const root = el('article', 'message user');
  const body = el('div', 'content', msg.content);
  const actions = el('div', 'actions');
  const edit = el('button', 'edit', 'Edit');
  edit.type = 'button';
  edit.title = 'Edit this message and send it again (the replies after it are dropped)';
  edit.addEventListener('click', () => {
    if (live) return;
    const box = el('textarea', 'edit-box');
    box.value = msg.content;
    box.rows = Math.min(10, msg.content.split('\n').length + 1);
    const save = el('button', 'save', 'Send');
    save.type = 'button';
    const cancel = el('button', 'cancel', 'Cancel');
    cancel.type = 'button';
    const bar = el('div', 'actions');
    bar.append(save, cancel);
    root.replaceChildren(box, bar);
    box.focus();
    const submit = (): void => {
      const text = box.value.trim();
      if (!text || !current) return;
      current.messages = current.messages.slice(0, index);
      current.messages.push({ role: 'user', content: text });
      void sendReply(current);
    };
    save.addEventListener('click', submit);
    cancel.addEventListener('click', () => renderConversation());
    box.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        submit();
      } else if (e.key === 'Escape') renderConversation();
    });
  });
  actions.append(edit);
  root.append(body, actions);
  return root;
}

function renderConversation(): void {
  messagesEl.replaceChildren();
  if (!current || current.messages.length === 0) {
    const empty = el('div', 'empty');
    empty.append(
      el('h2', '', 'tinyseek'),
      el('p', '', 'A reasoning model: its thinking shows while it works. Try: Using the numbers [3, 7, 12], create an equation that equals 33.'),
    );
    messagesEl.append(empty);
    return;
  }
  const msgs = current.messages;
  msgs.forEach((m, i) => {
    if (m.role === 'user') messagesEl.append(userView(m, i));
    else {
      const view = new AssistantView(m, i === msgs.length - 1);
      if (live && live.msg === m) {
        live.view = view;
        view.update(true);
      }
      messagesEl.append(view.root);
    }
  });
  messagesEl.scrollTop = messagesEl.scrollHeight;
}

function renderList(): void {
  listEl.replaceChildren();
  for (const c of conversations) {
    const li = el('li', c === current ? 'active' : '');
    const open = el('button', 'open', c.title || 'New chat');
    open.type = 'button';
    open.title = c.title;
    open.addEventListener('click', () => {
      if (live) return;
      current = c;
      renderAll();
      document.body.classList.remove('sidebar-open');
    });
    const del = el('button', 'delete', '×');
    del.type = 'button';
    del.title = 'Delete this conversation';
    del.setAttribute('aria-label', `Delete ${c.title}`);
    del.addEventListener('click', () => {
      if (live?.conv === c) return;
      conversations = conversations.filter((x) => x !== c);
      if (current === c) current = conversations[0] ?? null;
      persist();
      renderAll();
    });
    li.append(open, del);
    listEl.append(li);
  }
}

function renderModels(): void {
  modelSelect.replaceChildren();
  for (const m of models) modelSelect.append(new Option(m.id, m.id));
  const want = current?.model;
  if (want && models.some((m) => m.id === want)) modelSelect.value = want;
}

function renderAll(): void {
  renderList();
  renderModels();
  renderConversation();
}

function setBusy(busy: boolean): void {
  sendButton.hidden = busy;
  stopButton.hidden = !busy;
  document.body.classList.toggle('busy', busy);
}

// ---------------------------------------------------------------- talking to the API

const isUsage = (
  u: unknown,
): u is {
  prompt_tokens: number;
  completion_tokens: number;
  prompt_cache_hit_tokens?: number;
  prompt_cache_miss_tokens?: number;
  completion_tokens_details?: { reasoning_tokens?: number };
} => !!u && typeof u === 'object' && typeof (u as { prompt_tokens?: unknown }).prompt_tokens === 'number';

interface Chunk {
  error?: { message?: string };
  choices?: { delta?: { content?: string | null; reasoning_content?: string | null }; finish_reason?: string | null }[];
  usage?: unknown;
}

/** Streams the assistant's reply to the conversation's last user message. */
async function sendReply(conv: Conversation): Promise<void> {
  if (live) return;
  const model = modelSelect.value || conv.model || models[0]?.id || 'deepseek-reasoner';
  conv.model = model;
  // the next turn's context: role and content only — earlier replies' reasoning is never sent back
  const history = conv.messages.filter((m) => !(m.role === 'assistant' && m.error && !m.content)).map((m) => ({ role: m.role, content: m.content }));
  const msg: Message = { role: 'assistant', content: '', reasoning: '', thoughtMs: null, model };
  conv.messages.push(msg);
  conv.updated = Date.now();
  if (!conv.title) conv.title = (conv.messages.find((m) => m.role === 'user')?.content ?? 'New chat').slice(0, 60);
  conversations = [conv, ...conversations.filter((c) => c !== conv)];
  current = conv;
  const abort = new AbortController();
  live = { conv, msg, abort, view: null };
  renderList();
  renderConversation();
  setBusy(true);
  persist();

  const s = settings;
  const body = {
    model,
    messages: [...(s.system.trim() ? [{ role: 'system', content: s.system }] : []), ...history],
    stream: true,
    stream_options: { include_usage: true },
    temperature: s.temperature,
    top_p: s.top_p,
    max_tokens: s.max_tokens,
    ...(s.seed !== null ? { seed: s.seed } : {}),
  };
  let thinkStart: number | null = null;
  let first: number | null = null;
  let last: number | null = null;
  let usage: unknown = null;
  let frame = 0;
  const redraw = (): void => {
    if (frame) return;
    frame = requestAnimationFrame(() => {
      frame = 0;
      live?.view?.update(true);
      const near = messagesEl.scrollHeight - messagesEl.scrollTop - messagesEl.clientHeight < 120;
      if (near) messagesEl.scrollTop = messagesEl.scrollHeight;
    });
  };
  try {
    const res = await fetch('/chat/completions', {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...authHeaders(s) },
      body: JSON.stringify(body),
      signal: abort.signal,
    });
    if (!res.ok || !res.body) {
      msg.error = await errorMessage(res);
      return;
    }
    for await (const ev of sseEvents(res.body)) {
      const c = ev as Chunk;
      if (c.error) {
        msg.error = c.error.message ?? 'the server ended the stream with an error';
        break;
      }
      const now = performance.now();
      const choice = c.choices?.[0];
      const d = choice?.delta;
      if (d?.reasoning_content) {
        thinkStart ??= now;
        msg.reasoning += d.reasoning_content;
      }
      if (d?.content) {
        if (msg.reasoning && msg.thoughtMs === null && thinkStart !== null) msg.thoughtMs = now - thinkStart;
        msg.content += d.content;
      }
      if (d?.content || d?.reasoning_content) {
        first ??= now;
        last = now;
      }
      if (choice?.finish_reason) msg.finish = choice.finish_reason;
      if (c.usage) usage = c.usage;
      redraw();
      persistSoon();
    }
  } catch (e) {
    if (abort.signal.aborted) msg.stopped = true;
    else msg.error = `the request failed: ${(e as Error).message}`;
  } finally {
    if (frame) cancelAnimationFrame(frame);
    if (msg.reasoning && msg.thoughtMs === null && thinkStart !== null) msg.thoughtMs = (last ?? performance.now()) - thinkStart;
    if (isUsage(usage)) {
      const hit = usage.prompt_cache_hit_tokens ?? 0;
      const miss = usage.prompt_cache_miss_tokens ?? usage.prompt_tokens - hit;
      const p = models.find((m) => m.id === model)?.pricing;
      msg.stats = {
        promptTokens: usage.prompt_tokens,
        cacheHitTokens: hit,
        completionTokens: usage.completion_tokens,
        reasoningTokens: usage.completion_tokens_details?.reasoning_tokens ?? 0,
        cost: p ? (hit * p.prompt_cache_hit + miss * p.prompt_cache_miss + usage.completion_tokens * p.completion) / 1e6 : null,
        currency: p?.currency ?? null,
        tokensPerSecond: first !== null && last !== null && last > first ? (usage.completion_tokens - 1) / ((last - first) / 1000) : null,
      };
    }
    live = null;
    conv.updated = Date.now();
    persist();
    setBusy(false);
    renderConversation();
    input.focus();
  }
}

function stop(): void {
  live?.abort.abort();
}

function regenerate(): void {
  if (live || !current) return;
  const msgs = current.messages;
  if (msgs.length && msgs[msgs.length - 1].role === 'assistant') msgs.pop();
  if (msgs.length && msgs[msgs.length - 1].role === 'user') void sendReply(current);
}

function submit(): void {
  const text = input.value.trim();
  if (!text || live) return;
  if (!current) {
    current = { id: crypto.randomUUID(), title: '', model: modelSelect.value, messages: [], updated: Date.now() };
    conversations.unshift(current);
  }
  current.messages.push({ role: 'user', content: text });
  input.value = '';
  void sendReply(current);
}

async function loadModels(): Promise<void> {
  try {
    const r = await getJson<{ data: ModelInfo[] }>('/models', settings);
    models = r.data;
    setStatus('');
  } catch (e) {
    models = [];
    setStatus(`models not loaded: ${(e as Error).message}`);
  }
  renderModels();
}

// ---------------------------------------------------------------- settings

function openSettings(): void {
  const f = dialog.querySelector('form')!;
  const set = (name: string, v: string): void => {
    (f.elements.namedItem(name) as HTMLInputElement).value = v;
  };
  set('apiKey', settings.apiKey);
  set('temperature', String(settings.temperature));
  set('top_p', String(settings.top_p));
  set('max_tokens', String(settings.max_tokens));
  set('seed', settings.seed === null ? '' : String(settings.seed));
  set('system', settings.system);
  set('theme', settings.theme);
  dialog.querySelector('.error')!.textContent = '';
  dialog.showModal();
}

function readSettings(): Settings | string {
  const f = dialog.querySelector('form')!;
  const get = (name: string): string => (f.elements.namedItem(name) as HTMLInputElement).value.trim();
  const temperature = Number(get('temperature'));
  if (!(temperature >= 0 && temperature <= 2)) return 'temperature must be between 0 and 2';
  const top_p = Number(get('top_p'));
  if (!(top_p > 0 && top_p <= 1)) return 'top_p must be above 0 and at most 1';
  const max_tokens = Number(get('max_tokens'));
  if (!Number.isInteger(max_tokens) || max_tokens < 1) return 'max_tokens must be a whole number ≥ 1';
  const seedText = get('seed');
  const seed = seedText === '' ? null : Number(seedText);
  if (seed !== null && !Number.isInteger(seed)) return 'seed must be a whole number, or empty for a random one';
  const theme = get('theme');
  return {
    apiKey: get('apiKey'),
    temperature,
    top_p,
    max_tokens,
    seed,
    system: (f.elements.namedItem('system') as HTMLTextAreaElement).value,
    theme: theme === 'light' || theme === 'dark' ? theme : 'auto',
  };
}

// ---------------------------------------------------------------- wiring

byId('composer').addEventListener('submit', (e) => {
  e.preventDefault();
  submit();
});
input.addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    submit();
  }
});
document.addEventListener('keydown', (e) => {
  if (e.key === 'Escape' && live) {
    e.preventDefault();
    stop();
  }
});
stopButton.addEventListener('click', stop);
byId('new-chat').addEventListener('click', () => {
  if (live) return;
  current = null;
  renderAll();
  input.focus();
  document.body.classList.remove('sidebar-open');
});
modelSelect.addEventListener('change', () => {
  if (current) {
    current.model = modelSelect.value;
    persist();
  }
});
byId('toggle-sidebar').addEventListener('click', () => document.body.classList.toggle('sidebar-open'));
byId('settings-button').addEventListener('click', openSettings);
byId('theme-toggle').addEventListener('click', () => {
  settings = { ...settings, theme: effectiveTheme(settings.theme) === 'dark' ? 'light' : 'dark' };
  saveSettings(settings);
  applyTheme(settings.theme);
});
dialog.querySelector('form')!.addEventListener('submit', (e) => {
  const submitter = (e as SubmitEvent).submitter as HTMLButtonElement | null;
  if (submitter?.value !== 'save') return;
  const next = readSettings();
  if (typeof next === 'string') {
    e.preventDefault();
    dialog.querySelector('.error')!.textContent = next;
    return;
  }
  const keyChanged = next.apiKey !== settings.apiKey;
  settings = next;
  saveSettings(settings);
  applyTheme(settings.theme);
  if (keyChanged) void loadModels();
});
window.addEventListener('storage', (e) => {
  if (e.key === CONVERSATIONS_KEY && !live) {
    conversations = loadConversations();
    current = conversations.find((c) => c.id === current?.id) ?? conversations[0] ?? null;
    renderAll();
  }
});

applyTheme(settings.theme);
renderAll();
void loadModels();
input.focus();
