/**
 * Rule-based reward functions and their weighted composition (no neural reward model).
 *
 *   task      the task's own rule (src/data: TinyZero's 0 / 0.1 / 1 for Countdown; 1 exact, 0.1
 *             parseable wrong, 0 otherwise for multiplication and word problems)
 *   accuracy  1 when the task rule gives full reward, else 0
 *   format    1 when the completion is `<think> … </think>` then `<answer> … </answer>` (the
 *             template's prompt already opened `<think>`, so the completion may start inside it:
 *             it needs one `</think>` before the answer, nothing but spaces between them, no
 *             second `<think>`), else 0 — R1-Zero's format reward
 *   length    DAPO's overlong penalty: 0 for n ≤ L − C tokens, (L − C − n)/C for L − C < n ≤ L,
 *             −1 beyond (L = maxNewTokens, C = lengthCache); a truncated completion has n = L
 *   language  R1's language consistency: the share of the reasoning's words written in the Latin
 *             script (words with letters; 1 when there are none) — the tasks are in English
 *
 * The total is Σ weight × value over the functions with a non-zero weight; every function's value
 * is also returned, for the per-function metrics.
 *
 * It knows text and problems; not tensors.
 */
import { type Problem, type ScoreReason, latinWordShare, scoreCompletion } from '../data/index.ts';
import { ANSWER_CLOSE, ANSWER_OPEN, THINK_CLOSE, THINK_OPEN, extractAnswer } from '../data/answer.ts';
import { REWARD_NAMES, type RewardName } from './config.ts';
import { reasoningOf } from './selfcheck.ts';

export type RewardWeights = Record<RewardName, number>;

export interface RewardContext {
  /** Completion length in tokens. */
  tokens: number;
  /** Whether the completion was cut by the token limit. */
  truncated: boolean;
  maxNewTokens: number;
  lengthCache: number;
}

export interface RewardBreakdown {
  total: number;
  values: Record<RewardName, number>;
  /** The task rule's verdict. */
  reason: ScoreReason;
  answer: string | null;
  correct: boolean;
}

const count = (s: string, sub: string): number => s.split(sub).length - 1;

export function formatReward(completion: string): number {
  const a = extractAnswer(completion);
  if (!a.found) return 0;
  const before = completion.slice(0, a.start - ANSWER_OPEN.length); // the text before <answer>
  if (before.includes(ANSWER_OPEN) || before.includes(ANSWER_CLOSE)) return 0; // one answer only
  if (count(before, THINK_CLOSE) !== 1) return 0;
  const close = before.indexOf(THINK_CLOSE);
  if (before.slice(close + THINK_CLOSE.length).trim() !== '') return 0; // </think> then the answer
  const opens = count(before, THINK_OPEN);
  if (opens > 1 || (opens === 1 && before.indexOf(THINK_OPEN) > close)) return 0;
  if (completion.slice(a.end + ANSWER_CLOSE.length).trim() !== '') return 0; // nothing after it
  return 1;
}

export function lengthReward(c: Pick<RewardContext, 'tokens' | 'truncated' | 'maxNewTokens' | 'lengthCache'>): number {
  const L = c.maxNewTokens;
  const C = Math.min(c.lengthCache, L);
  const n = c.truncated ? Math.max(c.tokens, L) : c.tokens;
  if (n <= L - C) return 0;
  if (n <= L) return (L - C - n) / C;
  return -1;
}

export function languageReward(completion: string): number {
  return latinWordShare(reasoningOf(completion));
}

export function parseRewardWeights(w: Partial<Record<string, number>>): RewardWeights {
  const out = {} as RewardWeights;
  for (const name of REWARD_NAMES) out[name] = w[name] ?? 0;
  for (const k of Object.keys(w))
    if (!(REWARD_NAMES as readonly string[]).includes(k)) throw new Error(`unknown reward "${k}"; the rewards are ${REWARD_NAMES.join(', ')}`);
  for (const name of REWARD_NAMES) {
    if (!Number.isFinite(out[name]) || out[name] < 0)
      throw new Error(
        `reward weight ${name}=${out[name]}: weights must be finite and ≥ 0 (a negative weight pays the policy for failing at ${name}); give 0 to switch it off`,
      );
  }
  if (REWARD_NAMES.every((n) => out[n] === 0)) throw new Error(`every reward weight is 0; give at least one of ${REWARD_NAMES.join(', ')} a weight`);
  return out;
}

/** Every reward function's value for one completion, and the weighted total. */
export function scoreRewards(completion: string, problem: Problem, weights: RewardWeights, ctx: RewardContext): RewardBreakdown {
  const s = scoreCompletion(completion, problem);
  const values: Record<RewardName, number> = {
    task: s.reward,
    accuracy: s.reward === 1 ? 1 : 0,
    format: formatReward(completion),
    length: lengthReward(ctx),
    language: languageReward(completion),
  };
  let total = 0;
  for (const name of REWARD_NAMES) if (weights[name] !== 0) total += weights[name] * values[name];
  return { total, values, reason: s.reason, answer: s.answer, correct: s.reward === 1 };
}
