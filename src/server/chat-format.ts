/**
 * How a served model's conversations become prompts: the chat template a checkpoint declares in its
 * `chat.json`, never guessed.
 *
 *   {"template": "r1"}                               DeepSeek-R1's format (tokenizer/chat.ts): the
 *                                                    reply opens in `<think>\n`;
 *   {"template": "r1-zero", "frame": "compact"}      the R1-Zero conversation prompt a model trained by
 *   {"template": "r1-zero", "frame": "tinyzero"}     rule-rewarded RL learned (data/prompt.ts): each user
 *                                                    turn "User: …", the reply after "Assistant: <think>",
 *                                                    its answer inside <answer> </answer> (the server
 *                                                    strips those tags from `content`).
 * Optional fields: "tools" (true when the model was trained for tool calls; default false), "fim"
 * (true when it was pretrained with fill-in-the-middle documents; default false).
 *
 * Earlier assistant turns enter the prompt by their content only: their reasoning never does.
 *
 * It knows templates and the tokenizer; not HTTP or the engine.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { encodePrompt } from '../data/encode.ts';
import { ASSISTANT_PREFIX, COMPACT_ASSISTANT_PREFIX, SYSTEM_LINE } from '../data/prompt.ts';
import { type ChatMessage, type Tokenizer, encodeChat } from '../tokenizer/index.ts';

export const ChatFormatFile = z
  .object({
    template: z.enum(['r1', 'r1-zero']).describe('r1: DeepSeek-R1 chat template; r1-zero: the R1-Zero conversation prompt'),
    frame: z.enum(['compact', 'tinyzero']).optional().describe('the R1-Zero prompt frame (r1-zero only; default compact)'),
    tools: z.boolean().default(false).describe('the model was trained to call tools'),
    fim: z.boolean().default(false).describe('the model was pretrained with fill-in-the-middle documents'),
  })
  .strict();
export type ChatFormatFile = z.infer<typeof ChatFormatFile>;

export interface ChatPrompt {
  ids: number[];
  /** The prompt already opened the reasoning. */
  startInReasoning: boolean;
}

export class ChatFormat {
  constructor(
    readonly file: ChatFormatFile,
    private readonly tok: Tokenizer,
  ) {}

  /** The format a checkpoint declares; a clear error when it declares none or a bad one. */
  static load(checkpoint: string, tok: Tokenizer): ChatFormat {
    const path = join(checkpoint, 'chat.json');
    if (!existsSync(path)) {
      throw new Error(
        `${checkpoint} declares no chat template: add ${path} with {"template": "r1"} (a model trained on the R1 chat format) or {"template": "r1-zero", "frame": "compact"} (an R1-Zero model)`,
      );
    }
    let raw: unknown;
    try {
      raw = JSON.parse(readFileSync(path, 'utf8'));
    } catch (e) {
      throw new Error(`${path} is not valid JSON: ${(e as Error).message}`);
    }
    const r = ChatFormatFile.safeParse(raw);
    if (!r.success) throw new Error(`${path}: ${r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`);
    return new ChatFormat(r.data, tok);
  }

  /** Whether the content of a reply is wrapped in <answer> tags the server removes. */
  get answerTags(): boolean {
    return this.file.template === 'r1-zero';
  }

  /** Ids that end a reply besides the model's eos (the R1-Zero answer's closing tag). */
  stopSequences(): number[][] {
    return this.file.template === 'r1-zero' ? [[this.tok.special.answerClose]] : [];
  }

  /**
   * The prompt of a conversation whose reply the model writes next. With `prefix` the last message
   * is the assistant's unfinished reply (chat prefix completion), which the model continues.
   */
  prompt(messages: readonly ChatMessage[], o: { prefix?: boolean } = {}): ChatPrompt {
    const head = o.prefix ? messages.slice(0, -1) : messages;
    const tail = o.prefix ? messages[messages.length - 1] : null;
    if (this.file.template === 'r1') {
      const { ids } = encodeChat(this.tok, head, { addGenerationPrompt: true, thinking: true });
      if (!tail) return { ids, startInReasoning: true };
      const reasoning = tail.reasoning_content;
      const text = reasoning !== undefined ? `${reasoning}\n</think>\n\n${tail.content}` : tail.content;
      return { ids: [...ids, ...this.tok.encode(text)], startInReasoning: reasoning === undefined && !text.includes('</think>') };
    }
    const compact = (this.file.frame ?? 'compact') === 'compact';
    const lines: string[] = [];
    const system = head.filter((m) => m.role === 'system').map((m) => m.content);
    if (!compact) lines.push(SYSTEM_LINE);
    if (system.length) lines.push(system.join('\n\n'));
    for (const m of head) {
      if (m.role === 'user') lines.push(compact ? `User: ${m.content} Think in <think> </think>, answer in <answer> </answer>.` : `User: ${m.content}`);
      else if (m.role === 'assistant') lines.push(`Assistant: <answer>${m.content}</answer>`);
    }
    let text = `${lines.join('\n')}\n${compact ? COMPACT_ASSISTANT_PREFIX : ASSISTANT_PREFIX}`;
    let inReasoning = true;
    if (tail) {
      text += tail.reasoning_content !== undefined ? `${tail.reasoning_content}</think>\n<answer>${tail.content}` : tail.content;
      inReasoning = tail.reasoning_content === undefined && !tail.content.includes('</think>');
    }
    // BOS, then the text with its tags as their own ids: exactly how the model's training prompts were encoded
    return { ids: encodePrompt(this.tok, text), startInReasoning: inReasoning };
  }
}

/** Removes the given tags from streamed text, holding back what may still become one. */
export class TagStripper {
  private held = '';
  constructor(private readonly tags: readonly string[]) {}

  push(delta: string): string {
    let s = this.held + delta;
    for (const t of this.tags) s = s.split(t).join('');
    // hold back a suffix that is a proper prefix of a tag
    let keep = 0;
    for (const t of this.tags) for (let k = Math.min(t.length - 1, s.length); k > keep; k--) if (t.startsWith(s.slice(s.length - k))) keep = k;
    this.held = s.slice(s.length - keep);
    return s.slice(0, s.length - keep);
  }

  end(): string {
    const s = this.held;
    this.held = '';
    return s;
  }
}
