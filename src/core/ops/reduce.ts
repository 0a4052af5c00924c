/**
 * Reductions over all elements or over given dimensions, with PyTorch's keepdim semantics.
 */
import type { DType } from '../dtype.ts';
import { B, DT, I, IL, NONE, OI, S, T, begin, op, run, run2 } from '../dispatch.ts';
import type { Tensor } from '../tensor.ts';

export type Dims = number | readonly number[];

const SUM = op('sum');
const SUM_DIM = op('sum', 'dim_IntList');
const MEAN = op('mean');
const MEAN_DIM = op('mean', 'dim');
const MAX = op('max');
const MAX_DIM = op('max', 'dim');
const MIN = op('min');
const MIN_DIM = op('min', 'dim');
const AMAX = op('amax');
const AMIN = op('amin');
const ARGMAX = op('argmax');
const ARGMIN = op('argmin');
const PROD = op('prod');
const PROD_DIM = op('prod', 'dim_int');
const VAR = op('var', 'correction');
const STD = op('std', 'correction');
const NORM = op('linalg_vector_norm');
const LOGSUMEXP = op('logsumexp');
const CUMSUM = op('cumsum');
const ALL = op('all');
const ALL_DIM = op('all', 'dim');
const ANY = op('any');
const ANY_DIM = op('any', 'dim');

const dimList = (d: Dims): readonly number[] => (typeof d === 'number' ? [d] : d);

export function sum(x: Tensor, dim?: Dims, keepdim = false, dtype?: DType): Tensor {
  begin();
  T(x);
  if (dim === undefined) {
    DT(dtype);
    return run(SUM);
  }
  IL(dimList(dim));
  B(keepdim);
  DT(dtype);
  return run(SUM_DIM);
}

export function mean(x: Tensor, dim?: Dims, keepdim = false, dtype?: DType): Tensor {
  begin();
  T(x);
  if (dim === undefined) {
    DT(dtype);
    return run(MEAN);
  }
  IL(dimList(dim));
  B(keepdim);
  DT(dtype);
  return run(MEAN_DIM);
}

export interface ValuesIndices {
  values: Tensor;
  indices: Tensor;
}

/** The maximum of all elements. */
export function maxAll(x: Tensor): Tensor {
  begin();
  T(x);
  return run(MAX);
}

/** Maximum values and their indices along dim. */
export function maxDim(x: Tensor, dim: number, keepdim = false): ValuesIndices {
  begin();
  T(x);
  I(dim);
  B(keepdim);
  const [values, indices] = run2(MAX_DIM);
  return { values, indices };
}

export function minAll(x: Tensor): Tensor {
  begin();
  T(x);
  return run(MIN);
}

export function minDim(x: Tensor, dim: number, keepdim = false): ValuesIndices {
  begin();
  T(x);
  I(dim);
  B(keepdim);
  const [values, indices] = run2(MIN_DIM);
  return { values, indices };
}

export function amax(x: Tensor, dim: Dims = [], keepdim = false): Tensor {
  begin();
  T(x);
  IL(dimList(dim));
  B(keepdim);
  return run(AMAX);
}

export function amin(x: Tensor, dim: Dims = [], keepdim = false): Tensor {
  begin();
  T(x);
  IL(dimList(dim));
  B(keepdim);
  return run(AMIN);
}

/** Index of the maximum (of the flattened tensor when dim is omitted). */
export function argmax(x: Tensor, dim?: number, keepdim = false): Tensor {
  begin();
  T(x);
  OI(dim);
  B(keepdim);
  return run(ARGMAX);
}

export function argmin(x: Tensor, dim?: number, keepdim = false): Tensor {
  begin();
  T(x);
  OI(dim);
  B(keepdim);
  return run(ARGMIN);
}

export function prod(x: Tensor, dim?: number, keepdim = false, dtype?: DType): Tensor {
  begin();
  T(x);
  if (dim === undefined) {
    DT(dtype);
    return run(PROD);
  }
  I(dim);
  B(keepdim);
  DT(dtype);
  return run(PROD_DIM);
}

/** Variance with Bessel's correction by default (correction = 1), as torch.var. */
export function variance(x: Tensor, dim?: Dims, correction = 1, keepdim = false): Tensor {
  begin();
  T(x);
  if (dim === undefined) NONE();
  else IL(dimList(dim));
  I(correction);
  B(keepdim);
  return run(VAR);
}

export function std(x: Tensor, dim?: Dims, correction = 1, keepdim = false): Tensor {
  begin();
  T(x);
  if (dim === undefined) NONE();
  else IL(dimList(dim));
  I(correction);
  B(keepdim);
  return run(STD);
}

/** The p-norm over dim (all elements when omitted), computed as torch.linalg.vector_norm. */
export function norm(x: Tensor, p = 2, dim?: Dims, keepdim = false): Tensor {
  begin();
  T(x);
  S(p);
  if (dim === undefined) NONE();
  else IL(dimList(dim));
  B(keepdim);
  return run(NORM);
}

export function logsumexp(x: Tensor, dim: Dims, keepdim = false): Tensor {
  begin();
  T(x);
  IL(dimList(dim));
  B(keepdim);
  return run(LOGSUMEXP);
}

export function cumsum(x: Tensor, dim: number, dtype?: DType): Tensor {
  begin();
  T(x);
  I(dim);
  DT(dtype);
  return run(CUMSUM);
}

export function all(x: Tensor, dim?: number, keepdim = false): Tensor {
  begin();
  T(x);
  if (dim === undefined) return run(ALL);
  I(dim);
  B(keepdim);
  return run(ALL_DIM);
}

export function any(x: Tensor, dim?: number, keepdim = false): Tensor {
  begin();
  T(x);
  if (dim === undefined) return run(ANY);
  I(dim);
  B(keepdim);
  return run(ANY_DIM);
}
