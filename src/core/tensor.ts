/**
 * The Tensor class: a handle to a libtorch tensor with PyTorch's methods in camelCase.
 *
 * Methods are thin: each delegates to a function in ops/*.ts that encodes the operands for the
 * dispatcher. This file owns only what is specific to one tensor object: metadata, reading data
 * back, autograd accessors and lifetime (dispose/keep; see scope.ts).
 */
import { inspect } from 'node:util';
import { type Device, deviceName, parseDevice } from './device.ts';
import { type AnyTypedArray, type DType, dtypeFromCode, typedArrayFromBytes } from './dtype.ts';
import { B, DEF, DEV, DT, T, begin, op, run, runValues, setTensorFactory, wrap } from './dispatch.ts';
import { DisposedTensorError, fromNative } from './errors.ts';
import { buf, native } from './native.ts';
import { KEPT, disposeOne, keepOne, tidy } from './scope.ts';
import * as M from './ops/math.ts';
import * as N from './ops/nn.ts';
import * as R from './ops/reduce.ts';
import * as S from './ops/shape.ts';
import type { Generator } from './random.ts';

const TO = op('to', 'dtype_layout');
const ITEM = op('item');

export interface TensorMeta {
  dtype: DType;
  device: Device;
  requiresGrad: boolean;
  isLeaf: boolean;
  shape: number[];
}

export interface BackwardOptions {
  /** Keep the graph so that backward can run through it again. */
  retainGraph?: boolean;
  /** Build a graph of the backward pass (for higher-order gradients). */
  createGraph?: boolean;
}

export type NestedArray = number | boolean | NestedArray[];

export class Tensor {
  /** @internal Native handle; -1 once disposed. */
  _h: number;
  /** @internal Lifetime flags (scope.ts). */
  _f = 0;

  /** @internal Use the factory functions (tensor, zeros, randn, …) instead. */
  constructor(handle: number) {
    this._h = handle | 0; // keep the field a small integer for V8
  }

  // ---- lifetime ----------------------------------------------------------------------------------

  /** Frees the native memory now. Using the tensor afterwards throws. */
  dispose(): void {
    disposeOne(this);
  }

  get isDisposed(): boolean {
    return this._h < 0;
  }

  /** Exempts this tensor from tidy() cleanup (the GC or dispose() frees it). */
  keep(): this {
    return keepOne(this);
  }

  get isKept(): boolean {
    return (this._f & KEPT) !== 0;
  }

  // ---- metadata ----------------------------------------------------------------------------------

  private handle(what: string): number {
    if (this._h < 0) throw new DisposedTensorError(what);
    return this._h;
  }

  /** dtype, device, autograd flags and shape in one native call. */
  meta(): TensorMeta {
    const h = this.handle('meta');
    let nd: number;
    try {
      nd = native.meta(h);
    } catch (e) {
      throw fromNative(e);
    }
    const shape = new Array<number>(nd);
    for (let i = 0; i < nd; i++) shape[i] = buf[6 + i];
    return {
      dtype: dtypeFromCode(buf[0]),
      device: deviceName(buf[1], buf[2]),
      requiresGrad: buf[3] !== 0,
      isLeaf: buf[4] !== 0,
      shape,
    };
  }

  get shape(): number[] {
    return this.meta().shape;
  }

  get ndim(): number {
    return native.meta(this.handle('ndim'));
  }

  get dtype(): DType {
    return this.meta().dtype;
  }

  get device(): Device {
    return this.meta().device;
  }

  /** Size of one dimension (negative counts from the end). */
  size(dim: number): number {
    const s = this.shape;
    const d = dim < 0 ? dim + s.length : dim;
    if (d < 0 || d >= s.length) throw new RangeError(`dimension ${dim} out of range for a ${s.length}-d tensor`);
    return s[d];
  }

  numel(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }

  strides(): number[] {
    const n = native.strides(this.handle('strides'));
    return Array.from(buf.subarray(0, n));
  }

  // ---- conversion and data -----------------------------------------------------------------------

  /** Converts dtype and/or device; returns this tensor itself when nothing changes. */
  to(target: DType | Device | { dtype?: DType; device?: Device }, copy = false): Tensor {
    let dtype: DType | undefined;
    let device: Device | undefined;
    if (typeof target === 'string') {
      if (target === 'cpu' || target.startsWith('cuda')) device = target as Device;
      else dtype = target as DType;
    } else {
      dtype = target.dtype;
      device = target.device;
    }
    if (device !== undefined) parseDevice(device);
    begin();
    T(this);
    DT(dtype);
    DEF();
    DEV(device);
    DEF();
    DEF();
    B(copy);
    return run(TO);
  }

  float(): Tensor {
    return this.to('float32');
  }

  double(): Tensor {
    return this.to('float64');
  }

  half(): Tensor {
    return this.to('float16');
  }

  bfloat16(): Tensor {
    return this.to('bfloat16');
  }

  long(): Tensor {
    return this.to('int64');
  }

  int(): Tensor {
    return this.to('int32');
  }

  bool(): Tensor {
    return this.to('bool');
  }

  cpu(): Tensor {
    return this.to('cpu');
  }

  cuda(index?: number): Tensor {
    return this.to(index === undefined ? 'cuda' : `cuda:${index}`);
  }

  /** The elements in row-major order as a typed array (float16/bfloat16 come back as float32). */
  toTypedArray(): AnyTypedArray {
    const h = this.handle('toTypedArray');
    const dtype = this.dtype;
    if (dtype === 'float16' || dtype === 'bfloat16') {
      const f = this.float();
      try {
        return f.toTypedArray();
      } finally {
        f.dispose();
      }
    }
    try {
      return typedArrayFromBytes(dtype, native.toBytes(h));
    } catch (e) {
      throw fromNative(e);
    }
  }

  /** The raw bytes of the elements in their own dtype, row-major (for serialisation). */
  toBytes(): Uint8Array {
    try {
      return new Uint8Array(native.toBytes(this.handle('toBytes')));
    } catch (e) {
      throw fromNative(e);
    }
  }

  /** The elements as a flat array of numbers (int64 converted with Number()). */
  toArray(): number[] {
    const a = this.toTypedArray();
    if (a instanceof BigInt64Array) return Array.from(a, (v) => Number(v));
    return Array.from(a as ArrayLike<number>);
  }

  /** The elements as nested arrays following the shape (booleans for bool tensors). */
  tolist(): NestedArray {
    const shape = this.shape;
    const flat = this.toArray();
    const asBool = this.dtype === 'bool';
    let k = 0;
    const build = (d: number): NestedArray => {
      if (d === shape.length) {
        const v = flat[k++];
        return asBool ? v !== 0 : v;
      }
      const out: NestedArray[] = [];
      for (let i = 0; i < shape[d]; i++) out.push(build(d + 1));
      return out;
    };
    return build(0);
  }

  /** The value of a one-element tensor. */
  item(): number {
    begin();
    T(this);
    const v = runValues(ITEM)[0];
    if (typeof v === 'boolean') return v ? 1 : 0;
    if (typeof v !== 'number') throw new TypeError('item() needs a one-element tensor');
    return v;
  }

  // ---- autograd ----------------------------------------------------------------------------------

  get requiresGrad(): boolean {
    return this.meta().requiresGrad;
  }

  /** Starts (or stops) recording operations on this leaf for autograd. Returns this tensor. */
  requiresGrad_(flag = true): this {
    try {
      native.setRequiresGrad(this.handle('requiresGrad_'), flag);
    } catch (e) {
      throw fromNative(e);
    }
    return this;
  }

  get isLeaf(): boolean {
    return this.meta().isLeaf;
  }

  /** The name of the autograd node that produced this tensor, or null for leaves. */
  get gradFn(): string | null {
    return native.gradFn(this.handle('gradFn'));
  }

  /** The gradient accumulated by backward(), or null. Each read returns a new handle to it. */
  get grad(): Tensor | null {
    let g: number;
    try {
      g = native.grad(this.handle('grad'));
    } catch (e) {
      throw fromNative(e);
    }
    return g < 0 ? null : wrap(g);
  }

  set grad(g: Tensor | null) {
    try {
      native.setGrad(this.handle('grad'), g ? g.handle('grad') : -1);
    } catch (e) {
      throw fromNative(e);
    }
  }

  /** Backpropagates from this tensor (a scalar, or pass `gradient` of the same shape). */
  backward(gradient?: Tensor, o: BackwardOptions = {}): void {
    buf[0] = this.handle('backward');
    buf[1] = gradient ? gradient.handle('backward') : -1;
    try {
      native.backward(1, o.retainGraph ?? false, o.createGraph ?? false);
    } catch (e) {
      throw fromNative(e);
    }
  }

  detach(): Tensor {
    return S.detach(this);
  }

  // ---- views and indexing -----------------------------------------------------------------------

  reshape(shape: readonly number[]): Tensor {
    return S.reshape(this, shape);
  }
  view(shape: readonly number[]): Tensor {
    return S.view(this, shape);
  }
  permute(dims: readonly number[]): Tensor {
    return S.permute(this, dims);
  }
  transpose(dim0: number, dim1: number): Tensor {
    return S.transpose(this, dim0, dim1);
  }
  /** Transposes the last two dimensions. */
  get mT(): Tensor {
    return S.transpose(this, -2, -1);
  }
  slice(dim: number, start: number | null = null, end: number | null = null, step = 1): Tensor {
    return S.slice(this, dim, start, end, step);
  }
  narrow(dim: number, start: number, length: number): Tensor {
    return S.narrow(this, dim, start, length);
  }
  select(dim: number, index: number): Tensor {
    return S.select(this, dim, index);
  }
  split(sizeOrSizes: number | readonly number[], dim = 0): Tensor[] {
    return S.split(this, sizeOrSizes, dim);
  }
  chunk(chunks: number, dim = 0): Tensor[] {
    return S.chunk(this, chunks, dim);
  }
  squeeze(dim?: number): Tensor {
    return S.squeeze(this, dim);
  }
  unsqueeze(dim: number): Tensor {
    return S.unsqueeze(this, dim);
  }
  flatten(startDim = 0, endDim = -1): Tensor {
    return S.flatten(this, startDim, endDim);
  }
  expand(shape: readonly number[]): Tensor {
    return S.expand(this, shape);
  }
  expandAs(other: Tensor): Tensor {
    return S.expand(this, other.shape);
  }
  repeat(repeats: readonly number[]): Tensor {
    return S.repeat(this, repeats);
  }
  indexSelect(dim: number, index: Tensor): Tensor {
    return S.indexSelect(this, dim, index);
  }
  gather(dim: number, index: Tensor): Tensor {
    return S.gather(this, dim, index);
  }
  scatter(dim: number, index: Tensor, src: Tensor | number, reduce?: S.ScatterReduce): Tensor {
    return S.scatter(this, dim, index, src, reduce);
  }
  scatterAdd(dim: number, index: Tensor, src: Tensor): Tensor {
    return S.scatterAdd(this, dim, index, src);
  }
  indexAdd(dim: number, index: Tensor, source: Tensor, alpha = 1): Tensor {
    return S.indexAdd(this, dim, index, source, alpha);
  }
  /** Advanced indexing, one index tensor (or null for ':') per leading dimension. */
  index(indices: readonly (Tensor | null)[]): Tensor {
    return S.index(this, indices);
  }
  maskedFill(mask: Tensor, value: number | boolean | Tensor): Tensor {
    return S.maskedFill(this, mask, value);
  }
  tril(diagonal = 0): Tensor {
    return S.tril(this, diagonal);
  }
  triu(diagonal = 0): Tensor {
    return S.triu(this, diagonal);
  }
  flip(dims: readonly number[]): Tensor {
    return S.flip(this, dims);
  }
  roll(shifts: number | readonly number[], dims: number | readonly number[] = []): Tensor {
    return S.roll(this, shifts, dims);
  }
  contiguous(): Tensor {
    return S.contiguous(this);
  }
  clone(): Tensor {
    return S.clone(this);
  }

  // ---- elementwise ----------------------------------------------------------------------------------

  add(other: Tensor | number, alpha = 1): Tensor {
    return M.add(this, other, alpha);
  }
  sub(other: Tensor | number): Tensor {
    return M.sub(this, other);
  }
  /** other - this, for a scalar other. */
  rsub(other: number): Tensor {
    return M.rsub(this, other);
  }
  mul(other: Tensor | number): Tensor {
    return M.mul(this, other);
  }
  div(other: Tensor | number, roundingMode?: M.RoundingMode): Tensor {
    return M.div(this, other, roundingMode);
  }
  pow(exponent: Tensor | number): Tensor {
    return M.pow(this, exponent);
  }
  remainder(other: Tensor | number): Tensor {
    return M.remainder(this, other);
  }
  maximum(other: Tensor): Tensor {
    return M.maximum(this, other);
  }
  minimum(other: Tensor): Tensor {
    return M.minimum(this, other);
  }
  neg(): Tensor {
    return M.unary(M.U.neg, this);
  }
  abs(): Tensor {
    return M.unary(M.U.abs, this);
  }
  exp(): Tensor {
    return M.unary(M.U.exp, this);
  }
  log(): Tensor {
    return M.unary(M.U.log, this);
  }
  log1p(): Tensor {
    return M.unary(M.U.log1p, this);
  }
  expm1(): Tensor {
    return M.unary(M.U.expm1, this);
  }
  sqrt(): Tensor {
    return M.unary(M.U.sqrt, this);
  }
  rsqrt(): Tensor {
    return M.unary(M.U.rsqrt, this);
  }
  sin(): Tensor {
    return M.unary(M.U.sin, this);
  }
  cos(): Tensor {
    return M.unary(M.U.cos, this);
  }
  tanh(): Tensor {
    return M.unary(M.U.tanh, this);
  }
  sigmoid(): Tensor {
    return M.unary(M.U.sigmoid, this);
  }
  relu(): Tensor {
    return M.unary(M.U.relu, this);
  }
  silu(): Tensor {
    return M.unary(M.U.silu, this);
  }
  gelu(approximate: 'none' | 'tanh' = 'none'): Tensor {
    return M.gelu(this, approximate);
  }
  softplus(beta = 1, threshold = 20): Tensor {
    return M.softplus(this, beta, threshold);
  }
  square(): Tensor {
    return M.unary(M.U.square, this);
  }
  reciprocal(): Tensor {
    return M.unary(M.U.reciprocal, this);
  }
  floor(): Tensor {
    return M.unary(M.U.floor, this);
  }
  ceil(): Tensor {
    return M.unary(M.U.ceil, this);
  }
  round(): Tensor {
    return M.unary(M.U.round, this);
  }
  trunc(): Tensor {
    return M.unary(M.U.trunc, this);
  }
  sign(): Tensor {
    return M.unary(M.U.sign, this);
  }
  clamp(min: number | null = null, max: number | null = null): Tensor {
    return M.clamp(this, min, max);
  }
  lerp(end: Tensor, weight: Tensor | number): Tensor {
    return M.lerp(this, end, weight);
  }
  addcmul(a: Tensor, b: Tensor, value = 1): Tensor {
    return M.addcmul(this, a, b, value);
  }
  addcdiv(a: Tensor, b: Tensor, value = 1): Tensor {
    return M.addcdiv(this, a, b, value);
  }
  eq(other: Tensor | number): Tensor {
    return M.eq(this, other);
  }
  ne(other: Tensor | number): Tensor {
    return M.ne(this, other);
  }
  lt(other: Tensor | number): Tensor {
    return M.lt(this, other);
  }
  le(other: Tensor | number): Tensor {
    return M.le(this, other);
  }
  gt(other: Tensor | number): Tensor {
    return M.gt(this, other);
  }
  ge(other: Tensor | number): Tensor {
    return M.ge(this, other);
  }
  logicalNot(): Tensor {
    return M.unary(M.U.logicalNot, this);
  }
  logicalAnd(other: Tensor): Tensor {
    return M.logicalAnd(this, other);
  }
  logicalOr(other: Tensor): Tensor {
    return M.logicalOr(this, other);
  }
  isnan(): Tensor {
    return M.unary(M.U.isnan, this);
  }
  isfinite(): Tensor {
    return M.unary(M.U.isfinite, this);
  }

  // ---- in place: return this tensor ---------------------------------------------------------------

  add_(other: Tensor | number, alpha = 1): this {
    M.addInplace(this, other, alpha);
    return this;
  }
  sub_(other: Tensor | number): this {
    M.subInplace(this, other);
    return this;
  }
  mul_(other: Tensor | number): this {
    M.mulInplace(this, other);
    return this;
  }
  div_(other: Tensor | number): this {
    M.divInplace(this, other);
    return this;
  }
  zero_(): this {
    M.zeroInplace(this);
    return this;
  }
  fill_(value: number | boolean): this {
    M.fillInplace(this, value);
    return this;
  }
  copy_(src: Tensor): this {
    M.copyInplace(this, src);
    return this;
  }
  clamp_(min: number | null = null, max: number | null = null): this {
    M.clampInplace(this, min, max);
    return this;
  }
  sqrt_(): this {
    M.sqrtInplace(this);
    return this;
  }
  addcmul_(a: Tensor, b: Tensor, value = 1): this {
    M.addcmulInplace(this, a, b, value);
    return this;
  }
  addcdiv_(a: Tensor, b: Tensor, value = 1): this {
    M.addcdivInplace(this, a, b, value);
    return this;
  }
  lerp_(end: Tensor, weight: number): this {
    M.lerpInplace(this, end, weight);
    return this;
  }
  /** In place: this[…, index[i], …] = source[…, i, …] along dim. */
  indexCopy_(dim: number, index: Tensor, source: Tensor): this {
    S.indexCopyInplace(this, dim, index, source);
    return this;
  }
  maskedFill_(mask: Tensor, value: number | boolean): this {
    M.maskedFillInplace(this, mask, value);
    return this;
  }
  normal_(mean = 0, std = 1, generator?: Generator): this {
    M.normalInplace(this, mean, std, generator ? generator.id : null);
    return this;
  }
  uniform_(low = 0, high = 1, generator?: Generator): this {
    M.uniformInplace(this, low, high, generator ? generator.id : null);
    return this;
  }

  // ---- reductions --------------------------------------------------------------------------------

  sum(dim?: R.Dims, keepdim = false, dtype?: DType): Tensor {
    return R.sum(this, dim, keepdim, dtype);
  }
  mean(dim?: R.Dims, keepdim = false, dtype?: DType): Tensor {
    return R.mean(this, dim, keepdim, dtype);
  }
  max(): Tensor;
  max(dim: number, keepdim?: boolean): R.ValuesIndices;
  max(dim?: number, keepdim = false): Tensor | R.ValuesIndices {
    return dim === undefined ? R.maxAll(this) : R.maxDim(this, dim, keepdim);
  }
  min(): Tensor;
  min(dim: number, keepdim?: boolean): R.ValuesIndices;
  min(dim?: number, keepdim = false): Tensor | R.ValuesIndices {
    return dim === undefined ? R.minAll(this) : R.minDim(this, dim, keepdim);
  }
  amax(dim: R.Dims = [], keepdim = false): Tensor {
    return R.amax(this, dim, keepdim);
  }
  amin(dim: R.Dims = [], keepdim = false): Tensor {
    return R.amin(this, dim, keepdim);
  }
  argmax(dim?: number, keepdim = false): Tensor {
    return R.argmax(this, dim, keepdim);
  }
  argmin(dim?: number, keepdim = false): Tensor {
    return R.argmin(this, dim, keepdim);
  }
  prod(dim?: number, keepdim = false, dtype?: DType): Tensor {
    return R.prod(this, dim, keepdim, dtype);
  }
  var(dim?: R.Dims, correction = 1, keepdim = false): Tensor {
    return R.variance(this, dim, correction, keepdim);
  }
  std(dim?: R.Dims, correction = 1, keepdim = false): Tensor {
    return R.std(this, dim, correction, keepdim);
  }
  norm(p = 2, dim?: R.Dims, keepdim = false): Tensor {
    return R.norm(this, p, dim, keepdim);
  }
  logsumexp(dim: R.Dims, keepdim = false): Tensor {
    return R.logsumexp(this, dim, keepdim);
  }
  cumsum(dim: number, dtype?: DType): Tensor {
    return R.cumsum(this, dim, dtype);
  }
  all(dim?: number, keepdim = false): Tensor {
    return R.all(this, dim, keepdim);
  }
  any(dim?: number, keepdim = false): Tensor {
    return R.any(this, dim, keepdim);
  }

  // ---- linear algebra and nn -----------------------------------------------------------------------

  matmul(other: Tensor): Tensor {
    return N.matmul(this, other);
  }
  mm(other: Tensor): Tensor {
    return N.mm(this, other);
  }
  bmm(other: Tensor): Tensor {
    return N.bmm(this, other);
  }
  softmax(dim: number, dtype?: DType): Tensor {
    return N.softmax(this, dim, dtype);
  }
  logSoftmax(dim: number, dtype?: DType): Tensor {
    return N.logSoftmax(this, dim, dtype);
  }
  topk(k: number, dim = -1, largest = true, sorted = true): R.ValuesIndices {
    return N.topk(this, k, dim, largest, sorted);
  }
  sort(dim = -1, descending = false): R.ValuesIndices {
    return N.sort(this, dim, descending);
  }
  argsort(dim = -1, descending = false): Tensor {
    return N.argsort(this, dim, descending);
  }
  multinomial(numSamples: number, replacement = false, generator?: Generator): Tensor {
    return N.multinomial(this, numSamples, replacement, generator);
  }
  bincount(weights?: Tensor | null, minlength = 0): Tensor {
    return N.bincount(this, weights, minlength);
  }

  // ---- display ------------------------------------------------------------------------------------

  toString(): string {
    if (this._h < 0) return 'Tensor(<disposed>)';
    const m = this.meta();
    const n = m.shape.reduce((a, b) => a * b, 1);
    const head = `shape=[${m.shape.join(', ')}], dtype=${m.dtype}, device=${m.device}${m.requiresGrad ? ', requiresGrad' : ''}`;
    if (n > 64 || m.device !== 'cpu') return `Tensor(${head})`;
    const values = tidy(() => this.detach().tolist());
    const fmt = (v: NestedArray): string =>
      Array.isArray(v) ? `[${v.map(fmt).join(', ')}]` : typeof v === 'boolean' || Number.isInteger(v) || !Number.isFinite(v) ? String(v) : v.toFixed(4);
    return `Tensor(${fmt(values)}, ${head})`;
  }

  [inspect.custom](): string {
    return this.toString();
  }
}

setTensorFactory((h) => new Tensor(h));
