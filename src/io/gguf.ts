/**
 * GGUF, the file format of llama.cpp (and of ollama and LM Studio, which read it): a header of
 * typed key–value metadata and tensor descriptions, then the tensor data, each tensor aligned.
 * Version 3, little-endian, as ggml's gguf.cpp reads it (docs/gguf.md in ggml's repository):
 *
 *   "GGUF" u32 version=3  u64 n_tensors  u64 n_kv
 *   n_kv × { string key, u32 value_type, value }          string = u64 length + UTF-8 bytes
 *   n_tensors × { string name, u32 n_dims, u64 ne[n_dims], u32 ggml_type, u64 offset }
 *   padding to `general.alignment` (32), then the data; each offset is relative to the data
 *   section's start and a multiple of the alignment.
 *
 * ggml lists a tensor's dimensions fastest first (ne[0] is the row length), the reverse of the
 * row-major shapes used everywhere else here; this module takes row-major shapes and reverses them.
 * Tensor types written: F32, F16, BF16 and Q8_0 (blocks of 32 values: an f16 scale d = max|x|/127
 * and 32 int8 q = round(x/d)).
 *
 * The writer streams tensors to a temporary file and renames it into place, so a failed export
 * never leaves a truncated file under the final name. The reader parses the header only (what a
 * test or `tinyseek export` needs to check a file).
 *
 * It knows bytes and the format; nothing about models or tokenizers.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeAllSync, syncDir } from './durable.ts';

export const GGUF_MAGIC = 0x46554747; // "GGUF" little-endian
export const GGUF_VERSION = 3;
export const GGUF_ALIGNMENT = 32;

/** GGUF metadata value types (gguf_type). */
const VT = { u8: 0, i8: 1, u16: 2, i16: 3, u32: 4, i32: 5, f32: 6, bool: 7, string: 8, array: 9, u64: 10, i64: 11, f64: 12 } as const;
type ScalarKind = 'u32' | 'i32' | 'f32' | 'bool' | 'string' | 'u64';

export type GgufValue =
  | { type: 'u32' | 'i32' | 'f32' | 'u64'; value: number }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string }
  | { type: 'array'; itemType: 'string'; value: readonly string[] }
  | { type: 'array'; itemType: 'i32' | 'u32' | 'f32'; value: readonly number[] };

/** ggml tensor types this writer produces (ggml_type ids). */
export const GGML_TYPES = { f32: 0, f16: 1, q8_0: 8, bf16: 30 } as const;
export type GgmlType = keyof typeof GGML_TYPES;
const TYPE_OF_ID = new Map<number, GgmlType>(Object.entries(GGML_TYPES).map(([k, v]) => [v, k as GgmlType]));

export const Q8_0_BLOCK = 32;

export interface GgufTensor {
  name: string;
  /** Row-major shape (the last dimension is contiguous), as the checkpoint stores it. */
  shape: readonly number[];
  type: GgmlType;
  /** The values, row-major; read when the tensor is written (so a big model is never all in memory twice). */
  data: () => Float32Array;
}

export class GgufError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GgufError';
  }
}

// ---- encoding -------------------------------------------------------------------------------------

const f32Buf = new Float32Array(1);
const u32Buf = new Uint32Array(f32Buf.buffer);

/** IEEE half from a float, rounded to nearest even (overflow → ±inf, NaN kept). */
export function toHalf(x: number): number {
  f32Buf[0] = x;
  const b = u32Buf[0];
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let m = mant >>> shift;
    const rest = mant & ((1 << shift) - 1);
    if (rest > half || (rest === half && m & 1)) m++;
    return sign | m;
  }
  let m = mant >>> 13;
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && m & 1)) {
    m++;
    if (m === 0x400) {
      m = 0;
      e++;
      if (e >= 0x1f) return sign | 0x7c00;
    }
  }
  return sign | (e << 10) | m;
}

/** A half back to a float. */
export function fromHalf(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 0x1f) return m ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

/** bfloat16 bits from a float, rounded to nearest even. */
export function toBf16(x: number): number {
  f32Buf[0] = x;
  const b = u32Buf[0];
  if ((b & 0x7f800000) === 0x7f800000 && b & 0x7fffff) return (b >>> 16) | 0x40;
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

/** Bytes of a tensor of `count` values in a type. */
export function tensorBytes(type: GgmlType, count: number): number {
  if (type === 'f32') return count * 4;
  if (type === 'f16' || type === 'bf16') return count * 2;
  return (count / Q8_0_BLOCK) * (2 + Q8_0_BLOCK);
}

/** The values in a ggml type, as bytes. */
export function encodeTensor(type: GgmlType, x: Float32Array): Uint8Array {
  if (type === 'f32') return new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
  if (type === 'f16' || type === 'bf16') {
    const out = new Uint16Array(x.length);
    const conv = type === 'f16' ? toHalf : toBf16;
    for (let i = 0; i < x.length; i++) out[i] = conv(x[i]);
    return new Uint8Array(out.buffer);
  }
  if (x.length % Q8_0_BLOCK !== 0) throw new GgufError(`q8_0 needs a multiple of ${Q8_0_BLOCK} values, got ${x.length}`);
  const out = new Uint8Array(tensorBytes('q8_0', x.length));
  const dv = new DataView(out.buffer);
  for (let b = 0, o = 0; b < x.length; b += Q8_0_BLOCK, o += 2 + Q8_0_BLOCK) {
    let amax = 0;
    for (let i = 0; i < Q8_0_BLOCK; i++) amax = Math.max(amax, Math.abs(x[b + i]));
    const d = amax / 127;
    const id = d ? 1 / d : 0;
    dv.setUint16(o, toHalf(d), true);
    for (let i = 0; i < Q8_0_BLOCK; i++) {
      const v = x[b + i] * id;
      dv.setInt8(o + 2 + i, Math.sign(v) * Math.round(Math.abs(v))); // roundf: half away from zero
    }
  }
  return out;
}

class ByteSink {
  private parts: Uint8Array[] = [];
  push(b: Uint8Array): void {
    this.parts.push(b);
  }
  /** `n` little-endian bytes written by `set` at offset 0. */
  private fixed(n: number, set: (dv: DataView) => void): void {
    const b = new Uint8Array(n);
    set(new DataView(b.buffer));
    this.push(b);
  }
  u32(v: number): void {
    this.fixed(4, (dv) => dv.setUint32(0, v, true));
  }
  i32(v: number): void {
    this.fixed(4, (dv) => dv.setInt32(0, v, true));
  }
  u64(v: number): void {
    this.fixed(8, (dv) => dv.setBigUint64(0, BigInt(v), true));
  }
  f32(v: number): void {
    this.fixed(4, (dv) => dv.setFloat32(0, v, true));
  }
  str(s: string): void {
    const b = Buffer.from(s, 'utf8');
    this.u64(b.length);
    this.push(b);
  }
  bytes(): Uint8Array {
    return Buffer.concat(this.parts);
  }
}

function writeScalar(s: ByteSink, kind: ScalarKind, v: number | boolean | string): void {
  if (kind === 'u32') s.u32(v as number);
  else if (kind === 'i32') s.i32(v as number);
  else if (kind === 'f32') s.f32(v as number);
  else if (kind === 'u64') s.u64(v as number);
  else if (kind === 'bool') s.push(Uint8Array.of(v ? 1 : 0));
  else s.str(v as string);
}

function checkValue(key: string, v: GgufValue): void {
  const ints =
    v.type === 'array' ? (v.itemType === 'string' ? [] : (v.value as readonly number[])) : v.type === 'f32' || typeof v.value !== 'number' ? [] : [v.value];
  const kind = v.type === 'array' ? v.itemType : v.type;
  for (const x of ints) {
    const ok =
      Number.isInteger(x) && (kind === 'i32' ? x >= -(2 ** 31) && x < 2 ** 31 : x >= 0 && (kind === 'u64' ? x <= Number.MAX_SAFE_INTEGER : x < 2 ** 32));
    if (!ok) throw new GgufError(`metadata ${key}: ${x} is not a valid ${kind}`);
  }
}

/** Writes a GGUF file (atomically: a temporary file renamed into place). */
export function writeGguf(file: string, metadata: ReadonlyMap<string, GgufValue>, tensors: readonly GgufTensor[]): { bytes: number } {
  const names = new Set<string>();
  for (const t of tensors) {
    if (names.has(t.name)) throw new GgufError(`tensor ${t.name} given twice`);
    names.add(t.name);
    if (t.shape.length < 1 || t.shape.length > 4) throw new GgufError(`tensor ${t.name}: ${t.shape.length} dimensions (GGUF holds 1 to 4)`);
    if (t.type === 'q8_0' && t.shape[t.shape.length - 1] % Q8_0_BLOCK !== 0)
      throw new GgufError(`tensor ${t.name}: rows of ${t.shape[t.shape.length - 1]} values cannot be q8_0 (blocks of ${Q8_0_BLOCK}); write it as f16`);
  }
  const align = metadata.get('general.alignment');
  const alignment = align?.type === 'u32' ? align.value : GGUF_ALIGNMENT;
  const h = new ByteSink();
  h.u32(GGUF_MAGIC);
  h.u32(GGUF_VERSION);
  h.u64(tensors.length);
  h.u64(metadata.size);
  for (const [key, v] of metadata) {
    checkValue(key, v);
    h.str(key);
    if (v.type === 'array') {
      h.u32(VT.array);
      h.u32(VT[v.itemType]);
      h.u64(v.value.length);
      for (const x of v.value) writeScalar(h, v.itemType, x);
    } else {
      h.u32(VT[v.type]);
      writeScalar(h, v.type, v.value);
    }
  }
  let offset = 0;
  const offsets: number[] = [];
  for (const t of tensors) {
    h.str(t.name);
    h.u32(t.shape.length);
    for (let i = t.shape.length - 1; i >= 0; i--) h.u64(t.shape[i]);
    h.u32(GGML_TYPES[t.type]);
    h.u64(offset);
    offsets.push(offset);
    const n = t.shape.reduce((a, b) => a * b, 1);
    offset += Math.ceil(tensorBytes(t.type, n) / alignment) * alignment;
  }
  const pad = (n: number): Uint8Array => new Uint8Array((alignment - (n % alignment)) % alignment);
  const dir = path.dirname(path.resolve(file));
  fs.mkdirSync(dir, { recursive: true });
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.tmp`);
  const fd = fs.openSync(tmp, 'w');
  try {
    const header = h.bytes();
    writeAllSync(fd, header);
    writeAllSync(fd, pad(header.length));
    tensors.forEach((t, i) => {
      const x = t.data();
      const n = t.shape.reduce((a, b) => a * b, 1);
      if (x.length !== n) throw new GgufError(`tensor ${t.name}: ${x.length} values for shape [${t.shape.join(', ')}]`);
      const bytes = encodeTensor(t.type, x);
      if (Math.ceil(bytes.length / alignment) * alignment !== (offsets[i + 1] ?? offset) - offsets[i])
        throw new GgufError(`tensor ${t.name}: its bytes do not fill its slot`);
      writeAllSync(fd, bytes);
      writeAllSync(fd, pad(bytes.length));
    });
    fs.fsyncSync(fd);
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fs.closeSync(fd);
  fs.renameSync(tmp, file);
  syncDir(dir);
  return { bytes: fs.statSync(file).size };
}

// ---- reading the header ---------------------------------------------------------------------------

export interface GgufTensorInfo {
  name: string;
  /** Row-major shape. */
  shape: number[];
  type: GgmlType | `ggml type ${number}`;
  offset: number;
}

export interface GgufHeader {
  version: number;
  metadata: Map<string, string | number | boolean | bigint | (string | number | boolean | bigint)[]>;
  tensors: GgufTensorInfo[];
  /** Where the data section starts in the file. */
  dataStart: number;
}

/** Most bytes read for a header (a vocabulary of a few hundred thousand tokens fits in far less). */
const HEADER_READ_LIMIT = 256 * 1024 * 1024;

/** The header of a GGUF file: metadata and tensor descriptions (the data is not read). */
export function readGgufHeader(file: string): GgufHeader {
  const fd = fs.openSync(file, 'r');
  const size = fs.fstatSync(fd).size;
  const buf = Buffer.alloc(Math.min(size, HEADER_READ_LIMIT));
  try {
    fs.readSync(fd, buf, 0, buf.length, 0);
  } finally {
    fs.closeSync(fd);
  }
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let p = 0;
  /** Advances past `n` bytes and returns where they start (an error past the end). */
  const take = (n: number): number => {
    if (p + n > buf.length) throw new GgufError(`${file}: truncated header (needs byte ${p + n}, the file has ${buf.length})`);
    p += n;
    return p - n;
  };
  const u32 = (): number => dv.getUint32(take(4), true);
  const u64 = (): bigint => dv.getBigUint64(take(8), true);
  const num = (): number => Number(u64());
  const str = (): string => {
    const n = num();
    const at = take(n);
    return buf.subarray(at, at + n).toString('utf8');
  };
  const scalar = (t: number): string | number | boolean | bigint => {
    switch (t) {
      case VT.u8:
        return buf[take(1)];
      case VT.i8:
        return dv.getInt8(take(1));
      case VT.u16:
        return dv.getUint16(take(2), true);
      case VT.i16:
        return dv.getInt16(take(2), true);
      case VT.u32:
        return u32();
      case VT.i32:
        return dv.getInt32(take(4), true);
      case VT.f32:
        return dv.getFloat32(take(4), true);
      case VT.bool:
        return buf[take(1)] !== 0;
      case VT.string:
        return str();
      case VT.u64:
        return u64();
      case VT.i64:
        return dv.getBigInt64(take(8), true);
      case VT.f64:
        return dv.getFloat64(take(8), true);
      default:
        throw new GgufError(`${file}: unknown metadata type ${t} at byte ${p}`);
    }
  };
  if (u32() !== GGUF_MAGIC) throw new GgufError(`${file} is not a GGUF file (no "GGUF" magic)`);
  const version = u32();
  if (version !== 3) throw new GgufError(`${file}: GGUF version ${version}; this reader knows version 3`);
  const nTensors = num();
  const nKv = num();
  const metadata: GgufHeader['metadata'] = new Map();
  for (let i = 0; i < nKv; i++) {
    const key = str();
    const t = u32();
    if (t === VT.array) {
      const it = u32();
      const n = num();
      const arr: (string | number | boolean | bigint)[] = [];
      for (let j = 0; j < n; j++) arr.push(scalar(it));
      metadata.set(key, arr);
    } else metadata.set(key, scalar(t));
  }
  const tensors: GgufTensorInfo[] = [];
  for (let i = 0; i < nTensors; i++) {
    const name = str();
    const nd = u32();
    const ne: number[] = [];
    for (let d = 0; d < nd; d++) ne.push(num());
    const tid = u32();
    tensors.push({ name, shape: ne.reverse(), type: TYPE_OF_ID.get(tid) ?? `ggml type ${tid}`, offset: num() });
  }
  const alignment = Number(metadata.get('general.alignment') ?? GGUF_ALIGNMENT);
  return { version, metadata, tensors, dataStart: Math.ceil(p / alignment) * alignment };
}
