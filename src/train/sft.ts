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
  type Problem,
  type PromptFrame,
  type SftExample,
  TASK_NAMES,
  type TaskName,
  conversationFromCompletion,
  corpusDocument,
  encodeR1ZeroExample,
  encodeSftExample,
  parseCorpusConfig,
  parseJsonLines,
  rewardOf,
  sftBatch,
  toTensor,
} from '../data/index.ts';
import { loadCheckpoint } from '../model/checkpoint.ts';
import type { DeepSeekV3, LossOutput } from '../model/transformer.ts';
import { AdamW, weightDecayGroups } from '../nn/index.ts';
import { type ChatMessage, Tokenizer } from '../tokenizer/index.ts';
import type { SftConfig } from './config.ts';
import { distillKl } from './logit-distill.ts';
import { type Batch, type LoopResult, type MetricRecord, runTrainingLoop } from './loop.ts';
import { RUN_CONTROL_KEYS, biasGammaOf, scheduleOf } from './pretrain.ts';
import { pointLatestAt } from '../run/checkpointing.ts';
import { openRunDir, checkpointWriter, resumePoint, runDirOf, saveFinalModel } from '../run/run-dir.ts';
import { type DataParallel, onLead, openRunDirOnLead, silentSink } from '../run/dp.ts';
import { openRunSink } from '../run/run-sink.ts';

const ROLES = new Set(['system', 'user', 'assistant']);

/** What an SFT set holds: conversations for the chat template, or R1-Zero examples already encoded. */
export type SftItem = ChatMessage[] | SftExample;

export interface SftSet {
  items: SftItem[];
  /** The R1-Zero prompt frame of the examples (template r1-zero), for the trained model's chat.json. */
  frame: PromptFrame | null;
}

/** The R1-Zero prompt frame a problem is asked in (TinyZero's unless it says compact). */
const frameOfProblem = (p: Problem): PromptFrame => ('promptFrame' in p ? p.promptFrame : undefined) ?? 'tinyzero';

function messagesOf(file: string, row: number, raw: unknown[]): ChatMessage[] {
  return raw.map((m: unknown, i: number) => {
    const msg = m as { role?: unknown; content?: unknown; reasoning_content?: unknown };
    if (typeof msg.role !== 'string' || !ROLES.has(msg.role) || typeof msg.content !== 'string') {
      throw new Error(`${file}:${row}: message ${i} needs a role (system, user or assistant) and a string content`);
    }
    if (msg.reasoning_content !== undefined && typeof msg.reasoning_content !== 'string') {
      throw new Error(`${file}:${row}: message ${i}: reasoning_content must be a string`);
    }
    return {
      role: msg.role as ChatMessage['role'],
      content: msg.content,
      ...(msg.reasoning_content !== undefined ? { reasoning_content: msg.reasoning_content } : {}),
    };
  });
}

/**
 * Reads an SFT set from JSONL; any malformed line is an error naming it. A line is
 * {"messages": [{role, content, reasoning_content?}, …]} (a conversation), or {"problem": {task, …},
 * "completion": "…"} (a completion in the R1-Zero format, as `tinyseek distill` writes). Template
 * 'r1' trains on conversations: a problem line becomes one (data/sft.ts conversationFromCompletion:
 * the problem's user turn, the reasoning in the think block; a "messages" field beside it is not
 * read); 'r1-zero' trains on problem and completion in the R1-Zero prompt format.
 */
export async function readSftFile(file: string, tok: Tokenizer, template: 'r1' | 'r1-zero' = 'r1'): Promise<SftSet> {
  const out: SftItem[] = [];
  let frame: PromptFrame | null = null;
  for await (const line of parseJsonLines(file)) {
    if (!line.ok) throw new Error(`${file}:${line.row}: ${line.error}`);
    const v = line.value as { messages?: unknown; problem?: unknown; completion?: unknown };
    const hasProblem = !!v && typeof v === 'object' && v.problem !== undefined;
    if (hasProblem) {
      const p = v.problem as { task?: unknown };
      if (!p || typeof p !== 'object' || !TASK_NAMES.includes(p.task as TaskName) || typeof v.completion !== 'string')
        throw new Error(
          `${file}:${line.row}: a problem line needs "problem": {"task": ${TASK_NAMES.map((t) => `"${t}"`).join(' | ')}, …} and a string "completion"`,
        );
    }
    if (template === 'r1-zero') {
      if (!hasProblem)
        throw new Error(
          `${file}:${line.row}: template "r1-zero" needs {"problem": …, "completion": …} lines (tinyseek distill writes them); a file of conversations trains with template "r1"`,
        );
      const p = v.problem as Problem;
      const f = frameOfProblem(p);
      if (frame !== null && f !== frame)
        throw new Error(`${file}:${line.row}: prompt frame "${f}" after "${frame}": a model learns one R1-Zero prompt frame; keep one per file`);
      frame = f;
      out.push(encodeR1ZeroExample(tok, p, v.completion as string));
      continue;
    }
    if (hasProblem) out.push(conversationFromCompletion(v.problem as Problem, v.completion as string));
    else if (Array.isArray(v?.messages) && v.messages.length > 0) out.push(messagesOf(file, line.row, v.messages));
    else throw new Error(`${file}:${line.row}: expected {"messages": [{"role": …, "content": …}, …]} or {"problem": …, "completion": …}`);
  }
  if (out.length === 0) throw new Error(`${file}: no conversation found`);
  return { items: out, frame };
}

/** The corpus's right, worked solutions (documents 2e9 + i: none was pretrained on), as SFT items in a template. */
export function corpusItems(n: number, seed: number, tok: Tokenizer, template: 'r1' | 'r1-zero'): SftSet {
  const c = parseCorpusConfig({ seed });
  const out: SftItem[] = [];
  let frame: PromptFrame | null = null;
  for (let i = 0; out.length < n && i < n * 50; i++) {
    const d = corpusDocument(c, 2_000_000_000 + i);
    if (!d.problem || d.kind !== 'task') continue;
    if (rewardOf(d.completion, d.problem) !== 1) continue;
    out.push(template === 'r1-zero' ? encodeR1ZeroExample(tok, d.problem, d.completion) : conversationFromCompletion(d.problem, d.completion));
    frame ??= template === 'r1-zero' ? frameOfProblem(d.problem) : null;
  }
  if (out.length < n) throw new Error(`the corpus gave ${out.length} right solutions of the ${n} asked for`);
  return { items: out, frame };
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

/** The teacher of logit distillation: its tokenizer must be the student's, id for id. */
function logitTeacherOf(dir: string, studentTokenizer: string): DeepSeekV3 {
  const file = path.join(dir, 'tokenizer.json');
  if (!fs.existsSync(file)) throw new Error(`logitTeacher ${dir} has no tokenizer.json: give a checkpoint written by tinyseek`);
  if (fs.readFileSync(file, 'utf8') !== fs.readFileSync(studentTokenizer, 'utf8'))
    throw new Error(
      `logit distillation needs one tokenizer for teacher and student: ${file} and ${studentTokenizer} differ; distil by traces alone (logitTeacher null) or pick a teacher trained with the student's tokenizer`,
    );
  const t = loadCheckpoint(dir);
  t.eval();
  for (const p of t.parameters()) p.requiresGrad_(false);
  return t;
}

/** (1 − α)·CE + α·KL_τ(teacher ‖ student) on the SFT targets, plus the balance loss; MTP depths get no loss here. */
function logitDistillLoss(model: DeepSeekV3, teacher: DeepSeekV3, b: Batch, c: SftConfig): LossOutput {
  const { logits, auxLoss } = model.forward(b.inputs); // (B, T, V)
  const V = logits.shape[2];
  const ce = crossEntropy(logits.reshape([-1, V]), b.targets.reshape([-1]), { ignoreIndex: IGNORE_INDEX });
  const t = noGrad(() => teacher.forward(b.inputs).logits); // (B, T, V)
  const kl = distillKl(logits, t, b.targets, { temperature: c.logitTemperature, ignoreIndex: IGNORE_INDEX });
  let loss = ce.mul(1 - c.logitWeight).add(kl.mul(c.logitWeight));
  if (auxLoss) loss = loss.add(auxLoss);
  return { loss, lmLoss: ce, mtpLosses: [], auxLoss };
}

export interface SftResult extends LoopResult {
  runDir: string;
  finalDir: string | null;
  lastEval: MetricRecord | null;
}

export async function sft(
  c: SftConfig,
  o: {
    resume?: boolean;
    stopAfter?: number;
    log?: (s: string) => void;
    /** Data parallelism (tinyseek launch); rank 0 writes. */
    dp?: DataParallel | null;
  } = {},
): Promise<SftResult> {
  const dp = o.dp ?? null;
  const lead = !dp || dp.lead;
  const log = lead ? (o.log ?? ((s: string) => console.log(s))) : () => {};
  const { runDir, latest } = dp
    ? await openRunDirOnLead(dp, () => openRunDir(c, o.resume, RUN_CONTROL_KEYS), runDirOf(c), o.resume)
    : openRunDir(c, o.resume, RUN_CONTROL_KEYS);

  const tokFile = path.join(c.from, 'tokenizer.json');
  if (!fs.existsSync(tokFile))
    throw new Error(`${c.from} has no tokenizer.json: fine-tune a checkpoint written by tinyseek pretrain (its final/ or checkpoints/step-…/model)`);
  const tok = Tokenizer.load(tokFile);
  const model = loadCheckpoint(c.from);
  model.train();
  const teacher = c.logitTeacher ? logitTeacherOf(c.logitTeacher, tokFile) : null;
  const set = c.data === 'corpus' ? corpusItems(c.examples, c.seed, tok, c.template) : await readSftFile(c.data, tok, c.template);
  const conversations = set.items;

  // A fixed, seeded share of the conversations is held out for validation.
  const rng = new Rng(c.seed, 'sft-split');
  const valIdx = new Set<number>();
  const nVal = Math.max(1, Math.round(conversations.length * c.valFraction));
  while (valIdx.size < Math.min(nVal, conversations.length - 1)) valIdx.add(rng.int(0, conversations.length - 1));
  const trainConvs = conversations.filter((_, i) => !valIdx.has(i));
  const valExamples = conversations.filter((_, i) => valIdx.has(i)).map((m) => ('ids' in m ? m : encodeSftExample(tok, m)));

  const optimizer = new AdamW(weightDecayGroups(model, c.optim.weightDecay), { lr: c.optim.lr, betas: c.optim.betas, eps: c.optim.eps });
  const { step: startStep, tokensSeen, elapsed, data: dataState } = resumePoint(latest, model, optimizer, log);
  if (dp) {
    await dp.broadcastModule(model);
    dp.shardOptimizerState(optimizer);
  }
  const loader = new SftLoader(tok, trainConvs, {
    batchSize: c.batchSize,
    seed: c.seed,
    pad: tok.special.pad,
    maxLen: c.seqLen,
    resume: dataState as IteratorState | undefined,
  });
  if (loader.dropped.length) log(`sft: ${loader.dropped.length} conversations longer than ${c.seqLen} tokens left out`);
  const sink = lead ? openRunSink(runDir, { total: c.steps, resumeAt: o.resume ? startStep : null, logEvery: c.logEvery, log }) : silentSink();
  const usesBias = model.moeLayers().some((m) => m.gate.bias !== null);
  log(
    `sft ${c.name}: from ${c.from}, ${loader.examples.length} training and ${valExamples.length} validation ${c.template === 'r1-zero' ? 'examples (R1-Zero prompt and completion)' : 'conversations'}, ${c.steps} steps` +
      (dp ? `, data-parallel over ${dp.worldSize} ranks (${c.batchSize / dp.worldSize} rows each${dp.zero1 ? ', ZeRO-1' : ''})` : ''),
  );
  const evaluate = async (step: number): Promise<MetricRecord> => {
    const r = validateSft(model, valExamples, tok.special.pad, c.seqLen, c.batchSize);
    sink.log(`step ${step}: validation loss ${r.val_loss.toFixed(4)} on ${r.val_tokens} assistant tokens`);
    return { ...r };
  };
  const save = checkpointWriter(runDir, {
    model,
    optimizer,
    tokenizer: tok,
    keep: c.keepCheckpoints,
    kind: 'sft',
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
      schedule: scheduleOf(c.optim, c.steps),
      startStep,
      steps: c.steps,
      gradAccum: c.gradAccum,
      clipNorm: c.optim.clipNorm,
      mtpWeight: c.mtpWeight,
      biasGamma: usesBias ? biasGammaOf(c) : () => 0,
      ...(teacher ? { loss: (m: DeepSeekV3, b: Batch) => logitDistillLoss(m, teacher, b, c) } : {}),
      nextBatch: () => {
        const b = loader.next();
        let tokens = 0;
        for (const t of b.targets) if (t !== IGNORE_INDEX) tokens++;
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
  const chat = c.template === 'r1-zero' ? { template: 'r1-zero', frame: set.frame ?? 'tinyzero' } : { template: 'r1' };
  const finalDir = result.stoppedBy === 'done' && lead ? await saveFinalModel(runDir, model, tok, log, chat) : null;
  await sink.plot();
  if (dp) await dp.barrier();
  return { ...result, runDir, finalDir, lastEval: sink.lastEval() };
}
