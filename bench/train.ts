/**
 * train: throughput of a whole `small` PRETRAINING step in tinyseek against the same step in
 * PyTorch (bench/model_ref.py + bench/peer_model.py, Debian's python3-torch), interleaved in one
 * run, and the model FLOPs utilisation of both.
 *
 * A step, on both sides: gradients set to none; forward + loss (main CE + λ·MTP CE + balance loss);
 * backward; clip the global gradient norm to 1.0 (tinyseek nn.clipGradNorm / torch.nn.utils.
 * clip_grad_norm_); AdamW over two groups, matrices with weight decay 0.1 and vectors without
 * (nn.weightDecayGroups / the same split in model_ref.weight_decay_groups; torch.optim.AdamW with
 * foreach=True), lr 1e-3, betas (0.9, 0.95), eps 1e-8; the aux-loss-free bias update with
 * γ = 1e-3 from the step's expert load (DeepSeekV3.updateBias / model_ref.ExpertLoad); and the loss
 * and the gradient norm read as numbers, as a training loop logs them. The TypeScript step runs
 * inside tidy(). Same batch every step.
 *
 * Equivalence first: both sides start from the same weights (with a random, nonzero selection bias)
 * and take CHECK_STEPS optimizer steps on the same batch; the bench stops unless each step's loss
 * and the loss after the last step agree within LOSS_RTOL (relative), each step's gradient norm
 * before clipping within GRAD_RTOL, the parameters' global L2 norm within PARAM_RTOL, and the
 * selection biases within BIAS_ATOL (they move by ±γ per step, so one expert routed differently
 * shows as a 2γ difference). float32 differences accumulate through the optimizer steps, so these
 * are not bitwise (the forward+backward alone is: bench/model.ts).
 *
 * Timing: as bench/model.ts — `warmup` steps per side, then `rounds` rounds of `steps` steps per
 * side, alternating step by step (AB BA …); the same libtorch, intra-op threads and OpenBLAS core on
 * both sides. speed_vs_pytorch is the median of the per-round tokens/s ratios (>1: tinyseek
 * faster); tokens/s come from the median step time; forward, backward and the optimizer part (clip
 * + AdamW + bias update + reading loss and norm + freeing the step) are reported separately.
 *
 * MFU = achieved FLOP/s / peak FLOP/s, with
 *   achieved = 6 · N · tokens/s, N = activated parameters per token that a matmul touches:
 *     the main model's activated parameters without the embedding row (a lookup, no FLOPs)
 *     + for each MTP depth k, its module's activated parameters plus the shared output head it runs
 *       through, times (S−k)/S (the share of positions it predicts);
 *   it EXCLUDES attention's score and value products (QKᵀ, PV); `mfu_with_attention` adds them as
 *   computed here, full S×S per head (6·H·(d_qk + d_v)·T per token and layer, T = S or S−k), and
 *   the optimizer's elementwise work counts in neither;
 *   peak = fp32 matmul GFLOP/s of measureMatmul() (src/cli/doctor.ts: 1024×1024, best product)
 *     in this process with the same threads: 0.6 s before the timing, 0.2 s after each round
 *     (while the peer waits), 0.6 s after; the best of all is used, so that load from other
 *     processes on a shared machine lowers the peak as little as it can (a lower peak would
 *     inflate the MFU).
 *
 * Options: --quick (3 rounds, 1 warm-up step), --rounds N (12), --steps N (2), --warmup N (2),
 * --batch B (8), --seq S (128).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { measureMatmul } from '../src/cli/doctor.ts';
import { noGrad, tidy, type Tensor } from '../src/core/index.ts';
import type { ModelConfig } from '../src/model/config.ts';
import { countParameters } from '../src/model/params.ts';
import type { DeepSeekV3 } from '../src/model/transformer.ts';
import { AdamW, clipGradNorm, weightDecayGroups } from '../src/nn/index.ts';
import { PRESET, modelPeer, ms, numArg, relDiff, setUpPeer, settingsFigures, sharedModel, sum } from './common.ts';
import { median } from './peer.ts';

const LR = 1e-3;
const BETAS: [number, number] = [0.9, 0.95];
const EPS = 1e-8;
const WEIGHT_DECAY = 0.1;
const CLIP = 1.0;
const GAMMA = 1e-3;
const CHECK_STEPS = 3;
/** Relative tolerance on the losses (each step's, and after the last step). */
const LOSS_RTOL = 1e-4;
/** Relative tolerance on each step's gradient norm before clipping. */
const GRAD_RTOL = 1e-3;
/** Relative tolerance on the global L2 norm of all parameters after the steps. */
const PARAM_RTOL = 1e-5;
/** Absolute tolerance on each selection bias after the steps (they move by ±γ = 1e-3 per step). */
const BIAS_ATOL = 1e-6;

interface StepTimes {
  fwd: number[];
  bwd: number[];
  opt: number[];
}

interface CheckResult {
  losses: number[];
  grad_norms: number[];
  loss_after: number;
  lm_loss_after: number;
  biases: number[][];
  param_norm: number;
}

interface Trainer {
  model: DeepSeekV3;
  opt: AdamW;
  params: Tensor[];
  ids: Tensor;
  targets: Tensor;
}

/**
 * One pretraining step (see the header). Returns the loss, the gradient norm before clipping, and
 * the seconds of [grad reset + forward + loss], [backward], [clip + AdamW + bias update + reading
 * the numbers + freeing the step's tensors].
 */
function trainStep(t: Trainer): { loss: number; norm: number; times: [number, number, number] } {
  const t0 = process.hrtime.bigint();
  let t1 = t0;
  let t2 = t0;
  let norm = 0;
  const loss = tidy(() => {
    t.model.zeroGrad();
    const { loss: l } = t.model.loss(t.ids, t.targets);
    t1 = process.hrtime.bigint();
    l.backward();
    t2 = process.hrtime.bigint();
    norm = clipGradNorm(t.params, CLIP);
    t.opt.step();
    t.model.updateBias(GAMMA);
    return l.item();
  });
  const t3 = process.hrtime.bigint();
  const s = (a: bigint, b: bigint): number => Number(b - a) / 1e9;
  return { loss, norm, times: [s(t0, t1), s(t1, t2), s(t2, t3)] };
}

function resetLoad(model: DeepSeekV3): void {
  for (const m of model.moeLayers()) m.resetLoad();
}

function checkOurs(t: Trainer, steps: number): CheckResult {
  resetLoad(t.model);
  const losses: number[] = [];
  const norms: number[] = [];
  for (let i = 0; i < steps; i++) {
    const r = trainStep(t);
    losses.push(r.loss);
    norms.push(r.norm);
  }
  t.model.zeroGrad();
  const after = noGrad(() =>
    tidy(() => {
      const r = t.model.loss(t.ids, t.targets);
      return { loss: r.loss.item(), lm: r.lmLoss.item() };
    }),
  );
  resetLoad(t.model); // that forward's routing must not move the bias
  const biases = t.model.moeLayers().map((m) => (m.gate.bias ? (m.gate.bias.toArray() as number[]) : []));
  const paramSq = noGrad(() => tidy(() => sum(t.model.parameters().map((p) => p.double().square().sum().item()))));
  return { losses, grad_norms: norms, loss_after: after.loss, lm_loss_after: after.lm, biases, param_norm: Math.sqrt(paramSq) };
}

/**
 * Parameters a token's matmuls touch (the N of 6·N), and the attention products' training FLOPs
 * per token; see the header.
 */
export function flopsPerToken(cfg: ModelConfig, S: number): { params: number; paramsMain: number; paramsMtpModule: number; attentionFlops: number } {
  const c = countParameters(cfg);
  const D = cfg.hidden_size;
  const depths = cfg.num_nextn_predict_layers;
  const paramsMain = c.activated - D; // without the embedding row
  const paramsMtpModule = depths ? (c.activatedWithMtp - c.activated) / depths + cfg.vocab_size * D : 0; // + the shared head's matmul
  let params = paramsMain;
  const H = cfg.num_attention_heads;
  const perPos = 6 * H * (cfg.qk_nope_head_dim + cfg.qk_rope_head_dim + cfg.v_head_dim); // per token, per key position
  let attentionFlops = cfg.num_hidden_layers * perPos * S;
  for (let k = 1; k <= depths; k++) {
    const share = Math.max(0, S - k) / S;
    params += paramsMtpModule * share;
    attentionFlops += perPos * (S - k) * share;
  }
  return { params, paramsMain, paramsMtpModule, attentionFlops };
}

export default async function trainBench(args: string[]): Promise<Record<string, unknown>> {
  const quick = args.includes('--quick');
  const rounds = numArg(args, '--rounds', quick ? 3 : 12);
  const steps = numArg(args, '--steps', 2);
  const warmup = numArg(args, '--warmup', quick ? 1 : 2);
  const B = numArg(args, '--batch', 8);
  const S = numArg(args, '--seq', 128);

  const root = join(dirname(fileURLToPath(import.meta.url)), '..');
  const peer = modelPeer(root);
  const dir = mkdtempSync(join(tmpdir(), 'tinyseek-bench-train-'));
  try {
    const { setup, info, threads, waitPolicy } = await setUpPeer(peer);
    const { cfg, model, ids, targets, params } = await sharedModel(peer, root, dir, B, S);
    const peakBefore = measureMatmul();
    console.log(
      `peak: fp32 matmul ${peakBefore.n}×${peakBefore.n} ${peakBefore.gflops.toFixed(1)} GFLOP/s before the timing (measureMatmul, ${threads} threads)`,
    );

    // ---- the optimizer on both sides ----
    const groups = weightDecayGroups(model, WEIGHT_DECAY);
    const opt = new AdamW(groups, { lr: LR, betas: BETAS, eps: EPS });
    const trainer: Trainer = { model, opt, params: model.parameters(), ids, targets };
    const theirGroups = await peer.request<{ groups: number[]; weight_decay: number[] }>({
      cmd: 'train_setup',
      lr: LR,
      betas: BETAS,
      eps: EPS,
      weight_decay: WEIGHT_DECAY,
      clip: CLIP,
      gamma: GAMMA,
    });
    const ourGroups = opt.groups.map((g) => g.params.length);
    if (ourGroups.join() !== theirGroups.groups.join() || opt.groups.map((g) => g.weightDecay).join() !== theirGroups.weight_decay.join()) {
      throw new Error(
        `AdamW groups differ: tinyseek [${ourGroups}] (decay ${opt.groups.map((g) => g.weightDecay)}), PyTorch [${theirGroups.groups}] (decay ${theirGroups.weight_decay})`,
      );
    }
    console.log(
      `step: forward + loss + backward + clip to norm ${CLIP.toFixed(1)} + AdamW (lr ${LR}, betas ${BETAS.join('/')}, eps ${EPS}; ` +
        `${ourGroups[0]} matrices with weight decay ${WEIGHT_DECAY}, ${ourGroups[1] ?? 0} vectors without) + bias update (γ ${GAMMA})`,
    );

    // ---- equivalence: CHECK_STEPS identical optimizer steps from the same weights ----
    const ours = checkOurs(trainer, CHECK_STEPS);
    const theirs = await peer.request<CheckResult>({ cmd: 'train_check', steps: CHECK_STEPS });
    const rows: [string, number, number, number][] = [];
    for (let i = 0; i < CHECK_STEPS; i++) {
      rows.push([`loss step ${i + 1}`, ours.losses[i], theirs.losses[i], LOSS_RTOL]);
      rows.push([`grad norm ${i + 1}`, ours.grad_norms[i], theirs.grad_norms[i], GRAD_RTOL]);
    }
    rows.push([`loss after ${CHECK_STEPS}`, ours.loss_after, theirs.loss_after, LOSS_RTOL]);
    rows.push([`lm loss after`, ours.lm_loss_after, theirs.lm_loss_after, LOSS_RTOL]);
    rows.push(['param norm', ours.param_norm, theirs.param_norm, PARAM_RTOL]);
    let worstLoss = 0;
    for (const [name, a, b, tol] of rows) {
      const d = relDiff(a, b);
      if (tol === LOSS_RTOL) worstLoss = Math.max(worstLoss, d);
      console.log(`  ${name.padEnd(14)} tinyseek ${a.toPrecision(9)}  pytorch ${b.toPrecision(9)}  rel diff ${d.toExponential(2)} (tolerance ${tol})`);
      if (!(d <= tol)) throw new Error(`the two training steps disagree on ${name}: ${a} vs ${b} (relative difference ${d} > ${tol}); not timing`);
    }
    if (ours.biases.length !== theirs.biases.length) throw new Error(`MoE layer counts differ: ${ours.biases.length} vs ${theirs.biases.length}`);
    let biasDiff = 0;
    ours.biases.forEach((row, l) => row.forEach((v, e) => (biasDiff = Math.max(biasDiff, Math.abs(v - (theirs.biases[l][e] ?? Number.NaN))))));
    console.log(`  ${'biases'.padEnd(14)} max abs diff ${biasDiff.toExponential(2)} over ${ours.biases.length} MoE layers (tolerance ${BIAS_ATOL})`);
    if (!(biasDiff <= BIAS_ATOL)) throw new Error(`the selection biases differ by ${biasDiff} after ${CHECK_STEPS} steps (routing diverged); not timing`);
    console.log(
      `equivalent after ${CHECK_STEPS} optimizer steps: losses within ${LOSS_RTOL}, gradient norms within ${GRAD_RTOL}, ` +
        `parameter norm within ${PARAM_RTOL} (relative), biases within ${BIAS_ATOL}`,
    );

    // ---- timing ----
    console.log(
      `timing: ${warmup} warm-up steps per side, then ${rounds} rounds of ${steps} steps per side, ` +
        'the sides alternating step by step (who starts alternates too)',
    );
    for (let i = 0; i < warmup; i++) trainStep(trainer);
    await peer.request<StepTimes>({ cmd: 'train_time', warmup, steps: 0 });
    const ratios: number[] = [];
    const mineAll: StepTimes = { fwd: [], bwd: [], opt: [] };
    const otherAll: StepTimes = { fwd: [], bwd: [], opt: [] };
    const tokens = B * S;
    const peakSamples: number[] = [];
    for (let r = 0; r < rounds; r++) {
      const mine: StepTimes = { fwd: [], bwd: [], opt: [] };
      const other: StepTimes = { fwd: [], bwd: [], opt: [] };
      for (let i = 0; i < steps; i++) {
        const oursFirst = (r + i) % 2 === 0;
        const ourStep = (): void => {
          const [f, b, o] = trainStep(trainer).times;
          mine.fwd.push(f);
          mine.bwd.push(b);
          mine.opt.push(o);
        };
        if (oursFirst) ourStep();
        const t = await peer.request<StepTimes>({ cmd: 'train_time', warmup: 0, steps: 1 });
        other.fwd.push(...t.fwd);
        other.bwd.push(...t.bwd);
        other.opt.push(...t.opt);
        if (!oursFirst) ourStep();
      }
      const a = sum(mine.fwd) + sum(mine.bwd) + sum(mine.opt);
      const b = sum(other.fwd) + sum(other.bwd) + sum(other.opt);
      ratios.push(b / a);
      for (const [all, one] of [
        [mineAll, mine],
        [otherAll, other],
      ] as const) {
        all.fwd.push(...one.fwd);
        all.bwd.push(...one.bwd);
        all.opt.push(...one.opt);
      }
      peakSamples.push(measureMatmul(1024, 0.2).gflops);
      const part = (t: StepTimes): string => `fwd ${ms(sum(t.fwd) / steps)} + bwd ${ms(sum(t.bwd) / steps)} + opt ${ms(sum(t.opt) / steps)} ms`;
      console.log(
        `round ${String(r + 1).padStart(2)}: tinyseek ${((tokens * steps) / a).toFixed(0)} tok/s (${part(mine)}), ` +
          `pytorch ${((tokens * steps) / b).toFixed(0)} tok/s (${part(other)}), ratio ${(b / a).toFixed(3)}`,
      );
    }
    model.zeroGrad();
    const peakAfter = measureMatmul();
    const peak = Math.max(peakBefore.gflops, peakAfter.gflops, ...peakSamples);
    console.log(
      `peak: ${peakAfter.gflops.toFixed(1)} GFLOP/s after the timing, ${Math.min(...peakSamples).toFixed(1)}–${Math.max(...peakSamples).toFixed(1)} between rounds; ` +
        `using the best, ${peak.toFixed(1)} GFLOP/s`,
    );

    const totals = (t: StepTimes): number[] => t.fwd.map((f, i) => f + t.bwd[i] + t.opt[i]);
    const mineStep = median(totals(mineAll));
    const otherStep = median(totals(otherAll));
    const tps = tokens / mineStep;
    const tpsPeer = tokens / otherStep;
    const f = flopsPerToken(cfg, S);
    const mfu = (t: number, withAttention: boolean): number => +(((6 * f.params + (withAttention ? f.attentionFlops : 0)) * t) / (peak * 1e9)).toFixed(4);

    const figures: Record<string, unknown> = {
      bench: 'train',
      preset: PRESET,
      parameters: params,
      batch: B,
      seq_len: S,
      tokens_per_step: tokens,
      ...settingsFigures({ setup, info, threads, waitPolicy }),
      optimizer: { lr: LR, betas: BETAS, eps: EPS, weight_decay: WEIGHT_DECAY, clip: CLIP, bias_gamma: GAMMA, groups: ourGroups },
      rounds,
      warmup_steps: warmup,
      timed_steps: steps,
      check_steps: CHECK_STEPS,
      check_losses_tinyseek: ours.losses,
      check_losses_pytorch: theirs.losses,
      loss_after_check_tinyseek: ours.loss_after,
      loss_after_check_pytorch: theirs.loss_after,
      loss_max_rel_diff: +worstLoss.toExponential(3),
      loss_rtol: LOSS_RTOL,
      bias_max_abs_diff: biasDiff,
      tokens_per_s: +tps.toFixed(1),
      tokens_per_s_pytorch: +tpsPeer.toFixed(1),
      step_ms: ms(mineStep),
      step_ms_pytorch: ms(otherStep),
      forward_ms: ms(median(mineAll.fwd)),
      backward_ms: ms(median(mineAll.bwd)),
      optimizer_ms: ms(median(mineAll.opt)),
      forward_ms_pytorch: ms(median(otherAll.fwd)),
      backward_ms_pytorch: ms(median(otherAll.bwd)),
      optimizer_ms_pytorch: ms(median(otherAll.opt)),
      forward_vs_pytorch: +(median(otherAll.fwd) / median(mineAll.fwd)).toFixed(3),
      backward_vs_pytorch: +(median(otherAll.bwd) / median(mineAll.bwd)).toFixed(3),
      optimizer_vs_pytorch: +(median(otherAll.opt) / median(mineAll.opt)).toFixed(3),
      best_step_vs_pytorch: +(Math.min(...totals(otherAll)) / Math.min(...totals(mineAll))).toFixed(3),
      round_ratios: ratios.map((x) => +x.toFixed(3)),
      speed_vs_pytorch: +median(ratios).toFixed(3),
      activated_params_per_token: Math.round(f.params),
      flops_per_token: Math.round(6 * f.params),
      attention_flops_per_token: Math.round(f.attentionFlops),
      peak_gflops: +peak.toFixed(1),
      peak_gflops_before: +peakBefore.gflops.toFixed(1),
      peak_gflops_after: +peakAfter.gflops.toFixed(1),
      peak_gflops_rounds: peakSamples.map((x) => +x.toFixed(1)),
      achieved_gflops: +((6 * f.params * tps) / 1e9).toFixed(2),
      achieved_gflops_pytorch: +((6 * f.params * tpsPeer) / 1e9).toFixed(2),
      mfu: mfu(tps, false),
      mfu_pytorch: mfu(tpsPeer, false),
      mfu_with_attention: mfu(tps, true),
      mfu_with_attention_pytorch: mfu(tpsPeer, true),
      mfu_formula:
        'mfu = 6 * activated_params_per_token * tokens_per_s / (peak_gflops * 1e9); excludes attention QK^T/PV FLOPs (mfu_with_attention includes them)',
    };
    console.log(
      `tinyseek ${figures.tokens_per_s} tok/s, PyTorch ${figures.tokens_per_s_pytorch} tok/s (median steps): ${figures.speed_vs_pytorch}x PyTorch ` +
        `(median of round ratios; forward ${figures.forward_vs_pytorch}x, backward ${figures.backward_vs_pytorch}x, optimizer ${figures.optimizer_vs_pytorch}x, best step ${figures.best_step_vs_pytorch}x)`,
    );
    console.log(
      `MFU: 6 × ${Math.round(f.params).toLocaleString('en')} activated parameters per token × tokens/s over a ${peak.toFixed(1)} GFLOP/s peak = ` +
        `${(100 * (figures.mfu as number)).toFixed(1)}% (PyTorch ${(100 * (figures.mfu_pytorch as number)).toFixed(1)}%); ` +
        `with attention's QKᵀ and PV: ${(100 * (figures.mfu_with_attention as number)).toFixed(1)}% (PyTorch ${(100 * (figures.mfu_with_attention_pytorch as number)).toFixed(1)}%)`,
    );
    return figures;
  } finally {
    peer.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
