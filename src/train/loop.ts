/**
 * The optimisation loop shared by pretraining and SFT. One step:
 *   lr from the schedule → gradAccum micro-batches of forward + loss/gradAccum + backward →
 *   clip the global gradient norm → stop if the loss or the norm is not finite → AdamW step →
 *   the aux-loss-free bias update (γ) → one metrics line → evaluation / checkpoint when due.
 * Each micro-batch runs inside tidy(), so memory stays flat over any number of steps.
 *
 * Ctrl-C (SIGINT, also SIGTERM) finishes the current step, writes a checkpoint and returns; a second
 * Ctrl-C exits at once (the last complete checkpoint stays valid). A loss or gradient norm that is
 * NaN or infinite stops the run before the optimizer touches the weights, with a message naming the
 * step and the last good checkpoint.
 *
 * This loop knows steps, losses and the hooks it is given; the caller owns data, evaluation and
 * where checkpoints go.
 */
import { type Tensor, tidy } from '../core/index.ts';
import type { LossOutput } from '../model/transformer.ts';
import type { DeepSeekV3 } from '../model/transformer.ts';
import { type AdamW, type Schedule, applyLr, clipGradNorm } from '../nn/index.ts';
import type { MetricRecord } from './metrics.ts';
import type { ProgressFields } from './progress.ts';

export interface Batch {
  /** (B, T) int64 input ids */
  inputs: Tensor;
  /** (B, T) int64 targets, -100 where ignored */
  targets: Tensor;
  /** Targets that count (not ignored). */
  tokens: number;
}

export type { MetricRecord, MetricValue } from './metrics.ts';

export interface LoopSink {
  /** One line per step (and per evaluation). */
  record(r: MetricRecord): void;
  /** Progress display: called after each step. */
  progress(step: number, fields: ProgressFields): void;
  log(line: string): void;
}

export interface LoopOptions {
  model: DeepSeekV3;
  optimizer: AdamW;
  schedule: Schedule;
  /** Steps already done (0, or the resumed checkpoint's step). */
  startStep: number;
  steps: number;
  gradAccum: number;
  clipNorm: number;
  /** The micro-batch source; called inside tidy(). */
  nextBatch(): Batch;
  /** Loss of one micro-batch (default: the model's loss with mtpWeight). */
  loss?(model: DeepSeekV3, batch: Batch): LossOutput;
  mtpWeight: number;
  /** γ of the bias update at a step (0: no update). */
  biasGamma(step: number): number;
  evalEvery: number;
  evaluate(step: number): Promise<MetricRecord>;
  checkpointEvery: number;
  /** Writes a checkpoint after `step` steps; returns where. */
  save(step: number, extra: { tokensSeen: number; elapsed: number }): Promise<string>;
  sink: LoopSink;
  /** Tokens and seconds already accounted for by a resumed run. */
  tokensSeen?: number;
  elapsed?: number;
  /** The last complete checkpoint before this loop started (for the divergence message). */
  lastCheckpoint?: string | null;
  /** Pause after this many steps of this invocation: checkpoint and return, resumable later. */
  stopAfter?: number;
}

export class TrainingDivergedError extends Error {
  readonly step: number;
  constructor(step: number, what: string, lr: number, lastCheckpoint: string | null) {
    super(
      `training diverged at step ${step}: ${what} (lr ${lr.toExponential(3)}). ` +
        (lastCheckpoint
          ? `The last good checkpoint is ${lastCheckpoint}; continue from it with --resume and a lower learning rate or clip norm.`
          : 'No checkpoint was written yet; restart with a lower learning rate or clip norm.'),
    );
    this.name = 'TrainingDivergedError';
    this.step = step;
  }
}

export interface LoopResult {
  stoppedBy: 'done' | 'interrupt' | 'paused';
  step: number;
  tokensSeen: number;
  elapsed: number;
  lastCheckpoint: string | null;
}

interface StepNumbers {
  loss: number;
  lmLoss: number;
  mtpLoss: number | null;
  auxLoss: number | null;
  tokens: number;
}

function microStep(o: LoopOptions): StepNumbers {
  return tidy(() => {
    const batch = o.nextBatch();
    const out = o.loss ? o.loss(o.model, batch) : o.model.loss(batch.inputs, batch.targets, { mtpWeight: o.mtpWeight });
    (o.gradAccum === 1 ? out.loss : out.loss.div(o.gradAccum)).backward();
    const mtp = out.mtpLosses.length ? out.mtpLosses.reduce((a, t) => a + t.item(), 0) / out.mtpLosses.length : null;
    return { loss: out.loss.item(), lmLoss: out.lmLoss.item(), mtpLoss: mtp, auxLoss: out.auxLoss ? out.auxLoss.item() : null, tokens: batch.tokens };
  });
}

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

export async function runTrainingLoop(o: LoopOptions): Promise<LoopResult> {
  let interrupted = false;
  const onSignal = (): void => {
    if (interrupted) {
      o.sink.log('second interrupt: exiting now; the last complete checkpoint stays valid');
      process.exit(130);
    }
    interrupted = true;
    o.sink.log('interrupt: finishing this step, then writing a checkpoint (press Ctrl-C again to exit at once)');
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let tokensSeen = o.tokensSeen ?? 0;
  let elapsed = o.elapsed ?? 0;
  let lastCheckpoint = o.lastCheckpoint ?? null;
  let step = o.startStep;
  const params = o.model.parameters();
  try {
    while (step < o.steps) {
      const t0 = performance.now();
      const lr = o.schedule(step);
      applyLr(o.optimizer, lr);
      const micro: StepNumbers[] = [];
      for (let m = 0; m < o.gradAccum; m++) micro.push(microStep(o));
      const loss = mean(micro.map((x) => x.loss));
      const gradNorm = clipGradNorm(params, o.clipNorm);
      if (!Number.isFinite(loss) || !Number.isFinite(gradNorm)) {
        o.optimizer.zeroGrad();
        throw new TrainingDivergedError(step + 1, !Number.isFinite(loss) ? `the loss is ${loss}` : `the gradient norm is ${gradNorm}`, lr, lastCheckpoint);
      }
      o.optimizer.step();
      o.optimizer.zeroGrad();
      const load = o.model.expertLoad(); // since the last bias update: this step's tokens
      o.model.updateBias(o.biasGamma(step));
      step += 1;
      const seconds = (performance.now() - t0) / 1000;
      elapsed += seconds;
      const tokens = micro.reduce((a, x) => a + x.tokens, 0);
      tokensSeen += tokens;
      const loadRatio: Record<string, number> = {};
      for (const [layer, l] of load) loadRatio[String(layer)] = +l.maxOverMean.toFixed(4);
      const mtp = micro[0].mtpLoss === null ? null : mean(micro.map((x) => x.mtpLoss ?? 0));
      const aux = micro[0].auxLoss === null ? null : mean(micro.map((x) => x.auxLoss ?? 0));
      const tokensPerSecond = tokens / seconds;
      o.sink.record({
        kind: 'train',
        step,
        loss,
        lm_loss: mean(micro.map((x) => x.lmLoss)),
        mtp_loss: mtp,
        aux_loss: aux,
        lr,
        grad_norm: gradNorm,
        tokens,
        tokens_per_s: tokensPerSecond,
        tokens_seen: tokensSeen,
        elapsed_s: elapsed,
        expert_load_max_over_mean: Object.keys(loadRatio).length ? Math.max(...Object.values(loadRatio)) : null,
        expert_load: loadRatio,
      });
      o.sink.progress(step, { loss, tokensPerSecond });
      if (step % o.evalEvery === 0 || step === o.steps) {
        const r = await o.evaluate(step);
        o.sink.record({ kind: 'eval', step, ...r });
      }
      const pause = o.stopAfter !== undefined && step - o.startStep >= o.stopAfter && step < o.steps;
      if (step % o.checkpointEvery === 0 || step === o.steps || interrupted || pause) {
        lastCheckpoint = await o.save(step, { tokensSeen, elapsed });
      }
      if (interrupted) return { stoppedBy: 'interrupt', step, tokensSeen, elapsed, lastCheckpoint };
      if (pause) return { stoppedBy: 'paused', step, tokensSeen, elapsed, lastCheckpoint };
      await new Promise((r) => setImmediate(r)); // signals, finalizers
    }
    return { stoppedBy: 'done', step, tokensSeen, elapsed, lastCheckpoint };
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
