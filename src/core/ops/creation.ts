/**
 * Creating tensors: from JS data and typed arrays, constant fills, ranges, and seeded random draws.
 * Shapes are plain number arrays; factories take { dtype, device, requiresGrad }.
 */
import type { Device } from '../device.ts';
import { type AnyTypedArray, type DType, dtypeCode, dtypeOfTypedArray, itemSize } from '../dtype.ts';
import { B, DEF, DEV, DT, F, GEN, I, IL, NONE, S, T, begin, op, run, wrap } from '../dispatch.ts';
import { fromNative } from '../errors.ts';
import { native } from '../native.ts';
import type { Generator } from '../random.ts';
import type { Tensor } from '../tensor.ts';

export interface TensorOptions {
  dtype?: DType;
  device?: Device;
  requiresGrad?: boolean;
}

export interface RandomOptions extends TensorOptions {
  generator?: Generator;
}

export type NestedNumbers = number | boolean | readonly NestedNumbers[];

function finish(t: Tensor, o: TensorOptions | undefined): Tensor {
  if (o?.requiresGrad) t.requiresGrad_(true);
  return t;
}

function checkShape(shape: readonly number[]): void {
  if (!Array.isArray(shape)) throw new TypeError('shape must be an array of integers');
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new RangeError(`shape [${shape.join(', ')}] must hold non-negative integers`);
  }
}

/** Writes the trailing (dtype, layout, device, pin_memory) operands of a factory. */
function factoryOptions(o: TensorOptions | undefined): void {
  DT(o?.dtype);
  NONE();
  DEV(o?.device);
  NONE();
}

function inferShape(data: NestedNumbers): number[] {
  const shape: number[] = [];
  let cur: NestedNumbers = data;
  while (Array.isArray(cur)) {
    shape.push(cur.length);
    if (cur.length === 0) break;
    cur = cur[0] as NestedNumbers;
  }
  return shape;
}

function flatten(data: NestedNumbers, shape: number[], dim: number, out: number[]): void {
  if (dim === shape.length) {
    if (typeof data === 'boolean') out.push(data ? 1 : 0);
    else if (typeof data === 'number') out.push(data);
    else throw new TypeError(`tensor data is ragged: expected a number at depth ${dim}`);
    return;
  }
  if (!Array.isArray(data) || data.length !== shape[dim]) {
    throw new TypeError(`tensor data is ragged: expected ${shape[dim]} elements at depth ${dim}`);
  }
  for (const e of data) flatten(e as NestedNumbers, shape, dim + 1, out);
}

function firstLeaf(data: NestedNumbers): unknown {
  let cur: unknown = data;
  while (Array.isArray(cur) && cur.length > 0) cur = cur[0];
  return cur;
}

/** Creates a CPU tensor holding a copy of a typed array, in the array's own dtype. */
export function fromTypedArray(data: AnyTypedArray, shape?: readonly number[]): Tensor {
  const s = shape ?? [data.length];
  checkShape(s);
  const dtype = dtypeOfTypedArray(data);
  const numel = s.reduce((a, b) => a * b, 1);
  if (numel !== data.length) {
    throw new RangeError(`shape [${s.join(', ')}] holds ${numel} elements but the data has ${data.length}`);
  }
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.length * itemSize(dtype));
  return fromBytes(bytes, dtype, s);
}

/**
 * Creates a CPU tensor of any dtype from raw little-endian element bytes (as safetensors stores
 * them), copying the bytes.
 */
export function fromBytes(bytes: Uint8Array, dtype: DType, shape: readonly number[]): Tensor {
  checkShape(shape);
  const numel = shape.reduce((a, b) => a * b, 1);
  const need = numel * itemSize(dtype);
  if (bytes.byteLength !== need) {
    throw new RangeError(`${bytes.byteLength} bytes cannot hold shape [${shape.join(', ')}] of ${dtype} (needs ${need})`);
  }
  // The addon takes a plain ArrayBuffer; a view over shared memory is copied first.
  const view = bytes.buffer instanceof ArrayBuffer ? bytes : new Uint8Array(bytes);
  try {
    return wrap(native.fromBytes(view.buffer as ArrayBuffer, view.byteOffset, view.byteLength, dtypeCode(dtype), [...shape]));
  } catch (e) {
    throw fromNative(e);
  }
}

/**
 * Creates a tensor from JS data: nested arrays of numbers or booleans, or a typed array (flat,
 * with `shape`). JS numbers default to float32 (JS cannot tell 1 from 1.0); booleans to bool; typed
 * arrays keep their own dtype unless `dtype` says otherwise.
 */
export function tensor(data: NestedNumbers | AnyTypedArray, opts: TensorOptions & { shape?: readonly number[] } = {}): Tensor {
  let t: Tensor;
  if (ArrayBuffer.isView(data)) {
    t = fromTypedArray(data as AnyTypedArray, opts.shape);
  } else {
    const shape = inferShape(data);
    const flat: number[] = [];
    flatten(data, shape, 0, flat);
    const isBool = typeof firstLeaf(data) === 'boolean';
    const target = opts.shape ?? shape;
    // Numbers go through float64 (exact for every JS number) unless float32 is what is wanted:
    // through float32, float64 data would lose precision and integers above 2^24 would change.
    const wide = opts.dtype !== undefined && opts.dtype !== 'float32';
    t = isBool ? fromTypedArray(Uint8Array.from(flat), target).to('bool') : fromTypedArray(wide ? Float64Array.from(flat) : Float32Array.from(flat), target);
  }
  if (opts.dtype || opts.device) {
    const moved = t.to({ dtype: opts.dtype, device: opts.device });
    if (moved !== t) t.dispose();
    t = moved;
  }
  return finish(t, opts);
}

/** A 0-dimensional tensor. */
export function scalar(v: number | boolean, opts: TensorOptions = {}): Tensor {
  return full([], v, opts);
}

const ZEROS = op('zeros');
const ONES = op('ones');
const FULL = op('full');
const EMPTY = op('empty', 'memory_format');
const ARANGE = op('arange', 'start_step');
const LINSPACE = op('linspace');
const EYE = op('eye');
const RANDN = op('randn', 'generator');
const RAND = op('rand', 'generator');
const RANDINT = op('randint', 'low_generator');
const ZEROS_LIKE = op('zeros_like');
const ONES_LIKE = op('ones_like');
const FULL_LIKE = op('full_like');
const RANDN_LIKE = op('randn_like');

export function zeros(shape: readonly number[], o?: TensorOptions): Tensor {
  checkShape(shape);
  begin();
  IL(shape);
  factoryOptions(o);
  return finish(run(ZEROS), o);
}

export function ones(shape: readonly number[], o?: TensorOptions): Tensor {
  checkShape(shape);
  begin();
  IL(shape);
  factoryOptions(o);
  return finish(run(ONES), o);
}

/** A tensor filled with `value` (float32 unless dtype says otherwise; bool for a boolean value). */
export function full(shape: readonly number[], value: number | boolean, o?: TensorOptions): Tensor {
  checkShape(shape);
  begin();
  IL(shape);
  if (typeof value === 'boolean') B(value);
  else F(value);
  DT(o?.dtype ?? (typeof value === 'boolean' ? 'bool' : 'float32'));
  NONE();
  DEV(o?.device);
  NONE();
  return finish(run(FULL), o);
}

/** Uninitialised memory: contents are arbitrary. */
export function empty(shape: readonly number[], o?: TensorOptions): Tensor {
  checkShape(shape);
  begin();
  IL(shape);
  factoryOptions(o);
  DEF();
  return finish(run(EMPTY), o);
}

/**
 * Values from start (inclusive) to end (exclusive) by step; arange(n) counts 0..n-1. The dtype is
 * int64 when all three are integers, else float32, as in PyTorch.
 */
export function arange(start: number, end?: number, step = 1, o?: TensorOptions): Tensor {
  if (end === undefined) {
    end = start;
    start = 0;
  }
  if (step === 0) throw new RangeError('arange: step must be nonzero');
  const allInt = Number.isInteger(start) && Number.isInteger(end) && Number.isInteger(step);
  begin();
  S(start);
  S(end);
  S(step);
  DT(o?.dtype ?? (allInt ? 'int64' : 'float32'));
  NONE();
  DEV(o?.device);
  NONE();
  return finish(run(ARANGE), o);
}

export function linspace(start: number, end: number, steps: number, o?: TensorOptions): Tensor {
  begin();
  F(start);
  F(end);
  I(steps);
  factoryOptions(o);
  return finish(run(LINSPACE), o);
}

export function eye(n: number, o?: TensorOptions): Tensor {
  begin();
  I(n);
  factoryOptions(o);
  return finish(run(EYE), o);
}

/** Standard normal samples, from `generator` or the global one (seeded by manualSeed). */
export function randn(shape: readonly number[], o?: RandomOptions): Tensor {
  checkShape(shape);
  begin();
  IL(shape);
  GEN(o?.generator?.id);
  factoryOptions(o);
  return finish(run(RANDN), o);
}

/** Uniform samples in [0, 1). */
export function rand(shape: readonly number[], o?: RandomOptions): Tensor {
  checkShape(shape);
  begin();
  IL(shape);
  GEN(o?.generator?.id);
  factoryOptions(o);
  return finish(run(RAND), o);
}

/** Integers uniform in [low, high), int64 unless dtype says otherwise. */
export function randint(low: number, high: number, shape: readonly number[], o?: RandomOptions): Tensor {
  checkShape(shape);
  if (!(high > low)) throw new RangeError(`randint: high (${high}) must be greater than low (${low})`);
  begin();
  I(low);
  I(high);
  IL(shape);
  GEN(o?.generator?.id);
  DT(o?.dtype ?? 'int64');
  NONE();
  DEV(o?.device);
  NONE();
  return finish(run(RANDINT), o);
}

function likeOptions(o: TensorOptions | undefined): void {
  factoryOptions(o);
  NONE();
}

export function zerosLike(x: Tensor, o?: TensorOptions): Tensor {
  begin();
  T(x);
  likeOptions(o);
  return finish(run(ZEROS_LIKE), o);
}

export function onesLike(x: Tensor, o?: TensorOptions): Tensor {
  begin();
  T(x);
  likeOptions(o);
  return finish(run(ONES_LIKE), o);
}

export function fullLike(x: Tensor, value: number | boolean, o?: TensorOptions): Tensor {
  begin();
  T(x);
  S(value);
  likeOptions(o);
  return finish(run(FULL_LIKE), o);
}

export function randnLike(x: Tensor, o?: TensorOptions): Tensor {
  begin();
  T(x);
  likeOptions(o);
  return finish(run(RANDN_LIKE), o);
}
