/**
 * What a reasoning task is: problem data (plain JSON-serialisable objects, tagged by `task`), a
 * canonical form that fixes the train / held-out split, a question and a full R1-Zero prompt, a
 * reference answer, a sampler that draws one problem from a seeded Rng, and a reward function.
 *
 * Rewards take the completion alone (the text the model wrote after the prompt's "<think>") and
 * return exactly one of 0, 0.1, 1 — never throw, whatever the string.
 *
 * It knows nothing about tokenizers, batches or training.
 */
import type { PromptFrame } from '../prompt.ts';
import type { Rng } from '../rng.ts';

export type TaskName = 'countdown' | 'multiplication' | 'wordproblems';
export const TASK_NAMES: readonly TaskName[] = ['countdown', 'multiplication', 'wordproblems'];

export type Reward = 0 | 0.1 | 1;
export const REWARDS: readonly Reward[] = [0, 0.1, 1];

export interface CountdownProblem {
  readonly task: 'countdown';
  /** The numbers to combine, each to be used exactly once (TinyZero: 3 to 4 numbers). */
  readonly nums: readonly number[];
  readonly target: number;
  /** A known solution expression, or null for a user row we have not solved. */
  readonly solution: string | null;
  /** The prompt frame (prompt.ts); absent: TinyZero's. Not part of the problem's identity. */
  readonly promptFrame?: PromptFrame;
}

export interface MultiplicationProblem {
  readonly task: 'multiplication';
  readonly a: number;
  readonly b: number;
  /** The prompt frame (prompt.ts); absent: TinyZero's. Not part of the problem's identity. */
  readonly promptFrame?: PromptFrame;
}

/** One operation of a word problem, applied to the running quantity. */
export type WordOp =
  | { readonly kind: 'add'; readonly k: number }
  | { readonly kind: 'groups'; readonly groups: number; readonly each: number }
  | { readonly kind: 'sub'; readonly k: number }
  | { readonly kind: 'mul'; readonly m: number }
  | { readonly kind: 'div'; readonly d: number };

export interface WordProblem {
  readonly task: 'wordproblems';
  /** The story, ending with the question. */
  readonly text: string;
  readonly start: number;
  readonly ops: readonly WordOp[];
  readonly answer: number;
}

export type Problem = CountdownProblem | MultiplicationProblem | WordProblem;

export type ProblemOf<N extends TaskName> = Extract<Problem, { task: N }>;

/** Why a completion got its reward (for logs and tests). */
export type ScoreReason =
  | 'no-answer'
  | 'empty'
  | 'too-long'
  | 'unsafe-chars'
  | 'syntax'
  | 'too-deep'
  | 'wrong-numbers'
  | 'division-by-zero'
  | 'not-an-integer'
  | 'wrong-value'
  | 'correct';

export interface Score {
  readonly reward: Reward;
  readonly reason: ScoreReason;
  /** The trimmed answer that was scored, or null when no answer was found. */
  readonly answer: string | null;
}

export interface Task<P extends Problem, C> {
  readonly name: P['task'];
  /** The configuration used when none is given (TinyZero's where TinyZero has one). */
  readonly defaults: C;
  /** A problem's identity: equal strings are the same problem (used for the split and de-duplication). */
  canonical(p: P): string;
  /** The user's question, without the format instruction. */
  question(p: P): string;
  /** The format instruction appended to the question in the prompt. */
  instruction(p: P): string;
  /** The whole R1-Zero prompt, ending with "<think>". */
  prompt(p: P): string;
  /** What a correct `<answer>` holds. Null only for an unsolved Countdown user row. */
  referenceAnswer(p: P): string | null;
  /** Draws one problem (either split; callers filter). */
  sample(rng: Rng, config: C): P;
  score(completion: string, p: P): Score;
  reward(completion: string, p: P): Reward;
}
