/**
 * Evaluation of a model on a reasoning task: the place where the tokenizer, the tasks and the
 * generation engine meet.
 *
 * For each problem (generated from a task's split, given, or read from a Countdown task file in
 * TinyZero's schema) the R1-Zero prompt ([BOS] + prompt, src/data encodeProblemPrompt) gets
 * `samples` completions from the engine (one prefill per prompt, group sharing), stopping at EOS
 * and — unless `stopAtAnswer` is false — at the first `</answer>`. Each completion is decoded as
 * the reward functions expect (decodeCompletion: up to EOS, control tokens dropped) and scored by
 * the task's rule (scoreCompletion: reward 0 / 0.1 / 1).
 *
 * The figures (pass@1, unbiased pass@k, majority vote, mean reward and length, truncated and
 * well-formed shares, score reasons: tally.ts) come with the settings, the generation speed and a
 * few example completions, all JSON-serialisable. temperature 0 is greedy decoding, which allows
 * one sample per problem only.
 *
 * It knows tasks, tokenizers and the engine's API; not training or checkpoints.
 */
import { setImmediate as nextTurn } from 'node:timers/promises';
import {
  type Problem,
  type ScoreReason,
  type Split,
  type TaskName,
  decodeCompletion,
  encodeTaskPrompt,
  type PromptFormat,
  generateProblems,
  loadCountdownFile,
  referenceAnswerOf,
  scoreCompletion,
} from '../data/index.ts';
import { generate } from '../engine/index.ts';
import type { DeepSeekV3 } from '../model/transformer.ts';
import type { Tokenizer } from '../tokenizer/index.ts';
import { defaultKs } from './passk.ts';
import { type Figures, type SampleOutcome, tally } from './tally.ts';

export interface EvaluateOptions {
  /** Task whose problems are generated (default 'countdown'); ignored with `problems` / `taskFile`. */
  task?: TaskName;
  /** Split to draw generated problems from (default 'heldout'). */
  split?: Split;
  /** The task generator's settings (difficulty), e.g. {maxNumber: 20}; missing fields take the task's defaults. */
  taskConfig?: Record<string, unknown>;
  /** Problems to evaluate (default 100); caps `problems` and `taskFile` too. */
  n?: number;
  /** Evaluate these problems instead of generated ones. */
  problems?: readonly Problem[];
  /** A Countdown task file (JSONL or parquet, TinyZero's schema) to evaluate instead. */
  taskFile?: string;
  /** taskFile: stop at the first malformed row (default) or skip such rows. */
  onBadRow?: 'stop' | 'skip';
  /** Completions per problem (default 1). */
  samples?: number;
  /** Default 0: greedy. */
  temperature?: number;
  topP?: number;
  topK?: number;
  /** Most ids per completion (default 256). */
  maxNewTokens?: number;
  /** Seeds the problem generator and the sampler (default 0). */
  seed?: number;
  /** Prompts per generation batch (default 16; rows = batchSize × samples). */
  batchSize?: number;
  /**
   * How problems are asked: 'r1-zero' (default) the R1-Zero prompt; 'r1' R1's chat template with the
   * question as the user turn (a model trained on chat conversations, e.g. `distill --template r1`).
   */
  format?: PromptFormat;
  /** Stop a completion at its first </answer> (default true). */
  stopAtAnswer?: boolean;
  /** The k of pass@k (default 1, powers of two, samples). */
  ks?: readonly number[];
  /** How many sample completions to include in the report (default 3). */
  examples?: number;
  /** Called after each batch with the problems done so far. */
  onProgress?: (done: number, total: number) => void;
}

export interface EvalExample {
  problem: Problem;
  reference: string | null;
  completion: string;
  reward: number;
  reason: ScoreReason;
  answer: string | null;
}

export interface EvalReport extends Figures {
  task: TaskName | 'mixed';
  /** 'generated:<split>', 'given', or the task file's path. */
  source: string;
  problems: number;
  samples: number;
  temperature: number;
  topP: number;
  topK: number;
  maxNewTokens: number;
  seed: number;
  stopAtAnswer: boolean;
  format: PromptFormat;
  generatedTokens: number;
  seconds: number;
  tokensPerSecond: number;
  examples: EvalExample[];
}

interface Source {
  problems: Problem[];
  source: string;
}

async function problemsFor(o: EvaluateOptions, n: number, seed: number): Promise<Source> {
  const given = [o.problems !== undefined, o.taskFile !== undefined].filter(Boolean).length;
  if (given > 1) throw new Error('evaluate: give problems or taskFile, not both');
  if (o.problems) return { problems: o.problems.slice(0, n), source: 'given' };
  if (o.taskFile) {
    const loaded = await loadCountdownFile(o.taskFile, { limit: n, onBadRow: o.onBadRow });
    const skipped = loaded.report.skipped.length;
    return { problems: loaded.problems, source: skipped ? `${o.taskFile} (${skipped} bad rows skipped)` : o.taskFile };
  }
  const split = o.split ?? 'heldout';
  return { problems: generateProblems(o.task ?? 'countdown', { seed, split, n, config: o.taskConfig }), source: `generated:${split}` };
}

function positiveInt(v: number, what: string): number {
  if (!Number.isInteger(v) || v < 1) throw new RangeError(`evaluate: ${what} must be a positive integer, got ${v}`);
  return v;
}

export async function evaluate(model: DeepSeekV3, tokenizer: Tokenizer, o: EvaluateOptions = {}): Promise<EvalReport> {
  const n = positiveInt(o.n ?? 100, 'n');
  const samples = positiveInt(o.samples ?? 1, 'samples');
  const maxNewTokens = positiveInt(o.maxNewTokens ?? 256, 'maxNewTokens');
  const batchSize = positiveInt(o.batchSize ?? 16, 'batchSize');
  const temperature = o.temperature ?? 0;
  const seed = o.seed ?? 0;
  const stopAtAnswer = o.stopAtAnswer ?? true;
  if (temperature === 0 && samples > 1)
    throw new RangeError(`evaluate: greedy decoding (temperature 0) gives ${samples} identical samples; use samples 1 or a temperature > 0`);
  const ks = [...new Set(o.ks ?? defaultKs(samples))].sort((a, b) => a - b);
  for (const k of ks) if (!Number.isInteger(k) || k < 1 || k > samples) throw new RangeError(`evaluate: pass@${k} needs 1 ≤ k ≤ samples (${samples})`);
  if (tokenizer.vocabSize > model.config.vocab_size) {
    throw new Error(`the tokenizer has ${tokenizer.vocabSize} ids but the model's vocabulary only ${model.config.vocab_size}: they do not belong together`);
  }
  const sp = tokenizer.special;
  const eosIds = [sp.eos].filter((id) => id >= 0);
  const stopSequences = stopAtAnswer && sp.answerClose >= 0 ? [[sp.answerClose]] : [];
  const { problems, source } = await problemsFor(o, n, seed);
  if (problems.length === 0) throw new Error(`evaluate: no problems to evaluate (source ${source})`);

  const outcomes: SampleOutcome[][] = []; // per problem
  const examples: EvalExample[] = [];
  const wantExamples = o.examples ?? 3;
  let generated = 0;
  let genMs = 0;
  for (let start = 0; start < problems.length; start += batchSize) {
    const batch = problems.slice(start, start + batchSize);
    const prompts = batch.map((p) => encodeTaskPrompt(tokenizer, p, o.format ?? 'r1-zero'));
    const r = generate(model, prompts, {
      maxNewTokens,
      groupSize: samples,
      temperature,
      topP: o.topP,
      topK: o.topK,
      seed: seed + start, // each batch its own stream, the same whatever ran before
      eosIds,
      stopSequences,
      padId: sp.pad >= 0 ? sp.pad : undefined,
    });
    generated += r.stats.generatedTokens;
    genMs += r.stats.prefillMs + r.stats.decodeMs;
    batch.forEach((p, b) => {
      const scored: SampleOutcome[] = [];
      for (let g = 0; g < samples; g++) {
        const row = b * samples + g; // group layout: prompt b's g-th completion
        const text = decodeCompletion(tokenizer, r.tokens[row]);
        const s = scoreCompletion(text, p);
        scored.push({ reward: s.reward, reason: s.reason, answer: s.answer, tokens: r.tokens[row].length, truncated: r.finishReason[row] === 'length' });
        if (examples.length < wantExamples && g === 0) {
          examples.push({ problem: p, reference: referenceAnswerOf(p), completion: text, reward: s.reward, reason: s.reason, answer: s.answer });
        }
      }
      outcomes.push(scored);
    });
    o.onProgress?.(Math.min(start + batchSize, problems.length), problems.length);
    await nextTurn();
  }

  const tasks = new Set(problems.map((p) => p.task));
  return {
    task: tasks.size === 1 ? problems[0].task : 'mixed',
    source,
    problems: problems.length,
    samples,
    temperature,
    topP: o.topP ?? 1,
    topK: o.topK ?? 0,
    maxNewTokens,
    seed,
    stopAtAnswer,
    format: o.format ?? 'r1-zero',
    ...tally(outcomes, ks),
    generatedTokens: generated,
    seconds: genMs / 1000,
    tokensPerSecond: generated / Math.max(genMs / 1000, 1e-9),
    examples,
  };
}
