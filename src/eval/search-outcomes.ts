/**
 * How Countdown search completions end, for the completions that are wrong as well as the right
 * ones: right; stopped (the search gave up: "No exact answer yet. Closest: …"); a false claim (it
 * wrote "N reached." but its answer does not reach the target — the claim was not checked against
 * the target; a claim its own check line caught, "… is not 9.", does not count); other (no search
 * ending at all: truncated, malformed).
 *
 * It knows completion text and rewards; not models.
 */
import { STOP_LINE } from './stop-probe.ts';

export const SEARCH_OUTCOMES = ['right', 'stopped', 'false_claim', 'other'] as const;
export type SearchOutcome = (typeof SEARCH_OUTCOMES)[number];

const CLAIM = /\d+ reached\./g;
const CAUGHT = / is not \d+\./;

export function searchOutcome(completion: string, correct: boolean): SearchOutcome {
  if (correct) return 'right';
  if (completion.includes(STOP_LINE)) return 'stopped';
  // the last claim counts, unless its own check line caught it ("31 is not 9.")
  const last = [...completion.matchAll(CLAIM)].at(-1);
  if (last && !CAUGHT.test(completion.slice(last.index))) return 'false_claim';
  return 'other';
}

/** The share of each outcome over the completions (reward 1 is right). */
export function searchOutcomes(completions: readonly { completion: string; reward: number }[]): Record<SearchOutcome, number> {
  const out = Object.fromEntries(SEARCH_OUTCOMES.map((k) => [k, 0])) as Record<SearchOutcome, number>;
  for (const c of completions) out[searchOutcome(c.completion, c.reward === 1)]++;
  for (const k of SEARCH_OUTCOMES) out[k] = completions.length ? out[k] / completions.length : 0;
  return out;
}

export function formatSearchOutcomes(o: Record<SearchOutcome, number>): string {
  return SEARCH_OUTCOMES.map((k) => `${k.replace('_', ' ')} ${(o[k] * 100).toFixed(1)}%`).join(', ');
}
