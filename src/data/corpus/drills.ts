/**
 * Arithmetic drills in the exact form of trace steps: one equation "a op b=c" a line, each taken
 * from the full search trace (Countdown) or the scratchpad (multiplication) of a train-split
 * problem, so the drills practise the operations, operand ranges and spelling the traces use —
 * nothing else. Every equation is true.
 *
 * It knows nothing about how documents are mixed or tokenized.
 */
import type { Rng } from '../rng.ts';
import type { Problem } from '../tasks/types.ts';
import { searchLines } from './countdown-search.ts';
import { multiplicationLines } from './multiplication-steps.ts';

const EQUATION = /\d+[+\-*/]\d+=\d+/g;

/** Every equation "a op b=c" that the problem's full trace writes, in order. */
export function traceEquations(p: Problem): string[] {
  if (p.task === 'countdown') {
    const out: string[] = [];
    for (const l of searchLines(p.nums, p.target)) {
      for (const e of [...l.steps, ...l.finals]) out.push(`${e.a}${e.op}${e.b}=${e.result}`);
    }
    return out;
  }
  // the scratchpad's steps, not its last line (the product itself: memorising it teaches no step)
  if (p.task === 'multiplication')
    return multiplicationLines(p.a, p.b)
      .lines.slice(0, -1)
      .flatMap((l) => l.match(EQUATION) ?? []);
  return [];
}

/**
 * A drill page of `n` lines: each line one equation of the trace of a problem drawn by `draw`
 * (equations for which `keep` is false are skipped; a draw whose trace has none left is retried).
 */
export function drillDocument(rng: Rng, n: number, draw: () => Problem, keep: (equation: string) => boolean): string {
  const lines: string[] = [];
  for (let tries = 0; lines.length < n && tries < n * 20; tries++) {
    const eqs = traceEquations(draw()).filter(keep);
    if (eqs.length) lines.push(rng.pick(eqs));
  }
  return lines.join('\n');
}
