// Threads, BLAS core-type selection, `tinyseek doctor` and the main job's command line.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { coreTypeFromFlags, type readCpuFacts } from '../src/core/blas.ts';
import { getNumThreads, runtimeInfo } from '../src/core/index.ts';

const bin = new URL('../bin/tinyseek.js', import.meta.url).pathname;

function run(args: string[], env: NodeJS.ProcessEnv = {}): { status: number | null; stdout: string; stderr: string } {
  const e = { ...process.env, ...env };
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete e[k];
  const r = spawnSync(process.execPath, [bin, ...args], { env: e, encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const cpu = (vendor: string, flags: string): ReturnType<typeof readCpuFacts> => ({ vendor, model: 'x', flags: new Set(flags.split(' ')) });

describe('BLAS core type', () => {
  test('chosen from CPU flags, never one the CPU cannot run', () => {
    const avx512 = 'sse4_2 avx avx2 fma avx512f avx512cd avx512bw avx512dq avx512vl';
    assert.equal(coreTypeFromFlags(cpu('GenuineIntel', avx512)), 'SkylakeX');
    assert.equal(coreTypeFromFlags(cpu('GenuineIntel', `${avx512} avx512_bf16`)), 'Cooperlake');
    assert.equal(coreTypeFromFlags(cpu('GenuineIntel', 'avx avx2 fma')), 'Haswell');
    assert.equal(coreTypeFromFlags(cpu('AuthenticAMD', 'avx avx2 fma')), 'Zen');
    assert.equal(coreTypeFromFlags(cpu('GenuineIntel', 'avx')), 'Sandybridge');
    assert.equal(coreTypeFromFlags(cpu('GenuineIntel', 'sse4_2')), null);
    assert.equal(coreTypeFromFlags(cpu('GenuineIntel', 'avx512f avx2 fma')), 'Haswell', 'partial AVX-512 is not enough for SkylakeX');
  });

  test('this process: the choice is visible and OpenBLAS runs it', () => {
    const info = runtimeInfo();
    assert.ok(['environment', 'measured', 'cpu-flags', 'library-default'].includes(info.blasChoice.source));
    if (info.openblasCore && info.blasChoice.coreType) assert.equal(info.openblasCore, info.blasChoice.coreType);
  });

  test('a value set in the environment is never overridden', () => {
    const r = run(['doctor', '--json'], { OPENBLAS_CORETYPE: 'Prescott' });
    assert.equal(r.status, 0, r.stderr);
    const j = JSON.parse(r.stdout) as { blasChoice: { source: string; coreType: string }; openblasCore: string | null };
    assert.equal(j.blasChoice.source, 'environment');
    assert.equal(j.blasChoice.coreType, 'Prescott');
    if (j.openblasCore !== null) assert.equal(j.openblasCore, 'Prescott');
  });
});

describe('threads', () => {
  test('default to the core count', () => {
    if (!process.env.TINYSEEK_THREADS) assert.equal(getNumThreads(), availableParallelism());
  });

  test('TINYSEEK_THREADS overrides, and a bad value is a clear error', () => {
    const one = run(['doctor', '--json'], { TINYSEEK_THREADS: '1' });
    assert.equal(one.status, 0, one.stderr);
    assert.equal((JSON.parse(one.stdout) as { threads: number }).threads, 1);
    const bad = run(['doctor', '--json'], { TINYSEEK_THREADS: 'many' });
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr, /TINYSEEK_THREADS=many is not a positive integer/);
  });
});

describe('building the addon', () => {
  test('a libtorch that is not there fails with one line saying what to install or set', () => {
    const script = new URL('../scripts/build-native.mjs', import.meta.url).pathname;
    const r = spawnSync(process.execPath, [script], { env: { ...process.env, TINYSEEK_LIBTORCH: '/nonexistent/libtorch' }, encoding: 'utf8' });
    assert.equal(r.status, 1);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0], /^tinyseek: TINYSEEK_LIBTORCH=\/nonexistent\/libtorch is not a libtorch directory .*libtorch-dev/);
  });
});

describe('tinyseek doctor', () => {
  test('prints libtorch, devices, threads, BLAS and a measured GFLOP/s', () => {
    const r = run(['doctor']);
    assert.equal(r.status, 0, r.stderr);
    for (const field of ['libtorch', 'devices', 'threads', 'BLAS', 'core type', 'matmul fp32', 'numerics']) {
      assert.match(r.stdout, new RegExp(`^  ${field}`, 'm'), `doctor shows ${field}`);
    }
    const m = /matmul fp32\s+([\d.]+) GFLOP\/s/.exec(r.stdout);
    assert.ok(m && Number(m[1]) > 0, 'a positive GFLOP/s figure');
  });
});

describe('the main job', () => {
  test('--from-scratch pretrains, evaluates the base model, and a rerun reuses both', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tinyseek-pipeline-'));
    try {
      const args = ['pipeline', '--from-scratch', '--no-rl', '--config', 'pretrain-tiny', '--runs-dir', dir, '--steps', '6', '--eval-n', '2'];
      const first = run(args);
      assert.equal(first.status, 0, first.stderr);
      assert.match(first.stdout, /countdown\s+base held-out greedy pass@1 [\d.]+%/);
      assert.ok(existsSync(join(dir, 'pretrain-tiny', 'final', 'model.safetensors')));
      const second = run(args);
      assert.equal(second.status, 0, second.stderr);
      assert.match(second.stdout, /pretraining already done/);
      assert.match(second.stdout, /evaluation already done/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('tinyseek params', () => {
  test('--preset v3 --json gives total, activated and the KV-cache figure', () => {
    const r = run(['params', '--preset', 'v3', '--json']);
    assert.equal(r.status, 0, r.stderr);
    const j = JSON.parse(r.stdout) as { total: number; activated: number; kv_elements_per_token_per_layer: number };
    assert.ok(Math.abs(j.total - 671e9) < 0.005 * 671e9);
    assert.ok(Math.abs(j.activated - 36.7e9) < 0.01 * 36.7e9);
    assert.equal(j.kv_elements_per_token_per_layer, 576);
  });

  test('takes a config file, and refuses a bad one with the field named', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tinyseek-params-'));
    try {
      const good = join(dir, 'config.json');
      writeFileSync(
        good,
        JSON.stringify({
          vocab_size: 100,
          hidden_size: 32,
          intermediate_size: 64,
          num_hidden_layers: 2,
          num_attention_heads: 2,
          kv_lora_rank: 16,
          qk_nope_head_dim: 8,
          qk_rope_head_dim: 4,
          v_head_dim: 8,
          max_position_embeddings: 64,
        }),
      );
      const r = run(['params', '--config', dir]);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /total parameters/);
      writeFileSync(good, JSON.stringify({ vocab_size: 100 }));
      const bad = run(['params', '--config', good]);
      assert.equal(bad.status, 1);
      assert.match(bad.stderr, /hidden_size: /);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the engine check', () => {
  test('trains, prints a falling loss, and writes weights', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tinyseek-main-'));
    try {
      const r = run(['engine-check', '--steps', '300', '--out', dir]);
      assert.equal(r.status, 0, r.stderr);
      const losses = [...r.stdout.matchAll(/loss ([\d.]+)/g)].map((m) => Number(m[1]));
      assert.ok(losses.length >= 2 && losses.at(-1)! < losses[0], `loss goes down: ${losses.join(' ')}`);
      assert.ok(existsSync(join(dir, 'model.safetensors')));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('an invalid config names the field and the reason', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tinyseek-cfg-'));
    try {
      const cfg = join(dir, 'bad.json');
      writeFileSync(cfg, JSON.stringify({ bits: 0, nonsense: 1 }));
      const r = run(['engine-check', '--config', cfg]);
      assert.equal(r.status, 1);
      assert.match(r.stderr, /bits: /);
      assert.match(r.stderr, /nonsense/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
