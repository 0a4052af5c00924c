/**
 * Views and indexing: reshape, permute, slicing, concatenation, gather/scatter, masking, triangles.
 * Dimensions may be negative (counted from the end), as in PyTorch.
 */
import { B, DEF, I, IL, OI, OTL, S, STR, T, TL, begin, op, run, runList, runVoid } from '../dispatch.ts';
import type { Tensor } from '../tensor.ts';

const RESHAPE = op('reshape');
const VIEW = op('view');
const PERMUTE = op('permute');
const TRANSPOSE = op('transpose', 'int');
const SLICE = op('slice', 'Tensor');
const NARROW = op('narrow');
const SELECT = op('select', 'int');
const CAT = op('cat');
const STACK = op('stack');
const SPLIT = op('split', 'Tensor');
const SPLIT_SIZES = op('split_with_sizes');
const CHUNK = op('chunk');
const SQUEEZE = op('squeeze');
const SQUEEZE_DIM = op('squeeze', 'dim');
const UNSQUEEZE = op('unsqueeze');
const FLATTEN = op('flatten', 'using_ints');
const EXPAND = op('expand');
const REPEAT = op('repeat');
const INDEX_SELECT = op('index_select');
const GATHER = op('gather');
const SCATTER_SRC = op('scatter', 'src');
const SCATTER_VALUE = op('scatter', 'value');
const SCATTER_REDUCE = op('scatter_reduce', 'two');
const SCATTER_ADD = op('scatter_add');
const INDEX_ADD = op('index_add');
const INDEX_COPY_ = op('index_copy_');
const INDEX = op('index', 'Tensor');
const INDEX_PUT = op('index_put');
const MASKED_FILL = op('masked_fill', 'Scalar');
const MASKED_FILL_T = op('masked_fill', 'Tensor');
const WHERE = op('where', 'self');
const TRIL = op('tril');
const TRIU = op('triu');
const FLIP = op('flip');
const ROLL = op('roll');
const CONTIGUOUS = op('contiguous');
const CLONE = op('clone');
const DETACH = op('detach');

export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  begin();
  T(x);
  IL(shape);
  return run(RESHAPE);
}

/** A view with a new shape; fails when the memory layout does not allow it (use reshape). */
export function view(x: Tensor, shape: readonly number[]): Tensor {
  begin();
  T(x);
  IL(shape);
  return run(VIEW);
}

export function permute(x: Tensor, dims: readonly number[]): Tensor {
  begin();
  T(x);
  IL(dims);
  return run(PERMUTE);
}

export function transpose(x: Tensor, dim0: number, dim1: number): Tensor {
  begin();
  T(x);
  I(dim0);
  I(dim1);
  return run(TRANSPOSE);
}

/** Elements start..end (exclusive) by step along dim; null means the open end. */
export function slice(x: Tensor, dim: number, start: number | null = null, end: number | null = null, step = 1): Tensor {
  begin();
  T(x);
  I(dim);
  OI(start);
  OI(end);
  I(step);
  return run(SLICE);
}

export function narrow(x: Tensor, dim: number, start: number, length: number): Tensor {
  begin();
  T(x);
  I(dim);
  I(start);
  I(length);
  return run(NARROW);
}

/** Picks index along dim, removing that dimension. */
export function select(x: Tensor, dim: number, index: number): Tensor {
  begin();
  T(x);
  I(dim);
  I(index);
  return run(SELECT);
}

export function cat(tensors: readonly Tensor[], dim = 0): Tensor {
  begin();
  TL(tensors);
  I(dim);
  return run(CAT);
}

export function stack(tensors: readonly Tensor[], dim = 0): Tensor {
  begin();
  TL(tensors);
  I(dim);
  return run(STACK);
}

/** Splits into pieces of `size` (the last may be smaller) or of the given sizes. */
export function split(x: Tensor, sizeOrSizes: number | readonly number[], dim = 0): Tensor[] {
  begin();
  T(x);
  if (typeof sizeOrSizes === 'number') {
    I(sizeOrSizes);
    I(dim);
    return runList(SPLIT);
  }
  IL(sizeOrSizes);
  I(dim);
  return runList(SPLIT_SIZES);
}

export function chunk(x: Tensor, chunks: number, dim = 0): Tensor[] {
  begin();
  T(x);
  I(chunks);
  I(dim);
  return runList(CHUNK);
}

export function squeeze(x: Tensor, dim?: number): Tensor {
  begin();
  T(x);
  if (dim === undefined) return run(SQUEEZE);
  I(dim);
  return run(SQUEEZE_DIM);
}

export function unsqueeze(x: Tensor, dim: number): Tensor {
  begin();
  T(x);
  I(dim);
  return run(UNSQUEEZE);
}

export function flatten(x: Tensor, startDim = 0, endDim = -1): Tensor {
  begin();
  T(x);
  I(startDim);
  I(endDim);
  return run(FLATTEN);
}

/** Broadcasts size-1 dimensions to `shape` without copying; -1 keeps a dimension. */
export function expand(x: Tensor, shape: readonly number[]): Tensor {
  begin();
  T(x);
  IL(shape);
  return run(EXPAND);
}

export function repeat(x: Tensor, repeats: readonly number[]): Tensor {
  begin();
  T(x);
  IL(repeats);
  return run(REPEAT);
}

export function indexSelect(x: Tensor, dim: number, index: Tensor): Tensor {
  begin();
  T(x);
  I(dim);
  T(index);
  return run(INDEX_SELECT);
}

export function gather(x: Tensor, dim: number, index: Tensor): Tensor {
  begin();
  T(x);
  I(dim);
  T(index);
  return run(GATHER);
}

export type ScatterReduce = 'sum' | 'prod' | 'mean' | 'amax' | 'amin';

/** Out-of-place scatter: src (or a scalar) written at index along dim; `reduce` combines instead. */
export function scatter(x: Tensor, dim: number, index: Tensor, src: Tensor | number, reduce?: ScatterReduce, includeSelf = true): Tensor {
  begin();
  T(x);
  I(dim);
  T(index);
  if (typeof src === 'number') {
    if (reduce) throw new TypeError('scatter: reduce needs a tensor source');
    S(src);
    return run(SCATTER_VALUE);
  }
  T(src);
  if (!reduce) return run(SCATTER_SRC);
  STR(reduce);
  B(includeSelf);
  return run(SCATTER_REDUCE);
}

export function scatterAdd(x: Tensor, dim: number, index: Tensor, src: Tensor): Tensor {
  begin();
  T(x);
  I(dim);
  T(index);
  T(src);
  return run(SCATTER_ADD);
}

/** Copies source's slices into x in place at the positions `index` (int64) along dim (paged KV caches write their new slots this way). */
export function indexCopyInplace(x: Tensor, dim: number, index: Tensor, source: Tensor): void {
  begin();
  T(x);
  I(dim);
  T(index);
  T(source);
  runVoid(INDEX_COPY_);
}

/** x with alpha·source added at the rows given by index along dim (duplicates accumulate). */
export function indexAdd(x: Tensor, dim: number, index: Tensor, source: Tensor, alpha = 1): Tensor {
  begin();
  T(x);
  I(dim);
  T(index);
  T(source);
  S(alpha);
  return run(INDEX_ADD);
}

/** Advanced indexing: one index tensor (or null for ':') per leading dimension. */
export function index(x: Tensor, indices: readonly (Tensor | null)[]): Tensor {
  begin();
  T(x);
  OTL(indices);
  return run(INDEX);
}

export function indexPut(x: Tensor, indices: readonly (Tensor | null)[], values: Tensor, accumulate = false): Tensor {
  begin();
  T(x);
  OTL(indices);
  T(values);
  B(accumulate);
  return run(INDEX_PUT);
}

export function maskedFill(x: Tensor, mask: Tensor, value: number | boolean | Tensor): Tensor {
  begin();
  T(x);
  T(mask);
  if (typeof value === 'object') {
    T(value);
    return run(MASKED_FILL_T);
  }
  S(value);
  return run(MASKED_FILL);
}

/** Elementwise choice: cond ? a : b (broadcasting). */
export function where(cond: Tensor, a: Tensor, b: Tensor): Tensor {
  begin();
  T(cond);
  T(a);
  T(b);
  return run(WHERE);
}

export function tril(x: Tensor, diagonal = 0): Tensor {
  begin();
  T(x);
  I(diagonal);
  return run(TRIL);
}

export function triu(x: Tensor, diagonal = 0): Tensor {
  begin();
  T(x);
  I(diagonal);
  return run(TRIU);
}

export function flip(x: Tensor, dims: readonly number[]): Tensor {
  begin();
  T(x);
  IL(dims);
  return run(FLIP);
}

export function roll(x: Tensor, shifts: number | readonly number[], dims: number | readonly number[] = []): Tensor {
  begin();
  T(x);
  IL(typeof shifts === 'number' ? [shifts] : shifts);
  IL(typeof dims === 'number' ? [dims] : dims);
  return run(ROLL);
}

/** The tensor itself when already contiguous, else a contiguous copy. */
export function contiguous(x: Tensor): Tensor {
  begin();
  T(x);
  DEF();
  return run(CONTIGUOUS);
}

export function clone(x: Tensor): Tensor {
  begin();
  T(x);
  return run(CLONE);
}

/** Shares storage, cut from the autograd graph. */
export function detach(x: Tensor): Tensor {
  begin();
  T(x);
  return run(DETACH);
}
