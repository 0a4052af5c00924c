/**
 * Countdown search traces for a model trained from scratch: a systematic, bounded search in a
 * fixed order, every written equation true, the line that reaches the target followed by a check
 * line, and — at random — an early stop that answers with the closest value found so far.
 *
 * The search (for n numbers; each line is one path to a final value):
 *   - combine two numbers of the pool: pairs in position order (0,1), (0,2), …, (1,2), …, each pair
 *     opening its block with a header that restates it and what is left ("2, 11 (18):"); operators
 *     always in the order +, *, −, ÷ (− and ÷ larger first), a step the rules refuse — − of equal
 *     numbers, an inexact ÷ — written as a line of its own ("11/2 no."), so that each block has
 *     the same four lines and every line follows from the one before; the result joins the end of
 *     the pool; repeat until two values are left, r (the last result) and z;
 *   - finish with the operators that can still give the target t, in this order: r + z (when
 *     r < t), r * z (when the product is at most t), r − z (when r > t and r > z), r ÷ z (when
 *     r > t and z divides r), z − r (when z > r and z > t), z ÷ r (when z > r, z ≥ t and r divides
 *     z) — a person does not compute 21 * 12 to reach 33; the line stops at the equation that
 *     gives t. Every finishing equation that gives t passes its condition, so nothing is missed.
 * One line reads "3+7=10. 10+12=22." (no spaces inside equations: fewer tokens).
 *
 * Early stop (what leaves reinforcement learning room): after each line that misses, the trace
 * stops with probability `stopFirst` (after the first line) or `stopLater` (after any later one)
 * and answers with the closest final value it wrote. A policy gains by searching on; the corpus
 * alone ends right about 56% of the time at the defaults (docs/data.md).
 *
 * Slips: with probability `slipShare` one missing equation of the trace is first written with a
 * wrong result and corrected on the spot ("Wait, 10*12=120."); no false equation is left standing.
 *
 * Verification against the target (`compareTarget`): each pair header restates the target
 * ("2, 11 (18) to 9:"), so the number a line must reach is a few tokens away when the search decides
 * whether it got there, and the check line compares the recomputed result with it ("… 9 is the
 * target."). With probability `claimShare` a trace makes one premature claim after a line that
 * missed ("9 reached.") and its check line catches it ("Check: 2+11=13, 13+18=31. 31 is not 9."),
 * after which the search goes on: a false claim is never left standing either.
 *
 * Where the hit is marked (`inlineHit`, the default with `compareTarget`): right after
 * the finishing equation that gives the target ("8*5=40. 40+4=44 reached."), so that the token
 * that claims the target follows the result it compares with the target, and cannot be mistaken
 * for the start of the next line; without it the claim is a line of its own ("44 reached."),
 * whose first token — a number — is also how every next search line begins.
 *
 * It knows nothing about how documents are mixed or tokenized.
 */
import type { Rng } from '../rng.ts';
import { type CNode, type Op, combine, leaf, render } from '../tasks/countdown-expr.ts';
import type { CountdownProblem } from '../tasks/types.ts';
import { type Trace, slipValue } from './common.ts';

export interface SearchKnobs {
  /** Chance of stopping after the first line when it missed. */
  readonly stopFirst: number;
  /** Chance of stopping after each later line that missed. */
  readonly stopLater: number;
  /** Chance that a trace holds one caught-and-corrected slip. */
  readonly slipShare: number;
  /** Restate the target in each pair header and compare with it in the check line. */
  readonly compareTarget?: boolean;
  /** Chance that a trace holds one premature claim of the target, caught by its check line (needs compareTarget). */
  readonly claimShare?: number;
  /** Mark the hit right after its finishing equation ("40+4=44 reached.") instead of on a line of its own. */
  readonly inlineHit?: boolean;
}

/** One written equation "a op b = c" of a line, with the tree it builds. */
export interface SearchEquation {
  readonly a: number;
  readonly op: Op;
  readonly b: number;
  readonly result: number;
  readonly node: CNode;
}

/** One line of the search: the combining steps, then the finishing equations it writes. */
export interface SearchLine {
  /** "2, 11 (18):" when the line opens a pair's block (the pair, then what is left), else null. */
  readonly header: string | null;
  readonly steps: readonly SearchEquation[];
  /** A combining step the rules refuse, written "11/2" (the line reads "11/2 no."), else null. */
  readonly blocked: string | null;
  /** Finishing equations in order, up to and including the one that hits (if any). */
  readonly finals: readonly SearchEquation[];
  /** The finishing equation that gives the target, or null. */
  readonly hit: SearchEquation | null;
}

const nodeValue = (n: CNode): number => Number(n.value.n) / Number(n.value.d);

function equation(left: CNode, op: Op, right: CNode): SearchEquation | null {
  const node = combine(left, op, right, true);
  if (!node) return null;
  return { a: nodeValue(left), op, b: nodeValue(right), result: nodeValue(node), node };
}

/** One combining step of a pair: the equation, or the written form of a step the rules refuse. */
type PairStep = { readonly ok: true; readonly eq: SearchEquation } | { readonly ok: false; readonly text: string };

/**
 * The four combining steps of a pair, always in the order + * − ÷ (+ and * in the pair's order,
 * − and ÷ larger first): a step the rules refuse (equal numbers for −, an inexact division) is still
 * a line ("11/2 no."), so every pair block has the same four lines and the next line is always
 * predictable from the one before.
 */
function pairSteps(x: CNode, y: CNode): PairStep[] {
  const [hi, lo] = nodeValue(x) >= nodeValue(y) ? [x, y] : [y, x];
  const parts: [CNode, Op, CNode][] = [
    [x, '+', y],
    [x, '*', y],
    [hi, '-', lo],
    [hi, '/', lo],
  ];
  return parts.map(([a, op, b]) => {
    const eq = equation(a, op, b);
    return eq ? { ok: true, eq } : { ok: false, text: `${nodeValue(a)}${op}${nodeValue(b)}` };
  });
}

/** The finishing equations of the last two values r (just made) and z, for target t. */
export function finishingEquations(r: CNode, z: CNode, t: number): SearchEquation[] {
  const vr = nodeValue(r);
  const vz = nodeValue(z);
  const out: (SearchEquation | null)[] = [];
  if (vr < t) out.push(equation(r, '+', z));
  if (vr * vz <= t) out.push(equation(r, '*', z));
  if (vr > t && vr > vz) out.push(equation(r, '-', z));
  if (vr > t && vz > 1 && vr % vz === 0) out.push(equation(r, '/', z));
  if (vz > vr && vz > t) out.push(equation(z, '-', r));
  if (vz > vr && vz >= t && vr > 1 && vz % vr === 0) out.push(equation(z, '/', r));
  return out.filter((e): e is SearchEquation => e !== null);
}

/** Every line of the full search over the problem's numbers, in order. */
export function* searchLines(nums: readonly number[], target: number, compareTarget = false): Generator<SearchLine> {
  if (nums.length < 2) return;
  function* walk(pool: CNode[], steps: SearchEquation[], top: boolean): Generator<SearchLine> {
    if (pool.length === 2 && (steps.length > 0 || !top)) {
      // r: the value just made (the end of the pool); z: the other one
      const r = pool[1];
      const z = pool[0];
      const all = finishingEquations(r, z, target);
      const at = all.findIndex((e) => e.result === target);
      yield { header: null, steps, blocked: null, finals: at >= 0 ? all.slice(0, at + 1) : all, hit: at >= 0 ? all[at] : null };
      return;
    }
    if (pool.length === 2) {
      // a two-number problem: its numbers are r and z
      const all = finishingEquations(pool[0], pool[1], target);
      const at = all.findIndex((e) => e.result === target);
      yield { header: null, steps, blocked: null, finals: at >= 0 ? all.slice(0, at + 1) : all, hit: at >= 0 ? all[at] : null };
      return;
    }
    for (let i = 0; i < pool.length; i++) {
      for (let j = i + 1; j < pool.length; j++) {
        const rest = pool.filter((_, k) => k !== i && k !== j);
        const goal = compareTarget ? ` to ${target}` : '';
        let header: string | null = top ? `${nodeValue(pool[i])}, ${nodeValue(pool[j])} (${rest.map(nodeValue).join(', ')})${goal}:` : null;
        for (const s of pairSteps(pool[i], pool[j])) {
          if (s.ok) {
            let first = true;
            for (const l of walk([...rest, s.eq.node], [...steps, s.eq], false)) {
              yield first && header ? { ...l, header } : l;
              if (first) header = null;
              first = false;
            }
          } else {
            yield { header, steps, blocked: s.text, finals: [], hit: null };
            header = null;
          }
        }
      }
    }
  }
  yield* walk(nums.map(leaf), [], true);
}

const eqText = (e: { a: number; op: Op; b: number }, result: number): string => `${e.a}${e.op}${e.b}=${result}`;

/**
 * "3+7=10. 10+12=22, 10*12=120." with an optional slip (written wrong, then corrected) at final k;
 * `reached` ends its last finishing equation with the claim ("… 40+4=44 reached.", the inline hit).
 */
export function lineText(l: SearchLine, slipAt = -1, slipWrong = 0, reached = false): string {
  const head = l.steps.map((s) => eqText(s, s.result)).join(', ');
  if (l.blocked) return head ? `${head}. ${l.blocked} no.` : `${l.blocked} no.`;
  const finals = l.finals.map((f, k) => (k === slipAt ? `${eqText(f, slipWrong)}. Wait, ${eqText(f, f.result)}` : eqText(f, f.result)));
  const end = reached ? ' reached.' : '.';
  const body = finals.length ? `${finals.join(', ')}${end}` : 'nothing to try.';
  return head ? `${head}. ${body}` : body;
}

/** The check line of a found expression: its steps recomputed, compared with the target (when asked) and its numbers listed. */
export function checkLine(l: SearchLine, nums: readonly number[], compareTarget = false): string {
  const hit = l.hit!;
  const all = [...l.steps, hit];
  const compared = compareTarget ? ` ${hit.result} is the target.` : '';
  return `Check: ${all.map((s) => eqText(s, s.result)).join(', ')}.${compared} Uses ${nums.join(', ')}, each once.`;
}

/** The check line that catches a premature claim: the line's steps and its last finishing equation recomputed, then "… is not T." */
export function caughtClaimLine(l: SearchLine, target: number): string {
  const last = l.finals.at(-1)!;
  const all = [...l.steps, last];
  return `Check: ${all.map((s) => eqText(s, s.result)).join(', ')}. ${last.result} is not ${target}.`;
}

/**
 * A search trace. `full` disables the early stop (the reference trace of a problem, used by the
 * arithmetic probe); otherwise the knobs decide.
 */
export function countdownSearchTrace(rng: Rng, p: CountdownProblem, k: SearchKnobs, full = false): Trace {
  const lines: string[] = [];
  let closest: { node: CNode; value: number } | null = null;
  const slipLine = !full && rng.bool(k.slipShare) ? rng.int(0, 3) : -1;
  const compare = k.compareTarget ?? false;
  const inline = k.inlineHit ?? false;
  // drawn after the slip so that traces without claims keep their slips and stops
  const claimLine = !full && compare && (k.claimShare ?? 0) > 0 && rng.bool(k.claimShare ?? 0) ? rng.int(0, 3) : -1;
  let index = 0;
  for (const l of searchLines(p.nums, p.target, compare)) {
    let slipAt = -1;
    let wrong = 0;
    if (index === slipLine) {
      const candidates = l.finals.map((f, i) => [f, i] as const).filter(([f]) => f !== l.hit);
      if (candidates.length) {
        const [f, i] = rng.pick(candidates);
        slipAt = i;
        wrong = slipValue(rng, f.result);
        if (wrong === p.target) wrong = f.result + 1 === p.target ? f.result + 2 : f.result + 1;
      }
    }
    if (l.header) lines.push(l.header);
    const claims = index === claimLine && l.finals.length > 0; // a premature claim, caught below
    lines.push(lineText(l, slipAt, wrong, inline && (l.hit !== null || claims)));
    if (l.hit) {
      if (!inline) lines.push(`${p.target} reached.`);
      lines.push(checkLine(l, p.nums, compare));
      return { lines, answer: render(l.hit.node), closed: true };
    }
    if (claims) {
      if (!inline) lines.push(`${p.target} reached.`);
      lines.push(caughtClaimLine(l, p.target));
    }
    for (const f of l.finals) {
      if (!closest || Math.abs(f.result - p.target) < Math.abs(closest.value - p.target)) closest = { node: f.node, value: f.result };
    }
    index++;
    if (!full && rng.bool(index === 1 ? k.stopFirst : k.stopLater)) break;
  }
  const fallback = closest ?? { node: leaf(p.nums[0]), value: p.nums[0] };
  lines.push(`No exact answer yet. Closest: ${render(fallback.node).replace(/ /g, '')}=${fallback.value}.`);
  return { lines, answer: render(fallback.node), closed: true };
}
