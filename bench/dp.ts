/**
 * dp: pretraining throughput of data parallelism on this machine — the same `small` pretraining run
 * as 1 process × 2 intra-op threads, 2 processes × 1 thread (tinyseek launch --nproc 2; the
 * gradient buckets all-reduced during backward), 2 × 1 with --no-overlap (all-reduced after it),
 * and 2 × 1 with ZeRO-1, in one run, interleaved round by round (A B C D, then D C B A, …).
 *
 * Each run trains `steps` optimizer steps of the same global batch (batch × seq tokens; each rank
 * gets half the rows) from the same seed; tokens/s is the median over the steps after the first
 * `skip` (the lead's metrics line: global tokens over the lead's step time), so start-up, data
 * loading and the final checkpoint do not count. A ratio > 1: the data-parallel run is faster.
 * Also: the bytes one rank puts into collectives per step (gradients, plus ZeRO-1's parameter
 * broadcasts), the seconds a step waited for the gradient sum after backward (with overlap: what
 * backward did not hide) and the share of buckets that started during backward, the inputs of
 * docs/distributed.md's scaling estimate.
 *
 * Options: --rounds N (2), --steps N (8), --skip N (2), --batch B (16), --seq S (320).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { blasChoice } from '../src/core/native.ts';
import { numArg } from './common.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const BIN = join(root, 'bin', 'tinyseek.js');

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

interface Arm {
  key: 'one' | 'dp' | 'after' | 'zero1';
  label: string;
  args: (base: string[]) => string[];
  env: NodeJS.ProcessEnv;
}

const ARMS: Arm[] = [
  { key: 'one', label: '1 process × 2 threads', args: (b) => b, env: { TINYSEEK_THREADS: '2' } },
  { key: 'dp', label: '2 processes × 1 thread', args: (b) => ['launch', '--nproc', '2', '--threads', '1', '--', ...b], env: {} },
  {
    key: 'after',
    label: '2 processes × 1 thread, all-reduce after backward',
    args: (b) => ['launch', '--nproc', '2', '--threads', '1', '--no-overlap', '--', ...b],
    env: {},
  },
  { key: 'zero1', label: '2 processes × 1 thread, ZeRO-1', args: (b) => ['launch', '--nproc', '2', '--threads', '1', '--zero1', '--', ...b], env: {} },
];

export default async function main(args: string[]): Promise<Record<string, unknown>> {
  const rounds = numArg(args, '--rounds', 2);
  const steps = numArg(args, '--steps', 8);
  const skip = numArg(args, '--skip', 2);
  const batch = numArg(args, '--batch', 16);
  const seq = numArg(args, '--seq', 320);
  const dir = mkdtempSync(join(tmpdir(), 'tinyseek-bench-dp-'));
  try {
    const preset = JSON.parse(readFileSync(join(root, 'src', 'train', 'presets', 'pretrain-small.json'), 'utf8')) as Record<string, unknown>;
    const config = join(dir, 'dp.json');
    writeFileSync(
      config,
      JSON.stringify({
        ...preset,
        runsDir: dir,
        trainDocuments: 4000,
        valDocuments: 50,
        batchSize: batch,
        seqLen: seq,
        evalEvery: 100000,
        checkpointEvery: 100000,
        optim: { ...(preset.optim as object), warmupSteps: 1 },
        sampleCount: 0,
        logEvery: 1,
      }),
    );
    console.log(
      `dp: model small, global batch ${batch} × ${seq} tokens, ${steps} steps per run (first ${skip} not timed), ${rounds} rounds, OpenBLAS core ${blasChoice.coreType ?? 'default'}`,
    );
    const perStep: Record<Arm['key'], number[]> = { one: [], dp: [], after: [], zero1: [] };
    const ratios: { dp: number[]; after: number[]; zero1: number[] } = { dp: [], after: [], zero1: [] };
    let bytes: Record<string, number> = {};
    const syncS: Record<string, number[]> = { dp: [], after: [], zero1: [] };
    const overlap: number[] = [];
    let runNo = 0;
    for (let r = 0; r < rounds; r++) {
      const order = r % 2 === 0 ? ARMS : [...ARMS].reverse();
      const round: Partial<Record<Arm['key'], number>> = {};
      for (const arm of order) {
        const name = `run${runNo++}`;
        const base = ['pretrain', '--config', config, '--name', name, '--runs-dir', dir, '--steps', String(steps)];
        const res = spawnSync(process.execPath, [BIN, ...arm.args(base)], { env: { ...process.env, ...arm.env }, encoding: 'utf8' });
        if (res.status !== 0) throw new Error(`${arm.label} failed:\n${res.stdout}\n${res.stderr}`);
        const recs = readFileSync(join(dir, name, 'metrics.jsonl'), 'utf8')
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l) as Record<string, number>)
          .filter((x) => (x.kind as unknown) === 'train' && x.step > skip);
        const tps = median(recs.map((x) => x.tokens_per_s));
        round[arm.key] = tps;
        perStep[arm.key].push(tps);
        if (arm.key !== 'one') {
          bytes = { ...bytes, [arm.key]: median(recs.map((x) => x.dp_bytes)) };
          syncS[arm.key].push(median(recs.map((x) => x.dp_sync_s)));
          if (arm.key === 'dp') overlap.push(median(recs.map((x) => x.dp_overlap)));
        }
        console.log(`round ${r + 1}: ${arm.label}: ${tps.toFixed(0)} tokens/s`);
        rmSync(join(dir, name), { recursive: true, force: true });
      }
      ratios.dp.push((round.dp as number) / (round.one as number));
      ratios.after.push((round.after as number) / (round.one as number));
      ratios.zero1.push((round.zero1 as number) / (round.one as number));
    }
    const out = {
      dp2_speedup_vs_1proc: +median(ratios.dp).toFixed(3),
      dp2_no_overlap_speedup_vs_1proc: +median(ratios.after).toFixed(3),
      dp2_zero1_speedup_vs_1proc: +median(ratios.zero1).toFixed(3),
      round_ratios_dp2: ratios.dp.map((x) => +x.toFixed(3)),
      tokens_per_s_1x2: +median(perStep.one).toFixed(1),
      tokens_per_s_2x1: +median(perStep.dp).toFixed(1),
      tokens_per_s_2x1_no_overlap: +median(perStep.after).toFixed(1),
      tokens_per_s_2x1_zero1: +median(perStep.zero1).toFixed(1),
      collective_bytes_per_rank_step: bytes.dp,
      collective_bytes_per_rank_step_zero1: bytes.zero1,
      grad_sync_s_per_step: +median(syncS.dp).toFixed(4),
      grad_sync_s_per_step_no_overlap: +median(syncS.after).toFixed(4),
      grad_sync_s_per_step_zero1: +median(syncS.zero1).toFixed(4),
      buckets_started_during_backward: +median(overlap).toFixed(3),
      settings: `model small, global batch ${batch}×${seq}, ${steps} steps (${skip} untimed), Gloo over 127.0.0.1, OpenBLAS core ${blasChoice.coreType ?? 'default'}`,
    };
    return out;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
