/**
 * A draft head for speculative decoding: DeepSeek-V3's multi-token-prediction module trained on top
 * of a model that was trained without one. The base model's weights are loaded and frozen; one MTP
 * module (its own decoder layer, norms and projection; the embedding and output head are the base
 * model's, shared) learns to predict token t+2 from the base's final hidden state at t and the
 * embedding of t+1, on the base's own pretraining corpus encoded with its tokenizer. The loss is the
 * module's cross-entropy alone, so the base model's predictions are unchanged bit for bit — which is
 * what speculative decoding needs: the drafts only decide how many tokens a step keeps.
 *
 * Validation reports the head's accuracy (its argmax equals the actual t+2) and its agreement with
 * the base model's own greedy choice at t+2 given the true t+1 — the acceptance rate greedy
 * speculative decoding would see on the corpus.
 *
 * It knows the model, the corpus and the run layer; not the engine.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { noGrad, tensor, tidy } from '../core/index.ts';
import { IGNORE_INDEX, PretrainLoader, corpusDocument, encodeDocument, packDocuments } from '../data/index.ts';
import type { IteratorState } from '../data/shuffle.ts';
import { loadWeightsInto } from '../model/checkpoint.ts';
import { parseConfig } from '../model/config.ts';
import { DeepSeekV3 } from '../model/transformer.ts';
import { AdamW, weightDecayGroups } from '../nn/index.ts';
import { pointLatestAt } from '../run/checkpointing.ts';
import { readJsonObject } from '../run/config-file.ts';
import { checkpointWriter, openRunDir, resumePoint, saveFinalModel } from '../run/run-dir.ts';
import { openRunSink } from '../run/run-sink.ts';
import { Tokenizer } from '../tokenizer/index.ts';
import type { MtpHeadConfig } from './config.ts';
import { VAL_OFFSET } from './data-prep.ts';
import { type LoopResult, type MetricRecord, runTrainingLoop } from './loop.ts';
import { RUN_CONTROL_KEYS, scheduleOf } from './pretrain.ts';

export interface MtpHeadOptions {
  resume?: boolean;
  stopAfter?: number;
  log?: (s: string) => void;
}

export interface MtpHeadResult extends LoopResult {
  runDir: string;
  finalDir: string | null;
  lastEval: MetricRecord | null;
}

/**
 * The corpus a checkpoint was pretrained on, from its pretraining.json or its run's config.json. A
 * search corpus recorded before `search.compareTarget` or `search.inlineHit` existed was an older
 * trace format: it is pinned so (no target in the headers, no caught claims, the hit on a line of its
 * own), not read with today's defaults.
 */
export function pretrainingCorpusOf(dir: string): Record<string, unknown> | null {
  for (const f of [path.join(dir, 'pretraining.json'), path.join(dir, '..', 'config.json')]) {
    if (!fs.existsSync(f)) continue;
    const j = readJsonObject(f);
    const c = (j.config as Record<string, unknown> | undefined) ?? j;
    const corpus = c.corpus as Record<string, unknown> | undefined;
    if (!corpus) continue;
    const search = (corpus.search as Record<string, unknown> | undefined) ?? {};
    if (corpus.kind !== 'search') return corpus;
    const pinned = { ...search };
    if (search.compareTarget === undefined) Object.assign(pinned, { compareTarget: false, claimShare: 0 });
    if (search.inlineHit === undefined) pinned.inlineHit = false;
    return { ...corpus, search: pinned };
  }
  return null;
}

export async function trainMtpHead(c: MtpHeadConfig, o: MtpHeadOptions = {}): Promise<MtpHeadResult> {
  const log = o.log ?? ((s: string) => console.log(s));
  if (!fs.existsSync(path.join(c.from, 'config.json'))) throw new Error(`${c.from} has no config.json; pass --from a trained checkpoint directory`);
  const { runDir, latest } = openRunDir(c, o.resume, RUN_CONTROL_KEYS);
  const tok = Tokenizer.load(path.join(c.from, 'tokenizer.json'));
  const base = readJsonObject(path.join(c.from, 'config.json'));
  if (Number(base.num_nextn_predict_layers ?? 0) > 0) log(`${c.from} already has an MTP module; training a new one in its place`);
  const model = new DeepSeekV3(parseConfig({ ...base, num_nextn_predict_layers: 1 }), { seed: c.seed });
  const report = loadWeightsInto(model, c.from, { strict: false });
  log(`mtp-head ${c.name}: ${c.from} loaded (${report.loaded} tensors); training a new MTP module (${report.missing.length} tensors), the rest frozen`);
  const trainable = new Set(model.mtp[0].parameters());
  for (const p of model.parameters()) if (!trainable.has(p)) p.requiresGrad_(false);

  const encode = (start: number, n: number): number[][] => Array.from({ length: n }, (_, i) => encodeDocument(tok, corpusDocument(c.corpus, start + i).text));
  const pack = { seqLen: c.seqLen, bos: tok.special.bos, eos: tok.special.eos, layout: 'documents' as const, pad: tok.special.pad };
  const train = packDocuments(encode(0, c.trainDocuments), pack);
  const val = packDocuments(encode(VAL_OFFSET, c.valDocuments), pack);
  log(`data: ${train.numSequences} training rows of ${c.seqLen} tokens, ${val.numSequences} validation rows (the base model's corpus and tokenizer)`);

  const optimizer = new AdamW(weightDecayGroups(model, c.optim.weightDecay), { lr: c.optim.lr, betas: c.optim.betas, eps: c.optim.eps });
  const { step: startStep, tokensSeen, elapsed, data: dataState } = resumePoint(latest, model, optimizer, log);
  const loader = new PretrainLoader(train, { batchSize: c.batchSize, seed: c.seed, resume: dataState as IteratorState | undefined });
  const valLoader = (): PretrainLoader => new PretrainLoader(val, { batchSize: c.batchSize, seed: 'val' });
  const sink = openRunSink(runDir, { total: c.steps, resumeAt: o.resume ? startStep : null, logEvery: c.logEvery, log });
  const toTensor = (data: Int32Array, shape: readonly number[]) => tensor(data, { shape, dtype: 'int64' });

  let result: LoopResult;
  try {
    result = await runTrainingLoop({
      model,
      optimizer,
      schedule: scheduleOf(c.optim, c.steps),
      startStep,
      steps: c.steps,
      gradAccum: c.gradAccum,
      clipNorm: c.optim.clipNorm,
      mtpWeight: 1,
      // the frozen model's expert biases must not move
      biasGamma: () => 0,
      nextBatch: () => {
        const b = loader.next();
        let tokens = 0;
        for (const t of b.targets) if (t !== IGNORE_INDEX) tokens++;
        return { inputs: toTensor(b.inputs, b.shape), targets: toTensor(b.targets, b.shape), tokens };
      },
      loss: (m, b) => {
        const out = m.loss(b.inputs, b.targets, { mtpWeight: 1 });
        return { ...out, loss: out.mtpLosses[0] };
      },
      evalEvery: c.evalEvery,
      evaluate: async (step) => {
        const r = validateHead(model, valLoader(), c.evalBatches);
        sink.log(
          `step ${step}: MTP head loss ${r.mtp_val_loss.toFixed(4)}, right ${(r.mtp_accuracy * 100).toFixed(1)}%, agrees with the model's own greedy choice ${(r.mtp_agreement * 100).toFixed(1)}%`,
        );
        return r;
      },
      checkpointEvery: c.checkpointEvery,
      save: checkpointWriter(runDir, {
        model,
        optimizer,
        tokenizer: tok,
        keep: c.keepCheckpoints,
        kind: 'mtp-head',
        config: c,
        data: () => loader.state(),
        flush: () => sink.flush(),
      }),
      sink,
      tokensSeen,
      elapsed,
      resumedFrom: latest,
      repoint: (dir) => pointLatestAt(runDir, dir),
      stopAfter: o.stopAfter,
    });
  } finally {
    sink.close();
  }
  const chatFile = path.join(c.from, 'chat.json');
  const chat = fs.existsSync(chatFile) ? (JSON.parse(fs.readFileSync(chatFile, 'utf8')) as object) : null;
  const finalDir = result.stoppedBy === 'done' ? await saveFinalModel(runDir, model, tok, log, chat) : null;
  await sink.plot();
  return { ...result, runDir, finalDir, lastEval: sink.lastEval() };
}

/** The head's validation loss, accuracy on t+2, and agreement with the model's greedy choice at t+2. */
function validateHead(model: DeepSeekV3, loader: PretrainLoader, batches: number): { mtp_val_loss: number; mtp_accuracy: number; mtp_agreement: number } {
  let loss = 0;
  let n = 0;
  let right = 0;
  let agree = 0;
  let counted = 0;
  const was = model.training;
  model.eval();
  try {
    for (let i = 0; i < batches; i++) {
      tidy(() =>
        noGrad(() => {
          const b = loader.next();
          const [B, T] = b.shape;
          const inputs = tensor(b.inputs, { shape: [B, T], dtype: 'int64' });
          const targets = tensor(b.targets, { shape: [B, T], dtype: 'int64' });
          const out = model.loss(inputs, targets, { mtpWeight: 1 });
          loss += out.mtpLosses[0].item();
          n++;
          const { logits, hidden } = model.forward(inputs);
          const mtp = model.mtpLogits(inputs, hidden).logits[0].argmax(-1).toTypedArray(); // (B, T−1): position i predicts t_{i+2}
          const main = logits.argmax(-1).toTypedArray(); // (B, T): position i predicts t_{i+1}
          for (let r = 0; r < B; r++) {
            for (let t = 0; t < T - 2; t++) {
              const target2 = b.targets[r * T + t + 1]; // t_{i+2}
              if (target2 === IGNORE_INDEX) continue;
              const m = Number(mtp[r * (T - 1) + t]);
              if (m === target2) right++;
              if (m === Number(main[r * T + t + 1])) agree++;
              counted++;
            }
          }
        }),
      );
    }
  } finally {
    if (was) model.train(true);
  }
  return { mtp_val_loss: loss / n, mtp_accuracy: right / Math.max(counted, 1), mtp_agreement: agree / Math.max(counted, 1) };
}
