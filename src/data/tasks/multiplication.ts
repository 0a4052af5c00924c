/**
 * Multiplication (TinyZero's multiply task): a × b, each factor with a configurable number of
 * digits. The prompt's question is TinyZero's "Give me the answer of the following equation:
 * {a} * {b} =" with " ?" added (TinyZero put "Assistant:" right after "="; here the format
 * instruction follows), inside the shared R1-Zero frame (prompt.ts). Reward: integer-answer.ts
 * (1.0 exact product, 0.1 another integer, 0 otherwise).
 *
 * a × b and b × a are the same problem (the canonical form sorts the factors), so a held-out
 * product never appears in train in either order. It knows nothing about tokenizers or training.
 */
import { z } from 'zod';
import { PROMPT_FRAMES, type PromptFrame, answerInstruction, framedPrompt } from '../prompt.ts';
import type { Rng } from '../rng.ts';
import { scoreIntegerAnswer } from './integer-answer.ts';
import type { MultiplicationProblem, Task } from './types.ts';

const digits = z.number().int().min(1).max(7);

export const MultiplicationConfig = z
  .object({
    /** Fewest digits of the first factor. Each problem draws a digit count uniformly, then a number with that many digits. */
    minDigitsA: digits.default(1),
    /** Most digits of the first factor (TinyZero's multiply-3_digit: 3). */
    maxDigitsA: digits.default(3),
    /** Fewest digits of the second factor. */
    minDigitsB: digits.default(1),
    /** Most digits of the second factor (TinyZero: 3). */
    maxDigitsB: digits.default(3),
    /** The prompt frame of generated problems (prompt.ts): TinyZero's text, or the compact R1-Zero-shaped one. */
    promptFrame: z.enum(PROMPT_FRAMES as [PromptFrame, ...PromptFrame[]]).default('tinyzero'),
  })
  .strict()
  .refine((c) => c.minDigitsA <= c.maxDigitsA && c.minDigitsB <= c.maxDigitsB, { message: 'min digits must be <= max digits' });
export type MultiplicationConfig = z.infer<typeof MultiplicationConfig>;

export function digitRange(d: number): [number, number] {
  return [d === 1 ? 1 : 10 ** (d - 1), 10 ** d - 1];
}

const digitCount = (n: number): number => String(Math.abs(n)).length;

/** Whether a pair of factors could be drawn under this configuration, in either order. */
export function inMultiplicationRange(a: number, b: number, c: MultiplicationConfig): boolean {
  const fits = (x: number, lo: number, hi: number): boolean => x >= 1 && digitCount(x) >= lo && digitCount(x) <= hi;
  const ab = fits(a, c.minDigitsA, c.maxDigitsA) && fits(b, c.minDigitsB, c.maxDigitsB);
  const ba = fits(b, c.minDigitsA, c.maxDigitsA) && fits(a, c.minDigitsB, c.maxDigitsB);
  return ab || ba;
}

export const multiplicationCanonical = (a: number, b: number): string => `multiplication|${Math.min(a, b)}x${Math.max(a, b)}`;

export const multiplication: Task<MultiplicationProblem, MultiplicationConfig> = {
  name: 'multiplication',
  defaults: MultiplicationConfig.parse({}),
  canonical: (p) => multiplicationCanonical(p.a, p.b),
  question: (p) => `Give me the answer of the following equation: ${p.a} * ${p.b} = ?`,
  instruction: () => answerInstruction('1234'),
  prompt: (p) => framedPrompt(p.promptFrame, multiplication.question(p), multiplication.instruction(p)),
  referenceAnswer: (p) => String(p.a * p.b),
  sample(rng: Rng, c: MultiplicationConfig): MultiplicationProblem {
    const draw = (lo: number, hi: number): number => {
      const [a, b] = digitRange(rng.int(lo, hi));
      return rng.int(a, b);
    };
    const p: MultiplicationProblem = { task: 'multiplication', a: draw(c.minDigitsA, c.maxDigitsA), b: draw(c.minDigitsB, c.maxDigitsB) };
    return c.promptFrame === 'tinyzero' ? p : { ...p, promptFrame: c.promptFrame };
  },
  score: (completion, p) => scoreIntegerAnswer(completion, BigInt(p.a) * BigInt(p.b)),
  reward: (completion, p) => scoreIntegerAnswer(completion, BigInt(p.a) * BigInt(p.b)).reward,
};
