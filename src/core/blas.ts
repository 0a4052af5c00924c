/**
 * Chooses OpenBLAS's kernel set ("core type") before libtorch, and with it OpenBLAS, is loaded.
 *
 * OpenBLAS built with DYNAMIC_ARCH (as Debian ships it) detects the CPU itself, but on some virtual
 * CPUs its 0.3.21 detection falls back to a generic core and sgemm runs 4-5x slower. The rule here:
 *   1. OPENBLAS_CORETYPE set in the environment: never touched.
 *   2. a measured choice cached by `tinyseek doctor --tune-blas` for this CPU and BLAS library;
 *   3. otherwise the best core the CPU's feature flags allow (never one it cannot run).
 * TINYSEEK_BLAS_AUTO=0 turns 2 and 3 off. It also makes idle OpenMP/OpenBLAS threads sleep rather
 * than spin (OMP_WAIT_POLICY, OPENBLAS_THREAD_TIMEOUT) unless the environment sets them.
 * The choice and its source are recorded so that `doctor` and the training logs can show them.
 *
 * This module knows nothing about tensors; it only reads /proc/cpuinfo and the cache file.
 */
import { existsSync, mkdirSync, readFileSync, realpathSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';

export type BlasChoiceSource = 'environment' | 'measured' | 'cpu-flags' | 'library-default';

export interface BlasChoice {
  /** The OPENBLAS_CORETYPE value in effect, or null when OpenBLAS detects the core itself. */
  coreType: string | null;
  source: BlasChoiceSource;
  detail: string;
  /** Thread-waiting settings in effect, and whether tinyseek set them (see threadEnvironment). */
  threadEnv: Record<string, { value: string; setByTinyseek: boolean }>;
}

/**
 * libtorch's OpenMP threads spin after each parallel region and OpenBLAS's own threads spin with
 * sched_yield; on a machine with as many cores as threads they take the cores from each other and
 * a small model's training step runs several times slower. Unless the environment says otherwise,
 * idle threads sleep instead of spinning.
 */
const THREAD_ENV_DEFAULTS: Record<string, string> = {
  OMP_WAIT_POLICY: 'PASSIVE',
  OPENBLAS_THREAD_TIMEOUT: '4',
};

function threadEnvironment(): BlasChoice['threadEnv'] {
  const out: BlasChoice['threadEnv'] = {};
  for (const [k, v] of Object.entries(THREAD_ENV_DEFAULTS)) {
    const given = process.env[k];
    if (given !== undefined && given !== '') {
      out[k] = { value: given, setByTinyseek: false };
    } else {
      process.env[k] = v;
      out[k] = { value: v, setByTinyseek: true };
    }
  }
  return out;
}

export interface CpuFacts {
  vendor: string;
  model: string;
  flags: Set<string>;
}

export function readCpuFacts(text?: string): CpuFacts {
  let raw = text;
  if (raw === undefined) {
    try {
      raw = readFileSync('/proc/cpuinfo', 'utf8');
    } catch {
      raw = '';
    }
  }
  const field = (name: string): string => {
    const m = new RegExp(`^${name}\\s*:\\s*(.*)$`, 'm').exec(raw ?? '');
    return m ? m[1].trim() : '';
  };
  return { vendor: field('vendor_id'), model: field('model name'), flags: new Set(field('flags').split(/\s+/).filter(Boolean)) };
}

/** The fastest OpenBLAS core type whose instructions this CPU has, or null to let OpenBLAS decide. */
export function coreTypeFromFlags(cpu: CpuFacts): string | null {
  const has = (...names: string[]): boolean => names.every((n) => cpu.flags.has(n));
  if (has('avx512f', 'avx512cd', 'avx512bw', 'avx512dq', 'avx512vl')) {
    return has('avx512_bf16') ? 'Cooperlake' : 'SkylakeX';
  }
  if (has('avx2', 'fma')) return cpu.vendor === 'AuthenticAMD' || cpu.vendor === 'HygonGenuine' ? 'Zen' : 'Haswell';
  if (has('avx')) return 'Sandybridge';
  return null;
}

/** Core types worth measuring on this CPU: each is safe to run here. */
export function candidateCoreTypes(cpu: CpuFacts): string[] {
  const has = (...names: string[]): boolean => names.every((n) => cpu.flags.has(n));
  const out: string[] = [];
  if (has('avx512f', 'avx512cd', 'avx512bw', 'avx512dq', 'avx512vl')) {
    if (has('avx512_bf16')) out.push('Cooperlake');
    out.push('SkylakeX');
  }
  if (has('avx2', 'fma')) out.push('Haswell', 'Zen');
  if (has('avx')) out.push('Sandybridge');
  out.push('Prescott');
  return out;
}

export function cacheDir(): string {
  const base = process.env.TINYSEEK_CACHE_DIR ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'tinyseek');
  return base;
}

function blasLibraryPath(): string {
  for (const p of ['/usr/lib/x86_64-linux-gnu/libblas.so.3', '/usr/lib/aarch64-linux-gnu/libblas.so.3', '/usr/lib/libblas.so.3']) {
    try {
      if (existsSync(p)) return realpathSync(p);
    } catch {
      // fall through
    }
  }
  return 'unknown';
}

/** Identifies the CPU and BLAS library a measured choice belongs to. */
export function blasCacheKey(cpu: CpuFacts = readCpuFacts()): string {
  return `${cpu.model}|${[...cpu.flags]
    .filter((f) => f.startsWith('avx'))
    .sort()
    .join(',')}|${blasLibraryPath()}`;
}

export interface TunedBlas {
  key: string;
  coreType: string | null;
  gflops: Record<string, number>;
  measuredAt: string;
}

export function tunedFile(): string {
  return join(cacheDir(), 'blas-coretype.json');
}

export function readTuned(key = blasCacheKey()): TunedBlas | null {
  try {
    const data = JSON.parse(readFileSync(tunedFile(), 'utf8')) as TunedBlas;
    return data.key === key ? data : null;
  } catch {
    return null;
  }
}

export function writeTuned(t: TunedBlas): void {
  const file = tunedFile();
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, JSON.stringify(t, null, 2));
  renameSync(tmp, file);
}

let choice: BlasChoice | null = null;

/** Sets OPENBLAS_CORETYPE for this process if it is unset. Idempotent; call before loading libtorch. */
export function configureBlas(): BlasChoice {
  if (choice) return choice;
  choice = { ...chooseCoreType(), threadEnv: threadEnvironment() };
  return choice;
}

function chooseCoreType(): Omit<BlasChoice, 'threadEnv'> {
  const fromEnv = process.env.OPENBLAS_CORETYPE;
  if (fromEnv !== undefined && fromEnv !== '') {
    return { coreType: fromEnv, source: 'environment', detail: 'OPENBLAS_CORETYPE was set by the environment' };
  }
  if (process.env.TINYSEEK_BLAS_AUTO === '0') {
    return { coreType: null, source: 'library-default', detail: 'TINYSEEK_BLAS_AUTO=0: OpenBLAS detects the core itself' };
  }
  const cpu = readCpuFacts();
  const tuned = readTuned(blasCacheKey(cpu));
  if (tuned) {
    if (tuned.coreType) process.env.OPENBLAS_CORETYPE = tuned.coreType;
    return { coreType: tuned.coreType, source: 'measured', detail: `measured by \`tinyseek doctor --tune-blas\` on ${tuned.measuredAt}` };
  }
  const fromFlags = coreTypeFromFlags(cpu);
  if (fromFlags) {
    process.env.OPENBLAS_CORETYPE = fromFlags;
    return { coreType: fromFlags, source: 'cpu-flags', detail: `chosen from the CPU flags of ${cpu.vendor || 'this CPU'}` };
  }
  return { coreType: null, source: 'library-default', detail: 'no better core known for this CPU; OpenBLAS detects it' };
}
