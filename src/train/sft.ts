/**
 * `tinyseek sft`: supervised fine-tuning of a checkpoint on conversations in DeepSeek-R1's chat
 * format, with the loss on assistant tokens only (the SFT mask of encodeChat: each assistant turn
 * after <｜Assistant｜>, through its end-of-sentence token; reasoning included).
 *
 * Conversations come from a JSONL file ({"messages": [{role, content, reasoning_content?}, …]} per
 * line; a bad line stops the run with its line number) or, with data "corpus", from the base
 * corpus's worked solutions whose final answer is right (a small cold-start set, as R1's first
 * stage). A share of them is held out for validation (masked cross-entropy).
 *
 * Everything else — the loop, checkpoints, resume, metrics — is pretraining's.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { crossEntropy, noGrad, tidy } from '../core/index.ts';
import {
  IGNORE_INDEX,
  Rng,
  SftLoader,
  type IteratorState,
  type SftExample,
  conversationFromCompletion,
  corpusDocument,
  encodeSftExample,
  parseCorpusConfig,
  parseJsonLines,
  rewardOf,
  sftBatch,
  toTensor,
} from '../data/index.ts';
import { loadCheckpoint } from '../model/checkpoint.ts';
import type { DeepSeekV3 } from '../model/transformer.ts';
import { AdamW, weightDecayGroups } from '../nn/index.ts';
import { type ChatMessage, Tokenizer } from '../tokenizer/index.ts';
import type { SftConfig } from './config.ts';
import { type LoopResult, type MetricRecord, runTrainingLoop } from './loop.ts';
import { RUN_CONTROL_KEYS, biasGammaOf, scheduleOf } from './pretrain.ts';
import { pointLatestAt } from '../run/checkpointing.ts';
import { openRunDir, checkpointWriter, resumePoint, saveFinalModel } from '../run/run-dir.ts';
import { openRunSink } from '../run/run-sink.ts';

const ROLES = new Set(['system', 'user', 'assistant']);

/** Reads conversations from JSONL; any malformed line is an error naming it. */
export async function readConversations(file: string): Promise<ChatMessage[][]> {
  const out: ChatMessage[][] = [];
  for await (const line of parseJsonLines(file)) {
    if (!line.ok) throw new Error(`${file}:${line.row}: ${line.error}`);
    const v = line.value as { messages?: unknown };
    if (!v || typeof v !== 'object' || !Array.isArray(v.messages) || v.messages.length === 0) {
      throw new Error(`${file}:${line.row}: expected {"messages": [{"role": …, "content": …}, …]}`);
    }
    const messages: ChatMessage[] = v.messages.map((m: unknown, i: number) => {
      const msg = m as { role?: unknown; content?: unknown; reasoning_content?: unknown };
      if (typeof msg.role !== 'string' || !ROLES.has(msg.role) || typeof msg.content !== 'string') {
        throw new Error(`${file}:${line.row}: message ${i} needs a role (system, user or assistant) and a string content`);
      }
      if (msg.reasoning_content !== undefined && typeof msg.reasoning_content !== 'string') {
        throw new Error(`${file}:${line.row}: message ${i}: reasoning_content must be a string`);
      }
      return {
        role: msg.role as ChatMessage['role'],
        content: msg.content,
        ...(msg.reasoning_content !== undefined ? { reasoning_content: msg.reasoning_content } : {}),
      };
    });
    out.push(messages);
  }
  if (out.length === 0) throw new Error(`${file}: no conversation found`);
  return out;
}

/** Conversations from the corpus's right, worked solutions (documents 2e9 + i: none was pretrained on). */
export function corpusConversations(n: number, seed: number): ChatMessage[][] {
  const c = parseCorpusConfig({ seed });
  const out: ChatMessage[][] = [];
  for (let i = 0; out.length < n && i < n * 50; i++) {
    const d = corpusDocument(c, 2_000_000_000 + i);
    if (!d.problem || d.kind !== 'task') continue;
    if (rewardOf(d.completion, d.problem) !== 1) continue;
    out.push(conversationFromCompletion(d.problem, d.completion));
  }
  if (out.length < n) throw new Error(`the corpus gave ${out.length} right solutions of the ${n} asked for`);
  return out;
}

function validateSft(
  model: DeepSeekV3,
  examples: readonly SftExample[],
  pad: number,
  maxLen: number,
  batchSize: number,
): { val_loss: number; val_tokens: number } {
  const wasTraining = model.training;
  model.eval();
  let nats = 0;
  let tokens = 0;
  noGrad(() => {
    for (let i = 0; i < examples.length; i += batchSize) {
      tidy(() => {
        const b = sftBatch(examples.slice(i, i + batchSize), { pad, maxLen });
        const targets = toTensor({ data: b.targets, shape: b.shape }).reshape([-1]);
        const { logits } = model.forward(toTensor({ data: b.inputs, shape: b.shape }));
        nats += crossEntropy(logits.reshape([-1, logits.shape[2]]), targets, { reduction: 'sum', ignoreIndex: IGNORE_INDEX }).item();
        tokens += targets.ne(IGNORE_INDEX).sum().item();
      });
    }
  });
  if (wasTraining) model.train();
  return { val_loss: nats / Math.max(1, tokens), val_tokens: tokens };
}

export interface SftResult extends LoopResult {
  runDir: string;
  finalDir: string | null;
  lastEval: MetricRecord | null;
}

export async function sft(c: SftConfig, o: { resume?: boolean; stopAfter?: number; log?: (s: string) => void } = {}): Promise<SftResult> {
  const log = o.log ?? ((s: string) => console.log(s));
  const { runDir, latest } = openRunDir(c, o.resume, RUN_CONTROL_KEYS);

  const tokFile = path.join(c.from, 'tokenizer.json');
  if (!fs.existsSync(tokFile))
    throw new Error(`${c.from} has no tokenizer.json: fine-tune a checkpoint written by tinyseek pretrain (its final/ or checkpoints/step-…/model)`);
  const tok = Tokenizer.load(tokFile);
  const model = loadCheckpoint(c.from);
  model.train();
  const conversations = c.data === 'corpus' ? corpusConversations(c.examples, c.seed) : await readConversations(c.data);

  // A fixed, seeded share of the conversations is held out for validation.
  const rng = new Rng(c.seed, 'sft-split');
  const valIdx = new Set<number>();
  const nVal = Math.max(1, Math.round(conversations.length * c.valFraction));
  while (valIdx.size < Math.min(nVal, conversations.length - 1)) valIdx.add(rng.int(0, conversations.length - 1));
  const trainConvs = conversations.filter((_, i) => !valIdx.has(i));
  const valExamples = conversations.filter((_, i) => valIdx.has(i)).map((m) => encodeSftExample(tok, m));

  const optimizer = new AdamW(weightDecayGroups(model, c.optim.weightDecay), { lr: c.optim.lr, betas: c.optim.betas, eps: c.optim.eps });
  const { step: startStep, tokensSeen, elapsed, data: dataState } = resumePoint(latest, model, optimizer, log);
  const loader = new SftLoader(tok, trainConvs, {
    batchSize: c.batchSize,
    seed: c.seed,
    pad: tok.special.pad,
    maxLen: c.seqLen,
    resume: dataState as IteratorState | undefined,
  });
  if (loader.dropped.length) log(`sft: ${loader.dropped.length} conversations longer than ${c.seqLen} tokens left out`);
  const sink = openRunSink(runDir, { total: c.steps, resumeAt: o.resume ? startStep : null, logEvery: c.logEvery, log });
  const usesBias = model.moeLayers().some((m) => m.gate.bias !== null);
  log(`sft ${c.name}: from ${c.from}, ${loader.examples.length} training and ${valExamples.length} validation conversations, ${c.steps} steps`);

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
      mtpWeight: c.mtpWeight,
      biasGamma: usesBias ? biasGammaOf(c) : () => 0,
      nextBatch: () => {
        const b = loader.next();
        let tokens = 0;
        for (const t of b.targets) if (t !== IGNORE_INDEX) tokens++;
        return { inputs: toTensor({ data: b.inputs, shape: b.shape }), targets: toTensor({ data: b.targets, shape: b.shape }), tokens };
      },
      evalEvery: c.evalEvery,
      evaluate: async (step) => {
        const r = validateSft(model, valExamples, tok.special.pad, c.seqLen, c.batchSize);
        sink.log(`step ${step}: validation loss ${r.val_loss.toFixed(4)} on ${r.val_tokens} assistant tokens`);
        return { ...r };
      },
      checkpointEvery: c.checkpointEvery,
      save: checkpointWriter(runDir, {
        model,
        optimizer,
        tokenizer: tok,
        keep: c.keepCheckpoints,
        kind: 'sft',
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
  const finalDir = result.stoppedBy === 'done' ? await saveFinalModel(runDir, model, tok, log, { template: 'r1' }) : null;
  await sink.plot();
  return { ...result, runDir, finalDir, lastEval: sink.lastEval() };
}
