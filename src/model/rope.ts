/**
 * Rotary position embedding with YaRN, as DeepSeek-V2/V3 use it: rotation on the rope part of
 * queries and keys only, over interleaved pairs (x[2i], x[2i+1]) — the layout of DeepSeek's
 * reference code and of its released weights.
 *
 * YaRN (for context extension by `factor`): frequencies whose wavelength fits the original context
 * many times (high frequency, > beta_fast rotations) are kept; those that rotate less than
 * beta_slow times are divided by the factor; a linear ramp blends the range between.
 *
 * This module knows positions and frequencies; it does not know attention.
 */
import { type Tensor, fusedUsable, rotaryFused, tensor, stack } from '../core/index.ts';
import { type ModelConfig, yarnMscale } from './config.ts';

/** Rotations a frequency of dimension index makes over `maxPos` positions, inverted: the dim index. */
function correctionDim(numRotations: number, dim: number, base: number, maxPos: number): number {
  return (dim * Math.log(maxPos / (numRotations * 2 * Math.PI))) / (2 * Math.log(base));
}

/** The inverse frequencies (dim/2 of them) for a rotary width `dim`, with YaRN when configured. */
export function inverseFrequencies(c: ModelConfig, dim: number): Float64Array {
  const half = dim / 2;
  const base = c.rope_theta;
  const inv = new Float64Array(half);
  for (let i = 0; i < half; i++) inv[i] = 1 / base ** ((2 * i) / dim);
  const y = c.rope_scaling;
  if (!y) return inv;
  const orig = y.original_max_position_embeddings;
  const low = Math.max(Math.floor(correctionDim(y.beta_fast, dim, base, orig)), 0);
  let high = Math.min(Math.ceil(correctionDim(y.beta_slow, dim, base, orig)), dim - 1);
  if (low === high) high += 0.001;
  for (let i = 0; i < half; i++) {
    const ramp = Math.min(1, Math.max(0, (i - low) / (high - low)));
    const keep = 1 - ramp; // 1: keep the original frequency, 0: interpolate by the factor
    inv[i] = (inv[i] / y.factor) * (1 - keep) + inv[i] * keep;
  }
  return inv;
}

export interface RopeTables {
  /** (maxPos, dim/2) */
  cos: Tensor;
  /** (maxPos, dim/2) */
  sin: Tensor;
  dim: number;
}

/** cos/sin tables for positions 0..maxPos-1 (scaled by YaRN's mscale ratio when configured). */
export function ropeTables(c: ModelConfig, dim: number, maxPos: number): RopeTables {
  const inv = inverseFrequencies(c, dim);
  const half = dim / 2;
  const y = c.rope_scaling;
  const m = y ? yarnMscale(y.factor, y.mscale) / yarnMscale(y.factor, y.mscale_all_dim) : 1;
  const cos = new Float32Array(maxPos * half);
  const sin = new Float32Array(maxPos * half);
  for (let p = 0; p < maxPos; p++) {
    for (let i = 0; i < half; i++) {
      const a = p * inv[i];
      cos[p * half + i] = Math.cos(a) * m;
      sin[p * half + i] = Math.sin(a) * m;
    }
  }
  return { cos: tensor(cos, { shape: [maxPos, half] }).keep(), sin: tensor(sin, { shape: [maxPos, half] }).keep(), dim };
}

/**
 * Rotates x (B, S, H, dim) at positions start..start+S-1 over interleaved pairs.
 * `cos`/`sin` are the rows for those positions, shaped (S, 1, dim/2) for broadcasting, or
 * (B, S, 1, dim/2) with per-row positions (ropeRows).
 */
export function applyRotary(x: Tensor, cos: Tensor, sin: Tensor): Tensor {
  if (fusedUsable(x, cos, sin)) return rotaryFused(x, cos, sin); // inference: one kernel instead of eleven calls
  const shape = x.shape; // (B, S, H, dim)
  const pairs = x.reshape([...shape.slice(0, -1), shape[shape.length - 1] / 2, 2]); // (B, S, H, dim/2, 2)
  const re = pairs.select(-1, 0); // (B, S, H, dim/2)
  const im = pairs.select(-1, 1);
  const outRe = re.mul(cos).sub(im.mul(sin));
  const outIm = re.mul(sin).add(im.mul(cos));
  return stack([outRe, outIm], -1).reshape(shape); // (B, S, H, dim)
}

/**
 * The (B, S, 1, dim/2) rows of the tables for per-row positions `positions` (B, S) (an integer
 * tensor; batched decoding of left-padded prompts, where row b's column c is at position
 * c − padLeft[b]). Positions must lie in [0, maxPos): libtorch's index check reports others.
 */
export function ropeRows(t: RopeTables, positions: Tensor): { cos: Tensor; sin: Tensor } {
  const [B, S] = positions.shape;
  const half = t.dim / 2;
  const flat = positions.reshape([-1]).to({ device: t.cos.device }); // (B·S) on the tables' device
  return { cos: t.cos.indexSelect(0, flat).view([B, S, 1, half]), sin: t.sin.indexSelect(0, flat).view([B, S, 1, half]) };
}

/** The (S, 1, dim/2) slices of the tables for positions start..start+S-1. */
export function ropeSlice(t: RopeTables, start: number, len: number): { cos: Tensor; sin: Tensor } {
  if (start + len > t.cos.shape[0]) {
    throw new RangeError(`positions ${start}..${start + len - 1} exceed max_position_embeddings (${t.cos.shape[0]})`);
  }
  return { cos: t.cos.narrow(0, start, len).unsqueeze(1), sin: t.sin.narrow(0, start, len).unsqueeze(1) };
}
