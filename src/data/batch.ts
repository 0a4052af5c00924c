/**
 * The batch types the loaders produce: plain row-major Int32Array matrices with their shapes, and
 * one helper that turns a matrix into an int64 tensor through src/core when a trainer wants one.
 *
 * Why typed arrays and not tensors: batches are built, checked and resumed without touching
 * libtorch (no native memory to free, nothing to tidy), and the trainer converts once per step
 * with `toTensor` (int64, since libtorch's embedding and cross-entropy take int64 indices).
 * Ignored targets are IGNORE_INDEX (-100), crossEntropy's default ignoreIndex.
 */
import { type Device, type Tensor, tensor } from '../core/index.ts';

/** Target value that the loss skips (PyTorch's and src/core crossEntropy's default ignore_index). */
export const IGNORE_INDEX = -100;

export type Shape2 = readonly [rows: number, cols: number];

/** A row-major matrix of token ids (or targets). */
export interface IntMatrix {
  readonly data: Int32Array;
  readonly shape: Shape2;
}

/** An int64 tensor of the same shape, on `device` (default cpu). The caller owns it (dispose or tidy). */
export function toTensor(m: IntMatrix, device?: Device): Tensor {
  if (m.data.length !== m.shape[0] * m.shape[1])
    throw new Error(`toTensor: data has ${m.data.length} elements but the shape ${m.shape.join('×')} needs ${m.shape[0] * m.shape[1]}`);
  return tensor(m.data, { dtype: 'int64', shape: [...m.shape], device });
}
