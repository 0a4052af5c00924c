/**
 * Which Countdown trace format a checkpoint was pretrained on, read from the records beside it: a
 * shipped base's `pretraining.json`, a shipped RL model's `r1-zero.json` (its base), a run's `config.json` (a pretraining run holds the corpus; an
 * RL or SFT run names its `base`, followed in turn). The probes teacher-force reference traces in
 * the format the model learned; a record written before `corpus.search.compareTarget` or
 * `corpus.search.inlineHit` existed means the older format without that feature.
 *
 * It knows run directories and JSON records; not models or probes.
 */
import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { CorpusConfig, type SearchTraceFormat } from '../data/index.ts';

export type TraceFormat = Required<SearchTraceFormat>;

type Json = Record<string, unknown>;
const obj = (v: unknown): Json | null => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : null);

function readJson(path: string): Json | null {
  if (!existsSync(path)) return null;
  try {
    return obj(JSON.parse(readFileSync(path, 'utf8')));
  } catch {
    return null;
  }
}

/** The format from a config holding a search corpus, or null when the config holds none. */
function fromConfig(c: Json): TraceFormat | null {
  const corpus = obj(c.corpus);
  if (corpus?.kind !== 'search') return null;
  const search = obj(corpus.search);
  return { compareTarget: search?.compareTarget === true, inlineHit: search?.inlineHit === true };
}

/** The format the corpus writes by default. */
const defaults = CorpusConfig.parse({}).search;
export const DEFAULT_TRACE_FORMAT: TraceFormat = { compareTarget: defaults.compareTarget, inlineHit: defaults.inlineHit };

/**
 * The trace format of the checkpoint at `dir`, or `fallback` (the current corpus default) when no
 * record says. `dir` is a checkpoint directory: shipped (`checkpoints/x`), a run's `final`, or a
 * run's `checkpoints/step-N`.
 */
export function traceFormatOf(dir: string, fallback: TraceFormat = DEFAULT_TRACE_FORMAT, depth = 0): TraceFormat {
  if (depth > 8) return fallback;
  const shipped = readJson(join(dir, 'pretraining.json'));
  const shippedConfig = obj(shipped?.config);
  if (shippedConfig) return fromConfig(shippedConfig) ?? fallback;
  // a shipped RL model names its base
  const shippedRl = readJson(join(dir, 'r1-zero.json'));
  if (typeof shippedRl?.base === 'string' && existsSync(resolve(shippedRl.base))) return traceFormatOf(resolve(shippedRl.base), fallback, depth + 1);
  // a run's checkpoint: final/ or checkpoints/step-N/ under the run directory
  const runDirs = [basename(dir) === 'final' ? dirname(dir) : null, basename(dirname(dir)) === 'checkpoints' ? dirname(dirname(dir)) : null];
  for (const runDir of runDirs) {
    if (runDir === null) continue;
    const config = readJson(join(runDir, 'config.json'));
    if (!config) continue;
    const own = fromConfig(config);
    if (own) return own;
    if (typeof config.base === 'string') {
      const base = resolve(config.base);
      return existsSync(base) ? traceFormatOf(base, fallback, depth + 1) : fallback;
    }
    return fallback;
  }
  return fallback;
}
