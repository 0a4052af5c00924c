/**
 * DeepSeek-R1's conversation format, as text (renderChat) and as ids with a training mask
 * (encodeChat):
 *
 *   <｜begin▁of▁sentence｜>{system}<｜User｜>{user}<｜Assistant｜>{answer}<｜end▁of▁sentence｜><｜User｜>…
 *
 * - System messages, wherever they are, are joined with "\n\n" and placed right after BOS
 *   (DeepSeek's template does the same).
 * - Reasoning is written `<think>\n{reasoning}\n</think>\n\n` before the answer, and only for the
 *   LAST message, when it is an assistant message with `reasoning_content`, and `thinking` is on
 *   (the default): that is the turn being trained on. Earlier assistant turns never carry their
 *   reasoning (chat apps and DeepSeek's template drop it from the next prompt); from their
 *   `content`, as DeepSeek's template does, only what follows the last `</think>` is kept.
 * - addGenerationPrompt appends `<｜Assistant｜>` and, when thinking, `<think>\n`, so that the
 *   model's reply starts inside its reasoning (parse it with ReasoningStream({ startInReasoning })).
 *
 * encodeChat places control tokens by id and encodes message text with allowSpecial off, so a
 * message that contains "<｜User｜>" cannot forge a turn. Its ids equal
 * encode(renderChat(…), { allowSpecial: true }) for such ordinary text, except that "\n" after
 * `<think>` is always its own token: so the ids of a generation prompt are an exact prefix of the
 * ids of the same conversation with the assistant's reply added.
 *
 * The mask (for SFT) is 1 on the tokens the model must learn: every assistant turn after its
 * `<｜Assistant｜>` token (think block, answer and the closing `<｜end▁of▁sentence｜>`), or only
 * the final turn with { trainOn: 'last' }; 0 on everything else.
 *
 * Knows the format and the Tokenizer's API; nothing about BPE.
 */
import { SPECIAL_TOKENS, type SpecialName } from './special.ts';
import type { Tokenizer } from './tokenizer.ts';

export type ChatRole = 'system' | 'user' | 'assistant';

export interface ChatMessage {
  role: ChatRole;
  content: string;
  /** The assistant's reasoning (DeepSeek API's field name). */
  reasoning_content?: string;
}

export interface ChatTemplateOptions {
  /** End with `<｜Assistant｜>` (and `<think>\n` when thinking) for the model to continue. Default false. */
  addGenerationPrompt?: boolean;
  /** Reasoning mode: the generation prompt opens `<think>`, and the final turn keeps its reasoning. Default true. */
  thinking?: boolean;
}

export interface EncodeChatOptions extends ChatTemplateOptions {
  /** Which assistant turns the mask marks: all of them (default) or only the final message. */
  trainOn?: 'all' | 'last';
}

export interface EncodedChat {
  ids: number[];
  /** 1 where the model must learn the token, 0 elsewhere; as long as ids. */
  mask: number[];
}

/** One stretch of the rendered conversation: a control token or text. */
type Part = { token: SpecialName; learn: boolean } | { text: string; learn: boolean };

const ROLES: readonly string[] = ['system', 'user', 'assistant'];

function validate(messages: readonly ChatMessage[]): void {
  if (!Array.isArray(messages)) throw new TypeError('messages must be an array of { role, content }');
  messages.forEach((m, i) => {
    if (typeof m !== 'object' || m === null) throw new TypeError(`messages[${i}] must be an object { role, content }`);
    if (!ROLES.includes(m.role)) throw new TypeError(`messages[${i}].role is ${JSON.stringify(m.role)}; it must be 'system', 'user' or 'assistant'`);
    if (typeof m.content !== 'string') throw new TypeError(`messages[${i}].content must be a string`);
    if (m.reasoning_content !== undefined && typeof m.reasoning_content !== 'string') {
      throw new TypeError(`messages[${i}].reasoning_content must be a string when given`);
    }
  });
}

/** The conversation as parts; the single source of truth for both renderChat and encodeChat. */
function layout(messages: readonly ChatMessage[], o: EncodeChatOptions): Part[] {
  validate(messages);
  const thinking = o.thinking ?? true;
  const trainAll = (o.trainOn ?? 'all') === 'all';
  const parts: Part[] = [{ token: 'bos', learn: false }];
  const system = messages.filter((m) => m.role === 'system').map((m) => m.content);
  if (system.length > 0) parts.push({ text: system.join('\n\n'), learn: false });
  const last = messages.length - 1;
  messages.forEach((m, i) => {
    if (m.role === 'user') {
      parts.push({ token: 'user', learn: false }, { text: m.content, learn: false });
    } else if (m.role === 'assistant') {
      const learn = trainAll || i === last;
      parts.push({ token: 'assistant', learn: false });
      if (i === last && thinking && m.reasoning_content !== undefined) {
        parts.push(
          { token: 'thinkOpen', learn },
          { text: '\n', learn },
          { text: `${m.reasoning_content}\n`, learn },
          { token: 'thinkClose', learn },
          { text: `\n\n${m.content}`, learn },
        );
      } else {
        const cut = m.content.lastIndexOf(SPECIAL_TOKENS.thinkClose);
        parts.push({ text: cut < 0 ? m.content : m.content.slice(cut + SPECIAL_TOKENS.thinkClose.length), learn });
      }
      parts.push({ token: 'eos', learn });
    }
  });
  if (o.addGenerationPrompt) {
    parts.push({ token: 'assistant', learn: false });
    if (thinking) parts.push({ token: 'thinkOpen', learn: false }, { text: '\n', learn: false });
  }
  return parts;
}

/** The conversation as text, in DeepSeek-R1's format. */
export function renderChat(messages: readonly ChatMessage[], o: ChatTemplateOptions = {}): string {
  return layout(messages, o)
    .map((p) => ('token' in p ? SPECIAL_TOKENS[p.token] : p.text))
    .join('');
}

/** The conversation as ids, with the SFT mask (see the module comment for the rule). */
export function encodeChat(tokenizer: Tokenizer, messages: readonly ChatMessage[], o: EncodeChatOptions = {}): EncodedChat {
  const ids: number[] = [];
  const mask: number[] = [];
  for (const p of layout(messages, o)) {
    const start = ids.length;
    if ('token' in p) {
      const id = tokenizer.special[p.token];
      if (id < 0) throw new Error(`the chat template needs ${SPECIAL_TOKENS[p.token]}, which this tokenizer lacks (it was loaded with allowMissingSpecial)`);
      ids.push(id);
    } else {
      for (const id of tokenizer.encode(p.text)) ids.push(id);
    }
    for (let i = start; i < ids.length; i++) mask.push(p.learn ? 1 : 0);
  }
  return { ids, mask };
}
