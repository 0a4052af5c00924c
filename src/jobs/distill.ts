/**
 * `tinyseek distill`: DeepSeek-R1's distillation — a reasoning teacher's correct traces, found by
 * rejection sampling, become the SFT set of a student (R1 distilled its small models by SFT only).
 * Two runs, side by side under the runs directory:
 *
 *   <name>-traces/   the teacher samples `samples` completions per prompt on the task's train split,
 *                    `chunk` prompts per step; eval/rejection.ts keeps the correct, well-formed,
 *                    finished, non-repetitive ones (each filter counted). traces.jsonl holds
 *                    {problem, completion, tokens} lines (SFT makes the conversation of each);
 *                    rejection.json the counts.
 *                    metrics.jsonl and samples.jsonl (a kept and a rejected completion per step)
 *                    are the stage's, so `tinyseek runs` shows it like any other.
 *   <name>/          SFT of the student on traces.jsonl (train/sft.ts, preset sft-small under the
 *                    `sft` settings), in the R1-Zero prompt format by default — the format GRPO and
 *                    `tinyseek eval` use, so the student is measured as the RL models are — or in
 *                    R1's chat template; then the student's held-out greedy pass@1 in distill.json.
 *                    With `logitWeight` α > 0 the student also learns the teacher's next-token
 *                    distributions on the traces (train/logit-distill.ts; one tokenizer for both).
 *
 * Resumable: the sampling stage records after each step how far the trace file is valid, and a
 * resumed run cuts it back there and goes on; the SFT run resumes from its checkpoint. A rerun of
 * a finished stage with the same settings reuses it.
 *
 * Data-parallel under tinyseek launch: each rank samples its slice of every step's prompts (its
 * own seed), the batches are all-gathered and merged in rank order, and the lead writes the
 * traces; the SFT stage is data-parallel SFT; the lead evaluates the student while the others wait.
 *
 * It composes the rejection sampler, SFT and evaluation; the numbers are whatever they produce.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import { PROMPT_FORMATS, type Problem, TASK_NAMES, generateProblems, referenceAnswerOf } from '../data/index.ts';
import { REJECTIONS, type Rejection, type RejectionBatch, evaluate, noRejections, rejectionSample } from '../eval/index.ts';
import { writeAllSync, writeFileAtomic } from '../io/durable.ts';
import { loadCheckpoint } from '../model/checkpoint.ts';
import { RunName, readJsonObject } from '../run/config-file.ts';
import { type DataParallel, silentSink } from '../run/dp.ts';
import { configDifferences, runDirOf } from '../run/run-dir.ts';
import { openRunSink } from '../run/run-sink.ts';
import { Tokenizer } from '../tokenizer/index.ts';
import { SftConfig, resolveConfig } from '../train/config.ts';
import { sft } from '../train/sft.ts';

const posInt = z.number().int().positive();

export const DistillConfig = z
  .object({
    name: RunName.default('distill').describe('the SFT run is <runsDir>/<name>, the sampling stage <runsDir>/<name>-traces'),
    runsDir: z.string().min(1).default('runs').describe('where runs live'),
    seed: z.number().int().default(7).describe('seeds the problems, the sampler and the SFT run'),
    teacher: z.string().min(1).describe('the reasoning model that writes the traces (a checkpoint directory with tokenizer.json)'),
    student: z.string().min(1).describe('the checkpoint fine-tuned on the kept traces (its own tokenizer encodes them)'),
    task: z.enum(TASK_NAMES).default('countdown').describe('the task whose train split gives the prompts'),
    taskConfig: z
      .record(z.string(), z.unknown())
      .default({ minCount: 3, maxCount: 3, maxNumber: 20, promptFrame: 'compact' })
      .describe("the task generator's settings (difficulty, prompt frame); the same for the student's evaluation"),
    prompts: posInt.default(2000).describe('train-split problems the teacher samples on'),
    samples: posInt.default(4).describe('completions sampled per prompt (K)'),
    keepPerPrompt: posInt.default(1).describe('most traces kept per prompt'),
    temperature: z.number().gt(0).max(2).default(0.8).describe('sampling temperature of the teacher'),
    topP: z.number().gt(0).max(1).default(1).describe('nucleus sampling of the teacher'),
    maxNewTokens: posInt.default(256).describe('most ids per completion; one that reaches it is rejected as truncated'),
    batchSize: posInt.default(8).describe('prompts per generation batch (rows = batchSize × samples)'),
    chunk: posInt.default(64).describe('prompts per sampling step: one metrics line and one resume point each'),
    teacherTemplate: z
      .enum(PROMPT_FORMATS)
      .optional()
      .describe("how the teacher is asked: r1-zero (default; an R1-Zero model) or r1 (a chat model trained on R1's template)"),
    template: z
      .enum(PROMPT_FORMATS)
      .default('r1-zero')
      .describe("the student's format: r1-zero (the R1-Zero prompt and completion, as GRPO and tinyseek eval use) or r1 (DeepSeek-R1's chat template)"),
    sft: z
      .record(z.string(), z.unknown())
      .default({})
      .describe('SFT settings over the sft-small preset (steps, batchSize, seqLen, optim, …); from, data, name, runsDir and template are set here'),
    logitWeight: z
      .number()
      .min(0)
      .max(1)
      .default(0)
      .describe("α of logit distillation on the kept traces (the teacher's next-token distributions; needs the student's tokenizer); 0: traces only, as R1"),
    evalProblems: z.number().int().min(0).default(200).describe("held-out problems for the student's greedy pass@1 after SFT, asked in its template (0: none)"),
  })
  .strict();
export type DistillConfig = z.output<typeof DistillConfig>;

/** Keys that do not change which traces are sampled (a resumed sampling stage may differ in them). */
const SAMPLING_FREE_KEYS = ['name', 'runsDir', 'student', 'template', 'sft', 'logitWeight', 'evalProblems'];

interface SamplingState {
  /** Sampling steps done. */
  steps: number;
  /** Bytes of traces.partial.jsonl that those steps wrote. */
  bytes: number;
  kept: number;
  candidates: number;
  rejected: Record<Rejection, number>;
  generatedTokens: number;
  seconds: number;
}

export interface TraceStage {
  dir: string;
  file: string;
  kept: number;
  candidates: number;
  rejected: Record<Rejection, number>;
  /** Tokens the teacher generated, and the stage's wall minutes (when it ran, or when it was reused: then). */
  generatedTokens: number;
  minutes: number;
  reused: boolean;
}

export interface DistillResult {
  traces: TraceStage;
  sftRunDir: string;
  finalDir: string | null;
  studentPass1: number | null;
  minutes: { sampling: number; sft: number; eval: number };
}

const pct = (x: number): string => `${(x * 100).toFixed(1)}%`;

/** Where a sampling stage starts: a finished stage to reuse, or the state to go on from. */
interface SamplingStart {
  reused: TraceStage | null;
  state: SamplingState;
}

/** The lead's part before sampling: the settings checked, the finished stage reused, the trace file cut back. */
function prepareSampling(c: DistillConfig, dir: string, resume: boolean | undefined, log: (s: string) => void): SamplingStart {
  const file = path.join(dir, 'traces.jsonl');
  const partial = path.join(dir, 'traces.partial.jsonl');
  const stateFile = path.join(dir, 'state.json');
  const configFile = path.join(dir, 'config.json');
  const summaryFile = path.join(dir, 'rejection.json');
  const fresh: SamplingState = { steps: 0, bytes: 0, kept: 0, candidates: 0, rejected: noRejections(), generatedTokens: 0, seconds: 0 };
  if (fs.existsSync(configFile)) {
    const diff = configDifferences(readJsonObject(configFile, 'restore it, or choose another --name'), c, '', SAMPLING_FREE_KEYS);
    if (diff.length) throw new Error(`${dir} holds traces sampled with other settings (${diff.join(', ')}); choose another --name or restore them`);
    if (fs.existsSync(file) && fs.existsSync(summaryFile)) {
      const s = JSON.parse(fs.readFileSync(summaryFile, 'utf8')) as SamplingState & { minutes: number };
      log(`distill: reusing the ${s.kept} traces in ${file}`);
      const rejected = { ...noRejections(), ...s.rejected };
      const reused = { dir, file, kept: s.kept, candidates: s.candidates, rejected, generatedTokens: s.generatedTokens, minutes: s.minutes, reused: true };
      return { reused, state: fresh };
    }
    if (fs.existsSync(stateFile) && !resume) throw new Error(`${dir} holds an interrupted sampling stage: continue it with --resume, or choose another --name`);
  }
  fs.mkdirSync(dir, { recursive: true });
  writeFileAtomic(configFile, `${JSON.stringify(c, null, 2)}\n`);
  const saved = resume && fs.existsSync(stateFile) ? (JSON.parse(fs.readFileSync(stateFile, 'utf8')) as SamplingState) : null;
  const state: SamplingState = saved ? { ...fresh, ...saved, rejected: { ...noRejections(), ...saved.rejected } } : fresh;
  if (!fs.existsSync(partial) || state.steps === 0) fs.writeFileSync(partial, '');
  if (fs.statSync(partial).size < state.bytes)
    throw new Error(`${partial} is shorter than ${stateFile} records; the traces were damaged: choose another --name`);
  fs.truncateSync(partial, state.bytes);
  return { reused: null, state };
}

/** The ranks' batches of one step as one: kept traces and examples in rank order, counts summed, the slowest rank's seconds. */
function mergeBatches(bs: RejectionBatch[]): RejectionBatch {
  const rejected = noRejections();
  for (const b of bs) for (const k of REJECTIONS) rejected[k] += b.rejected[k];
  return {
    kept: bs.flatMap((b) => b.kept),
    rejected,
    rejectedExamples: bs.flatMap((b) => b.rejectedExamples),
    candidates: bs.reduce((a, b) => a + b.candidates, 0),
    generatedTokens: bs.reduce((a, b) => a + b.generatedTokens, 0),
    seconds: Math.max(0, ...bs.map((b) => b.seconds)),
  };
}

const emptyBatch = (): RejectionBatch => ({ kept: [], rejected: noRejections(), rejectedExamples: [], candidates: 0, generatedTokens: 0, seconds: 0 });

/** The sampling stage: the teacher's traces, kept by rejection sampling (see the module comment). */
export async function sampleTraces(c: DistillConfig, o: { resume?: boolean; log?: (s: string) => void; dp?: DataParallel | null } = {}): Promise<TraceStage> {
  const dp = o.dp ?? null;
  const lead = !dp || dp.lead;
  const log = lead ? (o.log ?? ((s: string) => console.log(s))) : () => {};
  const dir = runDirOf({ runsDir: c.runsDir, name: `${c.name}-traces` });
  const file = path.join(dir, 'traces.jsonl');
  const partial = path.join(dir, 'traces.partial.jsonl');
  const stateFile = path.join(dir, 'state.json');
  const summaryFile = path.join(dir, 'rejection.json');
  let start = lead ? prepareSampling(c, dir, o.resume, log) : null;
  // every rank goes on from the lead's state (it alone reads the run directory)
  if (dp) start = JSON.parse((await dp.gatherStrings(lead ? JSON.stringify(start) : ''))[0]) as SamplingStart;
  const { reused, state } = start as SamplingStart;
  if (reused) return reused;

  const problems = generateProblems(c.task, { seed: c.seed, split: 'train', n: c.prompts, config: c.taskConfig });
  const steps = Math.ceil(problems.length / c.chunk);
  const tok = Tokenizer.load(path.join(c.teacher, 'tokenizer.json'));
  const teacher = loadCheckpoint(c.teacher);
  teacher.eval();
  const sink = lead
    ? openRunSink(dir, { total: steps, resumeAt: state.steps > 0 ? state.steps : null, logEvery: 1, log, title: `${c.name}-traces` })
    : silentSink();
  const world = dp?.worldSize ?? 1;
  const rank = dp?.rank ?? 0;
  log(
    `distill ${c.name}: ${c.teacher} (asked in the ${c.teacherTemplate ?? 'r1-zero'} format) samples ${c.samples} per prompt on ${problems.length} ${c.task} train problems (T ${c.temperature}, ≤ ${c.maxNewTokens} tokens), keeps ≤ ${c.keepPerPrompt} per prompt${world > 1 ? `, over ${world} ranks` : ''}${state.steps ? `; resuming at step ${state.steps + 1} of ${steps}` : ''}`,
  );
  const fd = lead ? fs.openSync(partial, 'a') : -1;
  const t0 = performance.now();
  try {
    for (let step = state.steps + 1; step <= steps; step++) {
      const batch = problems.slice((step - 1) * c.chunk, step * c.chunk);
      // this rank's contiguous slice of the step's prompts
      const mine = batch.slice(Math.floor((rank * batch.length) / world), Math.floor(((rank + 1) * batch.length) / world));
      const own = mine.length
        ? rejectionSample(teacher, tok, mine, {
            samples: c.samples,
            keepPerPrompt: c.keepPerPrompt,
            temperature: c.temperature,
            topP: c.topP,
            maxNewTokens: c.maxNewTokens,
            seed: (c.seed * 1_000_003 + step + rank * 7919) % 2 ** 31,
            batchSize: c.batchSize,
            format: c.teacherTemplate,
          })
        : emptyBatch();
      const r = dp ? mergeBatches((await dp.gatherStrings(JSON.stringify(own))).map((j) => JSON.parse(j) as RejectionBatch)) : own;
      const lines = r.kept.map((k) => JSON.stringify({ problem: k.problem, completion: k.completion, tokens: k.tokens })).join('\n');
      const bytes = Buffer.from(lines ? `${lines}\n` : '', 'utf8');
      if (lead) {
        writeAllSync(fd, bytes);
        fs.fsyncSync(fd);
      }
      state.steps = step;
      state.bytes += bytes.length;
      state.kept += r.kept.length;
      state.candidates += r.candidates;
      for (const k of REJECTIONS) state.rejected[k] += r.rejected[k];
      state.generatedTokens += r.generatedTokens;
      state.seconds += r.seconds;
      const share = (n: number): number => n / Math.max(1, r.candidates);
      sink.record({
        kind: 'distill-sample',
        step,
        kept: r.kept.length,
        kept_share: share(r.kept.length),
        prompts_with_trace_share: new Set(r.kept.map((k) => k.problem)).size / batch.length,
        ...Object.fromEntries(REJECTIONS.map((k) => [`${k}_share`, share(r.rejected[k])])),
        kept_len_mean: r.kept.length ? r.kept.reduce((a, k) => a + k.tokens, 0) / r.kept.length : null,
        gen_tokens_per_s: r.generatedTokens / Math.max(r.seconds, 1e-9),
        traces_total: state.kept,
      });
      const show = (p: Problem, completion: string, kept: boolean, why: string | null): void =>
        sink.sample({
          step,
          problem: JSON.stringify(p),
          reference: referenceAnswerOf(p),
          completion,
          reward: kept ? 1 : 0,
          correct: kept,
          kept,
          rejected_by: why,
        });
      if (r.kept[0]) show(r.kept[0].problem, r.kept[0].completion, true, null);
      if (r.rejectedExamples[0]) show(r.rejectedExamples[0].problem, r.rejectedExamples[0].completion, false, r.rejectedExamples[0].why);
      sink.flush();
      if (lead) writeFileAtomic(stateFile, `${JSON.stringify(state)}\n`);
      sink.progress(step, {
        kept: String(state.kept),
        kept_share: pct(state.kept / Math.max(1, state.candidates)),
        tokensPerSecond: r.generatedTokens / Math.max(r.seconds, 1e-9),
      });
    }
  } finally {
    if (lead) fs.closeSync(fd);
    sink.close();
  }
  const minutes = (performance.now() - t0) / 60000;
  if (lead) {
    fs.renameSync(partial, file);
    writeFileAtomic(summaryFile, `${JSON.stringify({ ...state, minutes }, null, 2)}\n`);
    fs.rmSync(stateFile, { force: true });
    await sink.plot();
  }
  await dp?.barrier(); // the others read traces.jsonl next
  const rej = REJECTIONS.map((k) => `${k} ${state.rejected[k]}`).join(', ');
  log(`distill: kept ${state.kept} of ${state.candidates} completions (${pct(state.kept / Math.max(1, state.candidates))}); rejected: ${rej}`);
  if (state.kept === 0)
    throw new Error(`distill: the teacher ${c.teacher} wrote no trace that passed the filters; check it solves the task (tinyseek eval) or raise samples`);
  return {
    dir,
    file,
    kept: state.kept,
    candidates: state.candidates,
    rejected: state.rejected,
    generatedTokens: state.generatedTokens,
    minutes,
    reused: false,
  };
}

/** Both stages and the student's evaluation. */
export async function distill(
  c: DistillConfig,
  o: { resume?: boolean; stopAfter?: number; log?: (s: string) => void; dp?: DataParallel | null } = {},
): Promise<DistillResult> {
  const dp = o.dp ?? null;
  const lead = !dp || dp.lead;
  const log = lead ? (o.log ?? ((s: string) => console.log(s))) : () => {};
  const t0 = performance.now();
  const traces = await sampleTraces(c, { resume: o.resume, log, dp });
  const t1 = performance.now();
  // a short SFT given only its steps keeps the preset's warm-up in proportion (a tenth, at most 20)
  const sftOver: Record<string, unknown> = { ...c.sft };
  const optim = (sftOver.optim ?? {}) as Record<string, unknown>;
  if (typeof sftOver.steps === 'number' && optim.warmupSteps === undefined)
    sftOver.optim = { ...optim, warmupSteps: Math.min(20, Math.floor(sftOver.steps / 10)) };
  if (c.logitWeight > 0) Object.assign(sftOver, { logitTeacher: c.teacher, logitWeight: c.logitWeight });
  const sftConfig = resolveConfig(
    SftConfig,
    'sft-small',
    { seed: c.seed, ...sftOver, name: c.name, runsDir: c.runsDir, from: c.student, data: traces.file, template: c.template },
    `distill ${c.name}: sft settings`,
  );
  const sftRunDir = runDirOf(sftConfig);
  const finalDir = path.join(sftRunDir, 'final');
  let trained: string | null = finalDir;
  if (fs.existsSync(path.join(finalDir, 'config.json'))) log(`distill: the student is already trained (${finalDir})`);
  else {
    const resume = o.resume && fs.existsSync(path.join(sftRunDir, 'checkpoints', 'latest.json'));
    trained = (await sft(sftConfig, { resume, stopAfter: o.stopAfter, log, dp })).finalDir;
  }
  const t2 = performance.now();
  let studentPass1: number | null = null;
  if (lead && trained && c.evalProblems > 0) {
    const r = await evaluate(loadCheckpoint(trained), Tokenizer.load(path.join(trained, 'tokenizer.json')), {
      task: c.task,
      taskConfig: c.taskConfig,
      n: c.evalProblems,
      temperature: 0,
      maxNewTokens: c.maxNewTokens,
      seed: c.seed,
      format: c.template,
    });
    studentPass1 = r.pass1;
    log(`distill: the student's held-out greedy pass@1 ${pct(r.pass1)} (${r.problems} problems)`);
  }
  await dp?.barrier(); // the others wait for the lead's evaluation
  const t3 = performance.now();
  const minutes = { sampling: (t1 - t0) / 60000, sft: (t2 - t1) / 60000, eval: (t3 - t2) / 60000 };
  if (lead && trained) {
    const report = {
      teacher: c.teacher,
      student: c.student,
      template: c.template,
      traces: { file: traces.file, kept: traces.kept, candidates: traces.candidates, rejected: traces.rejected },
      sft: { steps: sftConfig.steps, batchSize: sftConfig.batchSize, lr: sftConfig.optim.lr },
      student_pass1: studentPass1,
      eval_problems: c.evalProblems,
      minutes: traces.reused ? { ...minutes, sampling: null } : minutes,
      date: new Date().toISOString().slice(0, 10),
    };
    writeFileAtomic(path.join(sftRunDir, 'distill.json'), `${JSON.stringify(report, null, 2)}\n`);
  }
  return { traces, sftRunDir, finalDir: trained, studentPass1, minutes };
}
