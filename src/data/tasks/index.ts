/**
 * The task registry and what works on any problem: dispatch by `problem.task` (prompt, reference
 * answer, score, split), and seeded problem generation for one split.
 *
 * Generation draws problems from one stream per (seed, task) and keeps those whose split (a hash of
 * the canonical form, split.ts) is the one asked for, skipping repeats by default; asking for more
 * problems returns a longer list with the same prefix. It knows nothing about tokenizers.
 */
import type { z } from 'zod';
import { Rng, type SeedPart } from '../rng.ts';
import { DEFAULT_HELDOUT_FRACTION, type Split, splitOf } from '../split.ts';
import { CountdownConfig, countdown } from './countdown.ts';
import { MultiplicationConfig, multiplication } from './multiplication.ts';
import type { Problem, ProblemOf, Reward, Score, Task, TaskName } from './types.ts';
import { WordProblemsConfig, wordproblems } from './wordproblems.ts';

export interface TaskConfigs {
  countdown: CountdownConfig;
  multiplication: MultiplicationConfig;
  wordproblems: WordProblemsConfig;
}

export type TaskRegistry = { [N in TaskName]: Task<ProblemOf<N>, TaskConfigs[N]> };

export const TASKS: TaskRegistry = { countdown, multiplication, wordproblems };

/** The zod schema of each task's generator configuration. */
export const TASK_CONFIG_SCHEMAS = { countdown: CountdownConfig, multiplication: MultiplicationConfig, wordproblems: WordProblemsConfig };
const SCHEMAS = TASK_CONFIG_SCHEMAS;

export type TaskConfigInput<N extends TaskName> = z.input<(typeof SCHEMAS)[N]>;

export function isTaskName(s: string): s is TaskName {
  return s === 'countdown' || s === 'multiplication' || s === 'wordproblems';
}

/** Validates a (partial) generator configuration, filling defaults; errors name the field. */
export function parseTaskConfig<N extends TaskName>(name: N, input: unknown = {}): TaskConfigs[N] {
  const r = SCHEMAS[name].safeParse(input ?? {});
  if (!r.success) {
    const msg = r.error.issues.map((i) => `${[name, ...i.path].join('.')}: ${i.message}`).join('; ');
    throw new Error(`invalid ${name} configuration: ${msg}`);
  }
  return r.data as TaskConfigs[N];
}

// Dispatch on the problem's tag. Each branch is typed; the helpers below are the public surface.
function withTask<R>(p: Problem, f: <P extends Problem>(t: Task<P, unknown>, p: P) => R): R {
  switch (p.task) {
    case 'countdown':
      return f(countdown as Task<typeof p, unknown>, p);
    case 'multiplication':
      return f(multiplication as Task<typeof p, unknown>, p);
    case 'wordproblems':
      return f(wordproblems as Task<typeof p, unknown>, p);
    default:
      throw new Error(`unknown task ${JSON.stringify((p as { task?: unknown }).task)}; expected one of countdown, multiplication, wordproblems`);
  }
}

export const canonicalOf = (p: Problem): string => withTask(p, (t, q) => t.canonical(q));
export const promptOf = (p: Problem): string => withTask(p, (t, q) => t.prompt(q));
export const questionOf = (p: Problem): string => withTask(p, (t, q) => t.question(q));
export const instructionOf = (p: Problem): string => withTask(p, (t, q) => t.instruction(q));
export const referenceAnswerOf = (p: Problem): string | null => withTask(p, (t, q) => t.referenceAnswer(q));
/** Scores a completion (the text after the prompt) against a problem of any task. Never throws. */
export const scoreCompletion = (completion: string, p: Problem): Score => withTask(p, (t, q) => t.score(completion, q));
export const rewardOf = (completion: string, p: Problem): Reward => scoreCompletion(completion, p).reward;
export const splitOfProblem = (p: Problem, heldoutFraction = DEFAULT_HELDOUT_FRACTION): Split => splitOf(canonicalOf(p), heldoutFraction);

export interface GenerateOptions<N extends TaskName> {
  seed: SeedPart;
  split: Split;
  /** Generator configuration; missing fields take the task's defaults. */
  config?: TaskConfigInput<N>;
  heldoutFraction?: number;
  /** Skip problems already returned (by canonical form). Default true. */
  unique?: boolean;
  /** Draws allowed per returned problem before giving up (default 10_000). */
  maxDrawsPerProblem?: number;
}

/** An endless seeded stream of problems of one split. */
export function* problemStream<N extends TaskName>(
  name: N,
  o: Omit<GenerateOptions<N>, 'maxDrawsPerProblem'> & { maxDrawsPerProblem?: number },
): Generator<ProblemOf<N>> {
  const task = TASKS[name] as Task<ProblemOf<N>, TaskConfigs[N]>;
  const config = parseTaskConfig(name, o.config ?? {});
  const rng = new Rng(o.seed, name, 'problems');
  const frac = o.heldoutFraction ?? DEFAULT_HELDOUT_FRACTION;
  const unique = o.unique ?? true;
  const seen = new Set<string>();
  const maxDraws = o.maxDrawsPerProblem ?? 10_000;
  let yielded = 0;
  for (;;) {
    let draws = 0;
    for (;;) {
      if (++draws > maxDraws) {
        throw new Error(
          `${name}: no new ${o.split} problem after ${maxDraws} draws (${yielded} found so far); the problem space of this configuration is nearly exhausted — widen the ranges or ask for fewer problems`,
        );
      }
      const p = task.sample(rng, config);
      const key = task.canonical(p);
      if (splitOf(key, frac) !== o.split) continue;
      if (unique) {
        if (seen.has(key)) continue;
        seen.add(key);
      }
      yielded++;
      yield p;
      break;
    }
  }
}

/** The first n problems of a split for a seed. */
export function generateProblems<N extends TaskName>(name: N, o: GenerateOptions<N> & { n: number }): ProblemOf<N>[] {
  if (!Number.isInteger(o.n) || o.n < 0) throw new Error(`generateProblems: n must be a non-negative integer, got ${o.n}`);
  const out: ProblemOf<N>[] = [];
  if (o.n === 0) return out;
  for (const p of problemStream(name, o)) {
    out.push(p);
    if (out.length >= o.n) break;
  }
  return out;
}

export { countdown, multiplication, wordproblems };
export type { Problem, ProblemOf, Reward, Score, Task, TaskName };
