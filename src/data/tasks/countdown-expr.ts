/**
 * Countdown expression trees: combining two sub-expressions under the game's rules, rendering a
 * tree with the fewest parentheses that keep its value, listing its steps ("44 + 19 = 63"), drawing
 * a random tree over given numbers, and an exhaustive solver for small instances.
 *
 * Values are exact rationals. With `integerSteps` every intermediate result must be a positive
 * integer (the TV game's rule; it makes step-by-step traces readable); without it any non-zero
 * divisor is allowed. It knows nothing about prompts or rewards.
 */
import { type Rational, add, div, isInteger, mul, rat, sub, toString as ratToString } from '../rational.ts';
import type { Rng } from '../rng.ts';

export type Op = '+' | '-' | '*' | '/';
export const OPS: readonly Op[] = ['+', '-', '*', '/'];

export type CNode =
  | { readonly kind: 'num'; readonly value: Rational }
  | { readonly kind: 'op'; readonly op: Op; readonly left: CNode; readonly right: CNode; readonly value: Rational };

export const leaf = (n: number): CNode => ({ kind: 'num', value: rat(n) });

export function apply(op: Op, a: Rational, b: Rational): Rational | null {
  switch (op) {
    case '+':
      return add(a, b);
    case '-':
      return sub(a, b);
    case '*':
      return mul(a, b);
    case '/':
      return div(a, b);
  }
}

/** a op b as a node, or null when the rules forbid it. */
export function combine(left: CNode, op: Op, right: CNode, integerSteps: boolean): CNode | null {
  const v = apply(op, left.value, right.value);
  if (v === null) return null;
  if (integerSteps && (!isInteger(v) || v.n <= 0n)) return null;
  return { kind: 'op', op, left, right, value: v };
}

const PREC: Record<Op, number> = { '+': 1, '-': 1, '*': 2, '/': 2 };
const prec = (n: CNode): number => (n.kind === 'num' ? 3 : PREC[n.op]);

/** The expression with minimal parentheses and spaces around operators: "(44 + 19) * 35". */
export function render(n: CNode): string {
  if (n.kind === 'num') return ratToString(n.value);
  const p = PREC[n.op];
  let l = render(n.left);
  if (prec(n.left) < p) l = `(${l})`;
  let r = render(n.right);
  if (prec(n.right) < p || (prec(n.right) === p && (n.op === '-' || n.op === '/'))) r = `(${r})`;
  return `${l} ${n.op} ${r}`;
}

export interface Step {
  readonly a: Rational;
  readonly op: Op;
  readonly b: Rational;
  readonly result: Rational;
}

/** The operations in evaluation order (post-order). */
export function steps(n: CNode): Step[] {
  if (n.kind === 'num') return [];
  return [...steps(n.left), ...steps(n.right), { a: n.left.value, op: n.op, b: n.right.value, result: n.value }];
}

export const showStep = (s: Step, result: Rational = s.result): string => `${ratToString(s.a)} ${s.op} ${ratToString(s.b)} = ${ratToString(result)}`;

/**
 * A random full expression over all the numbers: repeatedly joins two random pool entries with a
 * random allowed operator. Every tree shape and order can come out. '+' is always allowed, so this
 * always succeeds.
 */
export function randomTree(rng: Rng, nums: readonly number[], integerSteps: boolean, ops: readonly Op[] = OPS): CNode {
  const pool: CNode[] = nums.map(leaf);
  while (pool.length > 1) {
    const i = rng.int(0, pool.length - 1);
    let j = rng.int(0, pool.length - 2);
    if (j >= i) j++;
    const order = rng.shuffle([...ops]);
    let node: CNode | null = null;
    for (const op of order) {
      node = combine(pool[i], op, pool[j], integerSteps);
      if (node) break;
    }
    if (!node) node = combine(pool[i], '+', pool[j], false)!;
    const [hi, lo] = i > j ? [i, j] : [j, i];
    pool.splice(hi, 1);
    pool.splice(lo, 1);
    pool.push(node);
  }
  return pool[0];
}

/**
 * An expression that uses every number exactly once and equals the target (exact arithmetic, any
 * intermediate allowed), or null. Exhaustive pair-combining; refuses more than `maxNumbers`
 * numbers (6 numbers already mean ~10^7 expressions).
 */
export function solveCountdown(nums: readonly number[], target: number, maxNumbers = 5): string | null {
  if (nums.length > maxNumbers)
    throw new Error(`solveCountdown: ${nums.length} numbers is more than the ${maxNumbers} this solver searches; raise maxNumbers if you can wait`);
  if (nums.length === 0) return null;
  const goal = rat(target);
  const seen = new Set<string>();
  const search = (pool: CNode[]): CNode | null => {
    if (pool.length === 1) return pool[0].value.n === goal.n && pool[0].value.d === goal.d ? pool[0] : null;
    const key = pool
      .map((p) => ratToString(p.value))
      .sort()
      .join(',');
    if (seen.has(key)) return null;
    seen.add(key);
    for (let i = 0; i < pool.length; i++) {
      for (let j = 0; j < pool.length; j++) {
        if (i === j) continue;
        const rest = pool.filter((_, k) => k !== i && k !== j);
        for (const op of OPS) {
          if ((op === '+' || op === '*') && j < i) continue; // commutative: one order is enough
          const node = combine(pool[i], op, pool[j], false);
          if (!node) continue;
          const found = search([...rest, node]);
          if (found) return found;
        }
      }
    }
    return null;
  };
  const t = search(nums.map(leaf));
  return t ? render(t) : null;
}
