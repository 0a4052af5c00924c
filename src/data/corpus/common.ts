/**
 * Shared pieces of corpus traces: the styles a worked solution can have, the trace a style
 * produces (thinking lines and an optional answer), how a trace becomes completion text, and how a
 * writer makes a believable arithmetic slip.
 *
 * Styles (every task implements all six; corpus.ts draws one per document):
 *  - direct       the correct solution, stated step by step;
 *  - search       tries and checks: candidates verified one by one (Countdown) or an answer checked
 *                 by a second route (multiplication, word problems); ends right with probability
 *                 `findProb`, otherwise with a wrong answer;
 *  - slip         an arithmetic error the writer does not notice: a confident wrong answer;
 *  - selfCorrect  an arithmetic error noticed and fixed ("wait, 3 * 8 = 24, not 25"), then the
 *                 work goes on and ends right with probability `selfCorrectFindProb`;
 *  - wrongThing   answers something other than what was asked (the target itself, an equation, a
 *                 partial result, a subset of the numbers, a skipped step);
 *  - giveUp       starts, then gives up: no answer, or an unfinished think block.
 *
 * It knows nothing about any task.
 */
import type { Rng } from '../rng.ts';

export type Style = 'direct' | 'search' | 'slip' | 'selfCorrect' | 'wrongThing' | 'giveUp';
export const STYLES: readonly Style[] = ['direct', 'search', 'slip', 'selfCorrect', 'wrongThing', 'giveUp'];

export interface TraceKnobs {
  /** Most failed candidates a search shows before it ends. */
  readonly searchMaxTries: number;
  /** Chance that a search ends with the right answer. */
  readonly findProb: number;
  /** Chance that work resumed after a caught slip ends with the right answer. */
  readonly selfCorrectFindProb: number;
}

export interface Trace {
  /** Lines of the think block. */
  readonly lines: string[];
  /** The content of <answer>, or null for no answer. */
  readonly answer: string | null;
  /** false: the writer stopped inside the think block (no </think>). */
  readonly closed: boolean;
}

/** The completion text that follows a prompt ending in "<think>". */
export function renderCompletion(t: Trace, rng: Rng): string {
  const body = `\n${t.lines.join('\n')}`;
  if (!t.closed) return body;
  if (t.answer === null) return `${body}\n</think>`;
  const a = rng.bool(0.3) ? ` ${t.answer} ` : t.answer;
  return `${body}\n</think>\n<answer>${a}</answer>`;
}

/** A plausible wrong value for a computation whose right value is v (never equal to v, never negative). */
export function slipValue(rng: Rng, v: number): number {
  for (let i = 0; i < 20; i++) {
    const kind = rng.int(0, 3);
    let w: number;
    if (kind === 0) w = v + rng.pick([-2, -1, 1, 2]);
    else if (kind === 1) w = v + rng.pick([-10, 10]);
    else if (kind === 2 && Math.abs(v) >= 10) {
      const s = String(v).split('');
      const k = rng.int(0, s.length - 2);
      [s[k], s[k + 1]] = [s[k + 1], s[k]];
      w = Number(s.join(''));
    } else w = v + rng.pick([-100, 100, -3, 3]);
    if (w !== v && w >= 0 && Number.isFinite(w)) return w;
  }
  return v + 1;
}

/** How a step of a worked solution goes wrong: unnoticed, or noticed and corrected in the text. */
export type Slip = 'silent' | 'caught';

/** One unnoticed slip at a random step of `n` steps. */
export function silentSlip(rng: Rng, n: number): Map<number, Slip> {
  return new Map([[rng.int(0, n - 1), 'silent']]);
}

/**
 * A self-correcting trace over `n` steps: one slip that is caught and fixed, and — unless the
 * correction finds everything (probability `findProb`) — another slip that goes unnoticed.
 */
export function selfCorrectSlips(rng: Rng, n: number, findProb: number): Map<number, Slip> {
  const at = rng.int(0, n - 1);
  const slips = new Map<number, Slip>([[at, 'caught']]);
  if (!rng.bool(findProb)) {
    const others = Array.from({ length: n }, (_, i) => i).filter((i) => i !== at);
    slips.set(others.length ? rng.pick(others) : at, 'silent');
  }
  return slips;
}

export function pickLine(rng: Rng, options: readonly string[]): string {
  return rng.pick(options);
}
