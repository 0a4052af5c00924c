/**
 * `tinyseek pretrain`: the base model on the synthetic corpus.
 *
 *   data (cached) → model from a preset (vocabulary = the tokenizer's; balancing as configured) →
 *   AdamW with decay groups, warmup + cosine or WSD → the loop (loop.ts) with validation loss, bits
 *   per byte and sample generations every evalEvery steps, checkpoints every checkpointEvery →
 *   <run>/final/ (the model in the HF layout with its tokenizer) and plots of the run.
 *
 * A run lives in <runsDir>/<name>/: config.json (the effective training config), metrics.jsonl,
 * samples.jsonl, checkpoints/, final/, plots/. `resume` continues from checkpoints/latest.json and
 * refuses a config that differs in anything but the run-control fields.
 *
 * It wires parts together; the parts know nothing of each other.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { z } from 'zod';
import { type IteratorState, PretrainLoader, TASK_NAMES, generateProblems, toTensor } from '../data/index.ts';
import { arithProbe, formatArithProbe } from '../eval/index.ts';
import { type ModelConfig, loadPreset, parseConfig, readConfigFile } from '../model/config.ts';
import { DeepSeekV3 } from '../model/transformer.ts';
import { AdamW, type Schedule, warmupCosine, warmupStableDecay, weightDecayGroups } from '../nn/index.ts';
import { pointLatestAt } from '../run/checkpointing.ts';
import { configDifferences as diffConfigs, openRunDir, checkpointWriter, resumePoint, runDirOf, saveFinalModel } from '../run/run-dir.ts';
import type { OptimConfig, PretrainConfig } from './config.ts';
import { dataSpecOf, preparePretrainData } from './data-prep.ts';
import { type LoopResult, type MetricRecord, runTrainingLoop } from './loop.ts';
import { type RunSink, openRunSink } from '../run/run-sink.ts';
import { type DataParallel, leadFirst, onLead, openRunDirOnLead, silentSink } from '../run/dp.ts';
import { sampleGenerations } from './samples.ts';
import { byteLengthTensor, validate } from './validation.ts';

export const RUN_CONTROL_KEYS = ['steps', 'evalEvery', 'checkpointEvery', 'keepCheckpoints', 'logEvery', 'sampleCount', 'sampleTokens', 'evalBatches'];

export { runDirOf };

/** Keys (dotted) whose values differ between two pretraining configs, ignoring the run-control keys. */
export function configDifferences(a: unknown, b: unknown): string[] {
  return diffConfigs(a, b, '', RUN_CONTROL_KEYS);
}

export function scheduleOf(o: z.output<typeof OptimConfig>, steps: number): Schedule {
  return o.schedule === 'cosine'
    ? warmupCosine({ maxLr: o.lr, minLr: o.minLr, warmupSteps: o.warmupSteps, totalSteps: steps })
    : warmupStableDecay({ maxLr: o.lr, minLr: o.minLr, warmupSteps: o.warmupSteps, totalSteps: steps, decayFraction: o.decayFraction });
}

/** The model config of a pretraining run: preset or file, overrides, vocabulary, balancing. */
export function modelConfigFor(c: PretrainConfig, vocabSize: number): ModelConfig {
  const base: ModelConfig = c.model.endsWith('.json') || fs.existsSync(path.join(c.model, 'config.json')) ? readConfigFile(c.model) : loadPreset(c.model);
  const raw: Record<string, unknown> = { ...base, ...c.modelOverrides, vocab_size: vocabSize };
  if (typeof raw.max_position_embeddings === 'number' && raw.max_position_embeddings < c.seqLen) raw.max_position_embeddings = c.seqLen;
  if (raw.n_routed_experts) {
    const grouped = typeof raw.n_group === 'number' && raw.n_group > 1;
    if (c.balance === 'aux_free') {
      raw.topk_method = 'noaux_tc';
    } else {
      raw.topk_method = grouped ? 'group_limited_greedy' : 'greedy';
      raw.aux_loss_alpha = c.balance === 'aux_loss' ? c.auxLossAlpha : 0;
    }
  }
  return parseConfig(raw, `model for run ${c.name}`);
}

export function biasGammaOf(c: { balance: string; biasUpdateSpeed: number; biasFreezeFraction: number; steps: number }): (step: number) => number {
  if (c.balance !== 'aux_free') return () => 0;
  const freezeAt = Math.floor(c.steps * (1 - c.biasFreezeFraction));
  return (step) => (step < freezeAt ? c.biasUpdateSpeed : 0);
}

export interface PretrainResult extends LoopResult {
  runDir: string;
  finalDir: string | null;
  lastEval: MetricRecord | null;
}

export interface PretrainOptions {
  resume?: boolean;
  /** Train this many steps of the run, checkpoint, and stop (continue later with resume). */
  stopAfter?: number;
  log?: (s: string) => void;
  /** Data parallelism: this process is one rank of the group (tinyseek launch); rank 0 writes. */
  dp?: DataParallel | null;
}

export async function pretrain(c: PretrainConfig, o: PretrainOptions = {}): Promise<PretrainResult> {
  const dp = o.dp ?? null;
  const lead = !dp || dp.lead;
  const log = lead ? (o.log ?? ((s: string) => console.log(s))) : () => {};
  const { runDir, latest } = dp
    ? await openRunDirOnLead(dp, () => openRunDir(c, o.resume, RUN_CONTROL_KEYS), runDirOf(c), o.resume)
    : openRunDir(c, o.resume, RUN_CONTROL_KEYS);

  const data = await leadFirst(dp, () => preparePretrainData(dataSpecOf(c), c.runsDir, log));
  const tok = data.tokenizer;
  const modelConfig = modelConfigFor(c, tok.vocabSize);
  const model = new DeepSeekV3(modelConfig, { seed: c.seed });
  const optimizer = new AdamW(weightDecayGroups(model, c.optim.weightDecay), { lr: c.optim.lr, betas: c.optim.betas, eps: c.optim.eps });
  const schedule = scheduleOf(c.optim, c.steps);
  const { step: startStep, tokensSeen, elapsed, data: dataState } = resumePoint(latest, model, optimizer, log);
  if (dp) {
    await dp.broadcastModule(model);
    dp.shardOptimizerState(optimizer);
  }
  const loader = new PretrainLoader(data.train, { batchSize: c.batchSize, seed: c.seed, resume: dataState as IteratorState | undefined });
  const bytes = byteLengthTensor(tok);
  // the arithmetic probe at each evaluation: held-out problems of each task the search corpus trains
  const probeSets =
    c.corpus.kind === 'search'
      ? TASK_NAMES.filter((t) => t !== 'wordproblems' && c.corpus.tasks[t] > 0).map(
          (t) => [t, generateProblems(t, { seed: 0, split: 'heldout', n: 64, config: c.corpus[t] })] as const,
        )
      : [];
  const sink: RunSink = lead ? openRunSink(runDir, { total: c.steps, resumeAt: o.resume ? startStep : null, logEvery: c.logEvery, log }) : silentSink();
  log(
    `pretrain ${c.name}: ${model.numParameters()} parameters, ${c.steps} steps of ${c.batchSize * c.gradAccum} × ${c.seqLen} tokens, ` +
      `${data.train.numSequences} training sequences, balance ${c.balance}` +
      (dp ? `, data-parallel over ${dp.worldSize} ranks (${c.batchSize / dp.worldSize} rows each${dp.zero1 ? ', ZeRO-1' : ''})` : ''),
  );

  const evaluate = async (step: number): Promise<MetricRecord> => {
    const r: MetricRecord = { ...validate(model, data.val, bytes, c.evalBatches, c.batchSize) };
    sink.log(`step ${step}: validation loss ${(r.val_loss as number).toFixed(4)}, ${(r.val_bpb as number).toFixed(4)} bits per byte`);
    for (const [task, problems] of probeSets) {
      const a = arithProbe(model, tok, problems, c.corpus.search);
      r[`arith_${task}`] = a.overall.whole;
      sink.log(`  arithmetic probe (${task}): ${formatArithProbe(a)}`);
    }
    if (c.sampleCount > 0) {
      for (const s of await sampleGenerations(model, tok, { count: c.sampleCount, maxNewTokens: c.sampleTokens, seed: c.seed, taskConfigs: c.corpus })) {
        sink.sample({ step, ...s });
        sink.log(`  sample (${String(s.task)}, reward ${String(s.reward)}): ${JSON.stringify(String(s.completion).slice(0, 160))}`);
      }
    }
    return r;
  };
  const save = checkpointWriter(runDir, {
    model,
    optimizer,
    tokenizer: tok,
    keep: c.keepCheckpoints,
    kind: 'pretrain',
    config: c,
    data: () => loader.state(),
    flush: () => sink.flush(),
  });
  const repoint = (dir: string): void => pointLatestAt(runDir, dir);
  const io = dp ? onLead(dp, optimizer, { save, evaluate, repoint }) : { save, evaluate, repoint };

  let result: LoopResult;
  try {
    result = await runTrainingLoop({
      model,
      optimizer,
      schedule,
      startStep,
      steps: c.steps,
      gradAccum: c.gradAccum,
      clipNorm: c.optim.clipNorm,
      mtpWeight: c.mtpWeight,
      biasGamma: biasGammaOf(c),
      nextBatch: () => {
        const b = loader.next();
        let tokens = 0;
        for (const t of b.targets) if (t !== -100) tokens++;
        return { inputs: toTensor({ data: b.inputs, shape: b.shape }), targets: toTensor({ data: b.targets, shape: b.shape }), tokens };
      },
      evalEvery: c.evalEvery,
      checkpointEvery: c.checkpointEvery,
      ...io,
      sink,
      tokensSeen,
      elapsed,
      resumedFrom: latest,
      stopAfter: o.stopAfter,
      dp,
    });
  } finally {
    sink.close();
  }

  const chat = { template: 'r1-zero', frame: c.corpus.countdown.promptFrame === 'compact' ? 'compact' : 'tinyzero', ...(c.fimRate > 0 ? { fim: true } : {}) };
  const finalDir = result.stoppedBy === 'done' && lead ? await saveFinalModel(runDir, model, tok, log, chat) : null;
  await sink.plot();
  if (dp) await dp.barrier();
  return { ...result, runDir, finalDir, lastEval: sink.lastEval() };
}
