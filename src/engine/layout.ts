/**
 * The left-padded layout of a batch of prompts of different lengths, as tinyseek's RL prompt
 * batches have it (src/data/rl.ts): every prompt ends in the last column L − 1, so generation
 * appends each row's next id in the same column. Row r has padLeft[r] = L − length[r] leading
 * pads; the token in column c sits at position c − padLeft[r]; pad keys must be masked.
 *
 * The tensors (`layoutTensors`) are what the model's batched forward takes: ids (B, L), positions
 * (B, L) (pads clamped to position 0; never attended), the key-padding buffer (B, maxLen) over the
 * whole cache (true on the pads), and −padLeft (B, 1) from which a decoding step's positions are
 * one add. All are null/absent when no row is padded (then position = column, as in training).
 *
 * This module knows token ids and shapes; not the model or sampling.
 */
import { type Device, type Tensor, arange, tensor } from '../core/index.ts';

export interface PromptLayout {
  /** B rows. */
  readonly rows: number;
  /** L, the longest prompt. */
  readonly width: number;
  /** (B·L) row-major ids, left-padded with padId. */
  readonly ids: Int32Array;
  /** [B] real prompt lengths. */
  readonly lengths: Int32Array;
  /** [B] leading pads (L − length). */
  readonly padLeft: Int32Array;
  /** Whether any row is padded. */
  readonly padded: boolean;
}

/** Lays out prompts (each at least one id, ids in [0, vocab)) left-padded with padId. */
export function leftPad(prompts: readonly ArrayLike<number>[], padId: number, vocab: number): PromptLayout {
  if (prompts.length === 0) throw new RangeError('generate: no prompts');
  let L = 0;
  prompts.forEach((p, r) => {
    if (p.length === 0) throw new RangeError(`prompt ${r} is empty; a prompt needs at least one id (e.g. BOS)`);
    for (let i = 0; i < p.length; i++) {
      const id = p[i];
      if (!Number.isInteger(id) || id < 0 || id >= vocab)
        throw new RangeError(`prompt ${r} holds ${id} at index ${i}, outside the model's vocabulary [0, ${vocab})`);
    }
    L = Math.max(L, p.length);
  });
  const B = prompts.length;
  const ids = new Int32Array(B * L).fill(padId);
  const lengths = new Int32Array(B);
  const padLeft = new Int32Array(B);
  prompts.forEach((p, r) => {
    lengths[r] = p.length;
    padLeft[r] = L - p.length;
    for (let i = 0; i < p.length; i++) ids[r * L + padLeft[r] + i] = p[i];
  });
  return { rows: B, width: L, ids, lengths, padLeft, padded: padLeft.some((n) => n > 0) };
}

export interface LayoutTensors {
  /** (B, L) int64 */
  ids: Tensor;
  /** (B, L) int64 positions, or null when unpadded. */
  positions: Tensor | null;
  /** (B, maxLen) bool, true on pad columns, or null when unpadded. */
  keyPadding: Tensor | null;
  /** (B, 1) int64 −padLeft, or null when unpadded. */
  negPadLeft: Tensor | null;
}

/** The layout's tensors on `device`, for a cache of maxLen columns. The caller owns them. */
export function layoutTensors(l: PromptLayout, maxLen: number, device: Device): LayoutTensors {
  const ids = tensor(l.ids, { shape: [l.rows, l.width], dtype: 'int64', device }); // (B, L)
  if (!l.padded) return { ids, positions: null, keyPadding: null, negPadLeft: null };
  const negPadLeft = tensor(
    Int32Array.from(l.padLeft, (n) => -n),
    { shape: [l.rows, 1], dtype: 'int64', device },
  ); // (B, 1)
  const positions = arange(0, l.width, 1, { device }).view([1, l.width]).add(negPadLeft).clamp(0); // (B, L)
  const keyPadding = arange(0, maxLen, 1, { device }).view([1, maxLen]).add(negPadLeft).lt(0); // (B, maxLen)
  return { ids, positions, keyPadding, negPadLeft };
}
