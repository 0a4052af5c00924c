/**
 * Prompt batches for RL rollouts. Each problem's prompt, in the R1-Zero or the R1 chat format
 * (prompt-format.ts), is encoded and rows are LEFT-padded with the pad id to the longest prompt of the
 * batch, so that every prompt ends in the last column and generation appends new tokens in the same
 * column for the whole batch (what a batched decoder with a KV cache wants).
 *
 * No attention mask is built: `lengths[b]` is row b's real prompt length and `padLeft[b]` = L −
 * lengths[b] its number of leading pads, so row b's tokens are columns padLeft[b] … L − 1 and the
 * token in column c has position c − padLeft[b]. A consumer that batches must mask the pads
 * (keys at columns < padLeft[b]) and shift positions by padLeft[b]; one that generates row by row
 * can slice them off.
 *
 * With groupSize G (GRPO), each problem fills G consecutive rows (row b·G + g is problem b); the
 * problems list has one entry per row. It knows nothing about sampling or rewards.
 */
import { type PromptFormat, encodeTaskPrompt } from './prompt-format.ts';
import { EpochIterator, type IteratorState } from './shuffle.ts';
import type { SeedPart } from './rng.ts';
import type { Problem } from './tasks/types.ts';
import type { Tokenizer } from '../tokenizer/index.ts';

export interface PromptBatch<P extends Problem = Problem> {
  /** [R, L] prompt ids, left-padded; R = problems × groupSize. */
  readonly ids: Int32Array;
  readonly shape: readonly [number, number];
  /** [R] real prompt length of each row. */
  readonly lengths: Int32Array;
  /** [R] leading pad tokens of each row (L − lengths). */
  readonly padLeft: Int32Array;
  /** [R] the problem of each row (for the reward). */
  readonly problems: readonly P[];
}

export interface PromptBatchOptions {
  /** Rows per problem (GRPO's G). Default 1. */
  groupSize?: number;
  /** A prompt longer than this many ids is an error (it would leave no room to generate). */
  maxPromptLen?: number;
  /** How each problem is asked (prompt-format.ts). Default r1-zero. */
  format?: PromptFormat;
}

/** A batch from already-encoded prompts (the loader caches encodings). */
export function promptBatchFromIds<P extends Problem>(
  pad: number,
  prompts: readonly Int32Array[],
  problems: readonly P[],
  o: PromptBatchOptions = {},
): PromptBatch<P> {
  const G = o.groupSize ?? 1;
  if (!Number.isInteger(G) || G < 1) throw new Error(`groupSize must be a positive integer, got ${G}`);
  if (prompts.length === 0) throw new Error('promptBatch: no problems');
  if (prompts.length !== problems.length) throw new Error(`promptBatch: ${prompts.length} prompts for ${problems.length} problems`);
  const L = Math.max(...prompts.map((p) => p.length));
  if (o.maxPromptLen !== undefined && L > o.maxPromptLen) {
    const i = prompts.findIndex((p) => p.length === L);
    throw new Error(`promptBatch: prompt ${i} has ${L} ids, more than maxPromptLen ${o.maxPromptLen}; raise maxPromptLen or shorten the problems`);
  }
  const R = prompts.length * G;
  const ids = new Int32Array(R * L).fill(pad);
  const lengths = new Int32Array(R);
  const padLeft = new Int32Array(R);
  const rowsProblems: P[] = [];
  for (let b = 0; b < prompts.length; b++) {
    const p = prompts[b];
    for (let g = 0; g < G; g++) {
      const r = b * G + g;
      ids.set(p, r * L + (L - p.length));
      lengths[r] = p.length;
      padLeft[r] = L - p.length;
      rowsProblems.push(problems[b]);
    }
  }
  return { ids, shape: [R, L], lengths, padLeft, problems: rowsProblems };
}

export function promptBatch<P extends Problem>(tok: Tokenizer, problems: readonly P[], o: PromptBatchOptions = {}): PromptBatch<P> {
  return promptBatchFromIds(
    tok.special.pad,
    problems.map((p) => encodeTaskPrompt(tok, p, o.format ?? 'r1-zero')),
    problems,
    o,
  );
}

export interface PromptLoaderOptions extends PromptBatchOptions {
  /** Problems per batch (rows = batchSize × groupSize). */
  batchSize: number;
  seed: SeedPart;
  resume?: IteratorState;
}

/** Shuffled, resumable prompt batches over a fixed list of problems. */
export class PromptLoader<P extends Problem = Problem> {
  private readonly it: EpochIterator<number>;
  private readonly encoded: Int32Array[];

  constructor(
    private readonly tok: Tokenizer,
    readonly problems: readonly P[],
    private readonly o: PromptLoaderOptions,
  ) {
    if (!Number.isInteger(o.batchSize) || o.batchSize < 1) throw new Error(`PromptLoader: batchSize must be a positive integer, got ${o.batchSize}`);
    this.encoded = problems.map((p) => encodeTaskPrompt(tok, p, o.format ?? 'r1-zero'));
    const idx = problems.map((_, i) => i);
    this.it = o.resume ? EpochIterator.resume(idx, o.resume) : new EpochIterator(idx, { seed: o.seed });
  }

  next(): PromptBatch<P> {
    const picks = this.it.take(this.o.batchSize);
    return promptBatchFromIds(
      this.tok.special.pad,
      picks.map((i) => this.encoded[i]),
      picks.map((i) => this.problems[i]),
      this.o,
    );
  }

  state(): IteratorState {
    return this.it.state();
  }
}
