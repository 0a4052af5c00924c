/**
 * The step driver every training stage runs on (pretraining, SFT, RL; distillation next): it calls
 * the stage's step, adds the run's counters to the step's metrics line, evaluates and checkpoints
 * when due, and stops cleanly.
 *
 *   Ctrl-C (SIGINT, also SIGTERM) finishes the current step, writes a checkpoint and returns; a
 *   second Ctrl-C exits at once (the last complete checkpoint stays valid). `stopAfter` pauses the
 *   same way after that many steps of this invocation.
 *   A step whose loss or gradient is not finite (NonFiniteStepError, thrown before the optimizer
 *   step) or that reports finite runaway stops the run with TrainingDivergedError, naming the last
 *   checkpoint whose weights are known good. Step k's loss is measured on the weights after step
 *   k − 1, so a runaway found at step k condemns the checkpoint of step k − 1 too; latest.json is
 *   then pointed back at the good one, so that `--resume` starts from it.
 *
 * And the optimizer step the stages share: clip the global norm → refuse a non-finite loss or norm
 * → AdamW → the aux-loss-free bias update (γ), returning the expert load of the step's tokens.
 *
 * It knows steps, counters and checkpoints by name; the stage owns data, losses and what a
 * checkpoint holds.
 */
import { noGrad, tidy } from '../core/index.ts';
import type { DeepSeekV3 } from '../model/transformer.ts';
import { type AdamW, clipGradNorm } from '../nn/index.ts';
import type { DataParallel } from './dp.ts';
import { NonFiniteStepError, TrainingDivergedError } from './divergence.ts';
import type { MetricRecord } from './metrics.ts';
import type { ProgressFields } from './progress.ts';

export interface LoopSink {
  /** One line per step (and per evaluation). */
  record(r: MetricRecord): void;
  /** Progress display: called after each step. */
  progress(step: number, fields: ProgressFields): void;
  log(line: string): void;
}

export interface StepOutput {
  /** The step's metrics line (kind, figures); the driver adds step, tokens_seen and elapsed_s. */
  record: MetricRecord;
  progress: ProgressFields;
  /** Tokens the step trained on (pretraining, SFT) or generated (RL). */
  tokens: number;
  /** Why the weights the step started from have run away (lmRunaway, policyRunaway), or null. */
  runaway?: string | null;
  lr: number;
}

export interface DriverOptions {
  /** Steps already done (0, or the resumed checkpoint's step). */
  startStep: number;
  steps: number;
  /** Runs step number `step` (1-based). */
  runStep(step: number): Promise<StepOutput>;
  /** Every this many steps and at the last one (0: never); the driver records {kind: 'eval', step, ...}. */
  evalEvery: number;
  evaluate?(step: number): Promise<MetricRecord>;
  checkpointEvery: number;
  /** Writes a checkpoint after `step` steps; returns its directory. */
  save(step: number, counters: { tokensSeen: number; elapsed: number }): Promise<string>;
  /** Points the run's latest.json back at a checkpoint directory (after a runaway). */
  repoint?(dir: string): void;
  /** Whether every weight is finite now (tells a bad batch from bad weights after a NaN loss). */
  weightsFinite?(): boolean;
  sink: LoopSink;
  /** Tokens and seconds already accounted for by a resumed run. */
  tokensSeen?: number;
  elapsed?: number;
  /** The checkpoint this invocation resumed from. */
  resumedFrom?: { dir: string; step: number } | null;
  /** Pause after this many steps of this invocation: checkpoint and return, resumable later. */
  stopAfter?: number;
  /** Data parallelism: whether any rank was interrupted (so every rank stops at the same step). */
  anyRank?(interrupted: boolean): Promise<boolean>;
}

export interface DriverResult {
  stoppedBy: 'done' | 'interrupt' | 'paused';
  step: number;
  tokensSeen: number;
  elapsed: number;
  lastCheckpoint: string | null;
}

/** Ctrl-C handling for the length of a run: the first asks for a clean stop, the second exits. */
function interruptWatch(log: (s: string) => void): { requested(): boolean; dispose(): void } {
  let interrupted = false;
  const onSignal = (): void => {
    if (interrupted) {
      log('second interrupt: exiting now; the last complete checkpoint stays valid');
      process.exit(130);
    }
    interrupted = true;
    log('interrupt: finishing this step, then writing a checkpoint (press Ctrl-C again to exit at once)');
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    requested: () => interrupted,
    dispose() {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}

export async function runSteps(o: DriverOptions): Promise<DriverResult> {
  const watch = interruptWatch((s) => o.sink.log(s));
  let tokensSeen = o.tokensSeen ?? 0;
  let elapsed = o.elapsed ?? 0;
  const saved: { dir: string; step: number }[] = o.resumedFrom ? [o.resumedFrom] : [];
  /** The newest checkpoint written before `step` (its weights are not known bad). */
  const goodBefore = (step: number): { dir: string; step: number } | null => saved.filter((c) => c.step < step).at(-1) ?? null;
  const diverged = (step: number, what: string, lr: number, badFrom: number): TrainingDivergedError => {
    const good = goodBefore(badFrom);
    const newest = saved.at(-1);
    let note = '';
    if (good && newest && newest !== good && o.repoint) {
      o.repoint(good.dir);
      note = ` (latest.json now points at it: the weights of step ${badFrom} on had run away)`;
    }
    return new TrainingDivergedError(step, what, lr, good?.dir ?? null, note);
  };
  let step = o.startStep;
  try {
    while (step < o.steps) {
      const t0 = performance.now();
      let out: StepOutput;
      try {
        out = await o.runStep(step + 1);
      } catch (e) {
        if (!(e instanceof NonFiniteStepError)) throw e;
        // the weights after step `step` gave it; if they are finite, the batch did, and they are good
        const weightsOk = o.weightsFinite ? o.weightsFinite() : true;
        throw diverged(step + 1, e.what, e.lr, weightsOk ? step + 1 : step);
      }
      if (out.runaway) throw diverged(step + 1, out.runaway, out.lr, step);
      step += 1;
      elapsed += (performance.now() - t0) / 1000;
      tokensSeen += out.tokens;
      o.sink.record({ kind: out.record.kind ?? 'train', step, ...out.record, tokens_seen: tokensSeen, elapsed_s: elapsed });
      o.sink.progress(step, out.progress);
      if (o.evaluate && o.evalEvery > 0 && (step % o.evalEvery === 0 || step === o.steps)) {
        const r = await o.evaluate(step);
        o.sink.record({ kind: 'eval', step, ...r });
      }
      const pause = o.stopAfter !== undefined && step - o.startStep >= o.stopAfter && step < o.steps;
      const interrupted = o.anyRank ? await o.anyRank(watch.requested()) : watch.requested();
      if (step % o.checkpointEvery === 0 || step === o.steps || interrupted || pause) {
        saved.push({ dir: await o.save(step, { tokensSeen, elapsed }), step });
      }
      const lastCheckpoint = saved.at(-1)?.dir ?? null;
      if (interrupted) return { stoppedBy: 'interrupt', step, tokensSeen, elapsed, lastCheckpoint };
      if (pause) return { stoppedBy: 'paused', step, tokensSeen, elapsed, lastCheckpoint };
      await new Promise((r) => setImmediate(r)); // signals, finalizers
    }
    return { stoppedBy: 'done', step, tokensSeen, elapsed, lastCheckpoint: saved.at(-1)?.dir ?? null };
  } finally {
    watch.dispose();
  }
}

export interface OptimizerStepResult {
  gradNorm: number;
  /** Expert load of the tokens since the last bias update (read before the update resets it). */
  load: ReturnType<DeepSeekV3['expertLoad']>;
}

/**
 * Clip → refuse a non-finite loss or norm (NonFiniteStepError; the gradients are cleared and the
 * weights untouched) → AdamW step → zero the gradients → the bias update with γ. With data
 * parallelism the gradients and the expert load must already be summed over the ranks
 * (DataParallel.syncGradients), and the step is the group's (ZeRO-1 when it shards).
 */
export async function optimizerStep(
  model: DeepSeekV3,
  optimizer: AdamW,
  o: { loss: number; clipNorm: number; gamma: number; what?: string; dp?: DataParallel | null },
): Promise<OptimizerStepResult> {
  const gradNorm = clipGradNorm(model.parameters(), o.clipNorm);
  if (!Number.isFinite(o.loss) || !Number.isFinite(gradNorm)) {
    optimizer.zeroGrad();
    throw new NonFiniteStepError(
      !Number.isFinite(o.loss) ? `the ${o.what ?? 'loss'} is ${o.loss}` : `the gradient norm is ${gradNorm}`,
      optimizer.groups[0].lr,
    );
  }
  if (o.dp) await o.dp.step(optimizer);
  else optimizer.step();
  optimizer.zeroGrad();
  const load = model.expertLoad();
  model.updateBias(o.gamma);
  return { gradNorm, load };
}

/** The metrics' expert-load figures: max/mean tokens per expert by layer, and the largest. */
export function loadFigures(load: OptimizerStepResult['load']): { expert_load_max_over_mean: number | null; expert_load: Record<string, number> } {
  const ratio: Record<string, number> = {};
  for (const [layer, l] of load) ratio[String(layer)] = +l.maxOverMean.toFixed(4);
  return { expert_load_max_over_mean: Object.keys(ratio).length ? Math.max(...Object.values(ratio)) : null, expert_load: ratio };
}

/** Whether every parameter of the model is finite. */
export function parametersFinite(model: DeepSeekV3): boolean {
  return tidy(() => noGrad(() => model.parameters().every((p) => p.isfinite().all().item() === 1)));
}
