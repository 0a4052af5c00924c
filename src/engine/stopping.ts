/**
 * Stopping criteria for one row of a batched generation, checked in JavaScript on the ids read
 * back each step (O(length of the stop sequences) per row per step, never O(vocab)).
 *
 *   end-of-sequence ids   the row stops on any of them (finish reason 'stop');
 *   stop sequences        the row stops when its completion ends with one of them — one id (e.g.
 *                         `</answer>`, id 8 in tinyseek tokenizers) or several; only generated ids
 *                         count, never the prompt ('stop');
 *   max new tokens        the row stops after this many ids ('length').
 * The id(s) that triggered a stop stay in the completion (they are part of what was sampled, and
 * carry a logprob); `StopMatch` says which criterion fired so that a server can strip them. When
 * the last allowed id also completes a stop, the reason is 'stop'.
 *
 * This module knows token ids; not text, tensors or the model.
 */

export type FinishReason = 'stop' | 'length';

/** Which stop criterion ended a row. */
export type StopMatch = { readonly kind: 'eos'; readonly id: number } | { readonly kind: 'sequence'; readonly index: number };

export interface StopOptions {
  /** Ids that end a row (default none). */
  eosIds?: readonly number[];
  /** Id sequences that end a row when the completion ends with one (default none). */
  stopSequences?: readonly (readonly number[])[];
  /** Most ids generated per row (≥ 1). */
  maxNewTokens: number;
}

export interface Finish {
  reason: FinishReason;
  match: StopMatch | null;
}

export class StopCriteria {
  readonly maxNewTokens: number;
  private readonly eos: ReadonlySet<number>;
  private readonly sequences: readonly (readonly number[])[];

  constructor(o: StopOptions) {
    if (!Number.isInteger(o.maxNewTokens) || o.maxNewTokens < 1) throw new RangeError(`maxNewTokens must be a positive integer, got ${o.maxNewTokens}`);
    for (const id of o.eosIds ?? []) if (!Number.isInteger(id) || id < 0) throw new RangeError(`eos ids must be non-negative integers, got ${id}`);
    (o.stopSequences ?? []).forEach((s, i) => {
      if (!Array.isArray(s) || s.length === 0) throw new RangeError(`stop sequence ${i} is empty; give at least one id`);
      for (const id of s) if (!Number.isInteger(id) || id < 0) throw new RangeError(`stop sequence ${i} holds ${id}, not a token id`);
    });
    this.maxNewTokens = o.maxNewTokens;
    this.eos = new Set(o.eosIds ?? []);
    this.sequences = (o.stopSequences ?? []).map((s) => [...s]);
  }

  /** Whether a completion (the ids generated so far, the newest last) is finished, and why. */
  check(completion: readonly number[]): Finish | null {
    const n = completion.length;
    if (n === 0) return null;
    const last = completion[n - 1];
    if (this.eos.has(last)) return { reason: 'stop', match: { kind: 'eos', id: last } };
    for (let i = 0; i < this.sequences.length; i++) {
      const s = this.sequences[i];
      if (s.length > n || s[s.length - 1] !== last) continue;
      let ok = true;
      for (let j = 0; j < s.length - 1 && ok; j++) ok = completion[n - s.length + j] === s[j];
      if (ok) return { reason: 'stop', match: { kind: 'sequence', index: i } };
    }
    return n >= this.maxNewTokens ? { reason: 'length', match: null } : null;
  }
}
