/**
 * The base-model corpus: synthetic pretraining text for the tasks, shaped like what a base model
 * finds on the web — worked solutions of mixed quality in the `<think>…</think> <answer>…</answer>`
 * format (right ones, wrong ones, searches that check candidates, slips caught and not caught,
 * give-ups), plus plain arithmetic facts. The mix is a zod-typed CorpusConfig; docs/data.md says
 * how the defaults were chosen (the base model must sometimes succeed, so that RL rewards have
 * spread, and must sometimes check itself, so that RL can amplify it — while leaving room to
 * improve).
 *
 * Guarantees: document i is a pure function of (config, i) (its own Rng stream), so a corpus can be
 * generated in pieces or resumed; every problem comes from the train split; no document states a
 * product "a * b = …" where a × b is a held-out multiplication problem (facts lines and traces that
 * would are redrawn). assertTrainOnly re-checks both; corpusAccuracy measures the share of task
 * documents whose final answer earns reward 1.
 *
 * It knows nothing about tokenizers or packing (see encode.ts and pack.ts).
 */
import { z } from 'zod';
import { type Style, STYLES, type Trace, type TraceKnobs, renderCompletion } from './corpus/common.ts';
import { countdownTrace } from './corpus/countdown.ts';
import { countdownSearchTrace } from './corpus/countdown-search.ts';
import { drillDocument } from './corpus/drills.ts';
import { multiplicationStepsTrace } from './corpus/multiplication-steps.ts';
import { type FactLine, factsDocument } from './corpus/facts.ts';
import { multiplicationTrace } from './corpus/multiplication.ts';
import { wordProblemTrace } from './corpus/wordproblems.ts';
import { plainPrompt } from './prompt.ts';
import { Rng, type SeedPart } from './rng.ts';
import { DEFAULT_HELDOUT_FRACTION, splitOf } from './split.ts';
import { CountdownConfig } from './tasks/countdown.ts';
import { TASKS, canonicalOf, questionOf, promptOf, scoreCompletion } from './tasks/index.ts';
import { MultiplicationConfig, inMultiplicationRange, multiplicationCanonical } from './tasks/multiplication.ts';
import { TASK_NAMES, type Problem, type TaskName } from './tasks/types.ts';
import { WordProblemsConfig } from './tasks/wordproblems.ts';

const weight = z.number().min(0);

export const CorpusConfig = z
  .object({
    /**
     * 'web': worked solutions of mixed quality in the six styles below, shaped like what a base
     * model finds on the web. 'search': what a model trained from scratch needs to learn the tasks —
     * systematic Countdown search traces with true arithmetic, a check line and random early stops
     * (corpus/countdown-search.ts), multiplication scratchpads (corpus/multiplication-steps.ts) and
     * drills of their own equations (corpus/drills.ts); the style fields do not apply to it.
     */
    kind: z.enum(['web', 'search']).default('web'),
    /** Settings of the 'search' corpus. */
    search: z
      .object({
        /** Chance that a Countdown trace stops after its first line when that line missed. */
        stopFirst: z.number().min(0).max(1).default(0.25),
        /** Chance that it stops after each later line that missed. */
        stopLater: z.number().min(0).max(1).default(0.55),
        /** Chance that a Countdown trace holds one slip, written and corrected on the spot. */
        slipShare: z.number().min(0).max(1).default(0.05),
        /** Restate the target in each Countdown pair header ("2, 11 (18) to 9:") and compare with it in the check line ("9 is the target."). */
        compareTarget: z.boolean().default(true),
        /** Chance that a Countdown trace makes one premature "T reached." after a missed line, caught by its check line ("31 is not 9.") (needs compareTarget). */
        claimShare: z.number().min(0).max(1).default(0),
        /** Mark a Countdown hit right after the equation that gives the target ("40+4=44 reached.") instead of on a line of its own ("44 reached."). */
        inlineHit: z.boolean().default(true),
        /** Share of documents that are drill pages instead of worked problems. */
        drillShare: z.number().min(0).max(1).default(0.2),
        /** Equations per drill page. */
        drillLines: z.number().int().min(1).max(200).default(16),
      })
      .strict()
      .prefault({}),
    /** Seed of the whole corpus; document i uses Rng(seed, 'corpus', i). */
    seed: z.union([z.number().int(), z.string()]).default(0),
    /** Relative weights of the tasks among task documents. */
    tasks: z
      .object({ countdown: weight.default(0.5), multiplication: weight.default(0.25), wordproblems: weight.default(0.25) })
      .strict()
      .prefault({}),
    /** Share of documents that are arithmetic facts and tables instead of worked problems. */
    factsShare: z.number().min(0).max(1).default(0.15),
    /** Share of task documents framed as a plain "Question: … Answer:" page instead of the R1-Zero prompt. */
    plainPromptShare: z.number().min(0).max(1).default(0.2),
    /** Relative weights of the trace styles (corpus/common.ts describes each). */
    styles: z
      .object({
        direct: weight.default(0.1),
        search: weight.default(0.4),
        slip: weight.default(0.15),
        selfCorrect: weight.default(0.15),
        wrongThing: weight.default(0.1),
        giveUp: weight.default(0.1),
      })
      .strict()
      .prefault({}),
    /** Most failed candidates a search shows before its ending (Countdown). */
    searchMaxTries: z.number().int().min(1).max(20).default(5),
    /** Chance that a search ends right. */
    findProb: z.number().min(0).max(1).default(0.4),
    /** Chance that work resumed after a caught slip ends right. */
    selfCorrectFindProb: z.number().min(0).max(1).default(0.6),
    /** Held-out share per task (split.ts); must match the one used for evaluation. */
    heldoutFraction: z.number().min(0).max(1).default(DEFAULT_HELDOUT_FRACTION),
    countdown: CountdownConfig.prefault({}),
    multiplication: MultiplicationConfig.prefault({}),
    wordproblems: WordProblemsConfig.prefault({}),
  })
  .strict()
  .refine((c) => c.factsShare === 1 || Object.values(c.tasks).some((w) => w > 0), { message: 'at least one task weight must be positive (or factsShare = 1)' })
  .refine((c) => Object.values(c.styles).some((w) => w > 0), { message: 'at least one style weight must be positive' });
export type CorpusConfig = z.infer<typeof CorpusConfig>;
export type CorpusConfigInput = z.input<typeof CorpusConfig>;

export function parseCorpusConfig(input: unknown = {}): CorpusConfig {
  const r = CorpusConfig.safeParse(input ?? {});
  if (!r.success) {
    throw new Error(`invalid corpus configuration: ${r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`);
  }
  return r.data;
}

export interface CorpusDocument {
  readonly index: number;
  readonly kind: 'task' | 'facts';
  readonly task: TaskName | null;
  readonly style: Style | null;
  readonly problem: Problem | null;
  /** The prompt part (R1-Zero prompt or plain "Question: … Answer: <think>"); '' for facts. */
  readonly prompt: string;
  /** What follows the prompt — what a reward function scores; for facts, the whole text. */
  readonly completion: string;
  /** prompt + completion: the document's text. */
  readonly text: string;
}

/** A stated product, spaced ("3 * 8 =") or compact ("3*8="). */
const PRODUCT = /(\d+) ?\* ?(\d+) ?=/g;

/** "a * b" for every stated product in the text that is a held-out multiplication problem. */
export function heldOutProductsIn(text: string, c: Pick<CorpusConfig, 'multiplication' | 'heldoutFraction'>): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(PRODUCT)) {
    const a = Number(m[1]);
    const b = Number(m[2]);
    if (isHeldOutProduct(a, b, c)) out.push(`${a} * ${b}`);
  }
  return out;
}

function isHeldOutProduct(a: number, b: number, c: Pick<CorpusConfig, 'multiplication' | 'heldoutFraction'>): boolean {
  return inMultiplicationRange(a, b, c.multiplication) && splitOf(multiplicationCanonical(a, b), c.heldoutFraction) === 'heldout';
}

function knobs(c: CorpusConfig): TraceKnobs {
  return { searchMaxTries: c.searchMaxTries, findProb: c.findProb, selfCorrectFindProb: c.selfCorrectFindProb };
}

function drawTrainProblem(rng: Rng, c: CorpusConfig, task: TaskName): Problem {
  for (let i = 0; i < 10_000; i++) {
    const p: Problem =
      task === 'countdown'
        ? TASKS.countdown.sample(rng, c.countdown)
        : task === 'multiplication'
          ? TASKS.multiplication.sample(rng, c.multiplication)
          : TASKS.wordproblems.sample(rng, c.wordproblems);
    if (splitOf(canonicalOf(p), c.heldoutFraction) === 'train') return p;
  }
  throw new Error(`corpus: no train ${task} problem in 10000 draws; lower heldoutFraction or widen the ${task} ranges`);
}

const MAX_REDRAWS = 200;

/** A document of the 'search' corpus (see CorpusConfig.kind). */
function searchDocument(c: CorpusConfig, index: number, rng: Rng): CorpusDocument {
  const taskWeights = TASK_NAMES.map((t) => c.tasks[t]);
  const noLeak = (text: string): boolean => heldOutProductsIn(text, c).length === 0;
  for (let attempt = 0; attempt < MAX_REDRAWS; attempt++) {
    if (rng.bool(c.search.drillShare)) {
      const text = drillDocument(rng, c.search.drillLines, () => drawTrainProblem(rng, c, TASK_NAMES[rng.weighted(taskWeights)]), noLeak);
      if (!text) continue;
      return { index, kind: 'facts', task: null, style: null, problem: null, prompt: '', completion: text, text };
    }
    const task = TASK_NAMES[rng.weighted(taskWeights)];
    const problem = drawTrainProblem(rng, c, task);
    const trace =
      problem.task === 'countdown'
        ? countdownSearchTrace(rng, problem, c.search)
        : problem.task === 'multiplication'
          ? multiplicationStepsTrace(problem)
          : wordProblemTrace(rng, problem, 'direct', knobs(c));
    const prompt = promptOf(problem);
    const completion = searchCompletion(trace);
    const text = prompt + completion;
    if (!noLeak(text)) continue;
    return { index, kind: 'task', task, style: problem.task === 'countdown' ? 'search' : 'direct', problem, prompt, completion, text };
  }
  throw new Error(`corpus: document ${index} still mentioned a held-out product after ${MAX_REDRAWS} redraws; lower heldoutFraction`);
}

/** The search corpus's default settings (read once). */
const SEARCH_DEFAULTS = CorpusConfig.parse({}).search;

/** The Countdown trace format a reference follows (a field left out: the corpus default). */
export interface SearchTraceFormat {
  /** The pair headers restate the target and the check line compares with it. */
  compareTarget?: boolean;
  /** The hit is marked right after its equation ("40+4=44 reached."). */
  inlineHit?: boolean;
}

/**
 * The 'search' corpus's full reference completion of a problem (Countdown: the whole search, no early
 * stop, no slip; multiplication: the scratchpad), or null for a task it has none for. This is what
 * the arithmetic probe (eval/arith-probe.ts) teacher-forces.
 */
export function referenceCompletion(p: Problem, o: SearchTraceFormat = {}): string | null {
  const compareTarget = o.compareTarget ?? SEARCH_DEFAULTS.compareTarget;
  const inlineHit = o.inlineHit ?? SEARCH_DEFAULTS.inlineHit;
  const trace =
    p.task === 'countdown'
      ? countdownSearchTrace(new Rng('reference'), p, { stopFirst: 0, stopLater: 0, slipShare: 0, compareTarget, inlineHit }, true)
      : p.task === 'multiplication'
        ? multiplicationStepsTrace(p)
        : null;
  return trace ? searchCompletion(trace) : null;
}

const searchCompletion = (t: Trace): string => `\n${t.lines.join('\n')}\n</think>\n<answer>${t.answer ?? ''}</answer>`;

/** Document `index` of the corpus (a pure function of the config and the index). */
export function corpusDocument(c: CorpusConfig, index: number): CorpusDocument {
  const rng = new Rng(c.seed, 'corpus', index);
  if (c.kind === 'search') return searchDocument(c, index, rng);
  const k = knobs(c);
  const keepFact = (l: FactLine): boolean => !l.product || !isHeldOutProduct(l.product[0], l.product[1], c);
  const taskWeights = TASK_NAMES.map((t) => c.tasks[t]);
  const styleWeights = STYLES.map((s) => c.styles[s]);
  for (let attempt = 0; attempt < MAX_REDRAWS; attempt++) {
    if (rng.bool(c.factsShare)) {
      const text = factsDocument(rng, keepFact);
      if (text === null) continue;
      return { index, kind: 'facts', task: null, style: null, problem: null, prompt: '', completion: text, text };
    }
    const task = TASK_NAMES[rng.weighted(taskWeights)];
    const style = STYLES[rng.weighted(styleWeights)];
    const problem = drawTrainProblem(rng, c, task);
    const trace =
      problem.task === 'countdown'
        ? countdownTrace(rng, problem, style, k)
        : problem.task === 'multiplication'
          ? multiplicationTrace(rng, problem, style, k)
          : wordProblemTrace(rng, problem, style, k);
    const prompt = rng.bool(c.plainPromptShare) ? plainPrompt(questionOf(problem)) : promptOf(problem);
    const completion = renderCompletion(trace, rng);
    const text = prompt + completion;
    if (heldOutProductsIn(text, c).length > 0) continue;
    return { index, kind: 'task', task, style, problem, prompt, completion, text };
  }
  throw new Error(`corpus: document ${index} still mentioned a held-out product after ${MAX_REDRAWS} redraws; lower heldoutFraction`);
}

/** Documents start, start + 1, … (endless). */
export function* corpusDocuments(config: CorpusConfigInput | CorpusConfig = {}, start = 0): Generator<CorpusDocument> {
  const c = parseCorpusConfig(config);
  for (let i = start; ; i++) yield corpusDocument(c, i);
}

/** The first n documents. */
export function generateCorpus(n: number, config: CorpusConfigInput | CorpusConfig = {}): CorpusDocument[] {
  if (!Number.isInteger(n) || n < 0) throw new Error(`generateCorpus: n must be a non-negative integer, got ${n}`);
  const c = parseCorpusConfig(config);
  return Array.from({ length: n }, (_, i) => corpusDocument(c, i));
}

/** Throws if any document's problem is held out or any document states a held-out product. */
export function assertTrainOnly(docs: Iterable<CorpusDocument>, config: CorpusConfigInput | CorpusConfig = {}): void {
  const c = parseCorpusConfig(config);
  for (const d of docs) {
    if (d.problem && splitOf(canonicalOf(d.problem), c.heldoutFraction) !== 'train') {
      throw new Error(`corpus document ${d.index} uses the held-out problem ${canonicalOf(d.problem)}`);
    }
    const leaks = heldOutProductsIn(d.text, c);
    if (leaks.length) throw new Error(`corpus document ${d.index} states the held-out product ${leaks[0]}`);
  }
}

export interface AccuracyRow {
  readonly documents: number;
  /** Documents whose completion has an answer that earns more than 0. */
  readonly answered: number;
  /** Documents whose answer earns 1. */
  readonly correct: number;
  readonly accuracy: number;
}

export interface CorpusAccuracy {
  /** Over task documents (facts documents have no answer and are not counted). */
  readonly overall: AccuracyRow;
  readonly byTask: Readonly<Record<TaskName, AccuracyRow>>;
  readonly byStyle: Readonly<Record<Style, AccuracyRow>>;
  readonly factsDocuments: number;
}

/** The corpus's own answer accuracy: the share of task documents whose final answer is right (reward 1). */
export function corpusAccuracy(docs: Iterable<CorpusDocument>): CorpusAccuracy {
  type Acc = { documents: number; answered: number; correct: number };
  const zero = (): Acc => ({ documents: 0, answered: 0, correct: 0 });
  const all = zero();
  const byTask = Object.fromEntries(TASK_NAMES.map((t) => [t, zero()])) as Record<TaskName, Acc>;
  const byStyle = Object.fromEntries(STYLES.map((s) => [s, zero()])) as Record<Style, Acc>;
  let facts = 0;
  for (const d of docs) {
    if (!d.problem || !d.task || !d.style) {
      facts++;
      continue;
    }
    const r = scoreCompletion(d.completion, d.problem).reward;
    for (const a of [all, byTask[d.task], byStyle[d.style]]) {
      a.documents++;
      if (r > 0) a.answered++;
      if (r === 1) a.correct++;
    }
  }
  const row = (a: Acc): AccuracyRow => ({ ...a, accuracy: a.documents ? a.correct / a.documents : 0 });
  return {
    overall: row(all),
    byTask: Object.fromEntries(TASK_NAMES.map((t) => [t, row(byTask[t])])) as Record<TaskName, AccuracyRow>,
    byStyle: Object.fromEntries(STYLES.map((s) => [s, row(byStyle[s])])) as Record<Style, AccuracyRow>,
    factsDocuments: facts,
  };
}

export { STYLES, type Style } from './corpus/common.ts';
export type { SeedPart };
