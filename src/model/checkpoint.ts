/**
 * Saving and loading DeepSeekV3 models in the Hugging Face DeepSeek-V3 checkpoint layout:
 *
 *   <dir>/config.json                          the model config (HF keys)
 *   <dir>/model.safetensors                    all weights, when they fit in one shard, or
 *   <dir>/model-00001-of-0000N.safetensors …   shards, plus
 *   <dir>/model.safetensors.index.json         {"metadata": {"total_size": bytes},
 *                                               "weight_map": {tensor name: shard file}}
 *
 * Tensor names are DeepSeek's (tensorSpecs in params.ts), including the MTP module's copies of the
 * embedding and head (model.layers.{L}.embed_tokens.weight, model.layers.{L}.shared_head.head.weight),
 * which are written as copies and, on load, only shape-checked (the model holds them once).
 *
 * A directory holding model.safetensors is read from it (as transformers does), else through the
 * index; the index is authoritative (tensors a shard holds but the index does not list are ignored).
 * Loading checks every tensor name, shape and dtype of the checkpoint against tensorSpecs(config)
 * before it changes anything, reporting all missing, unexpected and mis-shaped tensors in one
 * CheckpointError; then it reads tensors lazily, one shard open at a time. Stored float32, float16,
 * bfloat16 (and float64) are converted to the model's dtype; DeepSeek's released FP8 form (F8_E4M3
 * weights with a float32 `<name>_scale_inv` per weight_block_size block, default 128×128) is
 * dequantised with tensor ops (a 256-entry lookup table indexed by the bytes, then block scales).
 *
 * Atomicity of saveCheckpoint (POSIX; what a reader of <dir> can observe, crash included):
 *   - everything is written into a fresh sibling directory `.<name>.tmp-XXXXXX`, each file fsynced
 *     (safetensors files by saveSafetensors, config and index here), then that directory fsynced;
 *   - the swap is two renames: <dir> → `.<name>.old-…` (when it exists), then tmp → <dir>, then
 *     the parent directory is fsynced and the old directory removed;
 *   - so at every instant <dir> is either the complete previous checkpoint, the complete new one, or
 *     — only between the two renames, after a crash there — absent, with the previous checkpoint
 *     intact in `.<name>.old-…` (loadCheckpoint's error then names it; rename it back). <dir> is
 *     never a half-written directory that half-loads;
 *   - a save that fails (an exception) removes its temp directory and leaves <dir> as it was; a
 *     crash (kill -9, power loss) may leave `.<name>.tmp-*` / `.<name>.old-*` siblings behind, which
 *     are safe to delete;
 *   - files in an existing <dir> that are not checkpoint files (tokenizer.json, generation config,
 *     …) are copied into the new directory before the swap, so they survive an overwrite;
 *   - rename(2) cannot replace a non-empty directory in one step, hence the two renames; concurrent
 *     saves to the same <dir> are not supported (the last swap wins, an interleaving can fail).
 *
 * This module does not know: tokenizers, optimizer state, training progress, other model classes,
 * or how to write FP8 (saving writes float32/bfloat16/float16 and drops config.quantization_config).
 * It does not check that the MTP shared copies in a checkpoint equal the embedding and head.
 * loadCheckpoint builds the model with random weights first (there is no meta device), so it needs
 * the time and memory of a fresh model. loadWeightsInto validates everything before writing into
 * the model; an I/O error after validation (a file changed underneath) can leave it partly loaded.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type DType, type Device, type Tensor, fromBytes, fromTypedArray, isFloating, itemSize, noGrad, tidy } from '../core/index.ts';
import { syncDir, writeFileDurable } from '../io/durable.ts';
import { SafetensorsFile, type SafetensorsDType, type TensorInfo, saveSafetensors } from '../io/safetensors.ts';
import { type ModelConfig, configToJson, readConfigFile } from './config.ts';
import { tensorSpecs } from './params.ts';
import { DeepSeekV3 } from './transformer.ts';

export const CONFIG_FILE = 'config.json';
export const WEIGHTS_FILE = 'model.safetensors';
export const INDEX_FILE = 'model.safetensors.index.json';
/** Hugging Face's default max_shard_size ("5GB" = 5·10⁹ bytes). */
export const DEFAULT_MAX_SHARD_BYTES = 5_000_000_000;
/** Suffix of an FP8 weight's block-scale companion tensor. */
export const SCALE_SUFFIX = '_scale_inv';
/** DeepSeek-V3's FP8 block size when config.quantization_config.weight_block_size is absent. */
export const DEFAULT_FP8_BLOCK: readonly [number, number] = [128, 128];

const SHARD_RE = /^model-\d{5}-of-\d{5}\.safetensors$/;
const FIRST_FEW = 5;

export type CheckpointDType = 'float32' | 'bfloat16' | 'float16';
const SAVE_DTYPES: readonly CheckpointDType[] = ['float32', 'bfloat16', 'float16'];
/** Stored dtypes read directly (converted to the model's dtype by copy_). */
const FLOAT_DTYPES: readonly SafetensorsDType[] = ['F32', 'F16', 'BF16', 'F64'];

// ---- errors -------------------------------------------------------------------------------------

function firstFew(list: readonly string[], sep = ', '): string {
  return list.slice(0, FIRST_FEW).join(sep) + (list.length > FIRST_FEW ? `${sep}…` : '');
}

/**
 * A checkpoint that does not fit the model: every missing, unexpected and mis-shaped tensor at once,
 * plus `problems` (structural faults: a missing shard, an index entry its shard lacks, an FP8 weight
 * without its scale, an unsupported dtype, no weights at all).
 */
export class CheckpointError extends Error {
  readonly dir: string;
  /** Tensors the model needs that the checkpoint lacks (and FP8 scales that are absent). */
  readonly missing: string[];
  /** Tensors in the checkpoint that the model does not have. */
  readonly unexpected: string[];
  /** "name: expected [..], got [..]" for each tensor of the wrong shape. */
  readonly mismatched: string[];
  readonly problems: string[];
  constructor(dir: string, r: { missing?: string[]; unexpected?: string[]; mismatched?: string[]; problems?: string[] }, options?: { cause?: unknown }) {
    const missing = r.missing ?? [];
    const unexpected = r.unexpected ?? [];
    const mismatched = r.mismatched ?? [];
    const problems = r.problems ?? [];
    const lines = [...problems];
    if (missing.length) lines.push(`missing ${missing.length}: ${firstFew(missing)}`);
    if (unexpected.length) lines.push(`unexpected ${unexpected.length}: ${firstFew(unexpected)}`);
    if (mismatched.length) lines.push(`mismatched ${mismatched.length}: ${firstFew(mismatched, '; ')}`);
    super(`checkpoint ${dir} does not fit the model:\n${lines.map((l) => `  ${l}`).join('\n')}`, options);
    this.name = 'CheckpointError';
    this.dir = dir;
    this.missing = missing;
    this.unexpected = unexpected;
    this.mismatched = mismatched;
    this.problems = problems;
  }
}

// ---- FP8 (E4M3, "e4m3fn") -----------------------------------------------------------------------

/**
 * The value of one E4M3 byte: 1 sign bit, 4 exponent bits (bias 7), 3 mantissa bits; exponent 0
 * is subnormal (m·2⁻⁹); no infinities; 0x7F and 0xFF are NaN; the largest finite value is 448.
 */
export function e4m3ToNumber(byte: number): number {
  if (!Number.isInteger(byte) || byte < 0 || byte > 255) throw new RangeError(`e4m3ToNumber: ${byte} is not a byte`);
  const sign = byte & 0x80 ? -1 : 1;
  const e = (byte >> 3) & 0xf;
  const m = byte & 0x7;
  if (e === 0xf && m === 0x7) return NaN;
  return sign * (e === 0 ? m * 2 ** -9 : (1 + m / 8) * 2 ** (e - 7));
}

let e4m3Cache: Float32Array | null = null;

/** The 256-entry decode table (every value is exact in float32). Returns a fresh copy. */
export function e4m3Table(): Float32Array {
  e4m3Cache ??= Float32Array.from({ length: 256 }, (_, b) => e4m3ToNumber(b));
  return e4m3Cache.slice();
}

/** Decodes a uint8 tensor of E4M3 bytes (any shape) to float32 of the same shape, by table lookup. */
export function decodeE4M3(bytes: Tensor): Tensor {
  const shape = bytes.shape;
  return tidy(() => {
    const table = fromTypedArray(e4m3Table()); // (256) float32
    const idx = bytes.reshape([-1]).long(); // (numel) int64
    return table.indexSelect(0, idx).reshape(shape); // (…) float32
  });
}

/**
 * Dequantises a block-quantised FP8 weight: w[i][j] = e4m3(bytes[i][j]) · scaleInv[⌊i/br⌋][⌊j/bc⌋].
 * bytes (R, C) uint8, scaleInv (⌈R/br⌉, ⌈C/bc⌉) any float dtype → (R, C) float32, on bytes' device.
 */
export function dequantizeFp8(bytes: Tensor, scaleInv: Tensor, block: readonly [number, number] = DEFAULT_FP8_BLOCK): Tensor {
  const [br, bc] = block;
  const shape = bytes.shape;
  if (shape.length !== 2) throw new RangeError(`dequantizeFp8: the weight must be 2-D, got [${shape.join(', ')}]`);
  const [R, C] = shape;
  const nr = Math.ceil(R / br);
  const nc = Math.ceil(C / bc);
  const ss = scaleInv.shape;
  if (ss.length !== 2 || ss[0] !== nr || ss[1] !== nc) {
    throw new RangeError(`dequantizeFp8: a [${R}, ${C}] weight in ${br}×${bc} blocks needs scales [${nr}, ${nc}], got [${ss.join(', ')}]`);
  }
  return tidy(() => {
    const w = decodeE4M3(bytes); // (R, C) float32
    const s = scaleInv.to({ dtype: 'float32', device: w.device }).reshape([nr, 1, nc, 1]); // (nr, 1, nc, 1)
    if (R % br === 0 && C % bc === 0) {
      return w.reshape([nr, br, nc, bc]).mul(s).reshape([R, C]); // (R, C), broadcast per block
    }
    const full = s
      .expand([nr, br, nc, bc])
      .reshape([nr * br, nc * bc])
      .narrow(0, 0, R)
      .narrow(1, 0, C); // (R, C)
    return w.mul(full); // (R, C)
  });
}

/** config.quantization_config.weight_block_size, or the default; throws on a malformed value. */
export function fp8BlockSize(c: ModelConfig): [number, number] {
  const q = (c as Record<string, unknown>).quantization_config;
  if (q === undefined || q === null) return [...DEFAULT_FP8_BLOCK] as [number, number];
  const b = typeof q === 'object' ? (q as Record<string, unknown>).weight_block_size : undefined;
  if (b === undefined || b === null) return [...DEFAULT_FP8_BLOCK] as [number, number];
  if (!Array.isArray(b) || b.length !== 2 || !b.every((v) => Number.isInteger(v) && v > 0)) {
    throw new RangeError(`quantization_config.weight_block_size must be two positive integers, got ${JSON.stringify(b)}`);
  }
  return [b[0] as number, b[1] as number];
}

// ---- saving -------------------------------------------------------------------------------------

export interface SaveOptions {
  /** Shard when the weights exceed this many bytes (default 5·10⁹, as Hugging Face). */
  maxShardBytes?: number;
  /** Convert floating tensors to this dtype in the files (default: each tensor's own dtype). */
  dtype?: CheckpointDType;
  /** String metadata for every safetensors file ("format": "pt" is always set unless overridden). */
  metadata?: Record<string, string>;
}

export interface SaveResult {
  /** The checkpoint directory (absolute). */
  dir: string;
  /** The weight files written, in order (model.safetensors, or the shards). */
  files: string[];
  /** Bytes of tensor data written (the index's total_size). */
  totalBytes: number;
  /** Tensors written, shared copies included. */
  tensors: number;
}

interface PlannedTensor {
  name: string;
  tensor: Tensor;
  dtype: DType;
  bytes: number;
}

/** The model's tensors under their checkpoint names, in tensorSpecs order, shared copies included. */
function checkpointTensors(model: DeepSeekV3, dir: string): [string, Tensor][] {
  const own = model.stateDict();
  const specs = tensorSpecs(model.config);
  const known = new Set(specs.map((s) => s.name));
  const out: [string, Tensor][] = [];
  const missing: string[] = [];
  for (const s of specs) {
    if (s.role === 'shared-copy') {
      out.push([s.name, s.name.endsWith('.embed_tokens.weight') ? model.model.embed_tokens.weight : model.headWeight()]);
      continue;
    }
    const t = own.get(s.name);
    if (t) out.push([s.name, t]);
    else missing.push(s.name);
  }
  const unexpected = [...own.keys()].filter((k) => !known.has(k));
  if (missing.length || unexpected.length) {
    throw new CheckpointError(dir, {
      missing,
      unexpected,
      problems: ["cannot save: the model's state dict does not match tensorSpecs(model.config) (a bug in the model or in params.ts)"],
    });
  }
  return out;
}

/** Hugging Face's split (huggingface_hub split_state_dict_into_shards_factory), in order. */
function splitShards(items: PlannedTensor[], max: number): PlannedTensor[][] {
  const shards: PlannedTensor[][] = [];
  let cur: PlannedTensor[] = [];
  let size = 0;
  for (const it of items) {
    if (it.bytes > max) {
      shards.push([it]); // a tensor bigger than a shard gets a shard of its own
      continue;
    }
    if (size + it.bytes > max) {
      shards.push(cur);
      cur = [];
      size = 0;
    }
    cur.push(it);
    size += it.bytes;
  }
  if (cur.length) shards.push(cur);
  return shards;
}

function shardName(i: number, n: number): string {
  const p = (k: number): string => String(k).padStart(5, '0');
  return `model-${p(i + 1)}-of-${p(n)}.safetensors`;
}

function isCheckpointFile(name: string): boolean {
  return name === CONFIG_FILE || name === WEIGHTS_FILE || name === INDEX_FILE || SHARD_RE.test(name);
}

function randomTag(): string {
  return `${process.pid}-${Math.random().toString(36).slice(2, 10)}`;
}

/** Replaces `target` with `fresh` by two renames (see the header); removes the previous one. */
function swapInto(fresh: string, target: string): void {
  const parent = path.dirname(target);
  let old: string | null = null;
  if (fs.existsSync(target)) {
    old = path.join(parent, `.${path.basename(target)}.old-${randomTag()}`);
    fs.renameSync(target, old);
  }
  try {
    fs.renameSync(fresh, target);
  } catch (e) {
    if (old !== null) fs.renameSync(old, target); // put the previous checkpoint back
    throw e;
  }
  syncDir(parent);
  if (old !== null) {
    try {
      fs.rmSync(old, { recursive: true, force: true });
    } catch {
      // the new checkpoint is in place; a leftover .old directory is harmless
    }
  }
}

/**
 * Saves config.json and the weights of `model` into `dir` (created, or replaced as a whole: see the
 * header for the exact guarantee). Do not change the model's weights while the promise is pending.
 */
export async function saveCheckpoint(dir: string, model: DeepSeekV3, o: SaveOptions = {}): Promise<SaveResult> {
  const target = path.resolve(dir);
  const max = o.maxShardBytes ?? DEFAULT_MAX_SHARD_BYTES;
  if (!(typeof max === 'number' && Number.isFinite(max) && max > 0)) throw new RangeError(`maxShardBytes must be a positive number, got ${String(max)}`);
  if (o.dtype !== undefined && !SAVE_DTYPES.includes(o.dtype)) throw new TypeError(`dtype must be one of ${SAVE_DTYPES.join(', ')}, got '${String(o.dtype)}'`);

  // Plan everything before touching the disk: names, dtypes (meta() fails on a disposed tensor), sizes.
  const items: PlannedTensor[] = checkpointTensors(model, target).map(([name, tensor]) => {
    const m = tensor.meta();
    const dtype = o.dtype !== undefined && isFloating(m.dtype) ? o.dtype : m.dtype;
    return { name, tensor, dtype, bytes: m.shape.reduce((a, d) => a * d, 1) * itemSize(dtype) };
  });
  const totalBytes = items.reduce((a, it) => a + it.bytes, 0);
  const shards = totalBytes > max ? splitShards(items, max) : [items];
  const files = shards.length === 1 ? [WEIGHTS_FILE] : shards.map((_, i) => shardName(i, shards.length));
  const metadata = { format: 'pt', ...o.metadata };

  // config.json describes what is written: the saved dtype, and no FP8 quantization_config.
  const config: Record<string, unknown> = { ...model.config, torch_dtype: items[0].dtype };
  delete config.quantization_config;

  const parent = path.dirname(target);
  fs.mkdirSync(parent, { recursive: true });
  const existing = fs.existsSync(target) ? fs.lstatSync(target) : null;
  if (existing && !existing.isDirectory())
    throw new Error(`cannot save a checkpoint to ${target}: it exists and is not a directory (a symlink is not followed: save to the real path)`);
  const tmp = fs.mkdtempSync(path.join(parent, `.${path.basename(target)}.tmp-`));
  try {
    writeFileDurable(path.join(tmp, CONFIG_FILE), configToJson(config as ModelConfig));
    for (let i = 0; i < shards.length; i++) {
      // Convert one shard at a time, so at most one shard's worth of converted copies exists.
      const converted = noGrad(() => shards[i].map((it) => [it.name, it.tensor.to(it.dtype)] as [string, Tensor]));
      try {
        await saveSafetensors(path.join(tmp, files[i]), converted, metadata);
      } finally {
        converted.forEach(([, t], j) => {
          if (t !== shards[i][j].tensor) t.dispose();
        });
      }
    }
    if (shards.length > 1) {
      const weightMap: Record<string, string> = {};
      const pairs = shards.flatMap((s, i) => s.map((it) => [it.name, files[i]] as const));
      pairs.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)); // json.dumps(sort_keys=True)
      for (const [n, f] of pairs) weightMap[n] = f;
      const index = { metadata: { total_size: totalBytes }, weight_map: weightMap };
      writeFileDurable(path.join(tmp, INDEX_FILE), `${JSON.stringify(index, null, 2)}\n`);
    }
    // Keep what else lives in the directory (tokenizer files, …).
    if (existing) {
      for (const name of fs.readdirSync(target)) {
        if (!isCheckpointFile(name)) fs.cpSync(path.join(target, name), path.join(tmp, name), { recursive: true, verbatimSymlinks: true });
      }
    }
    syncDir(tmp);
    swapInto(tmp, target);
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  return { dir: target, files, totalBytes, tensors: items.length };
}

// ---- loading ------------------------------------------------------------------------------------

export interface LoadOptions {
  /** dtype of the model built (default float32, whatever config.torch_dtype says, as HF). */
  dtype?: DType;
  device?: Device;
  /** Missing and unexpected tensors are errors (default true); mis-shaped ones always are. */
  strict?: boolean;
}

export interface LoadReport {
  /** Weight files read, in order. */
  files: string[];
  /** Tensors copied into the model. */
  loaded: number;
  /** Tolerated with strict: false (those tensors keep their values). */
  missing: string[];
  unexpected: string[];
}

interface Stored {
  file: string;
  info: TensorInfo;
}

interface Source {
  name: string;
  file: string;
  target: Tensor;
  /** For an FP8 weight: its scale. */
  scale?: { name: string; file: string };
}

/** Which files hold which tensors, read from the headers one file at a time. */
function scanWeights(dir: string, problems: string[]): { files: string[]; stored: Map<string, Stored> } {
  const stored = new Map<string, Stored>();
  const single = path.join(dir, WEIGHTS_FILE);
  const indexFile = path.join(dir, INDEX_FILE);
  if (fs.existsSync(single)) {
    const f = SafetensorsFile.open(single);
    try {
      for (const n of f.names) stored.set(n, { file: single, info: f.info(n) });
    } finally {
      f.close();
    }
    return { files: [single], stored };
  }
  if (!fs.existsSync(indexFile)) {
    problems.push(`no weights: neither ${WEIGHTS_FILE} nor ${INDEX_FILE} is in the directory`);
    return { files: [], stored };
  }
  let index: unknown;
  try {
    index = JSON.parse(fs.readFileSync(indexFile, 'utf8'));
  } catch (e) {
    problems.push(`${INDEX_FILE} is not readable JSON: ${(e as Error).message}`);
    return { files: [], stored };
  }
  const map = typeof index === 'object' && index !== null ? (index as Record<string, unknown>).weight_map : undefined;
  if (typeof map !== 'object' || map === null || Array.isArray(map) || !Object.values(map).every((v) => typeof v === 'string')) {
    problems.push(`${INDEX_FILE} has no "weight_map" object of tensor name → shard file`);
    return { files: [], stored };
  }
  const byFile = new Map<string, string[]>();
  for (const [name, file] of Object.entries(map as Record<string, string>)) {
    if (!byFile.has(file)) byFile.set(file, []);
    byFile.get(file)?.push(name);
  }
  const files: string[] = [];
  for (const [file, names] of byFile) {
    if (file !== path.basename(file) || file === '.' || file === '..' || file.includes('\\')) {
      problems.push(`${INDEX_FILE} names shard '${file}', which is not a file name in the directory`);
      continue;
    }
    const full = path.join(dir, file);
    if (!fs.existsSync(full)) {
      problems.push(`${INDEX_FILE} lists shard ${file} (for ${names.length} tensors: ${firstFew(names)}) but the file does not exist`);
      continue;
    }
    files.push(full);
    const f = SafetensorsFile.open(full); // a corrupt shard throws SafetensorsError naming the file
    try {
      const absent: string[] = [];
      for (const n of names) {
        if (f.has(n)) stored.set(n, { file: full, info: f.info(n) });
        else absent.push(n);
      }
      if (absent.length) problems.push(`${INDEX_FILE} maps ${absent.length} tensors to ${file}, which does not hold them: ${firstFew(absent)}`);
    } finally {
      f.close();
    }
  }
  return { files, stored };
}

const shapeText = (s: readonly number[]): string => `[${s.join(', ')}]`;
const sameShape = (a: readonly number[], b: readonly number[]): boolean => a.length === b.length && a.every((d, i) => d === b[i]);

/** Validates the whole checkpoint against the model; throws a CheckpointError, or returns the plan. */
function planLoad(model: DeepSeekV3, dir: string, strict: boolean): { files: string[]; sources: Source[]; missing: string[]; unexpected: string[] } {
  const missing: string[] = [];
  const unexpected: string[] = [];
  const mismatched: string[] = [];
  const problems: string[] = [];
  const { files, stored } = scanWeights(dir, problems);
  let block: [number, number] = [...DEFAULT_FP8_BLOCK] as [number, number];
  try {
    block = fp8BlockSize(model.config);
  } catch (e) {
    problems.push((e as Error).message);
  }

  const own = model.stateDict();
  const specs = tensorSpecs(model.config);
  const known = new Set(specs.map((s) => s.name));
  for (const k of own.keys()) if (!known.has(k)) problems.push(`the model holds ${k}, which tensorSpecs does not list (a bug in the model or params.ts)`);
  const sources: Source[] = [];

  for (const spec of specs) {
    const s = stored.get(spec.name);
    if (spec.role === 'shared-copy') {
      // Accepted and shape-checked only: the model holds the embedding and head once.
      if (s && !sameShape(s.info.shape, spec.shape)) mismatched.push(`${spec.name}: expected ${shapeText(spec.shape)}, got ${shapeText(s.info.shape)}`);
      continue;
    }
    const target = own.get(spec.name);
    if (!target) {
      problems.push(`the model has no tensor ${spec.name}, which tensorSpecs lists (a bug in the model or params.ts)`);
      continue;
    }
    if (!sameShape(target.shape, spec.shape)) {
      problems.push(`the model's ${spec.name} is ${shapeText(target.shape)} but tensorSpecs says ${shapeText(spec.shape)} (a bug in the model or params.ts)`);
      continue;
    }
    if (!s) {
      missing.push(spec.name);
      continue;
    }
    if (!sameShape(s.info.shape, spec.shape)) {
      mismatched.push(`${spec.name}: expected ${shapeText(spec.shape)}, got ${shapeText(s.info.shape)}`);
      continue;
    }
    const dt = s.info.dtype;
    if (FLOAT_DTYPES.includes(dt)) {
      sources.push({ name: spec.name, file: s.file, target });
    } else if (dt === 'F8_E4M3') {
      const scaleName = spec.name + SCALE_SUFFIX;
      const sc = stored.get(scaleName);
      if (spec.shape.length !== 2) {
        problems.push(`${spec.name}: F8_E4M3 is supported for 2-D weights only, this one is ${shapeText(spec.shape)}`);
      } else if (!sc) {
        missing.push(scaleName);
        problems.push(`FP8 weight ${spec.name} (F8_E4M3) has no ${scaleName}: cannot dequantise it`);
      } else {
        const want = [Math.ceil(spec.shape[0] / block[0]), Math.ceil(spec.shape[1] / block[1])];
        if (!sameShape(sc.info.shape, want)) {
          mismatched.push(
            `${scaleName}: expected ${shapeText(want)} (${block[0]}×${block[1]} blocks of ${shapeText(spec.shape)}), got ${shapeText(sc.info.shape)}`,
          );
        } else if (!FLOAT_DTYPES.includes(sc.info.dtype)) {
          problems.push(`${scaleName}: scales must be float32 (or another float dtype), got ${sc.info.dtype}`);
        } else {
          sources.push({ name: spec.name, file: s.file, target, scale: { name: scaleName, file: sc.file } });
        }
      }
    } else {
      problems.push(`${spec.name}: stored as ${dt}, which cannot be loaded (float32, bfloat16, float16, float64, or F8_E4M3 with ${SCALE_SUFFIX})`);
    }
  }
  for (const name of stored.keys()) {
    if (!known.has(name) && !name.endsWith(SCALE_SUFFIX)) unexpected.push(name);
  }

  if (problems.length || mismatched.length || (strict && (missing.length || unexpected.length))) {
    throw new CheckpointError(dir, { missing, unexpected, mismatched, problems });
  }
  return { files, sources, missing, unexpected };
}

/**
 * Loads the weights in `dir` into an existing model (converting to each tensor's dtype and device).
 * The whole checkpoint is validated first (CheckpointError; SafetensorsError for a corrupt file);
 * only then are tensors read, one shard open at a time, and copied in.
 */
export function loadWeightsInto(model: DeepSeekV3, dir: string, o: { strict?: boolean } = {}): LoadReport {
  const where = path.resolve(dir);
  if (!fs.existsSync(where) || !fs.statSync(where).isDirectory()) throw missingDirError(where);
  const plan = planLoad(model, where, o.strict ?? true);
  const block = fp8BlockSize(model.config);
  const byFile = new Map<string, Source[]>(plan.files.map((f) => [f, []]));
  for (const s of plan.sources) byFile.get(s.file)?.push(s);
  let loaded = 0;
  for (const [file, sources] of byFile) {
    if (!sources.length) continue;
    const f = SafetensorsFile.open(file);
    try {
      for (const src of sources) {
        noGrad(() =>
          tidy(() => {
            let value: Tensor;
            if (src.scale) {
              const info = f.info(src.name);
              const bytes = fromBytes(f.readRaw(src.name), 'uint8', info.shape); // (R, C) uint8
              const scale = readOne(src.scale.file, src.scale.name, f); // (⌈R/br⌉, ⌈C/bc⌉)
              value = dequantizeFp8(bytes, scale, block); // (R, C) float32
            } else {
              value = f.read(src.name);
            }
            const finite = value.isfinite();
            if (finite.all().item() !== 1) {
              const bad = value.numel() - finite.sum().item();
              throw new CheckpointError(dir, {
                problems: [
                  `${src.name} holds ${bad} non-finite values (NaN or infinity) of ${value.numel()}: the checkpoint is damaged or was saved from a diverged run; load an earlier checkpoint`,
                ],
              });
            }
            src.target.copy_(value); // converts dtype and device
          }),
        );
        loaded++;
      }
    } finally {
      f.close();
    }
  }
  return { files: plan.files, loaded, missing: plan.missing, unexpected: plan.unexpected };
}

/** Reads one tensor, from the open file when it is there, else opening its own file briefly. */
function readOne(file: string, name: string, open: SafetensorsFile): Tensor {
  if (open.path === file) return open.read(name);
  const f = SafetensorsFile.open(file);
  try {
    return f.read(name);
  } finally {
    f.close();
  }
}

function missingDirError(dir: string): CheckpointError {
  const parent = path.dirname(dir);
  const prefix = `.${path.basename(dir)}.old-`;
  let hint = '';
  try {
    const olds = fs.readdirSync(parent).filter((n) => n.startsWith(prefix));
    if (olds.length) hint = `; an interrupted save left the previous checkpoint at ${path.join(parent, olds[0])}: rename it back to ${dir}`;
  } catch {
    // no parent either
  }
  return new CheckpointError(dir, { problems: [`the directory does not exist${hint}`] });
}

/** Reads config.json, builds the model (in eval mode) and loads the weights into it. */
export function loadCheckpoint(dir: string, o: LoadOptions = {}): DeepSeekV3 {
  const where = path.resolve(dir);
  if (!fs.existsSync(where) || !fs.statSync(where).isDirectory()) throw missingDirError(where);
  const config = readConfigFile(path.join(where, CONFIG_FILE));
  const model = new DeepSeekV3(config, { dtype: o.dtype, device: o.device });
  try {
    loadWeightsInto(model, where, { strict: o.strict });
  } catch (e) {
    for (const [, t] of model.namedParameters()) t.dispose();
    for (const [, t] of model.namedBuffers()) t.dispose();
    throw e;
  }
  return model.eval();
}
