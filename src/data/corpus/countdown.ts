/**
 * Worked Countdown solutions in the six corpus styles (common.ts). Candidates are random full
 * expressions over the problem's numbers with positive whole intermediate results, each computed
 * step by step and compared with the target, as a person searching by hand would; the correct
 * ending is the problem's known solution. Every step a trace writes is true arithmetic except the
 * one slip of the slip and selfCorrect styles.
 *
 * It knows nothing about how documents are mixed or tokenized.
 */
import { parseArith, type Expr } from '../arith.ts';
import { type Rational, rat, toString as ratToString } from '../rational.ts';
import type { Rng } from '../rng.ts';
import { type CNode, type Step, apply, randomTree, render, showStep, solveCountdown, steps } from '../tasks/countdown-expr.ts';
import type { CountdownProblem } from '../tasks/types.ts';
import { type Style, type Trace, type TraceKnobs, slipValue } from './common.ts';

interface Candidate {
  readonly expr: string;
  readonly steps: Step[];
  readonly value: number;
}

const num = (r: Rational): number => Number(r.n) / Number(r.d);

function toTree(e: Expr): CNode {
  if (e.kind === 'num') return { kind: 'num', value: rat(e.value) };
  if ('arg' in e) throw new Error('countdown solutions have no unary signs');
  const left = toTree(e.left);
  const right = toTree(e.right);
  const value = apply(e.kind, left.value, right.value);
  if (value === null) throw new Error('countdown solution divides by zero');
  return { kind: 'op', op: e.kind, left, right, value };
}

/** The reference solution as a candidate, or null when the problem has none (unsolvable user row). */
function reference(p: CountdownProblem): Candidate | null {
  const sol = p.solution ?? (p.nums.length <= 5 ? solveCountdown(p.nums, p.target) : null);
  if (sol === null) return null;
  const parsed = parseArith(sol);
  if (!parsed.ok) return null;
  const tree = toTree(parsed.expr);
  return { expr: sol, steps: steps(tree), value: num(tree.value) };
}

function candidate(rng: Rng, nums: readonly number[]): Candidate {
  const tree = randomTree(rng, nums, true);
  return { expr: render(tree), steps: steps(tree), value: num(tree.value) };
}

function opening(rng: Rng, p: CountdownProblem): string {
  const ns = p.nums.join(', ');
  return rng.pick([
    `We need to make ${p.target} from ${ns}, each number once.`,
    `Numbers: ${ns}. Target: ${p.target}.`,
    `Let me combine ${ns} to get ${p.target}.`,
  ]);
}

function verdict(rng: Rng, v: number, target: number): string {
  if (v === target) return rng.pick(['That works!', `That is ${target}!`, `Yes, ${target}.`]);
  if (v > target) return rng.pick([`${v} is too big.`, `${v} is not ${target}.`, `${v}, too high.`]);
  return rng.pick([`${v} is too small.`, `${v} is not ${target}.`, `${v}, too low.`]);
}

/** One tried candidate as a line; `shownLast` replaces the last step's result (a slip). */
function tryLine(rng: Rng, c: Candidate, target: number, shownLast?: number): string {
  const parts = c.steps.map((s, i) => (i === c.steps.length - 1 && shownLast !== undefined ? showStep(s, rat(shownLast)) : showStep(s)));
  const claimed = shownLast ?? c.value;
  return `${rng.pick(['Try', 'What about', 'Maybe'])} ${c.expr}: ${parts.join(', ')}. ${verdict(rng, claimed, target)}`;
}

/** A candidate abandoned early because its first step overshoots badly. */
function prunedLine(c: Candidate, target: number): string | null {
  const s = c.steps[0];
  if (c.steps.length < 2 || num(s.result) <= 3 * target + 50) return null;
  return `${ratToString(s.a)} ${s.op} ${ratToString(s.b)} = ${ratToString(s.result)}, too big to come back to ${target}.`;
}

interface SearchState {
  closest: Candidate | null;
  hit: Candidate | null;
}

/** Read through a call so that the compiler does not narrow a field that failedTries mutates. */
const hitOf = (st: SearchState): Candidate | null => st.hit;

/** Writes k failed (or lucky) tries; stops early when a try hits the target. */
function failedTries(rng: Rng, p: CountdownProblem, k: number, lines: string[], st: SearchState): void {
  for (let i = 0; i < k && !st.hit; i++) {
    const c = candidate(rng, p.nums);
    const pruned = rng.bool(0.5) ? prunedLine(c, p.target) : null;
    if (pruned) {
      lines.push(pruned);
      continue;
    }
    lines.push(tryLine(rng, c, p.target));
    if (c.value === p.target) st.hit = c;
    else if (!st.closest || Math.abs(c.value - p.target) < Math.abs(st.closest.value - p.target)) st.closest = c;
  }
}

/**
 * A candidate that misses the target, the closest of several random ones: a slip that "reaches"
 * the target is then a small miscalculation (63 + 34 = 98), not an invented one (22 + 5 = 98).
 */
function wrongCandidate(rng: Rng, p: CountdownProblem): Candidate {
  let best: Candidate | null = null;
  for (let i = 0; i < 30; i++) {
    const c = candidate(rng, p.nums);
    if (c.value === p.target) continue;
    if (!best || Math.abs(c.value - p.target) < Math.abs(best.value - p.target)) best = c;
  }
  return best ?? candidate(rng, p.nums);
}

function endFailed(rng: Rng, p: CountdownProblem, lines: string[], st: SearchState): Trace {
  const c = st.closest ?? wrongCandidate(rng, p);
  lines.push(rng.pick(['I could not find an exact answer.', `Nothing gives exactly ${p.target}.`]), `The closest is ${c.expr} = ${c.value}.`);
  return { lines, answer: c.expr, closed: true };
}

function endFound(rng: Rng, ref: Candidate, p: CountdownProblem, lines: string[]): Trace {
  lines.push(tryLine(rng, ref, p.target));
  return { lines, answer: ref.expr, closed: true };
}

export function countdownTrace(rng: Rng, p: CountdownProblem, style: Style, k: TraceKnobs): Trace {
  const ref = reference(p);
  if (!ref) style = 'giveUp';
  const lines: string[] = [opening(rng, p)];
  const st: SearchState = { closest: null, hit: null };
  switch (style) {
    case 'direct': {
      for (const s of ref!.steps) lines.push(`${showStep(s)}.`);
      lines.push(`So ${ref!.expr} = ${p.target}.`);
      return { lines, answer: ref!.expr, closed: true };
    }
    case 'search': {
      failedTries(rng, p, rng.int(1, k.searchMaxTries), lines, st);
      if (st.hit) return { lines, answer: st.hit.expr, closed: true };
      return rng.bool(k.findProb) ? endFound(rng, ref!, p, lines) : endFailed(rng, p, lines, st);
    }
    case 'slip': {
      failedTries(rng, p, rng.int(0, 2), lines, st);
      if (st.hit) return { lines, answer: st.hit.expr, closed: true };
      const c = wrongCandidate(rng, p);
      lines.push(tryLine(rng, c, p.target, p.target));
      return { lines, answer: c.expr, closed: true };
    }
    case 'selfCorrect': {
      failedTries(rng, p, rng.int(0, 1), lines, st);
      if (st.hit) return { lines, answer: st.hit.expr, closed: true };
      const c = wrongCandidate(rng, p);
      const shown = rng.bool(0.6) ? p.target : slipValue(rng, c.value);
      lines.push(tryLine(rng, c, p.target, shown));
      const last = c.steps[c.steps.length - 1];
      lines.push(`Wait, ${showStep(last)}, not ${shown}. ${verdict(rng, c.value, p.target)}`);
      if (rng.bool(k.selfCorrectFindProb)) {
        failedTries(rng, p, rng.int(0, 1), lines, st);
        const lucky = hitOf(st);
        if (lucky) return { lines, answer: lucky.expr, closed: true };
        return endFound(rng, ref!, p, lines);
      }
      failedTries(rng, p, rng.int(1, 2), lines, st);
      const lucky = hitOf(st);
      if (lucky) return { lines, answer: lucky.expr, closed: true };
      return endFailed(rng, p, lines, st);
    }
    case 'wrongThing': {
      const variant = rng.int(0, 3);
      if (variant === 0) {
        lines.push(`The answer should be ${p.target}.`);
        return { lines, answer: String(p.target), closed: true };
      }
      if (variant === 1) {
        for (const s of ref!.steps) lines.push(`${showStep(s)}.`);
        return { lines, answer: `${ref!.expr} = ${p.target}`, closed: true };
      }
      if (variant === 2 && p.nums.length > 2) {
        const drop = rng.int(0, p.nums.length - 1);
        const c = candidate(
          rng,
          p.nums.filter((_, i) => i !== drop),
        );
        lines.push(`${tryLine(rng, c, p.target, c.value === p.target ? undefined : p.target)} I do not need ${p.nums[drop]}.`);
        return { lines, answer: c.expr, closed: true };
      }
      const c = candidate(rng, [...p.nums, rng.pick(p.nums)]);
      lines.push(tryLine(rng, c, p.target, p.target));
      return { lines, answer: c.expr, closed: true };
    }
    case 'giveUp': {
      failedTries(rng, p, rng.int(1, 2), lines, st);
      lines.push(rng.pick(['This is hard. I give up.', `I cannot find a way to make ${p.target}.`, 'I am not sure how to get there.']));
      return { lines, answer: null, closed: rng.bool(0.6) };
    }
  }
}
