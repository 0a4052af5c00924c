/**
 * Loads the libtorch addon and exposes it with types. This is the only module that touches the
 * addon; everything else goes through the Tensor API.
 *
 * Operands travel through one shared Float64Array (`buf`): [opId, nWords, tag, value, tag, value…].
 * A call returns a new tensor handle (>= 0) or -1, in which case the results are encoded from
 * buf[0] as [count, tag, value…]. Tags match native/src/state.h.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { configureBlas, type BlasChoice } from './blas.ts';

export const Tag = {
  NONE: 0,
  TENSOR: 1,
  INT: 2,
  FLOAT: 3,
  BOOL: 4,
  INTLIST: 5,
  TENSORLIST: 6,
  OPTTENSORLIST: 7,
  FLOATLIST: 8,
  DTYPE: 9,
  STRING: 10,
  DEVICE: 11,
  GENERATOR: 12,
  DEFAULT: 13,
  ALIAS: 14,
  BOOLLIST: 15,
} as const;

export interface NativeInfo {
  torchVersion: string;
  libtorchPath: string;
  c10Path: string;
  cudaAvailable: boolean;
  cudaDeviceCount: number;
  parallelInfo: string;
  countingAllocator: boolean;
  blasLibrary: string;
  openblasCore: string | null;
  openblasConfig: string | null;
  openblasThreads: number | null;
}

export interface NativeMemoryStats {
  liveBytes: number;
  peakBytes: number;
  liveTensors: number;
  handleSlots: number;
}

/** The addon's functions (native/src/addon.cc). Handles are integers; -1 means "none". */
export interface NativeAddon {
  init(buffer: ArrayBuffer): number;
  call(): number;
  meta(handle: number): number;
  release(handle: number): void;
  releaseMany(count: number): void;
  fromBytes(buffer: ArrayBuffer, byteOffset: number, byteLength: number, dtype: number, shape: number[]): number;
  toBytes(handle: number): ArrayBuffer;
  strides(handle: number): number;
  gradFn(handle: number): string | null;
  setScopeDepth(depth: number): void;
  backward(count: number, retainGraph: boolean, createGraph: boolean): void;
  grad(handle: number): number;
  setGrad(handle: number, grad: number): void;
  setRequiresGrad(handle: number, flag: boolean): void;
  setGradEnabled(flag: boolean): boolean;
  isGradEnabled(): boolean;
  inferenceEnter(): number;
  inferenceExit(): number;
  isInferenceMode(): boolean;
  info(): NativeInfo;
  setNumThreads(n: number): void;
  getNumThreads(): number;
  memoryStats(): NativeMemoryStats;
  manualSeed(seed: number | bigint): void;
  generatorNew(seed: number | bigint, deviceType: number, deviceIndex: number): number;
  generatorSeed(id: number, seed?: number | bigint): bigint;
  generatorGetState(id: number): number;
  generatorSetState(id: number, state: number): void;
  op(name: string, overload: string): number;
  opSchema(id: number): string;
  intern(s: string): number;
  distInit(host: string, port: number, worldSize: number, rank: number, timeoutMs: number, backend: string): Promise<number>;
  distCollective(group: number, kind: 'allreduce', tensors: number[], op: string, timeoutMs: number): Promise<void>;
  distCollective(group: number, kind: 'broadcast', tensors: number[], root: number, timeoutMs: number): Promise<void>;
  distCollective(group: number, kind: 'allgather', outputs: number[], input: number, timeoutMs: number): Promise<void>;
  distCollective(group: number, kind: 'barrier', unused: null, unused2: null, timeoutMs: number): Promise<void>;
  distReducerCreate(group: number, params: number[], bucketBytes: number, firstBucketBytes: number): number;
  distReducerArm(reducer: number): void;
  distReducerFinish(reducer: number): Promise<{ started: number; filled: number[] }>;
  distReducerBuckets(reducer: number): number[][];
  distReducerDestroy(reducer: number): void;
  distDestroy(group: number): void;
  distBackends(): string[];
}

const here = dirname(fileURLToPath(import.meta.url));
const addonPath = resolve(here, '..', '..', 'native', 'build', 'Release', 'tinyseek.node');

/** The BLAS core-type decision, taken before the addon (and OpenBLAS) loads. */
export const blasChoice: BlasChoice = configureBlas();

function load(): NativeAddon {
  if (!existsSync(addonPath)) {
    throw new Error(
      `tinyseek: the native addon is not built (${addonPath} is missing): run \`npm run build:native\` ` +
        '(it needs libtorch: `apt-get install -y libtorch-dev libopenblas0-pthread`, or TINYSEEK_LIBTORCH=/path/to/libtorch)',
    );
  }
  const require = createRequire(import.meta.url);
  return require(addonPath) as NativeAddon;
}

export const native: NativeAddon = load();

export const BUF_WORDS = 1 << 16;
const bufferMemory = new ArrayBuffer(BUF_WORDS * 8);
/** The shared operand/result buffer. */
export const buf = new Float64Array(bufferMemory);
native.init(bufferMemory);

function defaultThreads(): number {
  const env = process.env.TINYSEEK_THREADS;
  if (env !== undefined && env !== '') {
    const n = Number(env);
    if (!Number.isInteger(n) || n < 1) throw new Error(`TINYSEEK_THREADS=${env} is not a positive integer`);
    return n;
  }
  return availableParallelism();
}

native.setNumThreads(defaultThreads());

export const addonFile = addonPath;
export const repoRoot = resolve(here, '..', '..');
export const nativeBuildDir = join(repoRoot, 'native', 'build');
