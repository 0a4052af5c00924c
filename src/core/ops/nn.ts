/**
 * Linear algebra and the functional pieces of neural networks: matmul/einsum, softmax,
 * cross-entropy, dropout, embedding lookup, top-k, sorting and sampling.
 */
import type { DType } from '../dtype.ts';
import { B, DEF, DT, F, GEN, I, OT, STR, T, TL, begin, op, run, run2 } from '../dispatch.ts';
import type { Generator } from '../random.ts';
import type { Tensor } from '../tensor.ts';
import type { ValuesIndices } from './reduce.ts';

const MATMUL = op('matmul');
const MM = op('mm');
const BMM = op('bmm');
const EINSUM = op('einsum');
const LINEAR = op('linear');
const MV = op('mv');
const SOFTMAX = op('softmax', 'int');
const LOG_SOFTMAX = op('log_softmax', 'int');
const CROSS_ENTROPY = op('cross_entropy_loss');
const DROPOUT = op('dropout');
const BERNOULLI_ = op('bernoulli_', 'float');
const EMPTY_LIKE = op('empty_like');
const EMBEDDING = op('embedding');
const TOPK = op('topk');
const SORT = op('sort', 'stable');
const ARGSORT = op('argsort');
const MULTINOMIAL = op('multinomial');
const BINCOUNT = op('bincount');
const ONE_HOT = op('one_hot');

export function matmul(a: Tensor, b: Tensor): Tensor {
  begin();
  T(a);
  T(b);
  return run(MATMUL);
}

export function mm(a: Tensor, b: Tensor): Tensor {
  begin();
  T(a);
  T(b);
  return run(MM);
}

export function bmm(a: Tensor, b: Tensor): Tensor {
  begin();
  T(a);
  T(b);
  return run(BMM);
}

/** Einstein summation, e.g. einsum('bhqd,bhkd->bhqk', q, k). */
export function einsum(equation: string, ...operands: Tensor[]): Tensor {
  begin();
  STR(equation);
  TL(operands);
  return run(EINSUM);
}

/**
 * Weights with at least this many elements go to aten::mv for a single input row (see linear).
 * Measured with 2 threads, float32, one row, each weight read cold (a ring of copies larger than the
 * 32 MiB L3, as a decode step reads ~200 MB of weights) — linear (a GEMM with m = 1 in OpenBLAS)
 * against mv (its GEMV): 128×256 13.5 vs 19.1 µs (GEMM wins: mv's fixed cost), 256×512 41.7 vs
 * 28.2, 512×512 87.1 vs 40.7, 512×1024 138.9 vs 70.2, 1024×512 114.5 vs 71.9, 1024×1024 219.5
 * vs 126.9 (mv reads ~30 GB/s there). The earlier threshold, 2¹⁹ exclusive, came from warm
 * weights, where 512×1024 was a tie (37 vs 36 µs); cold, as in decoding, mv wins from 2¹⁷ up.
 */
const MV_MIN_WEIGHT = 1 << 17;

/**
 * x·Wᵀ + b, W of shape (out, in). A single row (batch-1 decoding: x of shape (…, in) with one
 * row) times a large W goes to W·x (aten::mv): libtorch 1.13 sends linear to a GEMM even for one
 * row, and OpenBLAS's GEMM with m = 1 reads a large W several times slower than its GEMV. Same
 * result up to float32 summation order; gradients flow either way.
 */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  const shape = x.shape;
  const inF = shape[shape.length - 1];
  // weight.shape is a native call: read it only for a single row, not on every training step
  const w = shape.reduce((a, b) => a * b, 1) === inF ? weight.shape : null;
  if (w && w.length === 2 && w[0] * w[1] >= MV_MIN_WEIGHT) {
    const v = x.reshape([inF]); // (in)
    begin();
    T(weight);
    T(v);
    const y = run(MV); // (out)
    const out = bias ? y.add(bias) : y;
    return out.reshape([...shape.slice(0, -1), w[0]]); // (…, out)
  }
  begin();
  T(x);
  T(weight);
  OT(bias);
  return run(LINEAR);
}

export function softmax(x: Tensor, dim: number, dtype?: DType): Tensor {
  begin();
  T(x);
  I(dim);
  DT(dtype);
  return run(SOFTMAX);
}

export function logSoftmax(x: Tensor, dim: number, dtype?: DType): Tensor {
  begin();
  T(x);
  I(dim);
  DT(dtype);
  return run(LOG_SOFTMAX);
}

export type Reduction = 'none' | 'mean' | 'sum';
const REDUCTION: Record<Reduction, number> = { none: 0, mean: 1, sum: 2 };

export interface CrossEntropyOptions {
  /** Targets equal to this are skipped (no loss, no gradient) and excluded from the mean. */
  ignoreIndex?: number;
  reduction?: Reduction;
  labelSmoothing?: number;
  weight?: Tensor;
}

/**
 * Cross-entropy of logits (N, C) or (N, C, d…) against int64 class targets (N) or (N, d…). With
 * 'mean', the mean runs over the targets that are not ignored.
 */
export function crossEntropy(logits: Tensor, target: Tensor, o: CrossEntropyOptions = {}): Tensor {
  const reduction = o.reduction ?? 'mean';
  if (!(reduction in REDUCTION)) throw new TypeError(`crossEntropy: reduction must be none, mean or sum, got ${String(reduction)}`);
  begin();
  T(logits);
  T(target);
  OT(o.weight);
  I(REDUCTION[reduction]);
  I(o.ignoreIndex ?? -100);
  F(o.labelSmoothing ?? 0);
  return run(CROSS_ENTROPY);
}

/**
 * Zeroes each element with probability p and scales the rest by 1/(1-p) when training; identity
 * otherwise. With a generator the mask is drawn from it, so runs are reproducible.
 */
export function dropout(x: Tensor, p: number, training: boolean, generator?: Generator): Tensor {
  if (!(p >= 0 && p <= 1)) throw new RangeError(`dropout probability must be in [0, 1], got ${p}`);
  if (!training || p === 0) return x;
  if (!generator) {
    begin();
    T(x);
    F(p);
    B(training);
    return run(DROPOUT);
  }
  begin();
  T(x);
  DEF();
  DEF();
  DEF();
  DEF();
  DEF();
  const mask = run(EMPTY_LIKE);
  begin();
  T(mask);
  F(1 - p);
  GEN(generator.id);
  run(BERNOULLI_);
  const scaled = mask.div(1 - p);
  mask.dispose();
  const out = x.mul(scaled);
  scaled.dispose();
  return out;
}

/** Rows of `weight` picked by integer `indices` (any shape). */
export function embedding(weight: Tensor, indices: Tensor, paddingIdx = -1): Tensor {
  begin();
  T(weight);
  T(indices);
  I(paddingIdx);
  return run(EMBEDDING);
}

export function topk(x: Tensor, k: number, dim = -1, largest = true, sorted = true): ValuesIndices {
  begin();
  T(x);
  I(k);
  I(dim);
  B(largest);
  B(sorted);
  const [values, indices] = run2(TOPK);
  return { values, indices };
}

/** Stable sort along dim. */
export function sort(x: Tensor, dim = -1, descending = false): ValuesIndices {
  begin();
  T(x);
  B(true);
  I(dim);
  B(descending);
  const [values, indices] = run2(SORT);
  return { values, indices };
}

export function argsort(x: Tensor, dim = -1, descending = false): Tensor {
  begin();
  T(x);
  I(dim);
  B(descending);
  return run(ARGSORT);
}

/** Draws `numSamples` indices per row from the (unnormalised) probabilities in x. */
export function multinomial(x: Tensor, numSamples: number, replacement = false, generator?: Generator): Tensor {
  begin();
  T(x);
  I(numSamples);
  B(replacement);
  GEN(generator?.id);
  return run(MULTINOMIAL);
}

/** Counts of each value in a 1-D non-negative int tensor (weighted when weights are given). */
export function bincount(x: Tensor, weights?: Tensor | null, minlength = 0): Tensor {
  begin();
  T(x);
  OT(weights);
  I(minlength);
  return run(BINCOUNT);
}

export function oneHot(x: Tensor, numClasses = -1): Tensor {
  begin();
  T(x);
  I(numClasses);
  return run(ONE_HOT);
}
