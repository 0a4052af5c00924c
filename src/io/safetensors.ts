/**
 * Reading and writing the safetensors format (https://github.com/huggingface/safetensors).
 *
 * Layout of a file:
 *
 *   [8 bytes]  N, little-endian u64: length of the header
 *   [N bytes]  UTF-8 JSON object: name -> {dtype, shape, data_offsets: [begin, end]},
 *              plus an optional "__metadata__": {string: string}; writers pad it with spaces
 *              to a multiple of 8 bytes
 *   [rest]     the data buffer: each tensor's raw little-endian, row-major element bytes at
 *              [begin, end) relative to the buffer's start; tensors cover it exactly, no holes
 *
 * This module knows bytes and Tensors only: names are opaque strings, and it knows nothing about
 * model structure, sharding (model.safetensors.index.json), dtype conversion or devices (tensors it
 * reads are CPU tensors in their stored dtype). Reading is lazy: SafetensorsFile.open parses and
 * validates the header with positional reads and reads a tensor's bytes only when asked, so a
 * multi-GB shard is never read whole. Writing is atomic (temp file, fsync, rename) and lays data
 * out as the reference writer does, so its files are byte-identical to safetensors' save_file.
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { type DType, type Tensor, fromBytes } from '../core/index.ts';
import { syncDir, writeAllSync } from './durable.ts';

/** A malformed file, a bad request (unknown name, unsupported dtype) or a refused write. */
export class SafetensorsError extends Error {
  /** The file concerned. */
  readonly file: string;
  /** The tensor concerned, when there is one. */
  readonly tensor: string | undefined;
  constructor(file: string, tensor: string | undefined, message: string, options?: { cause?: unknown }) {
    super(`${file}: ${tensor === undefined ? '' : `tensor '${tensor}': `}${message}`, options);
    this.name = 'SafetensorsError';
    this.file = file;
    this.tensor = tensor;
  }
}

// ---- dtypes ------------------------------------------------------------------------------------

/** Element types of the format, in the reference's enum order (increasing alignment). */
const ST_DTYPES = ['BOOL', 'U8', 'I8', 'F8_E5M2', 'F8_E4M3', 'I16', 'U16', 'F16', 'BF16', 'I32', 'U32', 'F32', 'F64', 'I64', 'U64'] as const;

export type SafetensorsDType = (typeof ST_DTYPES)[number];

const ST_SIZE: Record<SafetensorsDType, number> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  F64: 8,
  I64: 8,
  U64: 8,
};

/** Format dtype -> tinyseek dtype; the others (F8_*, U16, U32, U64) can only be read raw. */
const TO_DTYPE: Partial<Record<SafetensorsDType, DType>> = {
  BOOL: 'bool',
  U8: 'uint8',
  I8: 'int8',
  I16: 'int16',
  F16: 'float16',
  BF16: 'bfloat16',
  I32: 'int32',
  F32: 'float32',
  F64: 'float64',
  I64: 'int64',
};

const FROM_DTYPE: Record<DType, SafetensorsDType> = {
  bool: 'BOOL',
  uint8: 'U8',
  int8: 'I8',
  int16: 'I16',
  float16: 'F16',
  bfloat16: 'BF16',
  int32: 'I32',
  float32: 'F32',
  float64: 'F64',
  int64: 'I64',
};

function isStDType(s: unknown): s is SafetensorsDType {
  return typeof s === 'string' && Object.hasOwn(ST_SIZE, s);
}

// ---- header ------------------------------------------------------------------------------------

/** What the header says about one tensor. */
export interface TensorInfo {
  /** The format's dtype string (F32, BF16, …). */
  dtype: SafetensorsDType;
  shape: number[];
  byteLength: number;
}

/** TensorInfo plus where the bytes are: [begin, end) relative to the start of the data buffer. */
export interface TensorLocation extends TensorInfo {
  begin: number;
  end: number;
}

interface Entry extends TensorLocation {
  name: string;
}

export interface SafetensorsHeader {
  /** N: the JSON header's length in bytes (padding included). */
  headerLength: number;
  /** Where the data buffer starts in the file: 8 + N. */
  dataStart: number;
  /** Tensors in data order (ascending offsets). */
  tensors: Map<string, TensorLocation>;
  metadata: Record<string, string> | null;
}

/** Largest header accepted, as in the reference implementation. */
export const MAX_HEADER_BYTES = 100_000_000;
const METADATA_KEY = '__metadata__';
const REWRITE = "re-export it with a conforming writer (tinyseek's saveSafetensors or safetensors' save_file)";

/** Reads N from the 8-byte prefix and checks it against the file size. Returns N. */
function headerLength(prefix: Uint8Array, fileSize: number, file: string): number {
  if (fileSize >= 8 && prefix.byteLength < 8) throw new RangeError('the 8-byte header length is missing from the bytes given');
  if (fileSize < 8) {
    throw new SafetensorsError(file, undefined, `file is ${fileSize} bytes, shorter than the 8-byte header length: not a safetensors file, or truncated`);
  }
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) {
    throw new SafetensorsError(file, undefined, `header length ${n} is larger than the 100 MB limit: not a safetensors file, or corrupt`);
  }
  if (n > BigInt(fileSize - 8)) {
    throw new SafetensorsError(
      file,
      undefined,
      `header length ${n} is larger than the file (${fileSize} bytes): the file is truncated or not a safetensors file`,
    );
  }
  return Number(n);
}

/**
 * Throws on a duplicated key in any object of a JSON text that JSON.parse has already accepted
 * (JSON.parse silently keeps the last one). Returns nothing.
 */
function checkDuplicateKeys(json: string, file: string): void {
  // One frame per open '{' or '['; for objects, the keys seen so far and whether a key comes next.
  const stack: { keys: Set<string> | null; expectKey: boolean }[] = [];
  for (let i = 0; i < json.length; i++) {
    const c = json[i];
    if (c === '{') stack.push({ keys: new Set(), expectKey: true });
    else if (c === '[') stack.push({ keys: null, expectKey: false });
    else if (c === '}' || c === ']') stack.pop();
    else if (c === ',') {
      const top = stack[stack.length - 1];
      if (top?.keys) top.expectKey = true;
    } else if (c === '"') {
      let j = i + 1;
      while (json[j] !== '"') j += json[j] === '\\' ? 2 : 1;
      const top = stack[stack.length - 1];
      if (top?.keys && top.expectKey) {
        const key = JSON.parse(json.slice(i, j + 1)) as string;
        if (top.keys.has(key)) {
          const what = stack.length === 1 ? `tensor name '${key}' appears twice` : `key '${key}' appears twice in one object`;
          throw new SafetensorsError(file, undefined, `header JSON is ambiguous: ${what}; ${REWRITE}`);
        }
        top.keys.add(key);
        top.expectKey = false;
      }
      i = j;
    }
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function describe(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

function parseEntry(name: string, v: unknown, dataLength: number, file: string): Entry {
  const fail = (msg: string): never => {
    throw new SafetensorsError(file, name, msg);
  };
  if (!isObject(v)) return fail(`header entry must be an object {dtype, shape, data_offsets}, got ${describe(v)}`);
  const { dtype, shape, data_offsets: offsets } = v;
  if (!isStDType(dtype)) return fail(`unknown dtype ${describe(dtype)}: the format's dtypes are ${ST_DTYPES.join(', ')}`);
  if (!Array.isArray(shape) || !shape.every(isCount)) return fail(`shape must be an array of non-negative integers, got ${describe(shape)}`);
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount) || offsets[0] > offsets[1]) {
    return fail(`data_offsets must be two non-negative integers [begin, end] with begin <= end, got ${describe(offsets)}`);
  }
  const [begin, end] = offsets as [number, number];
  const numel = (shape as number[]).reduce((a, d) => a * BigInt(d), 1n);
  const need = numel * BigInt(ST_SIZE[dtype]);
  if (BigInt(end - begin) !== need) {
    return fail(
      `data_offsets [${begin}, ${end}] span ${end - begin} bytes but shape [${shape.join(', ')}] of ${dtype} needs ${need}; the header is corrupt, ${REWRITE}`,
    );
  }
  if (end > dataLength) {
    return fail(`data_offsets [${begin}, ${end}] are out of range of the data buffer (${dataLength} bytes): the file is truncated or corrupt`);
  }
  return { name, dtype, shape: shape as number[], byteLength: end - begin, begin, end };
}

/**
 * Parses and validates a header. `bytes` holds the file's first bytes (the 8-byte length and the
 * whole JSON header; more is ignored); `fileSize` is the size of the whole file. `file` only names
 * the file in error messages.
 */
export function parseHeader(bytes: Uint8Array, fileSize: number, file = '<safetensors>'): SafetensorsHeader {
  const n = headerLength(bytes, fileSize, file);
  if (bytes.byteLength < 8 + n) throw new RangeError(`parseHeader needs the first ${8 + n} bytes of the file, got ${bytes.byteLength}`);
  const dataStart = 8 + n;
  const dataLength = fileSize - dataStart;

  let json: string;
  try {
    json = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes.subarray(8, dataStart));
  } catch (e) {
    throw new SafetensorsError(file, undefined, 'header is not valid UTF-8: not a safetensors file, or corrupt', { cause: e });
  }
  let root: unknown;
  try {
    root = JSON.parse(json);
  } catch (e) {
    throw new SafetensorsError(file, undefined, `header is not valid JSON (${(e as Error).message}): not a safetensors file, or corrupt`, { cause: e });
  }
  if (!isObject(root)) throw new SafetensorsError(file, undefined, `header must be a JSON object, got ${describe(root)}`);
  checkDuplicateKeys(json, file);

  let metadata: Record<string, string> | null = null;
  const entries: Entry[] = [];
  for (const [name, v] of Object.entries(root)) {
    if (name === METADATA_KEY) {
      if (v === null) continue; // the reference reads null as "no metadata"
      if (!isObject(v) || !Object.values(v).every((s) => typeof s === 'string')) {
        throw new SafetensorsError(file, undefined, `__metadata__ must map strings to strings, got ${describe(v)}`);
      }
      metadata = Object.fromEntries(Object.entries(v)) as Record<string, string>;
      continue;
    }
    entries.push(parseEntry(name, v, dataLength, file));
  }

  // The tensors must tile the data buffer exactly: sorted by offset, each begins where the last ended.
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  let prev: Entry | undefined;
  for (const e of entries) {
    if (e.begin < cursor) {
      throw new SafetensorsError(file, e.name, `data_offsets [${e.begin}, ${e.end}] overlap tensor '${prev?.name}' [${prev?.begin}, ${prev?.end}]; ${REWRITE}`);
    }
    if (e.begin > cursor) {
      throw new SafetensorsError(
        file,
        e.name,
        `the data buffer has a hole: bytes [${cursor}, ${e.begin}) before this tensor belong to no tensor, which the format forbids; ${REWRITE}`,
      );
    }
    cursor = e.end;
    prev = e;
  }
  if (cursor !== dataLength) {
    throw new SafetensorsError(
      file,
      undefined,
      `the data buffer has a hole: its last ${dataLength - cursor} bytes (from ${cursor} to ${dataLength}) belong to no tensor, which the format forbids; ${REWRITE}`,
    );
  }
  return { headerLength: n, dataStart, tensors: new Map(entries.map((e) => [e.name, e])), metadata };
}

// ---- reading -----------------------------------------------------------------------------------

/** Reads exactly `into.byteLength` bytes at `position`, in chunks (read(2) caps one call near 2 GB). */
function readExactly(fd: number, into: Uint8Array, position: number, file: string, tensor?: string): void {
  const CHUNK = 1 << 30;
  let done = 0;
  while (done < into.byteLength) {
    const got = fs.readSync(fd, into, done, Math.min(CHUNK, into.byteLength - done), position + done);
    if (got === 0) throw new SafetensorsError(file, tensor, `unexpected end of file at byte ${position + done}: the file shrank after it was opened`);
    done += got;
  }
}

/** An open safetensors file: the header is parsed and validated; tensor data is read on demand. */
export class SafetensorsFile {
  readonly path: string;
  private fd: number;
  private readonly header: SafetensorsHeader;

  private constructor(file: string, fd: number, header: SafetensorsHeader) {
    this.path = file;
    this.fd = fd;
    this.header = header;
  }

  /** Opens a file and validates its header (reads 8 + N bytes, none of the data). */
  static open(file: string): SafetensorsFile {
    const fd = fs.openSync(file, 'r');
    try {
      const size = fs.fstatSync(fd).size;
      const prefix = new Uint8Array(Math.min(8, size));
      readExactly(fd, prefix, 0, file);
      const n = headerLength(prefix, size, file);
      const head = new Uint8Array(8 + n);
      readExactly(fd, head, 0, file);
      return new SafetensorsFile(file, fd, parseHeader(head, size, file));
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }

  /** Tensor names in data order (ascending offsets). */
  get names(): string[] {
    return [...this.header.tensors.keys()];
  }

  /** The "__metadata__" map, or null when the file has none. */
  get metadata(): Record<string, string> | null {
    return this.header.metadata === null ? null : { ...this.header.metadata };
  }

  has(name: string): boolean {
    return this.header.tensors.has(name);
  }

  info(name: string): TensorInfo {
    const e = this.entry(name);
    return { dtype: e.dtype, shape: [...e.shape], byteLength: e.byteLength };
  }

  /** The tensor's raw little-endian element bytes, row-major, for any dtype. */
  readRaw(name: string): Uint8Array {
    const e = this.entry(name);
    if (this.fd < 0) throw new SafetensorsError(this.path, name, 'the file was closed; open it again to read');
    const out = new Uint8Array(e.byteLength);
    readExactly(this.fd, out, this.header.dataStart + e.begin, this.path, name);
    return out;
  }

  /** The tensor as a CPU Tensor of its own dtype. */
  read(name: string): Tensor {
    const e = this.entry(name);
    const dtype = TO_DTYPE[e.dtype];
    if (dtype === undefined) {
      throw new SafetensorsError(this.path, name, `dtype ${e.dtype} has no tinyseek tensor dtype; readRaw('${name}') returns its bytes`);
    }
    return fromBytes(this.readRaw(name), dtype, e.shape);
  }

  close(): void {
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = -1;
  }

  private entry(name: string): TensorLocation {
    const e = this.header.tensors.get(name);
    if (e === undefined) {
      const names = this.names;
      const some =
        names
          .slice(0, 5)
          .map((s) => `'${s}'`)
          .join(', ') + (names.length > 5 ? ', …' : '');
      throw new SafetensorsError(this.path, name, `no such tensor; the file holds ${names.length}${names.length ? `: ${some}` : ''}`);
    }
    return e;
  }
}

/** Reads every tensor of a file (CPU tensors, stored dtypes). */
export function loadSafetensors(file: string): Record<string, Tensor> {
  const f = SafetensorsFile.open(file);
  const out: [string, Tensor][] = [];
  try {
    for (const name of f.names) out.push([name, f.read(name)]);
  } catch (e) {
    for (const [, t] of out) t.dispose();
    throw e;
  } finally {
    f.close();
  }
  return Object.fromEntries(out); // own data properties, even for a name like "__proto__"
}

// ---- writing -----------------------------------------------------------------------------------

export type TensorDict = Record<string, Tensor> | Map<string, Tensor> | Iterable<readonly [string, Tensor]>;

interface Planned {
  name: string;
  tensor: Tensor;
  byteLength: number;
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function utf8Compare(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/**
 * Validates names and tensors and lays the file out as the reference writer does: tensors sorted
 * by descending dtype (reference enum order, so each begins aligned to its element size) then by
 * name, data contiguous; header = __metadata__ then tensors in data order, compact JSON, padded
 * with spaces to a multiple of 8. Returns the 8 + N header bytes and the tensors in write order.
 */
function plan(file: string, tensors: TensorDict, metadata: Record<string, string> | undefined): { head: Uint8Array; items: Planned[] } {
  const pairs: (readonly [string, Tensor])[] =
    tensors instanceof Map || Symbol.iterator in tensors ? [...(tensors as Iterable<readonly [string, Tensor]>)] : Object.entries(tensors);
  const seen = new Set<string>();
  const items: (Planned & { dtype: SafetensorsDType; shape: number[] })[] = [];
  for (const [name, tensor] of pairs) {
    if (typeof name !== 'string' || name === '')
      throw new SafetensorsError(file, undefined, 'refusing to save a tensor with an empty name: give every tensor a name');
    if (name === METADATA_KEY) throw new SafetensorsError(file, name, 'the name is reserved for the metadata map; rename the tensor');
    if (LONE_SURROGATE.test(name)) throw new SafetensorsError(file, name, 'the name is not valid Unicode (lone surrogate); rename the tensor');
    if (seen.has(name)) throw new SafetensorsError(file, name, 'the name appears twice; tensor names must be unique');
    seen.add(name);
    let dtype: DType;
    let shape: number[];
    try {
      ({ dtype, shape } = tensor.meta());
    } catch (e) {
      throw new SafetensorsError(file, name, `cannot save: ${(e as Error).message}`, { cause: e });
    }
    const byteLength = shape.reduce((a, d) => a * d, 1) * ST_SIZE[FROM_DTYPE[dtype]];
    items.push({ name, tensor, dtype: FROM_DTYPE[dtype], shape, byteLength });
  }
  if (metadata !== undefined) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new SafetensorsError(file, undefined, `metadata['${k}'] must be a string, got ${describe(v)}`);
      if (LONE_SURROGATE.test(k) || LONE_SURROGATE.test(v))
        throw new SafetensorsError(file, undefined, `metadata['${k}'] is not valid Unicode (lone surrogate)`);
    }
  }

  const rank = (d: SafetensorsDType): number => ST_DTYPES.indexOf(d);
  items.sort((a, b) => rank(b.dtype) - rank(a.dtype) || utf8Compare(a.name, b.name));

  // Built as a Map, not an object literal, so that JSON.stringify keeps this key order.
  const header = new Map<string, unknown>();
  if (metadata !== undefined) header.set(METADATA_KEY, metadata);
  let offset = 0;
  for (const it of items) {
    header.set(it.name, { dtype: it.dtype, shape: it.shape, data_offsets: [offset, offset + it.byteLength] });
    offset += it.byteLength;
  }
  const parts = [...header].map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`);
  let json = Buffer.from(`{${parts.join(',')}}`, 'utf8');
  if (json.byteLength % 8 !== 0) json = Buffer.concat([json, Buffer.alloc(8 - (json.byteLength % 8), 0x20)]);
  const head = new Uint8Array(8 + json.byteLength);
  new DataView(head.buffer).setBigUint64(0, BigInt(json.byteLength), true);
  head.set(json, 8);
  return { head, items };
}

function bytesOf(file: string, it: Planned): Uint8Array {
  let b: Uint8Array;
  try {
    b = it.tensor.toBytes();
  } catch (e) {
    throw new SafetensorsError(file, it.name, `cannot save: ${(e as Error).message}`, { cause: e });
  }
  if (b.byteLength !== it.byteLength) {
    throw new SafetensorsError(file, it.name, `toBytes() returned ${b.byteLength} bytes, expected ${it.byteLength} (did the tensor change while saving?)`);
  }
  return b;
}

function tempPath(file: string): string {
  const rand = Math.random().toString(36).slice(2, 10);
  return path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${rand}.tmp`);
}

/**
 * Writes tensors (and optional string metadata) to `file` atomically: a temp file in the same
 * directory is written, fsynced and renamed over `file`; on failure `file` is untouched and the
 * temp file removed. Tensors may live on any device; they are copied to host memory one at a time.
 */
export async function saveSafetensors(file: string, tensors: TensorDict, metadata?: Record<string, string>): Promise<void> {
  const { head, items } = plan(file, tensors, metadata);
  const tmp = tempPath(file);
  const fh = await fsp.open(tmp, 'wx');
  let closed = false;
  try {
    const writeAll = async (b: Uint8Array): Promise<void> => {
      for (let done = 0; done < b.byteLength; ) done += (await fh.write(b, done, b.byteLength - done)).bytesWritten;
    };
    await writeAll(head);
    for (const it of items) await writeAll(bytesOf(file, it));
    await fh.sync();
    closed = true;
    await fh.close();
    await fsp.rename(tmp, file);
  } catch (e) {
    if (!closed) await fh.close().catch(() => undefined);
    await fsp.rm(tmp, { force: true });
    throw e;
  }
  syncDir(path.dirname(file));
}

/** The synchronous form of saveSafetensors. */
export function saveSafetensorsSync(file: string, tensors: TensorDict, metadata?: Record<string, string>): void {
  const { head, items } = plan(file, tensors, metadata);
  const tmp = tempPath(file);
  const fd = fs.openSync(tmp, 'wx');
  let closed = false;
  try {
    writeAllSync(fd, head);
    for (const it of items) writeAllSync(fd, bytesOf(file, it));
    fs.fsyncSync(fd);
    closed = true;
    fs.closeSync(fd);
    fs.renameSync(tmp, file);
  } catch (e) {
    if (!closed) {
      try {
        fs.closeSync(fd);
      } catch {
        // the original error matters more
      }
    }
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  syncDir(path.dirname(file));
}
