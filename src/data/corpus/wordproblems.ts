/**
 * Worked word problems in the six corpus styles (common.ts): one line per operation of the story,
 * carrying the running quantity forward ("Add 5: 12 + 5 = 17."), and a backward check that undoes
 * the operations from the answer to the starting quantity. After a silent slip the writer keeps
 * computing correctly from the wrong value; when a split no longer divides evenly the writer
 * notices that something is off and stops without an answer. Every written step is true
 * arithmetic except the slip.
 *
 * It knows nothing about how documents are mixed or tokenized.
 */
import type { Rng } from '../rng.ts';
import type { WordOp, WordProblem } from '../tasks/types.ts';
import { type Slip, type Style, type Trace, type TraceKnobs, selfCorrectSlips, silentSlip, slipValue } from './common.ts';

interface Forward {
  readonly lines: string[];
  /** The final value, or null when the writer got stuck on an uneven split. */
  readonly result: number | null;
  readonly values: number[];
}

function forward(rng: Rng, p: WordProblem, slips: ReadonlyMap<number, Slip> = new Map(), upTo = p.ops.length): Forward {
  const lines: string[] = [`Start with ${p.start}.`];
  const values = [p.start];
  let cur = p.start;
  const step = (i: number, lhs: string, right: number, prefix: string): number => {
    const slip = slips.get(i);
    if (!slip) {
      lines.push(`${prefix}${lhs} = ${right}.`);
      return right;
    }
    const wrong = slipValue(rng, right);
    lines.push(`${prefix}${lhs} = ${wrong}.`);
    if (slip === 'silent') return wrong;
    lines.push(`Wait, ${lhs} = ${right}, not ${wrong}.`);
    return right;
  };
  for (let i = 0; i < upTo; i++) {
    const op = p.ops[i];
    switch (op.kind) {
      case 'add':
        cur = step(i, `${cur} + ${op.k}`, cur + op.k, `Add ${op.k}: `);
        break;
      case 'groups': {
        const g = op.groups * op.each;
        lines.push(`${op.groups} groups of ${op.each}: ${op.groups} * ${op.each} = ${g}.`);
        cur = step(i, `${cur} + ${g}`, cur + g, '');
        break;
      }
      case 'sub':
        cur = step(i, `${cur} - ${op.k}`, cur - op.k, `Take away ${op.k}: `);
        break;
      case 'mul':
        cur = step(i, `${cur} * ${op.m}`, cur * op.m, `${op.m} times as many: `);
        break;
      case 'div':
        if (cur % op.d !== 0) {
          lines.push(`${cur} / ${op.d} is not a whole number, so I made a mistake somewhere.`);
          return { lines, result: null, values };
        }
        cur = step(i, `${cur} / ${op.d}`, cur / op.d, `One of ${op.d} equal piles: `);
        break;
    }
    values.push(cur);
  }
  return { lines, result: cur, values };
}

const undo = (v: number, op: WordOp): { text: string; value: number } | null => {
  switch (op.kind) {
    case 'add':
      return { text: `${v} - ${op.k} = ${v - op.k}`, value: v - op.k };
    case 'groups': {
      const g = op.groups * op.each;
      return { text: `${v} - ${g} = ${v - g}`, value: v - g };
    }
    case 'sub':
      return { text: `${v} + ${op.k} = ${v + op.k}`, value: v + op.k };
    case 'mul':
      return v % op.m === 0 ? { text: `${v} / ${op.m} = ${v / op.m}`, value: v / op.m } : null;
    case 'div':
      return { text: `${v} * ${op.d} = ${v * op.d}`, value: v * op.d };
  }
};

/** Undoes the operations from `result`; true when it arrives at the starting quantity. */
function backwardCheck(p: WordProblem, result: number, lines: string[]): boolean {
  const parts: string[] = [];
  let v = result;
  for (let i = p.ops.length - 1; i >= 0; i--) {
    const u = undo(v, p.ops[i]);
    if (!u) {
      lines.push(`Check backwards: ${[...parts, `${v} does not divide by ${(p.ops[i] as { m: number }).m}`].join(', ')}, so something is off.`);
      return false;
    }
    parts.push(u.text);
    v = u.value;
  }
  const ok = v === p.start;
  lines.push(
    `Check backwards: ${parts.join(', ')}. ${ok ? `That is the ${p.start} we started with.` : `That gives ${v}, not ${p.start}, so something is off.`}`,
  );
  return ok;
}

const finalLine = (p: WordProblem, v: number): string => {
  const m = /How many (\S+) does (\S+) have now\?/.exec(p.text);
  return m ? `So ${m[2]} has ${v} ${m[1]}.` : `So the answer is ${v}.`;
};

const opCount = (p: WordProblem): number => p.ops.length;

export function wordProblemTrace(rng: Rng, p: WordProblem, style: Style, k: TraceKnobs): Trace {
  const n = opCount(p);
  const lines: string[] = [];
  const finish = (f: Forward): Trace => {
    lines.push(...f.lines);
    if (f.result === null) return { lines, answer: null, closed: true };
    lines.push(finalLine(p, f.result));
    return { lines, answer: String(f.result), closed: true };
  };
  switch (style) {
    case 'direct':
      return finish(forward(rng, p));
    case 'search': {
      const found = rng.bool(k.findProb);
      const f = forward(rng, p, found ? new Map() : silentSlip(rng, n));
      lines.push(...f.lines);
      if (f.result === null) return { lines, answer: null, closed: true };
      const ok = backwardCheck(p, f.result, lines);
      if (!ok) lines.push(`I will keep ${f.result}.`);
      lines.push(finalLine(p, f.result));
      return { lines, answer: String(f.result), closed: true };
    }
    case 'slip':
      return finish(forward(rng, p, silentSlip(rng, n)));
    case 'selfCorrect': {
      const slips = selfCorrectSlips(rng, n, k.selfCorrectFindProb);
      return finish(forward(rng, p, slips));
    }
    case 'wrongThing': {
      const variant = rng.int(0, 2);
      if (variant === 0) {
        // Forgets the last operation.
        const f = forward(rng, p, new Map(), n - 1);
        lines.push(...f.lines);
        const v = f.values[f.values.length - 1];
        lines.push(finalLine(p, v));
        return { lines, answer: String(v), closed: true };
      }
      if (variant === 1) {
        const f = forward(rng, p);
        lines.push(...f.lines, `The answer is the number we started with, ${p.start}.`);
        return { lines, answer: String(p.start), closed: true };
      }
      const f = forward(rng, p);
      const total = p.ops.reduce((s, op) => s + (op.kind === 'add' ? op.k : op.kind === 'groups' ? op.groups * op.each : 0), 0);
      lines.push(...f.lines, `Counting only what was added: ${total}.`);
      return { lines, answer: String(total), closed: true };
    }
    case 'giveUp': {
      const f = forward(rng, p, new Map(), Math.min(1, n));
      lines.push(...f.lines, rng.pick(['I lost track of the numbers.', 'This has too many steps for me.']));
      return { lines, answer: null, closed: rng.bool(0.6) };
    }
  }
}
