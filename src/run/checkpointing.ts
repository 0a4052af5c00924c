/**
 * Training checkpoints: everything needed to continue a run exactly where it stopped.
 *
 *   <run>/checkpoints/step-000200/
 *       model/              the model in the Hugging Face layout (config.json, model.safetensors)
 *                           plus tokenizer.json: loadable on its own by eval and RL
 *       optimizer.safetensors  AdamW moments, keyed "<param index>.exp_avg" / ".exp_avg_sq"
 *       trainer.json        step, optimizer steps and hyper-parameters, data position, RNG state,
 *                           tokens seen, the effective config
 *   <run>/checkpoints/latest.json   {"step": 200, "dir": "step-000200"}
 *
 * The aux-loss-free bias terms are part of the model's state dict (e_score_correction_bias).
 *
 * Crash safety: a checkpoint is written into a hidden temporary directory, fsynced, and renamed to
 * its final name; only then is latest.json replaced (temp file + rename). A process killed at any
 * moment (SIGKILL included) leaves latest.json pointing at a complete checkpoint — the previous one
 * if the new one was not finished. Stale temporary directories are removed by the next save.
 *
 * This module knows files and state; it does not run training.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Tensor } from '../core/index.ts';
import { SafetensorsFile, saveSafetensors } from '../io/safetensors.ts';
import { syncDir, writeFileAtomic, writeFileDurable } from '../io/durable.ts';
import { loadWeightsInto, saveCheckpoint } from '../model/checkpoint.ts';
import type { DeepSeekV3 } from '../model/transformer.ts';
import type { AdamW, AdamWState } from '../nn/index.ts';
import type { Tokenizer } from '../tokenizer/index.ts';
import { readJsonObject } from './config-file.ts';

export const TRAINER_FILE = 'trainer.json';
export const OPTIMIZER_FILE = 'optimizer.safetensors';
export const MODEL_DIR = 'model';
export const LATEST_FILE = 'latest.json';

/** What trainer.json holds besides the tensors. */
export interface TrainerState {
  version: 1;
  kind: string;
  /** Optimizer steps completed. */
  step: number;
  tokensSeen: number;
  /** Seconds of training so far (across resumes). */
  elapsed: number;
  /** The data loader's position (plain JSON from loader.state()). */
  data: unknown;
  /** Other RNG streams the run owns (plain JSON). */
  rng: unknown;
  /** AdamW: per-parameter step counts and per-group hyper-parameters. */
  optimizer: Omit<AdamWState, 'expAvg' | 'expAvgSq'>;
  /** The effective training config of the run. */
  config: unknown;
}

export function checkpointsDir(runDir: string): string {
  return path.join(runDir, 'checkpoints');
}

export function stepDirName(step: number): string {
  return `step-${String(step).padStart(6, '0')}`;
}

export interface SaveTrainingOptions {
  model: DeepSeekV3;
  optimizer: AdamW;
  tokenizer: Tokenizer;
  state: Omit<TrainerState, 'optimizer' | 'version'>;
  /** Step checkpoints to keep (older ones are removed after a successful save). */
  keep: number;
}

/** Removes what interrupted saves left in `dir`: the temporary directories whose names start with `prefix` and hold `.tmp-`. */
export function removeStaleTemps(dir: string, prefix: string): void {
  if (!fs.existsSync(dir)) return;
  for (const name of fs.readdirSync(dir)) {
    if (name.startsWith(prefix) && name.includes('.tmp-')) fs.rmSync(path.join(dir, name), { recursive: true, force: true });
  }
}

/** Writes a complete checkpoint for state.step and points latest.json at it. Returns its directory. */
export async function saveTrainingCheckpoint(runDir: string, o: SaveTrainingOptions): Promise<string> {
  const root = checkpointsDir(runDir);
  fs.mkdirSync(root, { recursive: true });
  removeStaleTemps(root, '.step-');
  const name = stepDirName(o.state.step);
  const tmp = path.join(root, `.${name}.tmp-${process.pid}`);
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp);
  try {
    await saveCheckpoint(path.join(tmp, MODEL_DIR), o.model);
    o.tokenizer.save(path.join(tmp, MODEL_DIR, 'tokenizer.json'));
    const opt = o.optimizer.stateDict();
    const tensors = new Map<string, Tensor>();
    opt.expAvg.forEach((t, i) => {
      if (t) tensors.set(`${i}.exp_avg`, t);
    });
    opt.expAvgSq.forEach((t, i) => {
      if (t) tensors.set(`${i}.exp_avg_sq`, t);
    });
    await saveSafetensors(path.join(tmp, OPTIMIZER_FILE), tensors);
    const state: TrainerState = { version: 1, ...o.state, optimizer: { groups: opt.groups, steps: opt.steps } };
    writeFileDurable(path.join(tmp, TRAINER_FILE), `${JSON.stringify(state, null, 2)}\n`);
    syncDir(tmp);
    const final = path.join(root, name);
    fs.rmSync(final, { recursive: true, force: true });
    fs.renameSync(tmp, final);
    syncDir(root);
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  writeFileAtomic(path.join(root, LATEST_FILE), `${JSON.stringify({ step: o.state.step, dir: name })}\n`);
  pruneCheckpoints(root, o.keep, name);
  return path.join(root, name);
}

function pruneCheckpoints(root: string, keep: number, current: string): void {
  const steps = fs
    .readdirSync(root)
    .filter((n) => /^step-\d{6,}$/.test(n))
    .sort();
  const old = steps.filter((n) => n !== current).slice(0, Math.max(0, steps.length - keep));
  for (const n of old) fs.rmSync(path.join(root, n), { recursive: true, force: true });
}

const STEP_DIR = /^step-\d{6,}$/;

/** Points latest.json at one of the run's complete step checkpoints (after a runaway, the last good one). */
export function pointLatestAt(runDir: string, dir: string): void {
  const root = checkpointsDir(runDir);
  const name = path.basename(dir);
  if (!STEP_DIR.test(name) || path.resolve(path.dirname(dir)) !== path.resolve(root)) throw new Error(`${dir} is not a step checkpoint of ${runDir}`);
  const state = readTrainerState(path.join(root, name));
  writeFileAtomic(path.join(root, LATEST_FILE), `${JSON.stringify({ step: state.step, dir: name })}\n`);
}

/** The directory latest.json points at, or null when the run has no checkpoint yet. */
export function latestCheckpoint(runDir: string): { dir: string; step: number } | null {
  const root = checkpointsDir(runDir);
  const file = path.join(root, LATEST_FILE);
  if (!fs.existsSync(file)) return null;
  const latest = readJsonObject(file, `point it at a complete checkpoint directory in ${root}, as {"step": n, "dir": "step-000123"}`);
  if (typeof latest.dir !== 'string' || typeof latest.step !== 'number')
    throw new Error(`${file} must hold {"step": n, "dir": "step-…"}, found ${JSON.stringify(latest)}`);
  // the name of a directory beside latest.json, nothing else: a path with ../ would resume another run
  if (!STEP_DIR.test(latest.dir))
    throw new Error(
      `${file}: "dir" must name a step checkpoint beside it (step-000123), found ${JSON.stringify(latest.dir)}; point it at one of ${root}'s step directories`,
    );
  const dir = path.join(root, latest.dir);
  if (!fs.existsSync(path.join(dir, TRAINER_FILE)))
    throw new Error(`${file} points at ${dir}, which has no ${TRAINER_FILE}; point it at a complete checkpoint in ${root}`);
  return { dir, step: latest.step };
}

export function readTrainerState(dir: string): TrainerState {
  const file = path.join(dir, TRAINER_FILE);
  const s = readJsonObject(file, 'the checkpoint is damaged: resume from another one (point latest.json at it)');
  const wrong: string[] = [];
  if (s.version !== 1) wrong.push(`"version" must be 1 (found ${JSON.stringify(s.version)})`);
  for (const k of ['step', 'tokensSeen', 'elapsed'] as const) {
    if (typeof s[k] !== 'number' || !Number.isFinite(s[k]) || (s[k] as number) < 0)
      wrong.push(`"${k}" must be a non-negative number (found ${JSON.stringify(s[k])})`);
  }
  if (typeof s.step === 'number' && !Number.isInteger(s.step)) wrong.push(`"step" must be an integer (found ${s.step})`);
  const opt = s.optimizer as { steps?: unknown; groups?: unknown } | undefined;
  if (!opt || typeof opt !== 'object' || !Array.isArray(opt.steps) || !Array.isArray(opt.groups))
    wrong.push('"optimizer" must hold "steps" and "groups" arrays');
  if (wrong.length) throw new Error(`${file} is not a tinyseek trainer state: ${wrong.join('; ')}; resume from another checkpoint (point latest.json at it)`);
  return s as unknown as TrainerState;
}

/** Loads weights and optimizer state of a checkpoint into an existing model and optimizer. */
export function restoreTrainingCheckpoint(dir: string, model: DeepSeekV3, optimizer: AdamW): TrainerState {
  const state = readTrainerState(dir);
  loadWeightsInto(model, path.join(dir, MODEL_DIR));
  const f = SafetensorsFile.open(path.join(dir, OPTIMIZER_FILE));
  try {
    const n = state.optimizer.steps.length;
    const read = (key: string): Tensor | null => (f.has(key) ? f.read(key) : null);
    const expAvg = Array.from({ length: n }, (_, i) => read(`${i}.exp_avg`));
    const expAvgSq = Array.from({ length: n }, (_, i) => read(`${i}.exp_avg_sq`));
    optimizer.loadStateDict({ ...state.optimizer, expAvg, expAvgSq });
    for (const t of [...expAvg, ...expAvgSq]) t?.dispose();
  } finally {
    f.close();
  }
  return state;
}
