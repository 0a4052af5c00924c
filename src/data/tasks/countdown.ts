/**
 * Countdown (TinyZero): combine the given numbers with + - * / and parentheses, each number
 * exactly once, to reach the target. Problems are generated solvable by construction: draw the
 * numbers, build a random expression over all of them, and keep it when its value is a whole
 * number in the target range — so every generated problem carries a known solution.
 *
 * Reward (docs/data.md; TinyZero's compute_score with format_score 0.1), in this order:
 *   0    no complete <answer>…</answer> pair (see answer.ts for which pair counts);
 *   0.1  the trimmed answer is empty, longer than 1000 characters, not a safe expression
 *        (/^[0-9+\-*\/().\s]+$/, ASCII digits only), does not parse, nests deeper than 32,
 *        does not use exactly the multiset of the problem's numbers (every number, each exactly
 *        once — TinyZero's validate_equation compares the sorted lists), divides by zero, or
 *        evaluates to a value v with |v − target| ≥ 1e-5;
 *   1.0  it evaluates (exact rationals) to v with |v − target| < 1e-5.
 *
 * It knows nothing about tokenizers or training.
 */
import { z } from 'zod';
import { DEFAULT_ARITH_LIMITS, evalArith } from '../arith.ts';
import { extractAnswer } from '../answer.ts';
import { PROMPT_FRAMES, type PromptFrame, answerInstruction, framedPrompt } from '../prompt.ts';
import { withinTolerance } from '../rational.ts';
import type { Rng } from '../rng.ts';
import { randomTree, render, solveCountdown } from './countdown-expr.ts';
import type { CountdownProblem, Reward, Score, Task } from './types.ts';

export const CountdownConfig = z
  .object({
    /** Fewest numbers per problem (TinyZero's Countdown-Tasks-3to4: 3). */
    minCount: z.number().int().min(2).max(6).default(3),
    /** Most numbers per problem (TinyZero: 4). */
    maxCount: z.number().int().min(2).max(6).default(4),
    /** Smallest number drawn (TinyZero: 1). */
    minNumber: z.number().int().min(0).default(1),
    /** Largest number drawn (TinyZero: 99). */
    maxNumber: z.number().int().min(1).max(1_000_000).default(99),
    /** Smallest target (TinyZero: 1). */
    minTarget: z.number().int().default(1),
    /** Largest target (TinyZero: 100). */
    maxTarget: z.number().int().default(100),
    /**
     * Require every intermediate result of the generated solution to be a positive whole number
     * (the TV game's rule). The reward does not require it; it only shapes the generated solutions.
     */
    integerSteps: z.boolean().default(true),
    /** The prompt frame of generated problems (prompt.ts): TinyZero's text, or the compact R1-Zero-shaped one. */
    promptFrame: z.enum(PROMPT_FRAMES as [PromptFrame, ...PromptFrame[]]).default('tinyzero'),
  })
  .strict()
  .refine((c) => c.minCount <= c.maxCount, { message: 'minCount must be <= maxCount' })
  .refine((c) => c.minNumber <= c.maxNumber, { message: 'minNumber must be <= maxNumber' })
  .refine((c) => c.minTarget <= c.maxTarget, { message: 'minTarget must be <= maxTarget' });
export type CountdownConfig = z.infer<typeof CountdownConfig>;

const INSTRUCTION = `You can use basic arithmetic operations (+, -, *, /) and each number can only be used once. ${answerInstruction('(1 + 2) / 3')}`;

/** Attempts per problem before giving up on a configuration that rarely yields solvable problems. */
const MAX_ATTEMPTS = 200_000;

export function countdownProblem(
  nums: readonly number[],
  target: number,
  solution: string | null = null,
  promptFrame: PromptFrame = 'tinyzero',
): CountdownProblem {
  const p: CountdownProblem = { task: 'countdown', nums: [...nums], target, solution };
  return promptFrame === 'tinyzero' ? p : { ...p, promptFrame };
}

export const countdown: Task<CountdownProblem, CountdownConfig> = {
  name: 'countdown',
  defaults: CountdownConfig.parse({}),

  canonical: (p) => `countdown|${[...p.nums].sort((a, b) => a - b).join(',')}|${p.target}`,

  question: (p) => `Using the numbers [${p.nums.join(', ')}], create an equation that equals ${p.target}.`,

  instruction: () => INSTRUCTION,

  prompt(p) {
    return framedPrompt(p.promptFrame, countdown.question(p), countdown.instruction(p));
  },

  referenceAnswer(p) {
    if (p.solution !== null) return p.solution;
    return p.nums.length <= 5 ? solveCountdown(p.nums, p.target) : null;
  },

  sample(rng: Rng, c: CountdownConfig): CountdownProblem {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const n = rng.int(c.minCount, c.maxCount);
      const nums = Array.from({ length: n }, () => rng.int(c.minNumber, c.maxNumber));
      const tree = randomTree(rng, nums, c.integerSteps);
      const v = tree.value;
      if (v.d !== 1n) continue;
      const t = Number(v.n);
      if (t < c.minTarget || t > c.maxTarget) continue;
      return countdownProblem(nums, t, render(tree), c.promptFrame);
    }
    throw new Error(`countdown: no solvable problem found in ${MAX_ATTEMPTS} attempts with ${JSON.stringify(c)}; widen the target range or the number range`);
  },

  score(completion: string, p: CountdownProblem): Score {
    if (typeof completion !== 'string') return { reward: 0, reason: 'no-answer', answer: null };
    const ex = extractAnswer(completion);
    if (!ex.found) return { reward: 0, reason: 'no-answer', answer: null };
    const answer = ex.content.trim();
    const r = evalArith(answer, DEFAULT_ARITH_LIMITS);
    const shown = answer.length > 200 ? `${answer.slice(0, 200)}…` : answer;
    if (!r.ok && r.error !== 'division-by-zero') return { reward: 0.1, reason: r.error, answer: shown };
    const literals = r.literals ?? [];
    if (!sameMultiset(literals, p.nums)) return { reward: 0.1, reason: 'wrong-numbers', answer: shown };
    if (!r.ok) return { reward: 0.1, reason: 'division-by-zero', answer: shown };
    return withinTolerance(r.value, p.target) ? { reward: 1, reason: 'correct', answer: shown } : { reward: 0.1, reason: 'wrong-value', answer: shown };
  },

  reward(completion: string, p: CountdownProblem): Reward {
    return countdown.score(completion, p).reward;
  },
};

function sameMultiset(literals: readonly bigint[], nums: readonly number[]): boolean {
  if (literals.length !== nums.length) return false;
  const a = [...literals].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
  const b = nums.map((n) => BigInt(n)).sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
  return a.every((v, i) => v === b[i]);
}
