/**
 * Learning-rate schedules as pure functions of the step (0-based): warmup + cosine decay, and
 * warmup-stable-decay (WSD, as in MiniCPM and DeepSeek-V3's pretraining). `applyLr` writes the
 * value into an optimizer's groups, scaled by each group's share of the base rate.
 */

export type Schedule = (step: number) => number;

export interface WarmupCosineOptions {
  maxLr: number;
  minLr?: number;
  warmupSteps: number;
  totalSteps: number;
}

function checkCommon(name: string, maxLr: number, minLr: number, warmup: number, total: number): void {
  if (!(maxLr > 0)) throw new RangeError(`${name}: maxLr must be > 0, got ${maxLr}`);
  if (!(minLr >= 0 && minLr <= maxLr)) throw new RangeError(`${name}: minLr must be in [0, maxLr], got ${minLr}`);
  if (!Number.isInteger(warmup) || warmup < 0) throw new RangeError(`${name}: warmupSteps must be a non-negative integer, got ${warmup}`);
  if (!Number.isInteger(total) || total <= warmup) throw new RangeError(`${name}: totalSteps (${total}) must be an integer above warmupSteps (${warmup})`);
}

/** Linear warmup from 0 to maxLr over warmupSteps, then cosine down to minLr at totalSteps. */
export function warmupCosine(o: WarmupCosineOptions): Schedule {
  const minLr = o.minLr ?? 0;
  checkCommon('warmupCosine', o.maxLr, minLr, o.warmupSteps, o.totalSteps);
  return (step) => {
    if (step < o.warmupSteps) return (o.maxLr * (step + 1)) / o.warmupSteps;
    if (step >= o.totalSteps) return minLr;
    const t = (step - o.warmupSteps) / (o.totalSteps - o.warmupSteps);
    return minLr + 0.5 * (o.maxLr - minLr) * (1 + Math.cos(Math.PI * t));
  };
}

export interface WsdOptions {
  maxLr: number;
  minLr?: number;
  warmupSteps: number;
  totalSteps: number;
  /** Share of totalSteps spent decaying at the end (default 0.2). */
  decayFraction?: number;
  decayShape?: 'linear' | 'cosine' | 'sqrt';
}

/** Warmup to maxLr, hold it, then decay to minLr over the last decayFraction of the run. */
export function warmupStableDecay(o: WsdOptions): Schedule {
  const minLr = o.minLr ?? 0;
  checkCommon('warmupStableDecay', o.maxLr, minLr, o.warmupSteps, o.totalSteps);
  const frac = o.decayFraction ?? 0.2;
  if (!(frac > 0 && frac <= 1)) throw new RangeError(`warmupStableDecay: decayFraction must be in (0, 1], got ${frac}`);
  const decaySteps = Math.max(1, Math.round(o.totalSteps * frac));
  const decayStart = Math.max(o.warmupSteps, o.totalSteps - decaySteps);
  const shape = o.decayShape ?? 'linear';
  return (step) => {
    if (step < o.warmupSteps) return (o.maxLr * (step + 1)) / o.warmupSteps;
    if (step < decayStart) return o.maxLr;
    if (step >= o.totalSteps) return minLr;
    const t = (step - decayStart) / (o.totalSteps - decayStart); // 0 → 1
    const f = shape === 'linear' ? 1 - t : shape === 'sqrt' ? 1 - Math.sqrt(t) : 0.5 * (1 + Math.cos(Math.PI * t));
    return minLr + (o.maxLr - minLr) * f;
  };
}

export function constant(lr: number): Schedule {
  if (!(lr >= 0)) throw new RangeError(`constant: lr must be >= 0, got ${lr}`);
  return () => lr;
}

/** Sets every group's lr to `lr` (times the group's `lrScale`, 1 by default). */
export function applyLr(opt: { groups: { lr: number; lrScale?: number }[] }, lr: number): void {
  for (const g of opt.groups) g.lr = lr * (g.lrScale ?? 1);
}
