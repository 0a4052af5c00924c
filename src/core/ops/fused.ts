/**
 * The addon's fused CPU kernels (tinyseek:: operators, native/src/kernels.cc): RMSNorm, interleaved
 * rotary and DeepSeek-V3's group-limited expert choice, each one call where the composite form is
 * 6–17. They record no autograd graph, so `fusedUsable` says when a caller may take them: float32
 * CPU operands and no gradient wanted. Callers keep the composite form for everything else.
 *
 * It knows the kernels' signatures; not the modules that use them.
 */
import { isGradEnabled } from '../autograd.ts';
import { F, I, OT, T, begin, op, run } from '../dispatch.ts';
import type { Tensor } from '../tensor.ts';

const RMS_NORM = op('tinyseek::rms_norm');
const ROTARY = op('tinyseek::rotary');
const MOE_SELECT = op('tinyseek::moe_select');

let enabled = process.env.TINYSEEK_FUSED !== '0';

/** Turns the fused kernels off (or back on) for comparisons; TINYSEEK_FUSED=0 starts with them off. */
export function setFusedKernels(on: boolean): void {
  enabled = on;
}

/** Whether the fused (graph-less) kernels may replace the composite ops on these operands. */
export function fusedUsable(...ts: readonly Tensor[]): boolean {
  if (!enabled) return false;
  const grad = isGradEnabled();
  for (const t of ts) {
    if (t.dtype !== 'float32' || t.device !== 'cpu') return false;
    if (grad && t.requiresGrad) return false;
  }
  return true;
}

/** x (…, D), weight (D) → x · rsqrt(mean(x²) + eps) · weight, in one pass. */
export function rmsNormFused(x: Tensor, weight: Tensor, eps: number): Tensor {
  begin();
  T(x);
  T(weight);
  F(eps);
  return run(RMS_NORM);
}

/** x (B, S, H, dim) rotated over interleaved pairs; cos/sin (S, 1, dim/2) or (B, S, 1, dim/2). */
export function rotaryFused(x: Tensor, cos: Tensor, sin: Tensor): Tensor {
  begin();
  T(x);
  T(cos);
  T(sin);
  return run(ROTARY);
}

/**
 * scores (T, E) float32 → (T, k) int64 expert ids, best first: selection by scores + bias, within
 * the `topkGroups` best of `groups` groups (scored by their top two with a bias, their max without).
 */
export function moeSelect(scores: Tensor, bias: Tensor | null, groups: number, topkGroups: number, k: number): Tensor {
  begin();
  T(scores);
  OT(bias);
  I(groups);
  I(topkGroups);
  I(k);
  return run(MOE_SELECT);
}
