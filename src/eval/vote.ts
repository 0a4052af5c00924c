/**
 * Majority voting over the answers extracted from a problem's samples (R1's "cons@64"): the most
 * frequent answer wins, compared after removing all whitespace (so "44 + 19" and "44+19" are one
 * vote); a tie goes to the answer that appeared first; samples without an answer do not vote.
 * The problem counts as solved when the winning answer is correct.
 *
 * It knows answers as strings; not tasks or models.
 */

export interface Vote {
  /** The winning answer as first written, or null when no sample had one. */
  answer: string | null;
  /** How many samples voted for it. */
  votes: number;
  /** Index of the first sample that gave it (−1 when none). */
  sample: number;
}

export function normaliseAnswer(a: string): string {
  return a.replace(/\s+/g, '');
}

/** The majority answer of `answers` (null: that sample had no answer). */
export function majorityVote(answers: readonly (string | null)[]): Vote {
  const count = new Map<string, { n: number; first: number }>();
  answers.forEach((a, i) => {
    if (a === null) return;
    const key = normaliseAnswer(a);
    const e = count.get(key);
    if (e) e.n++;
    else count.set(key, { n: 1, first: i });
  });
  let best: Vote = { answer: null, votes: 0, sample: -1 };
  for (const { n, first } of count.values()) {
    if (n > best.votes || (n === best.votes && first < best.sample)) best = { answer: answers[first], votes: n, sample: first };
  }
  return best;
}
