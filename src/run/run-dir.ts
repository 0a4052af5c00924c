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
import { writeFileAtomic } from '../io/durable.ts';
import { latestCheckpoint, removeStaleTemps, restoreTrainingCheckpoint, saveTrainingCheckpoint } from './checkpointing.ts';
import { RunName, readJsonObject } from './config-file.ts';

/** Settings that say where a run lives, not what it does: a moved run directory resumes. */
const LOCATION_KEYS = ['runsDir', 'name'];

/** Settings a resumed run may change besides the stage's run-control keys (the fixes for a diverged run). */
export const RESUME_OVERRIDES = ['optim.lr', 'optim.minLr', 'optim.clipNorm'];

export function runDirOf(c: { runsDir: string; name: string }): string {
  const bad = RunName.safeParse(c.name);
  if (!bad.success) throw new Error(`run name ${JSON.stringify(c.name)}: ${bad.error.issues[0]?.message}`);
  const dir = path.join(c.runsDir, c.name);
  if (path.dirname(path.resolve(dir)) !== path.resolve(c.runsDir)) throw new Error(`run name ${JSON.stringify(c.name)} leaves the runs directory ${c.runsDir}`);
  return dir;
}

/** Keys (dotted) whose values differ between two configs, ignoring the given keys (top-level or dotted). */
export function configDifferences(a: unknown, b: unknown, prefix = '', ignore: readonly string[] = []): string[] {
  if (prefix && ignore.includes(prefix)) return [];
  if (JSON.stringify(a) === JSON.stringify(b)) return [];
  if (!a || !b || typeof a !== 'object' || typeof b !== 'object' || Array.isArray(a) || Array.isArray(b)) return [prefix || '(root)'];
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  const out: string[] = [];
  for (const k of keys) {
    out.push(...configDifferences((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], prefix ? `${prefix}.${k}` : k, ignore));
  }
  return out;
}

export interface OpenedRun {
  runDir: string;
  /** The checkpoint to resume from (when resuming). */
  latest: { dir: string; step: number } | null;
}

/** A file-system error code in words. */
function fsReason(code: string): string {
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') return 'the directory is not writable';
  if (code === 'ENOSPC') return 'the disk is full';
  if (code === 'ENOTDIR' || code === 'EEXIST') return 'a file stands where a directory should be';
  if (code === 'ENOENT') return 'a directory above it is missing or not writable';
  return code;
}

/** Runs `f`, turning a file-system error into one that names the run directory and the fix. */
function inRunDir<T>(runDir: string, what: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (!code) throw e;
    throw new Error(`cannot ${what} ${runDir}: ${fsReason(code)} (${(e as Error).message}); choose a writable --runs-dir or fix the directory`);
  }
}

/**
 * Checks the directory for a fresh or resumed run and writes the effective config. A resumed run
 * must keep every setting but the run-control keys, RESUME_OVERRIDES and where it lives, and must
 * be asked for more steps than its checkpoint has done.
 */
export function openRunDir(c: { runsDir: string; name: string; steps: number }, resume: boolean | undefined, runControlKeys: readonly string[]): OpenedRun {
  const runDir = runDirOf(c);
  const configFile = path.join(runDir, 'config.json');
  const latest = fs.existsSync(runDir) ? latestCheckpoint(runDir) : null;
  if (resume) {
    if (!latest) throw new Error(`--resume: ${runDir} has no checkpoint to resume from (start it without --resume)`);
    const may = [...runControlKeys, ...RESUME_OVERRIDES, ...LOCATION_KEYS];
    const saved = readJsonObject(configFile, `restore it, or start a new run with another --name`);
    const diff = configDifferences(saved, c, '', may);
    if (diff.length)
      throw new Error(
        `--resume: the config differs from the run's in ${diff.join(', ')}; resume with the same settings (only ${[...runControlKeys, ...RESUME_OVERRIDES].join(', ')} may change)`,
      );
    if (c.steps <= latest.step)
      throw new Error(
        `--resume: ${runDir} is already at step ${latest.step}, and ${c.steps} steps were asked for; pass --steps above ${latest.step} to train further`,
      );
  } else if (latest) {
    throw new Error(`${runDir} already holds a run (checkpoint at step ${latest.step}): continue it with --resume, or choose another --name`);
  }
  inRunDir(runDir, 'write the run directory', () => {
    fs.mkdirSync(runDir, { recursive: true });
    removeStaleTemps(runDir, '.final.'); // an interrupted final save (<run>/.final.tmp-*)
    writeFileAtomic(configFile, `${JSON.stringify(c, null, 2)}\n`);
  });
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

/** Writes the finished model with its tokenizer to <runDir>/final (loadable by eval and RL). */
/**
 * Writes the run's final model, its tokenizer, and (when given) its chat.json — the chat template
 * the model was trained on, which `tinyseek serve` reads.
 */
export async function saveFinalModel(runDir: string, model: DeepSeekV3, tok: Tokenizer, log: (s: string) => void, chat?: object | null): Promise<string> {
  const finalDir = path.join(runDir, 'final');
  await saveCheckpoint(finalDir, model);
  tok.save(path.join(finalDir, 'tokenizer.json'));
  if (chat) writeFileAtomic(path.join(finalDir, 'chat.json'), `${JSON.stringify(chat)}\n`);
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
export function checkpointWriter(
  runDir: string,
  o: CheckpointWriterOptions,
): (step: number, counters: { tokensSeen: number; elapsed: number }) => Promise<string> {
  return async (step, counters) => {
    o.flush();
    try {
      return await saveTrainingCheckpoint(runDir, {
        model: o.model,
        optimizer: o.optimizer,
        tokenizer: o.tokenizer,
        keep: o.keep,
        state: { kind: o.kind, step, tokensSeen: counters.tokensSeen, elapsed: counters.elapsed, data: o.data(), rng: null, config: o.config },
      });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (!code) throw e;
      let previous = 'no earlier checkpoint';
      try {
        const l = latestCheckpoint(runDir);
        if (l) previous = `latest.json still points at the last complete checkpoint, ${l.dir} (step ${l.step})`;
      } catch {
        // reported as it is
      }
      throw new Error(
        `writing the checkpoint of step ${step} in ${runDir} failed: ${fsReason(code)} (${(e as Error).message}); ${previous}. Free space or fix the directory, then continue with --resume`,
      );
    }
  };
}
