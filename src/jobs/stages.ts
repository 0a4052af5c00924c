/**
 * The stages a job reuses when they are finished: a pretraining or an RL run is trained when its
 * run directory holds nothing, resumed from its latest checkpoint when the same settings were
 * interrupted, and left as it is when it already finished with them. A directory holding a run with
 * other settings is an error, never overwritten.
 *
 * It knows run directories and the two trainers; not what a job does with their models.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { latestCheckpoint } from '../run/checkpointing.ts';
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
