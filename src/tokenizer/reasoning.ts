/**
 * Splitting a reasoning model's reply into its reasoning and its answer, whole (splitReasoning)
 * or while it streams (ReasoningStream). The rule, the same for both:
 *
 * 1. A reply that opens with `<think>` (after optional whitespace) is in its reasoning. So is any
 *    reply when `startInReasoning` is set: the prompt already ended in `<think>\n`, as the chat
 *    template's generation prompt does in thinking mode (a repeated `<think>` is then dropped).
 *    Otherwise the reply has no reasoning: reasoning is null and the content is the reply as is.
 * 2. The reasoning runs to the first `</think>`; what follows is the content. When `</think>`
 *    never comes, everything is reasoning and the content is ''.
 * 3. Reasoning is trimmed of surrounding whitespace and content of leading whitespace (the
 *    template writes `<think>\n…\n</think>\n\n`).
 *
 * The stream gives the same text in pieces: it holds back anything that may still turn out to be
 * a tag (`<thi`, `</thin`) or whitespace that may turn out to be trimmed, so tags split across
 * deltas at any character are recognised, and the deltas concatenate to splitReasoning's result.
 *
 * Knows the tags and the trimming rule; nothing about tokens.
 */

const OPEN = '<think>';
const CLOSE = '</think>';

export interface SplitReasoningOptions {
  /** The prompt already opened the reasoning (it ended in `<think>\n`). Default false. */
  startInReasoning?: boolean;
}

export interface ReasoningSplit {
  /** null when the reply has no reasoning. */
  reasoning: string | null;
  content: string;
}

export interface ReasoningDelta {
  reasoning?: string;
  content?: string;
}

export function splitReasoning(text: string, o: SplitReasoningOptions = {}): ReasoningSplit {
  const lead = text.length - text.trimStart().length;
  let body: string;
  if (text.startsWith(OPEN, lead)) body = text.slice(lead + OPEN.length);
  else if (o.startInReasoning) body = text;
  else return { reasoning: null, content: text };
  const end = body.indexOf(CLOSE);
  if (end < 0) return { reasoning: body.trim(), content: '' };
  return { reasoning: body.slice(0, end).trim(), content: body.slice(end + CLOSE.length).trimStart() };
}

/** Length of the longest suffix of `s` that is a proper prefix of `tag`. */
function partialTagAtEnd(s: string, tag: string): number {
  for (let k = Math.min(tag.length - 1, s.length); k > 0; k--) {
    if (s.endsWith(tag.slice(0, k))) return k;
  }
  return 0;
}

/** Index just after the last non-whitespace character of s[0..end), or 0. */
function endOfText(s: string, end: number): number {
  let i = end;
  while (i > 0 && /\s/.test(s[i - 1])) i--;
  return i;
}

type State = 'start' | 'reasoning' | 'afterClose' | 'content';

/**
 * The streaming form of splitReasoning. push() each text delta (as a streaming token decoder
 * gives them) and end() once; each returns the reasoning and content that became certain.
 */
export class ReasoningStream {
  private state: State = 'start';
  private buf = '';
  private reasoningStarted = false;
  private readonly startInReasoning: boolean;

  constructor(o: SplitReasoningOptions = {}) {
    this.startInReasoning = o.startInReasoning ?? false;
  }

  /** Whether the reply has (so far) turned out to have reasoning. */
  get hasReasoning(): boolean {
    return this.state === 'reasoning' || this.state === 'afterClose' || (this.state === 'content' && this.reasoningStarted);
  }

  push(delta: string): ReasoningDelta {
    if (this.state === 'content') return delta === '' ? {} : { content: delta };
    this.buf += delta;
    return this.advance(false);
  }

  /** The reply is complete: releases what was held back. */
  end(): ReasoningDelta {
    return this.advance(true);
  }

  private advance(final: boolean): ReasoningDelta {
    const out: ReasoningDelta = {};
    const emit = (key: 'reasoning' | 'content', s: string): void => {
      if (s !== '') out[key] = (out[key] ?? '') + s;
    };
    for (;;) {
      if (this.state === 'start') {
        const t = this.buf.trimStart();
        if (t.startsWith(OPEN)) {
          this.buf = t.slice(OPEN.length);
          this.state = 'reasoning';
          this.reasoningStarted = true;
          continue;
        }
        const undecided = t === '' || OPEN.startsWith(t);
        if (undecided && !final) return out;
        if (this.startInReasoning) {
          this.state = 'reasoning';
          this.reasoningStarted = true;
          continue;
        }
        this.state = 'content';
        emit('content', this.buf);
        this.buf = '';
        return out;
      }
      if (this.state === 'reasoning') {
        const close = this.buf.indexOf(CLOSE);
        if (close >= 0) {
          this.emitReasoning(emit, this.buf.slice(0, endOfText(this.buf, close)));
          this.buf = this.buf.slice(close + CLOSE.length);
          this.state = 'afterClose';
          continue;
        }
        if (final) {
          this.emitReasoning(emit, this.buf.slice(0, endOfText(this.buf, this.buf.length)));
          this.buf = '';
          return out;
        }
        // Hold back a possible partial `</think>` and the whitespace before it.
        const safe = this.buf.length - partialTagAtEnd(this.buf, CLOSE);
        const cut = endOfText(this.buf, safe);
        this.emitReasoning(emit, this.buf.slice(0, cut));
        this.buf = this.buf.slice(cut);
        return out;
      }
      if (this.state === 'afterClose') {
        this.buf = this.buf.trimStart();
        if (this.buf === '') return out;
        this.state = 'content';
        emit('content', this.buf);
        this.buf = '';
        return out;
      }
      emit('content', this.buf);
      this.buf = '';
      return out;
    }
  }

  private reasoningEmitted = false;

  /** Emits reasoning text, trimming the leading whitespace of the reasoning as a whole. */
  private emitReasoning(emit: (key: 'reasoning', s: string) => void, s: string): void {
    const text = this.reasoningEmitted ? s : s.trimStart();
    if (text === '') return;
    this.reasoningEmitted = true;
    emit('reasoning', text);
  }
}
