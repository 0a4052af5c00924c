/**
 * The GRPO objective (DeepSeekMath, Shao et al. 2024; DAPO, Yu et al. 2025; the README's R1-Zero section): group-normalised advantages, the clipped-ratio policy loss with
 * ε_low / ε_high, the k3 estimator of the KL to a frozen reference, and the four aggregations users
 * know by name.
 *
 *   Â_i        (r_i − mean(r)) / (std(r) + ε) over the G completions of a prompt (std with n − 1, as
 *              TRL's torch.std); without scaling (Dr. GRPO) r_i − mean(r)
 *   ρ          exp(log π_θ − log π_old)
 *   ℓ_t        −min(ρ·Â, clip(ρ, 1 − ε_low, 1 + ε_high)·Â) + β·KL_t
 *   KL_t (k3)  π_ref/π_θ − log(π_ref/π_θ) − 1 = exp(d) − d − 1, d = log π_ref − log π_θ (≥ 0)
 *
 * Aggregation over the update batch (all of its micro-batches together; m = the token mask):
 *   grpo     Σ_i (Σ_t ℓ·m / Σ_t m) / N_sequences          mean per sequence, then over sequences
 *   bnpo     Σ over micro-batches of (Σ ℓ·m / Σ m) / N_micro   active tokens of each micro-batch
 *   dr_grpo  Σ ℓ·m / (N_sequences · max completion length)   a constant divisor: no length bias
 *   dapo     Σ ℓ·m / N_active_tokens                          token level over the whole batch
 * `policyLoss` returns one micro-batch's share, so the shares' sum (the accumulated gradient) is the
 * batch loss whatever the micro-batching (bnpo excepted: its divisor is the micro-batch's own).
 *
 * It knows tensors and numbers; not models, tokens or rewards.
 */
import { type Tensor, tensor } from '../core/index.ts';
import type { LossVariant } from './config.ts';

export interface GroupAdvantages {
  /** [R] advantage of each completion (rows of a group are consecutive). */
  advantages: Float64Array;
  /** [R / G] mean reward of each group. */
  groupMean: Float64Array;
  /** [R / G] reward standard deviation (n − 1) of each group. */
  groupStd: Float64Array;
  /** [R / G] whether all rewards of the group are equal (no learning signal). */
  zeroSpread: boolean[];
}

/** Advantages of rewards laid out as groups of G consecutive rows. */
export function groupAdvantages(rewards: ArrayLike<number>, G: number, o: { scale: boolean; eps: number }): GroupAdvantages {
  if (!Number.isInteger(G) || G < 1) throw new Error(`groupAdvantages: G must be a positive integer, got ${G}`);
  if (rewards.length % G !== 0) throw new Error(`groupAdvantages: ${rewards.length} rewards are not whole groups of ${G}`);
  const groups = rewards.length / G;
  const advantages = new Float64Array(rewards.length);
  const groupMean = new Float64Array(groups);
  const groupStd = new Float64Array(groups);
  const zeroSpread: boolean[] = [];
  for (let g = 0; g < groups; g++) {
    let sum = 0;
    for (let i = 0; i < G; i++) {
      const r = rewards[g * G + i];
      if (!Number.isFinite(r)) throw new Error(`groupAdvantages: reward ${g * G + i} is ${r}`);
      sum += r;
    }
    const mean = sum / G;
    let ss = 0;
    for (let i = 0; i < G; i++) ss += (rewards[g * G + i] - mean) ** 2;
    const std = G > 1 ? Math.sqrt(ss / (G - 1)) : 0;
    groupMean[g] = mean;
    groupStd[g] = std;
    let spread = false;
    for (let i = 1; i < G; i++) if (rewards[g * G + i] !== rewards[g * G]) spread = true;
    zeroSpread.push(!spread);
    for (let i = 0; i < G; i++) {
      const d = rewards[g * G + i] - mean;
      advantages[g * G + i] = o.scale ? d / (std + o.eps) : d;
    }
  }
  return { advantages, groupMean, groupStd, zeroSpread };
}

/** What the divisors of the aggregations count, over the whole update batch. */
export interface LossNorm {
  variant: LossVariant;
  /** Sequences in the update batch (all micro-batches). */
  sequences: number;
  /** Active (mask 1) tokens in the update batch. */
  tokens: number;
  /** Micro-batches the update batch is split into (bnpo). */
  microBatches: number;
  /** The completion length limit (dr_grpo). */
  maxCompletionLength: number;
}

export interface PolicyLossInput {
  /** (R, T) log π_θ of the completion tokens, with gradient. */
  logp: Tensor;
  /** (R, T) log π_old of the same tokens (no gradient). */
  oldLogp: Tensor;
  /** (R, T) log π_ref, or null without a reference. */
  refLogp: Tensor | null;
  /** (R) advantage of each completion. */
  advantages: Tensor;
  /** (R, T) float, 1 on tokens that count. */
  mask: Tensor;
}

export interface PolicyLossOptions {
  epsLow: number;
  epsHigh: number;
  /** Weight of the KL term in the loss (the KL is measured whenever refLogp is given). */
  beta: number;
  norm: LossNorm;
}

export interface PolicyLossStats {
  /** Active tokens of this micro-batch. */
  tokens: number;
  /** Active tokens where the lower clip is active (ρ < 1 − ε_low with Â < 0). */
  clippedLow: number;
  /** Active tokens where the upper clip is active (ρ > 1 + ε_high with Â > 0). */
  clippedHigh: number;
  /** Σ KL_t over active tokens, or null without a reference. */
  klSum: number | null;
  /** Σ ρ over active tokens. */
  ratioSum: number;
}

export interface PolicyLossOutput {
  /** () this micro-batch's share of the batch loss. */
  loss: Tensor;
  stats: PolicyLossStats;
}

/** The k3 KL estimator per token: exp(d) − d − 1 with d = log π_ref − log π_θ. */
export function klK3(logp: Tensor, refLogp: Tensor): Tensor {
  const d = refLogp.sub(logp); // (R, T)
  return d.exp().sub(d).sub(1); // (R, T)
}

export function policyLoss(x: PolicyLossInput, o: PolicyLossOptions): PolicyLossOutput {
  if (!(o.epsLow > 0 && o.epsLow < 1) || !(o.epsHigh > 0)) throw new Error(`policyLoss: need 0 < ε_low < 1 and ε_high > 0, got ${o.epsLow}, ${o.epsHigh}`);
  const [R] = x.logp.shape;
  const adv = x.advantages.view([R, 1]); // (R, 1)
  const ratio = x.logp.sub(x.oldLogp).exp(); // (R, T)
  const unclipped = ratio.mul(adv); // (R, T)
  const clipped = ratio.clamp(1 - o.epsLow, 1 + o.epsHigh).mul(adv); // (R, T)
  let perToken = unclipped.minimum(clipped).neg(); // (R, T)
  let kl: Tensor | null = null;
  if (x.refLogp) {
    kl = klK3(x.logp, x.refLogp); // (R, T)
    if (o.beta > 0) perToken = perToken.add(kl.mul(o.beta));
  }
  const masked = perToken.mul(x.mask); // (R, T)
  const n = o.norm;
  let loss: Tensor;
  switch (n.variant) {
    case 'grpo': {
      const perSeq = masked.sum(1).div(x.mask.sum(1).clamp(1)); // (R)
      loss = perSeq.sum().div(n.sequences);
      break;
    }
    case 'bnpo':
      loss = masked.sum().div(x.mask.sum().clamp(1)).div(n.microBatches);
      break;
    case 'dr_grpo':
      loss = masked.sum().div(n.sequences * n.maxCompletionLength);
      break;
    case 'dapo':
      loss = masked.sum().div(Math.max(n.tokens, 1));
      break;
  }
  const active = x.mask.gt(0); // (R, T) bool
  const low = ratio
    .lt(1 - o.epsLow)
    .logicalAnd(adv.lt(0).expandAs(ratio))
    .logicalAnd(active);
  const high = ratio
    .gt(1 + o.epsHigh)
    .logicalAnd(adv.gt(0).expandAs(ratio))
    .logicalAnd(active);
  const stats: PolicyLossStats = {
    tokens: x.mask.sum().item(),
    clippedLow: low.sum().item(),
    clippedHigh: high.sum().item(),
    klSum: kl ? kl.detach().mul(x.mask).sum().item() : null,
    ratioSum: ratio.detach().mul(x.mask).sum().item(),
  };
  return { loss, stats };
}

/** (R) advantages as a float tensor on the given device. */
export function advantageTensor(a: ArrayLike<number>, like: Tensor): Tensor {
  return tensor(Float32Array.from(a)).to(like.device).to(like.dtype); // (R)
}
