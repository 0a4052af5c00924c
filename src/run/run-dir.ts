/**
 * A run directory's start: a fresh run refuses a directory that already holds one, a resumed run
 * needs a checkpoint and the same settings (only the run-control keys may change); then
 * config.json is written. And the resume itself: weights and optimizer from the latest checkpoint,
 * with the counters and the data position it saved; and the finished run's model in <run>/final.
 * Shared by pretraining, SFT and RL.
 *
 * It knows run directories and trainer states; not what is trained.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { saveCheckpoint } from '../model/checkpoint.ts';
import type { DeepSeekV3 } from '../model/transformer.ts';
import type { AdamW } from '../nn/index.ts';
import type { Tokenizer } from '../tokenizer/index.ts';
import { latestCheckpoint, restoreTrainingCheckpoint, saveTrainingCheckpoint } from './checkpointing.ts';

export function runDirOf(c: { runsDir: string; name: string }): string {
  return path.join(c.runsDir, c.name);
}

/** Keys (dotted) whose values differ between two configs, ignoring the given top-level keys. */
export function configDifferences(a: unknown, b: unknown, prefix = '', ignore: readonly string[] = []): string[] {
  if (JSON.stringify(a) === JSON.stringify(b)) return [];
  if (!a || !b || typeof a !== 'object' || typeof b !== 'object' || Array.isArray(a) || Array.isArray(b)) return [prefix || '(root)'];
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  const out: string[] = [];
  for (const k of keys) {
    if (!prefix && ignore.includes(k)) continue;
    out.push(...configDifferences((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], prefix ? `${prefix}.${k}` : k, ignore));
  }
  return out;
}

export interface OpenedRun {
  runDir: string;
  /** The checkpoint to resume from (when resuming). */
  latest: { dir: string; step: number } | null;
}

/** Checks the directory for a fresh or resumed run and writes the effective config. */
export function openRunDir(c: { runsDir: string; name: string }, resume: boolean | undefined, runControlKeys: readonly string[]): OpenedRun {
  const runDir = runDirOf(c);
  const configFile = path.join(runDir, 'config.json');
  const latest = fs.existsSync(runDir) ? latestCheckpoint(runDir) : null;
  if (resume) {
    if (!latest) throw new Error(`--resume: ${runDir} has no checkpoint to resume from (start it without --resume)`);
    const diff = configDifferences(JSON.parse(fs.readFileSync(configFile, 'utf8')), c, '', runControlKeys);
    if (diff.length) throw new Error(`--resume: the config differs from the run's in ${diff.join(', ')}; resume with the same settings (only ${runControlKeys.join(', ')} may change)`);
  } else if (latest) {
    throw new Error(`${runDir} already holds a run (checkpoint at step ${latest.step}): continue it with --resume, or choose another --name`);
  }
  fs.mkdirSync(runDir, { recursive: true });
  fs.writeFileSync(configFile, `${JSON.stringify(c, null, 2)}\n`);
  return { runDir, latest: resume ? latest : null };
}

export interface ResumePoint {
  step: number;
  tokensSeen: number;
  elapsed: number;
  /** The loader's saved position (undefined for a fresh run). */
  data: unknown;
}

/** Restores the latest checkpoint into model and optimizer, or the start of a fresh run. */
export function resumePoint(latest: OpenedRun['latest'], model: DeepSeekV3, optimizer: AdamW, log: (s: string) => void): ResumePoint {
  if (!latest) return { step: 0, tokensSeen: 0, elapsed: 0, data: undefined };
  const s = restoreTrainingCheckpoint(latest.dir, model, optimizer);
  log(`resumed from ${latest.dir} at step ${s.step}`);
  return { step: s.step, tokensSeen: s.tokensSeen, elapsed: s.elapsed, data: s.data };
}

/** Writes the finished model with its tokenizer to <runDir>/final (loadable by eval, RL, the server). */
export async function saveFinalModel(runDir: string, model: DeepSeekV3, tok: Tokenizer, log: (s: string) => void): Promise<string> {
  const finalDir = path.join(runDir, 'final');
  await saveCheckpoint(finalDir, model);
  tok.save(path.join(finalDir, 'tokenizer.json'));
  log(`final model: ${finalDir}`);
  return finalDir;
}

export interface CheckpointWriterOptions {
  model: DeepSeekV3;
  optimizer: AdamW;
  tokenizer: Tokenizer;
  keep: number;
  /** What trained (trainer.json's kind). */
  kind: string;
  config: unknown;
  /** The loader's position at the time of the save. */
  data: () => unknown;
  /** Makes the run's logs durable first (RunSink.flush). */
  flush: () => void;
}

/** The run's checkpoint save: logs flushed, then the model, optimizer and data position at a step. */
export function checkpointWriter(runDir: string, o: CheckpointWriterOptions): (step: number, counters: { tokensSeen: number; elapsed: number }) => Promise<string> {
  return (step, counters) => {
    o.flush();
    return saveTrainingCheckpoint(runDir, {
      model: o.model,
      optimizer: o.optimizer,
      tokenizer: o.tokenizer,
      keep: o.keep,
      state: { kind: o.kind, step, tokensSeen: counters.tokensSeen, elapsed: counters.elapsed, data: o.data(), rng: null, config: o.config },
    });
  };
}
