/**
 * Worked multiplications in the six corpus styles (common.ts), by place value: the factor with more
 * non-zero digits is multiplied by each place-value part of the other ("347 * 28 = 347 * 20 +
 * 347 * 8"), then the partial products are added one at a time. A second route swaps the roles of
 * the factors (used to check an answer). Every written step is true arithmetic except a slip.
 *
 * It knows nothing about how documents are mixed or tokenized.
 */
import type { Rng } from '../rng.ts';
import type { MultiplicationProblem } from '../tasks/types.ts';
import { type Slip, type Style, type Trace, type TraceKnobs, selfCorrectSlips, silentSlip, slipValue } from './common.ts';

/** 347 → [300, 40, 7]; zero digits are left out. */
export function placeParts(n: number): number[] {
  const s = String(n);
  const out: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const d = Number(s[i]);
    if (d !== 0) out.push(d * 10 ** (s.length - 1 - i));
  }
  return out;
}

interface RouteOut {
  readonly lines: string[];
  readonly result: number;
  /** Computation steps in this route (partials then sums), for choosing where to slip. */
  readonly steps: number;
}

/** Number of computations route(u, v) makes (to pick a slip position). */
function routeSteps(u: number, v: number): number {
  const [, parts] = split(u, v);
  return parts.length === 1 ? 1 : 2 * parts.length - 1;
}

/** Which factor is kept whole and the place-value parts of the other. */
function split(u: number, v: number): [number, number[]] {
  const pv = placeParts(v);
  const pu = placeParts(u);
  if (pv.length === 1 && pu.length > 1) return [v, pu];
  return [u, pv];
}

/** u × v by place value; `slips` maps a computation index to a slip there. */
function route(rng: Rng, u: number, v: number, slips: ReadonlyMap<number, Slip> = new Map()): RouteOut {
  const [whole, parts] = split(u, v);
  const lines: string[] = [];
  let idx = 0;
  const compute = (lhs: string, right: number): number => {
    const slip = slips.get(idx++);
    if (!slip) {
      lines.push(`${lhs} = ${right}.`);
      return right;
    }
    const wrong = slipValue(rng, right);
    lines.push(`${lhs} = ${wrong}.`);
    if (slip === 'silent') return wrong;
    lines.push(`Wait, ${lhs} = ${right}, not ${wrong}.`);
    return right;
  };
  if (parts.length > 1) lines.push(`${u} * ${v} = ${parts.map((p) => `${whole} * ${p}`).join(' + ')}.`);
  const partials = parts.map((p) => compute(`${whole} * ${p}`, whole * p));
  let sum = partials[0];
  for (let i = 1; i < partials.length; i++) sum = compute(`${sum} + ${partials[i]}`, sum + partials[i]);
  return { lines, result: sum, steps: idx };
}

function estimate(n: number): number {
  const s = String(n);
  return Number(s[0]) * 10 ** (s.length - 1);
}

export function multiplicationTrace(rng: Rng, p: MultiplicationProblem, style: Style, k: TraceKnobs): Trace {
  const { a, b } = p;
  const product = a * b;
  const lines: string[] = [rng.pick([`We need ${a} * ${b}.`, `Let me multiply ${a} by ${b}.`, `Compute ${a} times ${b} by place value.`])];
  const n = routeSteps(a, b);
  switch (style) {
    case 'direct': {
      const r = route(rng, a, b);
      lines.push(...r.lines, `So the answer is ${r.result}.`);
      return { lines, answer: String(r.result), closed: true };
    }
    case 'search': {
      const found = rng.bool(k.findProb);
      const first = route(rng, a, b, found ? new Map() : silentSlip(rng, n));
      lines.push(...first.lines, 'Let me check it the other way.');
      const second = route(rng, b, a);
      lines.push(...second.lines);
      if (first.result === second.result) {
        lines.push(`Both ways give ${first.result}.`);
        return { lines, answer: String(first.result), closed: true };
      }
      lines.push(`The two results differ: ${first.result} and ${second.result}. I will keep the first one.`);
      return { lines, answer: String(first.result), closed: true };
    }
    case 'slip': {
      const r = route(rng, a, b, silentSlip(rng, n));
      lines.push(...r.lines, `So the answer is ${r.result}.`);
      return { lines, answer: String(r.result), closed: true };
    }
    case 'selfCorrect': {
      const slips = selfCorrectSlips(rng, n, k.selfCorrectFindProb);
      const r = route(rng, a, b, slips);
      lines.push(...r.lines, `So the answer is ${r.result}.`);
      return { lines, answer: String(r.result), closed: true };
    }
    case 'wrongThing': {
      const variant = rng.int(0, 2);
      if (variant === 0 && n > 1) {
        const r = route(rng, a, b);
        const firstPartial = r.lines.find((l) => !l.startsWith(`${a} * ${b} =`)) ?? r.lines[0];
        const value = firstPartial.replace(/\.$/, '').split(' = ').pop() ?? String(product);
        lines.push(firstPartial, `The answer is ${value}.`);
        return { lines, answer: value, closed: true };
      }
      if (variant === 1) {
        lines.push(`${a} + ${b} = ${a + b}.`);
        return { lines, answer: String(a + b), closed: true };
      }
      lines.push('The answer is the product.');
      return { lines, answer: `${a} * ${b}`, closed: true };
    }
    case 'giveUp': {
      const ea = estimate(a);
      const eb = estimate(b);
      lines.push(rng.pick(['That is a big multiplication.', 'This is too long to do exactly.']), `Roughly ${ea} * ${eb} = ${ea * eb}.`);
      if (rng.bool(0.5)) return { lines, answer: String(ea * eb), closed: true };
      lines.push('I am not sure of the exact value.');
      return { lines, answer: null, closed: rng.bool(0.6) };
    }
  }
}
