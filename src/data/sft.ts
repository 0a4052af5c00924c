/**
 * Supervised fine-tuning batches. Each example is a conversation (ChatMessage[]) encoded with the
 * tokenizer's chat template (src/tokenizer/chat.ts: encodeChat), whose mask marks the assistant
 * tokens. For ids x_0 … x_n, the inputs are x_0 … x_{n−1} and the target at position t is x_{t+1}
 * when mask[t+1] is 1 and IGNORE_INDEX (-100) otherwise — so the loss falls only on assistant
 * tokens (their think block, answer and closing EOS), never on the system or user text.
 *
 * Rows are padded on the right (pad id in inputs, -100 in targets) to the longest row of the batch
 * or to maxLen; `lengths` gives the real input length of each row. Right padding is harmless for a
 * causal model: a real position never attends to a later pad. Examples longer than maxLen + 1 ids
 * are dropped when the loader is built (listed in `dropped`) unless tooLong is 'truncate' (keep the
 * first maxLen + 1 ids).
 *
 * It knows the chat template's API and the batch types, nothing about models.
 */
import { IGNORE_INDEX } from './batch.ts';
import { EpochIterator, type IteratorState } from './shuffle.ts';
import type { SeedPart } from './rng.ts';
import { type ChatMessage, type EncodeChatOptions, encodeChat } from '../tokenizer/index.ts';
import type { Tokenizer } from '../tokenizer/index.ts';
import { THINK_CLOSE } from './answer.ts';
import { encodeText } from './encode.ts';
import { encodeProblemPrompt, userTurnOf } from './prompt-format.ts';
import type { Problem } from './tasks/types.ts';

export interface SftExample {
  readonly ids: Int32Array;
  /** 1 on tokens the model must learn (from encodeChat), 0 elsewhere. */
  readonly mask: Uint8Array;
}

export function encodeSftExample(tok: Tokenizer, messages: readonly ChatMessage[], o: EncodeChatOptions = {}): SftExample {
  const e = encodeChat(tok, messages, o);
  return { ids: Int32Array.from(e.ids), mask: Uint8Array.from(e.mask) };
}

/**
 * A problem and a completion in the R1-Zero format ("…reasoning… </think> <answer>…</answer>") as a
 * chat conversation for SFT (cold start or distillation): the user turn is the task's question and
 * format instruction; the assistant turn has the reasoning as `reasoning_content` and what follows
 * </think> as `content`. A completion without </think> is all reasoning, with empty content.
 */
export function conversationFromCompletion(problem: Problem, completion: string): ChatMessage[] {
  const cut = completion.indexOf(THINK_CLOSE);
  const reasoning = (cut < 0 ? completion : completion.slice(0, cut)).trim();
  const content = cut < 0 ? '' : completion.slice(cut + THINK_CLOSE.length).trim();
  return [userTurnOf(problem), { role: 'assistant', content, reasoning_content: reasoning }];
}

/**
 * A problem and a completion in the R1-Zero format as one SFT example: the problem's R1-Zero prompt
 * ([BOS] + prompt, ending in <think>; mask 0) followed by the completion and EOS (mask 1) — the
 * format `tinyseek eval` and GRPO prompt with, so a student trained on it is measured as the RL
 * models are.
 */
export function encodeR1ZeroExample(tok: Tokenizer, problem: Problem, completion: string): SftExample {
  const prompt = encodeProblemPrompt(tok, problem);
  const body = [...encodeText(tok, completion), tok.special.eos];
  const ids = new Int32Array(prompt.length + body.length);
  ids.set(prompt);
  ids.set(body, prompt.length);
  const mask = new Uint8Array(ids.length);
  mask.fill(1, prompt.length);
  return { ids, mask };
}

export interface SftBatch {
  /** [B, L] input ids, right-padded with the pad id. */
  readonly inputs: Int32Array;
  /** [B, L] targets: the next id on assistant tokens, IGNORE_INDEX elsewhere and on padding. */
  readonly targets: Int32Array;
  /** [B] real input positions per row. */
  readonly lengths: Int32Array;
  readonly shape: readonly [number, number];
}

export interface SftBatchOptions {
  pad: number;
  /** Longest input row; longer examples are cut to maxLen + 1 ids. */
  maxLen: number;
  /** Pad every batch to maxLen (fixed shapes) instead of to its longest row. Default false. */
  padToMax?: boolean;
}

export function sftBatch(examples: readonly SftExample[], o: SftBatchOptions): SftBatch {
  if (examples.length === 0) throw new Error('sftBatch: no examples');
  const rows = examples.map((e) => Math.max(0, Math.min(e.ids.length, o.maxLen + 1) - 1));
  const L = o.padToMax ? o.maxLen : Math.max(1, ...rows);
  const B = examples.length;
  const inputs = new Int32Array(B * L).fill(o.pad);
  const targets = new Int32Array(B * L).fill(IGNORE_INDEX);
  const lengths = new Int32Array(B);
  for (let b = 0; b < B; b++) {
    const { ids, mask } = examples[b];
    if (ids.length !== mask.length) throw new Error(`sftBatch: example ${b} has ${ids.length} ids but ${mask.length} mask entries`);
    const n = rows[b];
    lengths[b] = n;
    for (let t = 0; t < n; t++) {
      inputs[b * L + t] = ids[t];
      if (mask[t + 1]) targets[b * L + t] = ids[t + 1];
    }
  }
  return { inputs, targets, lengths, shape: [B, L] };
}

export interface SftLoaderOptions extends SftBatchOptions, EncodeChatOptions {
  batchSize: number;
  seed: SeedPart;
  /** 'drop' (default) leaves out examples longer than maxLen + 1 ids; 'truncate' keeps their start. */
  tooLong?: 'drop' | 'truncate';
  resume?: IteratorState;
}

/** Shuffled, resumable SFT batches over a list of conversations. */
export class SftLoader {
  readonly examples: SftExample[] = [];
  /** Indices (into the conversations given) of examples left out for being too long. */
  readonly dropped: number[] = [];
  /** Indices of examples with no token to learn (no assistant turn); always left out. */
  readonly unlearnable: number[] = [];
  private readonly it: EpochIterator<SftExample>;

  /** Conversations are encoded with the chat template; already encoded examples are taken as they are. */
  constructor(
    tok: Tokenizer,
    conversations: readonly (readonly ChatMessage[] | SftExample)[],
    private readonly o: SftLoaderOptions,
  ) {
    conversations.forEach((item, i) => {
      const e = 'ids' in item ? item : encodeSftExample(tok, item, o);
      if (!e.mask.some((m, t) => m === 1 && t > 0)) {
        this.unlearnable.push(i);
        return;
      }
      if (e.ids.length > o.maxLen + 1 && (o.tooLong ?? 'drop') === 'drop') {
        this.dropped.push(i);
        return;
      }
      this.examples.push(e);
    });
    if (this.examples.length === 0) {
      throw new Error(
        `SftLoader: no usable example (${this.dropped.length} longer than maxLen ${o.maxLen} + 1 ids, ${this.unlearnable.length} without an assistant turn); raise maxLen or check the data`,
      );
    }
    this.it = o.resume ? EpochIterator.resume(this.examples, o.resume) : new EpochIterator(this.examples, { seed: o.seed });
  }

  next(): SftBatch {
    return sftBatch(this.it.take(this.o.batchSize), this.o);
  }

  state(): IteratorState {
    return this.it.state();
  }
}
