/**
 * Fill-in-the-middle documents (DeepSeek-V3's pretraining, after DeepSeekCoder: a share of the
 * documents — 0.1 in V3 — is rearranged in Prefix-Suffix-Middle order so that the model learns to
 * write a missing middle from the text on both sides, while plain next-token prediction is kept on
 * the rest). A document [BOS, t_1 … t_n, EOS] is cut at two points drawn uniformly, and written
 *
 *   [BOS, <｜fim▁begin｜>, prefix…, <｜fim▁hole｜>, suffix…, <｜fim▁end｜>, middle…, EOS]
 *
 * (V3 cuts at the character level; here the cuts fall between tokens, which keeps the middle's
 * tokenization the document's own). A FIM request is the same up to <｜fim▁end｜>; the model then
 * writes the middle and ends with EOS.
 *
 * It knows token ids and a random stream; not text or tokenizers (the ids come from the caller).
 */
import type { Rng } from './rng.ts';

/** DeepSeek-V3's FIM tokens. */
export const FIM_TOKENS = ['<｜fim▁begin｜>', '<｜fim▁hole｜>', '<｜fim▁end｜>'] as const;

export interface FimIds {
  bos: number;
  eos: number;
  begin: number;
  hole: number;
  end: number;
}

/** A document in PSM order (see the module header); `doc` must be [BOS, …, EOS]. */
export function fimDocument(doc: ArrayLike<number>, ids: FimIds, rng: Rng): number[] {
  const body = Array.from(doc).slice(1, -1);
  const n = body.length;
  let a = rng.int(0, n);
  let b = rng.int(0, n);
  if (a > b) [a, b] = [b, a];
  return [ids.bos, ids.begin, ...body.slice(0, a), ids.hole, ...body.slice(b), ids.end, ...body.slice(a, b), ids.eos];
}

/** The prompt of a FIM request: everything up to <｜fim▁end｜>; the model writes the middle next. */
export function fimPrompt(ids: FimIds, prefix: readonly number[], suffix: readonly number[]): number[] {
  return [ids.bos, ids.begin, ...prefix, ids.hole, ...suffix, ids.end];
}
