/**
 * The language-model step of pretraining and SFT, on the run layer's driver (run/driver.ts). One step:
 *   lr from the schedule → gradAccum micro-batches of forward + loss/gradAccum + backward →
 *   the shared optimizer step (clip, refuse a non-finite loss or norm, AdamW, the aux-loss-free bias
 *   update) → one metrics line. A language-model loss above 2·ln V stops the run as diverged even
 *   though it is finite. Each micro-batch runs inside tidy(), so memory stays flat over any number
 *   of steps.
 *
 * This module knows losses and micro-batches; the driver owns the step loop, signals, evaluation
 * and checkpoint cadence, the caller owns data, evaluation and where checkpoints go.
 */
import { type Tensor, tidy } from '../core/index.ts';
import type { DeepSeekV3, LossOutput } from '../model/transformer.ts';
import { type AdamW, type Schedule, applyLr } from '../nn/index.ts';
import { lmRunaway } from '../run/divergence.ts';
import { type DriverResult, type LoopSink, type StepOutput, loadFigures, optimizerStep, parametersFinite, runSteps } from '../run/driver.ts';
import type { MetricRecord } from '../run/metrics.ts';
import type { DataParallel } from '../run/dp.ts';

export interface Batch {
  /** (B, T) int64 input ids */
  inputs: Tensor;
  /** (B, T) int64 targets, -100 where ignored */
  targets: Tensor;
  /** Targets that count (not ignored). */
  tokens: number;
}

export type { MetricRecord, MetricValue } from '../run/metrics.ts';
export type { LoopSink } from '../run/driver.ts';
export { TrainingDivergedError } from '../run/divergence.ts';

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
  /** Points latest.json back at a checkpoint after a runaway (the run directory's). */
  repoint?(dir: string): void;
  sink: LoopSink;
  /** Tokens and seconds already accounted for by a resumed run. */
  tokensSeen?: number;
  elapsed?: number;
  /** The checkpoint this loop resumed from. */
  resumedFrom?: { dir: string; step: number } | null;
  /** Pause after this many steps of this invocation: checkpoint and return, resumable later. */
  stopAfter?: number;
  /**
   * Data parallelism: nextBatch() gives the global batch, this rank trains on its rows, and the
   * step's gradients, figures and expert load are summed over the ranks (run/dp.ts).
   */
  dp?: DataParallel | null;
}

export type LoopResult = DriverResult;

interface MicroNumbers {
  loss: number;
  lmLoss: number;
  mtpLoss: number | null;
  auxLoss: number | null;
  tokens: number;
}

/**
 * One micro-batch's forward and backward. With data parallelism the loss is weighted by this rank's
 * share of the batch's targets, so that the figures and gradients summed over the ranks are those
 * of one process on the whole batch.
 */
function microStep(o: LoopOptions): MicroNumbers {
  return tidy(() => {
    let batch = o.nextBatch();
    let weight = 1;
    if (o.dp) {
      const sh = o.dp.shard(batch.inputs, batch.targets, batch.tokens);
      batch = { inputs: sh.inputs, targets: sh.targets, tokens: sh.tokens };
      weight = sh.globalTokens > 0 ? sh.tokens / sh.globalTokens : 0;
      if (sh.tokens === 0) return { loss: 0, lmLoss: 0, mtpLoss: null, auxLoss: null, tokens: 0 };
    }
    const out = o.loss ? o.loss(o.model, batch) : o.model.loss(batch.inputs, batch.targets, { mtpWeight: o.mtpWeight });
    const scale = weight / o.gradAccum;
    (scale === 1 ? out.loss : out.loss.mul(scale)).backward();
    const mtp = out.mtpLosses.length ? out.mtpLosses.reduce((a, t) => a + t.item(), 0) / out.mtpLosses.length : null;
    const w = (x: number | null): number | null => (x === null ? null : x * weight);
    return {
      loss: out.loss.item() * weight,
      lmLoss: out.lmLoss.item() * weight,
      mtpLoss: w(mtp),
      auxLoss: w(out.auxLoss ? out.auxLoss.item() : null),
      tokens: batch.tokens,
    };
  });
}

/** Sums the step's micro-batch figures, gradients and expert load over the ranks. */
async function syncStep(o: LoopOptions, dp: DataParallel, micro: MicroNumbers[]): Promise<MicroNumbers[]> {
  const load = o.model.expertLoad();
  const layers = [...load.keys()];
  const extras = micro.flatMap((m) => [m.loss, m.lmLoss, m.mtpLoss ?? 0, m.auxLoss ?? 0, m.tokens]);
  for (const l of layers) extras.push(...(load.get(l)?.tokens ?? []));
  const sums = await dp.syncGradients(o.model.parameters(), extras);
  let at = micro.length * 5;
  const global = new Map<number, number[]>();
  for (const l of layers) {
    const n = load.get(l)?.tokens.length ?? 0;
    global.set(l, sums.slice(at, at + n));
    at += n;
  }
  o.model.setExpertLoad(global);
  const hasMtp = micro.some((m) => m.mtpLoss !== null);
  const hasAux = micro.some((m) => m.auxLoss !== null);
  return micro.map((_, i) => ({
    loss: sums[i * 5],
    lmLoss: sums[i * 5 + 1],
    mtpLoss: hasMtp ? sums[i * 5 + 2] : null,
    auxLoss: hasAux ? sums[i * 5 + 3] : null,
    tokens: sums[i * 5 + 4],
  }));
}

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

export function runTrainingLoop(o: LoopOptions): Promise<LoopResult> {
  const vocab = o.model.config.vocab_size;
  return runSteps({
    startStep: o.startStep,
    steps: o.steps,
    evalEvery: o.evalEvery,
    evaluate: o.evaluate,
    checkpointEvery: o.checkpointEvery,
    save: o.save,
    repoint: o.repoint,
    weightsFinite: () => parametersFinite(o.model),
    sink: o.sink,
    tokensSeen: o.tokensSeen,
    elapsed: o.elapsed,
    resumedFrom: o.resumedFrom,
    stopAfter: o.stopAfter,
    anyRank: o.dp ? (flag) => (o.dp as DataParallel).any(flag) : undefined,
    async runStep(step): Promise<StepOutput> {
      const t0 = performance.now();
      const lr = o.schedule(step - 1);
      applyLr(o.optimizer, lr);
      let micro: MicroNumbers[] = [];
      for (let m = 0; m < o.gradAccum; m++) {
        if (o.dp && m === o.gradAccum - 1) o.dp.armGradients(o.model.parameters()); // its buckets sum during this backward
        micro.push(microStep(o));
      }
      const tc = performance.now();
      if (o.dp) micro = await syncStep(o, o.dp, micro);
      const syncSeconds = (performance.now() - tc) / 1000;
      const loss = mean(micro.map((x) => x.loss));
      const lmLoss = mean(micro.map((x) => x.lmLoss));
      const runaway = Number.isFinite(lmLoss) ? lmRunaway(lmLoss, vocab) : null;
      if (runaway) {
        o.optimizer.zeroGrad();
        return { record: {}, progress: {}, tokens: 0, runaway, lr };
      }
      const { gradNorm, load } = await optimizerStep(o.model, o.optimizer, { loss, clipNorm: o.clipNorm, gamma: o.biasGamma(step - 1), dp: o.dp });
      const tokens = micro.reduce((a, x) => a + x.tokens, 0);
      const tokensPerSecond = tokens / ((performance.now() - t0) / 1000);
      const mtp = micro.every((x) => x.mtpLoss === null) ? null : mean(micro.map((x) => x.mtpLoss ?? 0));
      const aux = micro.every((x) => x.auxLoss === null) ? null : mean(micro.map((x) => x.auxLoss ?? 0));
      const { expert_load_max_over_mean, expert_load } = loadFigures(load);
      return {
        record: {
          kind: 'train',
          loss,
          lm_loss: lmLoss,
          mtp_loss: mtp,
          aux_loss: aux,
          lr,
          grad_norm: gradNorm,
          tokens,
          tokens_per_s: tokensPerSecond,
          expert_load_max_over_mean,
          expert_load,
          ...(o.dp ? { dp_world: o.dp.worldSize, dp_sync_s: syncSeconds, dp_bytes: o.dp.lastBytes, dp_overlap: o.dp.lastOverlap } : {}),
        },
        progress: { loss, tokensPerSecond },
        tokens,
        lr,
      };
    },
  });
}
