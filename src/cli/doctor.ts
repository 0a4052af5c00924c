/**
 * `tinyseek doctor`: what the engine runs on and whether it is healthy — libtorch version and
 * path, devices, threads, the BLAS library and its core type (and why it was chosen), a measured
 * fp32 matmul GFLOP/s, and a matmul numerics check. `--tune-blas` measures every core type this
 * CPU can run, in child processes, and records the fastest for later start-ups.
 */
import { spawnSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Generator, randn, runtimeInfo, tidy, type RuntimeInfo } from '../core/index.ts';
import { blasCacheKey, candidateCoreTypes, readCpuFacts, tunedFile, writeTuned } from '../core/blas.ts';

export interface MatmulMeasure {
  n: number;
  gflops: number;
  maxRelError: number;
}

/** Best-of-k fp32 matmul GFLOP/s at n×n, plus the error of a small product against float64. */
export function measureMatmul(n = 1024, seconds = 0.6): MatmulMeasure {
  return tidy(() => {
    const g = new Generator(1234);
    const a = randn([n, n], { generator: g });
    const b = randn([n, n], { generator: g });
    a.matmul(b).dispose();
    let best = 0;
    const deadline = performance.now() + seconds * 1000;
    do {
      const t0 = performance.now();
      a.matmul(b).dispose();
      const dt = (performance.now() - t0) / 1000;
      best = Math.max(best, (2 * n ** 3) / dt / 1e9);
    } while (performance.now() < deadline);
    // Numerics: a 64×48 @ 48×32 product against the same product in float64.
    const x = randn([64, 48], { generator: g });
    const y = randn([48, 32], { generator: g });
    const got = x.matmul(y).toArray();
    const want = x.double().matmul(y.double()).toArray();
    let maxRel = 0;
    for (let i = 0; i < got.length; i++) maxRel = Math.max(maxRel, Math.abs(got[i] - want[i]) / Math.max(1, Math.abs(want[i])));
    return { n, gflops: best, maxRelError: maxRel };
  });
}

export interface DoctorReport {
  info: RuntimeInfo;
  cores: number;
  matmul: MatmulMeasure;
  warnings: string[];
}

export function doctor(): DoctorReport {
  const info = runtimeInfo();
  const matmul = measureMatmul();
  const warnings: string[] = [];
  if (!info.openblasCore) {
    warnings.push(`BLAS is not OpenBLAS (${info.blasLibrary || 'unknown'}): matmul may be 10-20x slower; install libopenblas0-pthread`);
  } else if (info.openblasCore === 'Prescott' || info.openblasCore === 'Core2') {
    warnings.push(`OpenBLAS runs its generic ${info.openblasCore} kernels: set OPENBLAS_CORETYPE or run \`tinyseek doctor --tune-blas\``);
  }
  if (matmul.gflops / info.threads < 10) warnings.push(`fp32 matmul is slow (${matmul.gflops.toFixed(1)} GFLOP/s on ${info.threads} threads)`);
  if (matmul.maxRelError > 1e-4) warnings.push(`fp32 matmul disagrees with float64 (max relative error ${matmul.maxRelError.toExponential(2)})`);
  return { info, cores: availableParallelism(), matmul, warnings };
}

export function formatDoctor(r: DoctorReport): string {
  const i = r.info;
  const devices = i.cudaAvailable ? `cpu, cuda × ${i.cudaDeviceCount}` : 'cpu (this libtorch has no CUDA)';
  const lines = [
    'tinyseek doctor',
    `  libtorch      ${i.torchVersion}  ${i.libtorchPath}`,
    `  addon         ${i.addon}`,
    `  devices       ${devices}`,
    `  threads       ${i.threads} intra-op (${r.cores} cores; TINYSEEK_THREADS overrides)`,
    `  BLAS          ${i.blasLibrary || 'unknown'}`,
    `  OpenBLAS      ${i.openblasCore ? `core ${i.openblasCore}, ${i.openblasThreads} threads — ${i.openblasConfig}` : 'not in use'}`,
    `  core type     ${i.blasChoice.coreType ?? '(OpenBLAS detects)'} — ${i.blasChoice.source}: ${i.blasChoice.detail}`,
    `  idle threads  ${Object.entries(i.blasChoice.threadEnv)
      .map(([k, v]) => `${k}=${v.value}${v.setByTinyseek ? ' (set by tinyseek)' : ''}`)
      .join(', ')}`,
    `  matmul fp32   ${r.matmul.gflops.toFixed(1)} GFLOP/s at ${r.matmul.n}×${r.matmul.n} (${(r.matmul.gflops / i.threads).toFixed(1)} per thread)`,
    `  numerics      max relative error vs float64 ${r.matmul.maxRelError.toExponential(2)}`,
  ];
  lines.push(r.warnings.length ? r.warnings.map((w) => `  WARNING       ${w}`).join('\n') : '  status        healthy');
  return lines.join('\n');
}

const binPath = fileURLToPath(new URL('../../bin/tinyseek.js', import.meta.url));

/** Measures each candidate core type in a child process; records and returns the fastest. */
export function tuneBlas(log: (s: string) => void = console.log): { best: string | null; results: Record<string, number> } {
  const cpu = readCpuFacts();
  const candidates: (string | null)[] = [null, ...candidateCoreTypes(cpu)];
  const results: Record<string, number> = {};
  for (const c of candidates) {
    const env: NodeJS.ProcessEnv = { ...process.env };
    delete env.OPENBLAS_CORETYPE;
    if (c) env.OPENBLAS_CORETYPE = c;
    else env.TINYSEEK_BLAS_AUTO = '0';
    const label = c ?? '(library default)';
    const res = spawnSync(process.execPath, [binPath, 'doctor', '--matmul-only', '--json'], { env, encoding: 'utf8', timeout: 120_000 });
    if (res.status !== 0) {
      log(`  ${label.padEnd(18)} failed (${res.signal ?? `exit ${res.status}`}): not usable on this CPU`);
      continue;
    }
    const m = JSON.parse(res.stdout.trim().split('\n').at(-1) ?? '{}') as { gflops?: number; maxRelError?: number; core?: string };
    if (typeof m.gflops !== 'number' || !(m.maxRelError !== undefined && m.maxRelError < 1e-4)) {
      log(`  ${label.padEnd(18)} wrong numerics or no result: skipped`);
      continue;
    }
    results[c ?? ''] = m.gflops;
    log(`  ${label.padEnd(18)} ${m.gflops.toFixed(1)} GFLOP/s (OpenBLAS reports core ${m.core})`);
  }
  const entries = Object.entries(results).sort((a, b) => b[1] - a[1]);
  if (entries.length === 0) throw new Error('tune-blas: no core type ran successfully');
  const best = entries[0][0] === '' ? null : entries[0][0];
  writeTuned({ key: blasCacheKey(cpu), coreType: best, gflops: results, measuredAt: new Date().toISOString() });
  log(`  fastest: ${best ?? '(library default)'}; recorded in ${tunedFile()} (OPENBLAS_CORETYPE in the environment still wins)`);
  return { best, results };
}
