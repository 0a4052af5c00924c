/**
 * model: training-step throughput of the `small` DeepSeek-V3 preset in tinyseek against the same
 * architecture in PyTorch (bench/model_ref.py, Debian's python3-torch), interleaved in one run.
 *
 * A step is forward + loss (main CE + λ·MTP CE + balance loss) + backward, no optimizer step; the
 * gradients are cleared (set to none) before each step; the TypeScript step runs inside tidy().
 *
 * Correctness first: the TypeScript model's weights (with a random, nonzero selection bias so that
 * the biased routing path is exercised) are saved with saveSafetensors and loaded by the PyTorch
 * peer; both compute the loss and the gradient norm on the same token batch, and the bench stops
 * unless they agree (loss components within LOSS_RTOL, gradient norm within GRAD_RTOL) before it
 * times anything.
 *
 * Timing: `warmup` steps per side, then `rounds` rounds of `steps` steps per side, the two sides
 * alternating step by step (AB BA AB …), so that both see the same machine: on a shared 2-core
 * host, load from other processes comes and goes on a scale of seconds. Both sides run the same
 * libtorch build with the same intra-op thread count and the same OPENBLAS_CORETYPE; the output
 * states them. speed_vs_pytorch is the median of the per-round tokens/s ratios (>1: tinyseek
 * faster); tokens/s are from the median step time; forward (+ loss) and backward are timed
 * separately inside each step as well, and best_step_vs_pytorch compares the fastest steps.
 *
 * Options: --quick (3 rounds, 1 warm-up step), --rounds N (16), --steps N (2), --warmup N (2),
 * --batch B (8), --seq S (128),
 * --profile (op counts and per-op times of one step on both sides, after the timing).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { PerformanceObserver, constants as perfConstants } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { memoryStats, tidy, type Tensor } from '../src/core/index.ts';
import type { DeepSeekV3 } from '../src/model/transformer.ts';
import { type OpStat, PRESET, modelPeer, ms, numArg, profileOps, relDiff, setUpPeer, settingsFigures, sharedModel, sum } from './common.ts';
import { median } from './peer.ts';
/** Relative tolerance on each loss component. */
const LOSS_RTOL = 1e-4;
/** Relative tolerance on the global gradient norm. */
const GRAD_RTOL = 1e-3;

interface Check {
  loss: number;
  lm_loss: number;
  mtp_losses: number[];
  aux_loss: number | null;
  grad_norm: number;
  grads: number;
}

interface StepTimes {
  fwd: number[];
  bwd: number[];
}

interface PeerOp {
  op: string;
  count: number;
  self_us: number;
  total_us: number;
}

/**
 * One training step: grads set to none, forward + loss, backward, and the step's tensors freed (the
 * end of its tidy()). Returns [forward s (with the grad reset), backward s (with the freeing)].
 */
function trainStep(model: DeepSeekV3, ids: Tensor, targets: Tensor): [number, number] {
  const t0 = process.hrtime.bigint();
  let t1 = t0;
  tidy(() => {
    model.zeroGrad();
    const { loss } = model.loss(ids, targets);
    t1 = process.hrtime.bigint();
    loss.backward();
  });
  const t2 = process.hrtime.bigint();
  return [Number(t1 - t0) / 1e9, Number(t2 - t1) / 1e9];
}

function checkOurs(model: DeepSeekV3, ids: Tensor, targets: Tensor): Check {
  return tidy(() => {
    model.zeroGrad();
    const r = model.loss(ids, targets);
    r.loss.backward();
    let sq = 0;
    let grads = 0;
    for (const p of model.parameters()) {
      const g = p.grad;
      if (!g) continue;
      grads++;
      sq += g.double().square().sum().item();
    }
    model.zeroGrad();
    return {
      loss: r.loss.item(),
      lm_loss: r.lmLoss.item(),
      mtp_losses: r.mtpLosses.map((l) => l.item()),
      aux_loss: r.auxLoss ? r.auxLoss.item() : null,
      grad_norm: Math.sqrt(sq),
      grads,
    };
  });
}

/**
 * One step with the addon's entry points wrapped (common.ts profileOps): counts and times every
 * operator call that the forward + loss makes (backward runs inside libtorch, one call), and counts
 * the metadata reads (`.shape`, `.dtype`, …: one native call each).
 */
function profileOurs(model: DeepSeekV3, ids: Tensor, targets: Tensor): { ops: Map<string, OpStat>; metaCalls: number; forwardMs: number; backwardMs: number } {
  let forwardMs = 0;
  let backwardMs = 0;
  let ops = new Map<string, OpStat>();
  let metaCalls = 0;
  try {
    tidy(() => {
      model.zeroGrad();
      const t0 = process.hrtime.bigint();
      const p = profileOps(() => model.loss(ids, targets).loss);
      const t1 = process.hrtime.bigint();
      p.result.backward();
      const t2 = process.hrtime.bigint();
      ({ ops, metaCalls } = p);
      forwardMs = Number(t1 - t0) / 1e6;
      backwardMs = Number(t2 - t1) / 1e6;
    });
  } finally {
    model.zeroGrad();
  }
  return { ops, metaCalls, forwardMs, backwardMs };
}

interface GcFigures {
  steps: number;
  major: number;
  minor: number;
  incremental: number;
  gcMs: number;
  peakNativeMb: number;
}

/** V8 garbage collections during `steps` training steps (tinyseek side), by kind, and their time. */
async function gcDuringSteps(model: DeepSeekV3, ids: Tensor, targets: Tensor, steps: number): Promise<GcFigures> {
  const out: GcFigures = { steps, major: 0, minor: 0, incremental: 0, gcMs: 0, peakNativeMb: 0 };
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const kind = (e as unknown as { detail?: { kind?: number } }).detail?.kind;
      if (kind === perfConstants.NODE_PERFORMANCE_GC_MAJOR) out.major++;
      else if (kind === perfConstants.NODE_PERFORMANCE_GC_MINOR) out.minor++;
      else if (kind === perfConstants.NODE_PERFORMANCE_GC_INCREMENTAL) out.incremental++;
      out.gcMs += e.duration;
    }
  });
  obs.observe({ entryTypes: ['gc'] });
  for (let i = 0; i < steps; i++) trainStep(model, ids, targets);
  await new Promise((r) => setTimeout(r, 50)); // gc entries arrive asynchronously
  obs.disconnect();
  out.peakNativeMb = +(memoryStats().peakBytes / 2 ** 20).toFixed(1);
  return out;
}

export default async function modelBench(args: string[]): Promise<Record<string, unknown>> {
  const quick = args.includes('--quick');
  const rounds = numArg(args, '--rounds', quick ? 3 : 16);
  const steps = numArg(args, '--steps', 2);
  const warmup = numArg(args, '--warmup', quick ? 1 : 2);
  const B = numArg(args, '--batch', 8);
  const S = numArg(args, '--seq', 128);
  const profile = args.includes('--profile');

  const root = join(dirname(fileURLToPath(import.meta.url)), '..');
  const peer = modelPeer(root);
  const dir = mkdtempSync(join(tmpdir(), 'tinyseek-bench-model-'));
  try {
    const { setup, info, threads, waitPolicy } = await setUpPeer(peer);

    // ---- the model, its weights and the batch, shared with the peer ----
    const { model, ids, targets, params } = await sharedModel(peer, root, dir, B, S);

    // ---- correctness: same loss, same gradient norm ----
    const ours = checkOurs(model, ids, targets);
    const theirs = await peer.request<Check>({ cmd: 'check' });
    const pairs: [string, number, number, number][] = [
      ['loss', ours.loss, theirs.loss, LOSS_RTOL],
      ['lm_loss', ours.lm_loss, theirs.lm_loss, LOSS_RTOL],
      ...ours.mtp_losses.map((l, k): [string, number, number, number] => [`mtp_loss_${k + 1}`, l, theirs.mtp_losses[k] ?? NaN, LOSS_RTOL]),
      ['aux_loss', ours.aux_loss ?? NaN, theirs.aux_loss ?? NaN, LOSS_RTOL],
      ['grad_norm', ours.grad_norm, theirs.grad_norm, GRAD_RTOL],
    ];
    let worstLoss = 0;
    for (const [name, a, b, tol] of pairs) {
      const d = relDiff(a, b);
      if (name !== 'grad_norm') worstLoss = Math.max(worstLoss, d);
      console.log(`  ${name.padEnd(10)} tinyseek ${a.toPrecision(9)}  pytorch ${b.toPrecision(9)}  rel diff ${d.toExponential(2)} (tolerance ${tol})`);
      if (!(d <= tol)) throw new Error(`the two models disagree on ${name}: ${a} vs ${b} (relative difference ${d} > ${tol}); not timing`);
    }
    if (ours.grads !== theirs.grads || ours.mtp_losses.length !== theirs.mtp_losses.length) {
      throw new Error(`gradient or MTP-depth counts differ: ${ours.grads} vs ${theirs.grads} gradients`);
    }
    console.log(`equivalent: losses within ${LOSS_RTOL} and gradient norms within ${GRAD_RTOL} (relative), ${ours.grads} gradients`);

    // ---- timing ----
    console.log(
      `timing: ${warmup} warm-up steps per side, then ${rounds} rounds of ${steps} steps per side, ` +
        'the sides alternating step by step (who starts alternates too)',
    );
    for (let i = 0; i < warmup; i++) trainStep(model, ids, targets);
    model.zeroGrad();
    await peer.request<StepTimes>({ cmd: 'time', warmup, steps: 0 });
    const ratios: number[] = [];
    const mineAll: StepTimes = { fwd: [], bwd: [] };
    const otherAll: StepTimes = { fwd: [], bwd: [] };
    for (let r = 0; r < rounds; r++) {
      const mine: StepTimes = { fwd: [], bwd: [] };
      const other: StepTimes = { fwd: [], bwd: [] };
      for (let i = 0; i < steps; i++) {
        const oursFirst = (r + i) % 2 === 0;
        const ourStep = (): void => {
          const [f, b] = trainStep(model, ids, targets);
          mine.fwd.push(f);
          mine.bwd.push(b);
        };
        if (oursFirst) ourStep();
        const t = await peer.request<StepTimes>({ cmd: 'time', warmup: 0, steps: 1 });
        other.fwd.push(...t.fwd);
        other.bwd.push(...t.bwd);
        if (!oursFirst) ourStep();
      }
      model.zeroGrad();
      const a = sum(mine.fwd) + sum(mine.bwd);
      const b = sum(other.fwd) + sum(other.bwd);
      ratios.push(b / a);
      for (const [all, one] of [
        [mineAll, mine],
        [otherAll, other],
      ] as const) {
        all.fwd.push(...one.fwd);
        all.bwd.push(...one.bwd);
      }
      console.log(
        `round ${String(r + 1).padStart(2)}: tinyseek ${((B * S * steps) / a).toFixed(0)} tok/s (fwd ${ms(sum(mine.fwd) / steps)} + bwd ${ms(sum(mine.bwd) / steps)} ms), ` +
          `pytorch ${((B * S * steps) / b).toFixed(0)} tok/s (fwd ${ms(sum(other.fwd) / steps)} + bwd ${ms(sum(other.bwd) / steps)} ms), ratio ${(b / a).toFixed(3)}`,
      );
    }
    const totals = (t: StepTimes): number[] => t.fwd.map((f, i) => f + t.bwd[i]);
    const mineStep = median(totals(mineAll));
    const otherStep = median(totals(otherAll));

    const figures: Record<string, unknown> = {
      bench: 'model',
      preset: PRESET,
      parameters: params,
      batch: B,
      seq_len: S,
      tokens_per_step: B * S,
      ...settingsFigures({ setup, info, threads, waitPolicy }),
      rounds,
      warmup_steps: warmup,
      timed_steps: steps,
      loss_tinyseek: ours.loss,
      loss_pytorch: theirs.loss,
      loss_max_rel_diff: +worstLoss.toExponential(3),
      grad_norm_tinyseek: ours.grad_norm,
      grad_norm_pytorch: theirs.grad_norm,
      tokens_per_s: +((B * S) / mineStep).toFixed(1),
      tokens_per_s_pytorch: +((B * S) / otherStep).toFixed(1),
      step_ms: ms(mineStep),
      step_ms_pytorch: ms(otherStep),
      forward_ms: ms(median(mineAll.fwd)),
      backward_ms: ms(median(mineAll.bwd)),
      forward_ms_pytorch: ms(median(otherAll.fwd)),
      backward_ms_pytorch: ms(median(otherAll.bwd)),
      forward_vs_pytorch: +(median(otherAll.fwd) / median(mineAll.fwd)).toFixed(3),
      backward_vs_pytorch: +(median(otherAll.bwd) / median(mineAll.bwd)).toFixed(3),
      best_step_vs_pytorch: +(Math.min(...totals(otherAll)) / Math.min(...totals(mineAll))).toFixed(3),
      round_ratios: ratios.map((x) => +x.toFixed(3)),
      speed_vs_pytorch: +median(ratios).toFixed(3),
    };
    console.log(
      `tinyseek ${figures.tokens_per_s} tok/s, PyTorch ${figures.tokens_per_s_pytorch} tok/s (median steps): ${figures.speed_vs_pytorch}x PyTorch ` +
        `(median of round ratios; forward ${figures.forward_vs_pytorch}x, backward ${figures.backward_vs_pytorch}x, best step ${figures.best_step_vs_pytorch}x)`,
    );

    if (profile) {
      const p = profileOurs(model, ids, targets);
      const q = await peer.request<{ forward_calls: Record<string, OpStat>; forward: PeerOp[]; backward: PeerOp[]; forward_ms: number; backward_ms: number }>({
        cmd: 'ops',
      });
      // The profiler names operators without their overload: compare by base name.
      const byBase = new Map<string, OpStat>();
      for (const [n, e] of p.ops) {
        const base = n.split('.')[0];
        const b = byBase.get(base) ?? { count: 0, us: 0 };
        b.count += e.count;
        b.us += e.us;
        byBase.set(base, b);
      }
      const ourCalls = sum([...p.ops.values()].map((e) => e.count));
      const theirCalls = sum(Object.values(q.forward_calls).map((e) => e.count));
      console.log(`profile (one step; instrumented, so slower than the timed steps):`);
      console.log(
        `  forward + loss: tinyseek ${ourCalls} operator calls + ${p.metaCalls} metadata reads in ${p.forwardMs.toFixed(1)} ms; ` +
          `PyTorch ${theirCalls} top-level aten calls in ${q.forward_ms.toFixed(1)} ms (under the profiler)`,
      );
      console.log(`  backward: tinyseek ${p.backwardMs.toFixed(1)} ms; PyTorch ${q.backward_ms.toFixed(1)} ms (under the profiler)`);
      const names = new Set([...byBase.keys(), ...Object.keys(q.forward_calls)]);
      const rowsOut = [...names]
        .map((n) => ({ n, c: byBase.get(n)?.count ?? 0, us: byBase.get(n)?.us ?? 0, pc: q.forward_calls[n]?.count ?? 0, pus: q.forward_calls[n]?.us ?? 0 }))
        .sort((a, b) => b.us + b.pus - (a.us + a.pus));
      console.log(`  forward, by operator: ${'tinyseek calls'.padStart(14)} ${'µs'.padStart(8)} ${'pytorch calls'.padStart(14)} ${'µs'.padStart(8)}`);
      for (const r of rowsOut) {
        console.log(
          `  ${r.n.padEnd(26)} ${String(r.c).padStart(10)} ${r.us.toFixed(0).padStart(8)} ${String(r.pc).padStart(14)} ${r.pus.toFixed(0).padStart(8)}`,
        );
      }
      const gc = await gcDuringSteps(model, ids, targets, 4);
      console.log(
        `  V8 during ${gc.steps} tinyseek steps: ${gc.major} major (mark-compact) + ${gc.incremental} incremental-marking + ${gc.minor} minor GCs, ` +
          `${gc.gcMs.toFixed(1)} ms on the main thread; peak native memory ${gc.peakNativeMb} MiB (reported to V8 as external memory)`,
      );
      console.log('  PyTorch backward, top self times (µs):');
      for (const r of q.backward.slice(0, 15)) console.log(`    ${r.op.padEnd(48)} ${String(r.count).padStart(6)} ${r.self_us.toFixed(0).padStart(10)}`);
      figures.profile = {
        forward_calls: ourCalls,
        forward_calls_pytorch: theirCalls,
        metadata_reads: p.metaCalls,
        gc_major_per_step: +(gc.major / gc.steps).toFixed(2),
        gc_ms_per_step: +(gc.gcMs / gc.steps).toFixed(1),
        peak_native_mib: gc.peakNativeMb,
      };
    }
    return figures;
  } finally {
    peer.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
