/**
 * A curriculum from the base model's competence: before RL, each of a pool of train problems is
 * sampled `samples` times as a rollout would sample it, and only the problems whose success rate
 * lies in [minRate, maxRate] are kept — those at the edge of what the model can do. A problem the
 * base never solves, or always solves, gives every completion of its group the same reward and so
 * no gradient; dynamic sampling drops such groups after paying for their rollouts, step after
 * step, while this filter pays once. Yue et al. (2025) found that RL raises pass@1 within the base
 * model's pass@k, which is what the kept band selects.
 *
 * The kept set depends only on the base, the pool and the seed, and is written beside the run
 * (curriculum.json) so that a resumed run trains on the same problems without sampling again.
 *
 * It knows rollouts and problems; not the update.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Problem } from '../data/index.ts';
import { writeFileAtomic } from '../io/durable.ts';
import type { DeepSeekV3 } from '../model/transformer.ts';
import type { Tokenizer } from '../tokenizer/index.ts';
import { type RolloutOptions, rollout } from './rollout.ts';

export interface CurriculumSettings {
  /** Train problems sampled (the first of the run's train pool). */
  problems: number;
  /** Completions per problem. */
  samples: number;
  /** Lowest success rate kept. */
  minRate: number;
  /** Highest success rate kept. */
  maxRate: number;
}

/** How the curriculum samples: as the rollouts do, one group of `samples` per problem. */
export type CurriculumSampling = Omit<RolloutOptions, 'groupSize'>;

export interface Curriculum {
  settings: CurriculumSettings;
  /** Success rate of each sampled problem, in pool order. */
  rates: number[];
  /** Pool indices of the kept problems. */
  kept: number[];
  seconds: number;
}

/** Problems sampled per generation call (× samples rows). */
const CHUNK = 32;

/** Samples the first `settings.problems` of `pool` and keeps those inside the rate band. */
export function measureCurriculum(
  model: DeepSeekV3,
  tok: Tokenizer,
  pool: readonly Problem[],
  settings: CurriculumSettings,
  sampling: CurriculumSampling,
): Curriculum {
  const t0 = performance.now();
  const n = Math.min(settings.problems, pool.length);
  const rates: number[] = [];
  for (let start = 0; start < n; start += CHUNK) {
    const chunk = pool.slice(start, Math.min(n, start + CHUNK));
    const r = rollout(model, tok, chunk, { ...sampling, groupSize: settings.samples, seed: sampling.seed + start });
    for (let p = 0; p < chunk.length; p++) {
      let right = 0;
      for (let g = 0; g < settings.samples; g++) if (r.rewards[p * settings.samples + g].correct) right++;
      rates.push(right / settings.samples);
    }
  }
  const kept = rates.flatMap((rate, i) => (rate >= settings.minRate && rate <= settings.maxRate ? [i] : []));
  return { settings, rates, kept, seconds: (performance.now() - t0) / 1000 };
}

const FILE = 'curriculum.json';

/** The curriculum a run wrote earlier with the same settings, or null. */
export function readCurriculum(runDir: string, settings: CurriculumSettings): Curriculum | null {
  const file = path.join(runDir, FILE);
  if (!fs.existsSync(file)) return null;
  let c: Curriculum;
  try {
    c = JSON.parse(fs.readFileSync(file, 'utf8')) as Curriculum;
  } catch (e) {
    throw new Error(`${file} is not valid JSON (${(e as Error).message}); delete it to sample the curriculum again`);
  }
  const same = (Object.keys(settings) as (keyof CurriculumSettings)[]).every((k) => c.settings?.[k] === settings[k]);
  return same && Array.isArray(c.kept) && Array.isArray(c.rates) ? c : null;
}

export function writeCurriculum(runDir: string, c: Curriculum): void {
  writeFileAtomic(path.join(runDir, FILE), `${JSON.stringify(c)}\n`);
}

/** "kept 212 of 512 problems (rates 0.125–0.875), 41% never solved, 18% always; 52 s". */
export function describeCurriculum(c: Curriculum): string {
  const n = c.rates.length;
  const never = c.rates.filter((r) => r === 0).length;
  const always = c.rates.filter((r) => r === 1).length;
  const pct = (x: number): string => `${((100 * x) / Math.max(1, n)).toFixed(0)}%`;
  return (
    `curriculum: kept ${c.kept.length} of ${n} problems (success rate ${c.settings.minRate}–${c.settings.maxRate} over ${c.settings.samples} samples), ` +
    `${pct(never)} never solved, ${pct(always)} always; ${c.seconds.toFixed(0)} s`
  );
}
