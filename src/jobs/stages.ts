/**
 * The stages a job reuses when they are finished: a pretraining or an RL run is trained when its
 * run directory holds nothing, resumed from its latest checkpoint when the same settings were
 * interrupted, and left as it is when it already finished with them. A directory holding a run with
 * other settings is an error, never overwritten.
 *
 * Also the held-out evaluation every job reports (cached by the checkpoint's contents) and an RL
 * stage's compute as its metrics record it.
 *
 * It knows run directories, the two trainers and the evaluator; not what a job does with their models.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { PromptFormat } from '../data/index.ts';
import { evaluate } from '../eval/index.ts';
import { loadCheckpoint } from '../model/checkpoint.ts';
import { checkpointFingerprint, readCached, writeCached } from '../run/cached-result.ts';
import { latestCheckpoint } from '../run/checkpointing.ts';
import { readMetrics } from '../run/metrics.ts';
import { Tokenizer } from '../tokenizer/index.ts';
import { readJsonObject } from '../run/config-file.ts';
import { configDifferences, runDirOf } from '../run/run-dir.ts';
import { RL_RUN_CONTROL_KEYS, type RlSettings } from '../rl/config.ts';
import { trainRl } from '../rl/trainer.ts';
import type { PretrainConfig } from '../train/config.ts';
import { pretrain } from '../train/pretrain.ts';

export interface FinishedRun {
  runDir: string;
  finalDir: string;
  /** Seconds this call trained (null: the run was already finished). */
  trainedSeconds: number | null;
}

/** A pretraining run with these settings, finished (trained, resumed or reused). */
export async function finishedPretraining(cfg: PretrainConfig, log: (s: string) => void): Promise<FinishedRun> {
  const runDir = runDirOf(cfg);
  const finalDir = path.join(runDir, 'final');
  const savedConfig = path.join(runDir, 'config.json');
  const sameRun = fs.existsSync(savedConfig) && configDifferences(readJsonObject(savedConfig), cfg).length === 0;
  if (sameRun && fs.existsSync(path.join(finalDir, 'config.json'))) {
    log(`pretraining already done: ${finalDir} (delete ${runDir} to train again)`);
    return { runDir, finalDir, trainedSeconds: null };
  }
  if (fs.existsSync(runDir) && !sameRun) throw new Error(`${runDir} holds a run with other settings; choose another name (--name) or delete it`);
  const r = await pretrain(cfg, { resume: sameRun && latestCheckpoint(runDir) !== null, log });
  if (r.stoppedBy !== 'done') throw new Error(`pretraining stopped at step ${r.step}; run the same command again to continue`);
  return { runDir, finalDir, trainedSeconds: r.elapsed };
}

/** An RL run with these settings, finished (trained, resumed or reused). */
export async function finishedRl(c: RlSettings, log: (s: string) => void): Promise<FinishedRun> {
  const runDir = runDirOf(c);
  const finalDir = path.join(runDir, 'final');
  const configFile = path.join(runDir, 'config.json');
  const sameRun = fs.existsSync(configFile) && configDifferences(readJsonObject(configFile), c, '', RL_RUN_CONTROL_KEYS).length === 0;
  if (fs.existsSync(configFile) && !sameRun) throw new Error(`${runDir} holds an RL run with other settings; delete it to run it again`);
  if (sameRun && fs.existsSync(path.join(finalDir, 'config.json')) && readJsonObject(configFile).steps === c.steps) {
    log(`RL already done: ${finalDir}`);
    return { runDir, finalDir, trainedSeconds: null };
  }
  const r = await trainRl(c, { resume: sameRun && latestCheckpoint(runDir) !== null, log });
  if (r.stoppedBy !== 'done') throw new Error(`RL stopped at step ${r.step}; run the same command again to continue`);
  return { runDir, finalDir, trainedSeconds: r.elapsed };
}

/** The held-out problems every job measures on: `tinyseek eval`'s Countdown (3 numbers ≤ 20). */
export const HELDOUT_TASK_CONFIG = { minCount: 3, maxCount: 3, maxNumber: 20, promptFrame: 'compact' };

/**
 * Greedy held-out Countdown pass@1 of a checkpoint on `n` problems (`tinyseek eval`'s defaults: seed
 * 0, ≤ 256 new tokens), asked in `format`; cached in `cacheFile` under the checkpoint's contents.
 */
export async function heldoutPass1(checkpoint: string, o: { n: number; cacheFile: string; format?: PromptFormat; log: (s: string) => void }): Promise<number> {
  const format = o.format ?? 'r1-zero';
  const key = {
    v: 1,
    checkpoint: checkpointFingerprint(checkpoint),
    n: o.n,
    taskConfig: HELDOUT_TASK_CONFIG,
    maxNewTokens: 256,
    seed: 0,
    ...(format === 'r1' ? { format } : {}),
  };
  const cached = readCached<number>(o.cacheFile, key);
  if (cached !== null) return cached;
  const r = await evaluate(loadCheckpoint(checkpoint), Tokenizer.load(path.join(checkpoint, 'tokenizer.json')), {
    task: 'countdown',
    taskConfig: HELDOUT_TASK_CONFIG,
    n: o.n,
    temperature: 0,
    maxNewTokens: 256,
    seed: 0,
    examples: 0,
    batchSize: 32,
    format,
  });
  o.log(`  ${checkpoint}: greedy pass@1 ${(r.pass1 * 100).toFixed(1)}% on ${r.problems} held-out problems (${format} format)`);
  writeCached(o.cacheFile, key, r.pass1);
  return r.pass1;
}

/** An RL stage, finished, with its wall minutes and the tokens its rollouts generated (from its metrics). */
export async function rlStage(c: RlSettings, log: (s: string) => void): Promise<{ finalDir: string; minutes: number; generated: number }> {
  const { runDir, finalDir } = await finishedRl(c, log);
  const rl = readMetrics(path.join(runDir, 'metrics.jsonl')).filter((r) => r.kind === 'rl');
  const last = rl.at(-1);
  return {
    finalDir,
    minutes: (typeof last?.elapsed_s === 'number' ? last.elapsed_s : 0) / 60,
    generated: rl.reduce((a, r) => a + (typeof r.gen_tokens === 'number' ? r.gen_tokens : 0), 0),
  };
}
