/**
 * The figures of an evaluation from the scored samples of each problem (pure arithmetic):
 *
 *   pass1            mean over problems of (correct samples / samples); correct = reward 1;
 *   passAtK          { k: mean unbiased pass@k } (passk.ts) for each k;
 *   majority         share of problems whose majority-vote answer (vote.ts) is correct;
 *   meanReward       mean reward over all samples;
 *   meanCompletionTokens  mean generated ids per sample (stop id included);
 *   truncatedShare   share of samples that hit the token limit;
 *   wellFormedShare  share of samples holding a complete <answer>…</answer> pair (answer ≠ null);
 *   reasons          share of samples by score reason.
 * Every problem must have the same number of samples.
 *
 * It knows scores; not tokenizers, models or generation.
 */
import type { ScoreReason } from '../data/index.ts';
import { meanPassAtK } from './passk.ts';
import { majorityVote } from './vote.ts';

export interface SampleOutcome {
  reward: number;
  reason: ScoreReason;
  /** The extracted (trimmed) answer, null when there was no complete answer pair. */
  answer: string | null;
  /** Generated ids. */
  tokens: number;
  /** Stopped by the token limit. */
  truncated: boolean;
}

export interface Figures {
  pass1: number;
  passAtK: Record<string, number>;
  majority: number;
  meanReward: number;
  meanCompletionTokens: number;
  truncatedShare: number;
  wellFormedShare: number;
  reasons: Partial<Record<ScoreReason, number>>;
}

export function tally(perProblem: readonly (readonly SampleOutcome[])[], ks: readonly number[]): Figures {
  if (perProblem.length === 0) throw new RangeError('tally: no problems');
  const n = perProblem[0].length;
  if (n === 0 || perProblem.some((s) => s.length !== n)) throw new RangeError('tally: every problem needs the same, positive number of samples');
  const correct: number[] = [];
  let majority = 0;
  let reward = 0;
  let tokens = 0;
  let truncated = 0;
  let wellFormed = 0;
  const reasons: Partial<Record<ScoreReason, number>> = {};
  for (const samples of perProblem) {
    correct.push(samples.filter((s) => s.reward === 1).length);
    const v = majorityVote(samples.map((s) => s.answer));
    if (v.sample >= 0 && samples[v.sample].reward === 1) majority++;
    for (const s of samples) {
      reward += s.reward;
      tokens += s.tokens;
      if (s.truncated) truncated++;
      if (s.answer !== null) wellFormed++;
      reasons[s.reason] = (reasons[s.reason] ?? 0) + 1;
    }
  }
  const total = perProblem.length * n;
  return {
    pass1: meanPassAtK(n, correct, 1),
    passAtK: Object.fromEntries(ks.map((k) => [String(k), meanPassAtK(n, correct, k)])),
    majority: majority / perProblem.length,
    meanReward: reward / total,
    meanCompletionTokens: tokens / total,
    truncatedShare: truncated / total,
    wellFormedShare: wellFormed / total,
    reasons: Object.fromEntries(Object.entries(reasons).map(([k, v]) => [k, v / total])),
  };
}
