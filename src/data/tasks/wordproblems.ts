/**
 * Multi-step arithmetic word problems: a person starts with a quantity of things and 2 to 4
 * operations change it (finds more, buys packs of several, gives some away, gets a multiple,
 * splits into equal piles and keeps one); the question asks for the final quantity, always a whole
 * number (every subtraction stays positive, every split is exact, every value stays <= maxValue).
 *
 * The canonical form is the arithmetic program only (start value and operations), not the names or
 * objects, so two stories with the same arithmetic are the same problem and share a split.
 * Reward: integer-answer.ts (1.0 exact, 0.1 another integer, 0 otherwise). It knows nothing about
 * tokenizers or training.
 */
import { z } from 'zod';
import { answerInstruction, r1ZeroPrompt } from '../prompt.ts';
import type { Rng } from '../rng.ts';
import { scoreIntegerAnswer } from './integer-answer.ts';
import type { Task, WordOp, WordProblem } from './types.ts';

export const WordProblemsConfig = z
  .object({
    /** Fewest operations after the starting quantity. */
    minOps: z.number().int().min(1).max(8).default(2),
    /** Most operations. */
    maxOps: z.number().int().min(1).max(8).default(4),
    /** Smallest starting quantity. */
    minStart: z.number().int().min(1).default(2),
    /** Largest starting quantity. */
    maxStart: z.number().int().min(1).default(50),
    /** No intermediate or final quantity exceeds this. */
    maxValue: z.number().int().min(10).default(1000),
  })
  .strict()
  .refine((c) => c.minOps <= c.maxOps, { message: 'minOps must be <= maxOps' })
  .refine((c) => c.minStart <= c.maxStart && c.maxStart <= c.maxValue, { message: 'need minStart <= maxStart <= maxValue' });
export type WordProblemsConfig = z.infer<typeof WordProblemsConfig>;

const NAMES = [
  'Ava',
  'Ben',
  'Chloe',
  'Dev',
  'Emma',
  'Finn',
  'Grace',
  'Hugo',
  'Ivy',
  'Jack',
  'Kira',
  'Leo',
  'Maya',
  'Noah',
  'Olga',
  'Pablo',
  'Quinn',
  'Rosa',
  'Sam',
  'Tara',
];
const ITEMS: readonly (readonly [string, string])[] = [
  ['marbles', 'bag'],
  ['stickers', 'sheet'],
  ['cookies', 'box'],
  ['books', 'crate'],
  ['pencils', 'pack'],
  ['coins', 'purse'],
  ['stamps', 'album page'],
  ['shells', 'bucket'],
  ['cards', 'deck'],
  ['apples', 'basket'],
];

/** Applies one operation. */
export function applyWordOp(v: number, op: WordOp): number {
  switch (op.kind) {
    case 'add':
      return v + op.k;
    case 'groups':
      return v + op.groups * op.each;
    case 'sub':
      return v - op.k;
    case 'mul':
      return v * op.m;
    case 'div':
      return v / op.d;
  }
}

export interface WordStep {
  /** e.g. "3 * 4 = 12" */
  readonly text: string;
  readonly a: number;
  readonly op: '+' | '-' | '*' | '/';
  readonly b: number;
  readonly result: number;
}

/** The arithmetic of the reference solution, one binary operation per step. */
export function wordSteps(p: WordProblem): WordStep[] {
  const out: WordStep[] = [];
  const step = (a: number, op: WordStep['op'], b: number, result: number): void => {
    out.push({ text: `${a} ${op} ${b} = ${result}`, a, op, b, result });
  };
  let v = p.start;
  for (const op of p.ops) {
    const next = applyWordOp(v, op);
    switch (op.kind) {
      case 'add':
        step(v, '+', op.k, next);
        break;
      case 'groups':
        step(op.groups, '*', op.each, op.groups * op.each);
        step(v, '+', op.groups * op.each, next);
        break;
      case 'sub':
        step(v, '-', op.k, next);
        break;
      case 'mul':
        step(v, '*', op.m, next);
        break;
      case 'div':
        step(v, '/', op.d, next);
        break;
    }
    v = next;
  }
  return out;
}

function sampleOp(rng: Rng, v: number, c: WordProblemsConfig): WordOp | null {
  const room = c.maxValue - v;
  const options: (() => WordOp | null)[] = [];
  if (room >= 1) options.push(() => ({ kind: 'add', k: rng.int(1, Math.min(50, room)) }));
  if (room >= 4)
    options.push(() => {
      const groups = rng.int(2, 9);
      const maxEach = Math.min(12, Math.floor(room / groups));
      return maxEach >= 2 ? { kind: 'groups', groups, each: rng.int(2, maxEach) } : null;
    });
  if (v >= 2) options.push(() => ({ kind: 'sub', k: rng.int(1, Math.min(50, v - 1)) }));
  if (v * 2 <= c.maxValue) options.push(() => ({ kind: 'mul', m: rng.int(2, Math.min(5, Math.floor(c.maxValue / v))) }));
  const divisors = [2, 3, 4, 5, 6, 7, 8, 9].filter((d) => v % d === 0 && v / d >= 1);
  if (divisors.length) options.push(() => ({ kind: 'div', d: rng.pick(divisors) }));
  if (!options.length) return null;
  return rng.pick(options)();
}

function sentence(rng: Rng, op: WordOp, name: string, items: string, container: string): string {
  switch (op.kind) {
    case 'add':
      return rng.pick([`${name} finds ${op.k} more ${items}.`, `A friend gives ${name} ${op.k} ${items}.`, `${name} buys ${op.k} more ${items}.`]);
    case 'groups':
      return `${name} buys ${op.groups} ${container}s of ${items} with ${op.each} ${items} in each ${container}.`;
    case 'sub':
      return rng.pick([`${name} gives ${op.k} ${items} away.`, `${name} loses ${op.k} ${items}.`, `${name} uses up ${op.k} ${items}.`]);
    case 'mul':
      return `Then ${name} collects more ${items} until there are ${op.m} times as many as before.`;
    case 'div':
      return `${name} splits the ${items} into ${op.d} equal piles and keeps one pile.`;
  }
}

const opKey = (op: WordOp): string => {
  switch (op.kind) {
    case 'add':
      return `+${op.k}`;
    case 'groups':
      return `+${op.groups}x${op.each}`;
    case 'sub':
      return `-${op.k}`;
    case 'mul':
      return `*${op.m}`;
    case 'div':
      return `/${op.d}`;
  }
};

export const wordproblems: Task<WordProblem, WordProblemsConfig> = {
  name: 'wordproblems',
  defaults: WordProblemsConfig.parse({}),
  canonical: (p) => `wordproblems|${p.start}|${p.ops.map(opKey).join('|')}`,
  question: (p) => p.text,
  instruction: () => answerInstruction('42'),
  prompt: (p) => r1ZeroPrompt(wordproblems.question(p), wordproblems.instruction(p)),
  referenceAnswer: (p) => String(p.answer),
  sample(rng: Rng, c: WordProblemsConfig): WordProblem {
    for (;;) {
      const start = rng.int(c.minStart, c.maxStart);
      const nOps = rng.int(c.minOps, c.maxOps);
      const ops: WordOp[] = [];
      let v = start;
      for (let i = 0; i < nOps; i++) {
        const op = sampleOp(rng, v, c);
        if (!op) break;
        ops.push(op);
        v = applyWordOp(v, op);
      }
      if (ops.length < nOps) continue;
      const name = rng.pick(NAMES);
      const [items, container] = rng.pick(ITEMS);
      const parts = [
        `${name} has ${start} ${items}.`,
        ...ops.map((op) => sentence(rng, op, name, items, container)),
        `How many ${items} does ${name} have now?`,
      ];
      return { task: 'wordproblems', text: parts.join(' '), start, ops, answer: v };
    }
  },
  score: (completion, p) => scoreIntegerAnswer(completion, p.answer),
  reward: (completion, p) => scoreIntegerAnswer(completion, p.answer).reward,
};
