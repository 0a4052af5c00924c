/**
 * Calls libtorch operators by name: encodes operands into the shared buffer, runs the boxed call,
 * decodes results into Tensors and JS values. The typed ops (ops/*.ts) are thin layers on this;
 * `callOp` is the generic entry for any `aten::` operator.
 *
 * Encoding is a sequence of writer calls between begin() and run*(), e.g.
 *   begin(); T(a); T(b); S(1); return run(ADD);
 * The writers know operand kinds, not operators; the schema check happens in C++.
 */
import { type Device, parseDevice } from './device.ts';
import { type DType, dtypeCode } from './dtype.ts';
import { DisposedTensorError, TorchError, fromNative } from './errors.ts';
import { BUF_WORDS, Tag, buf, native } from './native.ts';
import { adopt } from './scope.ts';
import type { Tensor } from './tensor.ts';

/** A lazily resolved operator handle. */
export interface Op {
  readonly name: string;
  readonly overload: string;
  id: number;
}

/** Declares an operator; it is looked up in libtorch's dispatcher on first use, then cached. */
export function op(name: string, overload = ''): Op {
  return { name: name.includes('::') ? name : `aten::${name}`, overload, id: -1 };
}

/** The schema string of an operator, as libtorch declares it. */
export function schemaOf(o: Op): string {
  resolve(o);
  return native.opSchema(o.id);
}

function resolve(o: Op): void {
  if (o.id >= 0) return;
  try {
    o.id = native.op(o.name, o.overload);
  } catch (e) {
    // The addon reports a failed lookup under "op": name the operator that was asked for instead.
    const err = fromNative(e);
    throw err instanceof TorchError ? new TorchError(o.overload ? `${o.name}.${o.overload}` : o.name, err.detail) : err;
  }
}

let makeTensor: (handle: number) => Tensor = () => {
  throw new Error('tinyseek: the Tensor class is not loaded; import from the package entry point');
};

/** Called once by tensor.ts to break the import cycle. */
export function setTensorFactory(f: (handle: number) => Tensor): void {
  makeTensor = f;
}

/** Wraps a fresh native handle in a Tensor owned by the current scope. */
export function wrap(handle: number): Tensor {
  const t = makeTensor(handle);
  adopt(t);
  return t;
}

let w = 2;
let nArgs = 0;
const argTensors: (Tensor | undefined)[] = new Array(16);
// Tensor-list operands of the call being encoded: a result may alias one of their elements.
const argLists: (readonly (Tensor | null)[])[] = [];
// Index of the first disposed operand of the call being encoded (-1: none). It is reported when
// the call runs, so that the error can name the operator.
let disposedOperand = -1;
let operandIndex = 0;

function room(words: number): void {
  if (w + words > BUF_WORDS) throw new RangeError('operands do not fit the operand buffer (too many list elements)');
}

export function begin(): void {
  w = 2;
  nArgs = 0;
  argLists.length = 0;
  disposedOperand = -1;
  operandIndex = 0;
}

function handleOf(t: Tensor): number {
  const h = t._h;
  if (h < 0 && disposedOperand < 0) disposedOperand = operandIndex;
  return h;
}

/** A tensor operand. */
export function T(t: Tensor): void {
  const h = handleOf(t);
  operandIndex++;
  buf[w] = Tag.TENSOR;
  buf[w + 1] = h;
  w += 2;
  if (nArgs < 16) argTensors[nArgs++] = t;
}

/** An optional tensor operand. */
export function OT(t: Tensor | null | undefined): void {
  if (t) T(t);
  else buf[w++] = Tag.NONE;
}

/** A Scalar: an int when the number is integral, else a float. Booleans pass as bool. */
export function S(v: number | boolean): void {
  if (typeof v === 'boolean') {
    buf[w] = Tag.BOOL;
    buf[w + 1] = v ? 1 : 0;
  } else {
    buf[w] = Number.isInteger(v) ? Tag.INT : Tag.FLOAT;
    buf[w + 1] = v;
  }
  w += 2;
}

export function I(v: number): void {
  if (!Number.isInteger(v)) throw new TypeError(`expected an integer, got ${v}`);
  buf[w] = Tag.INT;
  buf[w + 1] = v;
  w += 2;
}

/** An optional int (null passes None). */
export function OI(v: number | null | undefined): void {
  if (v === null || v === undefined) buf[w++] = Tag.NONE;
  else I(v);
}

export function F(v: number): void {
  buf[w] = Tag.FLOAT;
  buf[w + 1] = v;
  w += 2;
}

export function B(v: boolean): void {
  buf[w] = Tag.BOOL;
  buf[w + 1] = v ? 1 : 0;
  w += 2;
}

export function IL(list: readonly number[]): void {
  room(list.length + 2);
  buf[w] = Tag.INTLIST;
  buf[w + 1] = list.length;
  w += 2;
  for (let i = 0; i < list.length; i++) {
    const v = list[i];
    if (!Number.isInteger(v)) throw new TypeError(`expected integers, got ${String(v)} at index ${i}`);
    buf[w++] = v;
  }
}

export function FL(list: readonly number[]): void {
  room(list.length + 2);
  buf[w] = Tag.FLOATLIST;
  buf[w + 1] = list.length;
  w += 2;
  for (const v of list) buf[w++] = v;
}

export function TL(list: readonly Tensor[]): void {
  room(list.length + 2);
  buf[w] = Tag.TENSORLIST;
  buf[w + 1] = list.length;
  w += 2;
  for (const t of list) buf[w++] = handleOf(t);
  operandIndex++;
  argLists.push(list);
}

/** A list of optional tensors (Tensor?[]), as advanced indexing takes. */
export function OTL(list: readonly (Tensor | null)[]): void {
  room(list.length + 2);
  buf[w] = Tag.OPTTENSORLIST;
  buf[w + 1] = list.length;
  w += 2;
  for (const t of list) buf[w++] = t ? handleOf(t) : -1;
  operandIndex++;
  argLists.push(list);
}

const interned = new Map<string, number>();

export function STR(s: string): void {
  let id = interned.get(s);
  if (id === undefined) {
    id = native.intern(s);
    interned.set(s, id);
  }
  buf[w] = Tag.STRING;
  buf[w + 1] = id;
  w += 2;
}

/** An optional string (null passes None). */
export function OSTR(s: string | null | undefined): void {
  if (s === null || s === undefined) buf[w++] = Tag.NONE;
  else STR(s);
}

export function DT(d: DType | null | undefined): void {
  if (d === null || d === undefined) {
    buf[w++] = Tag.NONE;
    return;
  }
  buf[w] = Tag.DTYPE;
  buf[w + 1] = dtypeCode(d);
  w += 2;
}

export function DEV(d: Device | string | null | undefined): void {
  if (d === null || d === undefined) {
    buf[w++] = Tag.NONE;
    return;
  }
  const c = parseDevice(d);
  buf[w] = Tag.DEVICE;
  buf[w + 1] = c.type;
  buf[w + 2] = c.index;
  w += 3;
}

/** A generator operand, by its native id (null passes None). */
export function GEN(id: number | null | undefined): void {
  if (id === null || id === undefined) {
    buf[w++] = Tag.NONE;
    return;
  }
  buf[w] = Tag.GENERATOR;
  buf[w + 1] = id;
  w += 2;
}

export function NONE(): void {
  buf[w++] = Tag.NONE;
}

/** Leaves the operand at its schema default. */
export function DEF(): void {
  buf[w++] = Tag.DEFAULT;
}

function callNative(o: Op): number {
  if (disposedOperand >= 0) {
    const i = disposedOperand;
    disposedOperand = -1;
    throw new DisposedTensorError(`${o.name}${o.overload ? `.${o.overload}` : ''} (tensor operand ${i})`);
  }
  resolve(o);
  buf[0] = o.id;
  buf[1] = w - 2;
  try {
    return native.call();
  } catch (e) {
    throw fromNative(e);
  }
}

function aliasOf(h: number): Tensor {
  for (let i = 0; i < nArgs; i++) {
    const t = argTensors[i];
    if (t && t._h === h) return t;
  }
  for (const list of argLists) for (const t of list) if (t !== null && t._h === h) return t;
  throw new Error(`result aliases handle ${h}, which was not an operand`);
}

/** A decoded result value. */
export type Value = Tensor | number | boolean | null | Tensor[] | number[];

function decode(): Value[] {
  const count = buf[0];
  const out: Value[] = [];
  let r = 1;
  for (let k = 0; k < count; k++) {
    const tag = buf[r++];
    switch (tag) {
      case Tag.TENSOR:
        out.push(wrap(buf[r++]));
        break;
      case Tag.ALIAS:
        out.push(aliasOf(buf[r++]));
        break;
      case Tag.NONE:
        out.push(null);
        break;
      case Tag.INT:
      case Tag.FLOAT:
        out.push(buf[r++]);
        break;
      case Tag.BOOL:
        out.push(buf[r++] !== 0);
        break;
      case Tag.TENSORLIST: {
        const n = buf[r++];
        const list: Tensor[] = [];
        for (let i = 0; i < n; i++) {
          const h = buf[r++];
          list.push(h >= 0 ? wrap(h) : aliasOf(-2 - h));
        }
        out.push(list);
        break;
      }
      case Tag.INTLIST:
      case Tag.FLOATLIST: {
        const n = buf[r++];
        const list: number[] = [];
        for (let i = 0; i < n; i++) list.push(buf[r++]);
        out.push(list);
        break;
      }
      default:
        throw new Error(`unknown result tag ${tag}`);
    }
  }
  return out;
}

/** Drops the call's operands, so that a tensor is not kept reachable after its last call. */
function forgetOperands(): void {
  for (let i = 0; i < nArgs; i++) argTensors[i] = undefined;
  nArgs = 0;
  argLists.length = 0;
}

/** Runs an operator that returns one tensor. */
export function run(o: Op): Tensor {
  try {
    const r = callNative(o);
    if (r >= 0) return wrap(r);
    const vals = decode();
    const v = vals[0];
    if (vals.length !== 1 || v === null || typeof v !== 'object' || Array.isArray(v)) {
      throw new Error(`${o.name}.${o.overload} did not return a single tensor`);
    }
    return v;
  } finally {
    forgetOperands();
  }
}

/** Runs an operator that returns two tensors (values/indices style). */
export function run2(o: Op): [Tensor, Tensor] {
  try {
    callNative(o);
    const vals = decode();
    if (vals.length !== 2) throw new Error(`${o.name}.${o.overload} did not return two tensors`);
    return [vals[0] as Tensor, vals[1] as Tensor];
  } finally {
    forgetOperands();
  }
}

/** Runs an operator that returns a list of tensors. */
export function runList(o: Op): Tensor[] {
  try {
    callNative(o);
    const vals = decode();
    return vals[0] as Tensor[];
  } finally {
    forgetOperands();
  }
}

/** Runs an operator for its side effect (in-place ops); results are dropped. */
export function runVoid(o: Op): void {
  try {
    const r = callNative(o);
    if (r >= 0) native.release(r);
    else {
      // Results are aliases of the operands or fresh values nobody asked for.
      const count = buf[0];
      let p = 1;
      for (let k = 0; k < count; k++) {
        const tag = buf[p++];
        if (tag === Tag.TENSOR) native.release(buf[p++]);
        else if (tag === Tag.ALIAS || tag === Tag.INT || tag === Tag.FLOAT || tag === Tag.BOOL) p++;
        else if (tag === Tag.TENSORLIST) {
          const n = buf[p++];
          for (let i = 0; i < n; i++) {
            const h = buf[p++];
            if (h >= 0) native.release(h);
          }
        } else if (tag === Tag.INTLIST || tag === Tag.FLOATLIST) p += buf[p] + 1;
      }
    }
  } finally {
    forgetOperands();
  }
}

/** Runs an operator and returns all results decoded. */
export function runValues(o: Op): Value[] {
  try {
    const r = callNative(o);
    if (r >= 0) return [wrap(r)];
    return decode();
  } finally {
    forgetOperands();
  }
}

/** An operand of the generic call. Numbers pass as int when integral; use {float: x} to force a float. */
export type Arg =
  | Tensor
  | number
  | boolean
  | null
  | undefined
  | string
  | { float: number }
  | { dtype: DType }
  | { device: Device }
  | { generator: number }
  | readonly number[]
  | readonly Tensor[]
  | readonly (Tensor | null)[];

function isTensor(v: unknown): v is Tensor {
  return typeof v === 'object' && v !== null && typeof (v as Tensor)._h === 'number' && typeof (v as Tensor)._f === 'number';
}

/**
 * Calls any libtorch operator by name and overload with positional operands, e.g.
 * `callOp('aten::add', 'Tensor', [a, b, 2])`. `undefined` leaves an operand at its default.
 */
export function callOp(name: string, overload: string, args: readonly Arg[]): Value[] {
  const o = op(name, overload);
  begin();
  for (const a of args) {
    if (a === undefined) DEF();
    else if (a === null) NONE();
    else if (typeof a === 'number' || typeof a === 'boolean') S(a);
    else if (typeof a === 'string') STR(a);
    else if (isTensor(a)) T(a);
    else if (Array.isArray(a)) {
      if (a.length === 0 || typeof a[0] === 'number') IL(a as number[]);
      else if (a.some((x) => x === null)) OTL(a as (Tensor | null)[]);
      else TL(a as Tensor[]);
    } else if ('float' in a) F(a.float);
    else if ('dtype' in a) DT(a.dtype);
    else if ('device' in a) DEV(a.device);
    else if ('generator' in a) GEN(a.generator);
    else throw new TypeError(`unsupported operand ${String(a)}`);
  }
  return runValues(o);
}
