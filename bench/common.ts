/**
 * Shared by the benchmarks that time the `small` DeepSeek-V3 against its PyTorch reference
 * (bench/model.ts: forward + backward; bench/train.ts: the whole pretraining step): option parsing,
 * the peer's set-up with the fairness check (same threads, same OpenBLAS core), and the model whose
 * weights and token batch both sides share. Not a benchmark itself (bench/run.ts skips it).
 */
import { writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { Generator, getNumThreads, noGrad, randint, randn, runtimeInfo, tensor, tidy, type RuntimeInfo, type Tensor } from '../src/core/index.ts';
import { buf as opBuf, native } from '../src/core/native.ts';
import { saveSafetensors } from '../src/io/safetensors.ts';
import { type ModelConfig, loadPreset } from '../src/model/config.ts';
import { DeepSeekV3 } from '../src/model/transformer.ts';
import { Peer } from './peer.ts';

export const PRESET = 'small';
export const CONFIG_FILE = 'src/model/presets/small.json';

export interface Setup {
  torch: string;
  threads: number;
  interop_threads: number;
  blas_core: string | null;
  blas_threads: number | null;
}

export function numArg(args: string[], name: string, dflt: number): number {
  const i = args.indexOf(name);
  if (i < 0) return dflt;
  const v = Number(args[i + 1]);
  if (!Number.isInteger(v) || v <= 0) throw new Error(`${name} needs a positive integer, got ${args[i + 1]}`);
  return v;
}

export function relDiff(a: number, b: number): number {
  return Math.abs(a - b) / Math.max(Math.abs(a), Math.abs(b), 1e-30);
}

export const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);
export const ms = (s: number): number => +(s * 1e3).toFixed(1);

/** The PyTorch peer (bench/peer_model.py on Debian's python3-torch). */
export function modelPeer(root: string): Peer {
  return new Peer('/usr/bin/python3', [join(root, 'bench', 'peer_model.py')], { ...process.env, PYTHONUNBUFFERED: '1' });
}

export interface PeerSetup {
  setup: Setup;
  info: RuntimeInfo;
  threads: number;
  waitPolicy: string | null;
}

/**
 * Gives the peer tinyseek's intra-op thread count, prints both sides' threads and BLAS, and stops
 * unless both run the same thread count and OpenBLAS core type.
 */
export async function setUpPeer(peer: Peer): Promise<PeerSetup> {
  const info = runtimeInfo();
  const threads = getNumThreads();
  const setup = await peer.request<Setup>({ cmd: 'setup', threads });
  console.log(`tinyseek: libtorch ${info.torchVersion}, ${threads} threads, OpenBLAS core ${info.openblasCore} (${info.blasChoice.source})`);
  console.log(`pytorch:  torch ${setup.torch}, ${setup.threads} threads (inter-op ${setup.interop_threads}), OpenBLAS core ${setup.blas_core}`);
  console.log(`OpenBLAS's own thread pool: ${info.openblasThreads} threads (tinyseek), ${setup.blas_threads} (PyTorch)`);
  if (setup.threads !== threads || setup.blas_core !== info.openblasCore) {
    throw new Error('the comparison would be unfair: thread counts or BLAS core types differ');
  }
  console.log(`OPENBLAS_CORETYPE=${process.env.OPENBLAS_CORETYPE ?? '(unset)'} on both sides`);
  const waitPolicy = process.env.OMP_WAIT_POLICY ?? null;
  if (threads > 1 && (info.openblasThreads ?? 1) > 1 && threads >= availableParallelism() && !waitPolicy) {
    console.log(
      `note: ${threads} OpenMP threads (spin-waiting: OMP_WAIT_POLICY unset) and OpenBLAS's own ${info.openblasThreads} threads share ` +
        `${availableParallelism()} cores; both sides oversubscribe and run slowly and noisily (OMP_WAIT_POLICY=PASSIVE, or TINYSEEK_THREADS=1, avoids it)`,
    );
  }
  return { setup, info, threads, waitPolicy };
}

/** The settings both sides ran with, as the benchmarks' JSON figures report them. */
export function settingsFigures(p: PeerSetup): Record<string, string | number | null> {
  return {
    threads: p.threads,
    threads_pytorch: p.setup.threads,
    openblas_core: p.info.openblasCore,
    openblas_core_pytorch: p.setup.blas_core,
    openblas_threads: p.info.openblasThreads,
    openblas_threads_pytorch: p.setup.blas_threads,
    omp_wait_policy: p.waitPolicy,
    torch_version: p.info.torchVersion,
    torch_version_pytorch: p.setup.torch,
  };
}

export interface SharedModel {
  cfg: ModelConfig;
  model: DeepSeekV3;
  /** (B, S) int64, kept. */
  ids: Tensor;
  /** (B, S) int64, kept. */
  targets: Tensor;
  /** Parameters of the model (with MTP). */
  params: number;
}

/**
 * The `small` model (seed 0) with a random, nonzero selection bias (so that the biased
 * group-limited routing is exercised), a random (B, S+1) token batch, both written to `dir` and
 * loaded by the peer; stops unless both sides count the same parameters. `what` names the batch's
 * tokens in the printed line.
 */
export async function sharedModel(peer: Peer, root: string, dir: string, B: number, S: number, what = 'tokens per step'): Promise<SharedModel> {
  const cfg = loadPreset(PRESET);
  const V = cfg.vocab_size;
  const gen = new Generator(0);
  const model = new DeepSeekV3(cfg, { seed: 0 });
  // A nonzero selection bias, so that the biased group-limited routing is part of the check.
  noGrad(() =>
    tidy(() => {
      for (const m of model.moeLayers()) m.gate.bias?.copy_(randn([m.gate.nExperts], { generator: gen }).mul(0.1));
    }),
  );
  const rows = tidy(() => randint(0, V, [B, S + 1], { generator: gen }).tolist()) as number[][];
  const idsRows = rows.map((r) => r.slice(0, S));
  const targetRows = rows.map((r) => r.slice(1));
  const ids = tensor(idsRows, { dtype: 'int64' }).keep();
  const targets = tensor(targetRows, { dtype: 'int64' }).keep();
  const weightsFile = join(dir, 'model.safetensors');
  const batchFile = join(dir, 'batch.json');
  await saveSafetensors(weightsFile, model.stateDict());
  writeFileSync(batchFile, JSON.stringify({ ids: idsRows, targets: targetRows }));
  const loaded = await peer.request<{ parameters: number }>({ cmd: 'load', config: join(root, CONFIG_FILE), weights: weightsFile, batch: batchFile });
  const params = model.numParameters();
  if (loaded.parameters !== params) throw new Error(`parameter counts differ: tinyseek ${params}, PyTorch ${loaded.parameters}`);
  console.log(`preset ${PRESET}: ${params.toLocaleString('en')} parameters (with MTP); batch ${B} × ${S} tokens = ${B * S} ${what}`);
  return { cfg, model, ids, targets, params };
}

export interface OpStat {
  count: number;
  us: number;
}

/**
 * Runs `fn` with the addon's entry points wrapped: counts and times every libtorch operator call it
 * makes from JavaScript (by operator name, overload dropped), and counts the metadata reads
 * (`.shape`, `.dtype`, …: one native call each). The wrapping costs time of its own, so profiled
 * runs are slower than timed ones.
 */
export function profileOps<T>(fn: () => T): { result: T; ops: Map<string, OpStat>; calls: number; metaCalls: number } {
  const names = new Map<number, string>();
  const nameOf = (id: number): string => {
    let n = names.get(id);
    if (n === undefined) {
      const schema = native.opSchema(id);
      n = schema.slice(0, schema.indexOf('('));
      names.set(id, n);
    }
    return n;
  };
  const ops = new Map<string, OpStat>();
  const origCall = native.call;
  const origMeta = native.meta;
  let calls = 0;
  let metaCalls = 0;
  native.call = (): number => {
    const id = opBuf[0];
    const t0 = process.hrtime.bigint();
    const r = origCall.call(native);
    const us = Number(process.hrtime.bigint() - t0) / 1e3;
    calls++;
    const name = nameOf(id);
    const e = ops.get(name);
    if (e) {
      e.count++;
      e.us += us;
    } else ops.set(name, { count: 1, us });
    return r;
  };
  native.meta = (h: number): number => {
    metaCalls++;
    return origMeta.call(native, h);
  };
  try {
    return { result: fn(), ops, calls, metaCalls };
  } finally {
    native.call = origCall;
    native.meta = origMeta;
  }
}
