/**
 * The reward rule shared by tasks whose answer is one whole number (multiplication, word
 * problems), as docs/data.md states it: "1.0 exact, 0.1 parseable wrong integer, 0 otherwise":
 *   0    no complete <answer>…</answer> pair, or the trimmed content is not an integer;
 *   0.1  an integer with a different value;
 *   1.0  an integer with the expected value.
 * "An integer" is /^[+-]?[0-9]+$/ after trimming: ASCII digits only (Arabic-Indic "٥٦" or
 * full-width "５６" digits, "1,234", "1 234", "1e3", "56.0", "0x38", "−56" with a Unicode minus
 * are not integers → 0). Leading zeros and a plus sign are allowed ("+056" is 56). Values are
 * compared as digit strings, so any length works exactly (no Infinity, no rounding) in linear time.
 *
 * It knows nothing about which task uses it.
 */
import { extractAnswer } from '../answer.ts';
import type { Score } from './types.ts';

export const INTEGER_ANSWER = /^[+-]?[0-9]+$/;

/** The canonical decimal string of an integer literal ("+007" → "7", "-0" → "0"), or null. */
export function canonicalInteger(s: string): string | null {
  if (!INTEGER_ANSWER.test(s)) return null;
  const negative = s[0] === '-';
  const digits = s.replace(/^[+-]/, '').replace(/^0+(?=[0-9])/, '');
  return negative && digits !== '0' ? `-${digits}` : digits;
}

export function scoreIntegerAnswer(completion: string, expected: number | bigint): Score {
  if (typeof completion !== 'string') return { reward: 0, reason: 'no-answer', answer: null };
  const ex = extractAnswer(completion);
  if (!ex.found) return { reward: 0, reason: 'no-answer', answer: null };
  const answer = ex.content.trim();
  const shown = answer.length > 200 ? `${answer.slice(0, 200)}…` : answer;
  const got = canonicalInteger(answer);
  if (got === null) return { reward: 0, reason: answer === '' ? 'empty' : 'not-an-integer', answer: shown };
  return got === BigInt(expected).toString() ? { reward: 1, reason: 'correct', answer: shown } : { reward: 0.1, reason: 'wrong-value', answer: shown };
}
