/**
 * The self-check detector: does a completion check or revise its own work? This is the behaviour
 * whose growth R1-Zero called its "aha moment", measured as a share of completions.
 *
 * Only the reasoning is read: the text before the scored answer (the last `<answer>`), or the whole
 * completion when it has none. Two kinds of phrases count, matched case-insensitively on word
 * boundaries:
 *
 *   check    the work is tested against the goal or a second route: "check", "verify",
 *            "double-check", "confirm", "that works", "too big/small/high/low", "… is not <n>",
 *            "<n> is (not) the target", "the other way", "backwards"
 *   revise   an earlier step is taken back: "wait", "mistake", "wrong", "actually", "let me redo /
 *            recompute / try again", "something is off", "not <n>, but", "instead"
 *
 * A completion is self-checking when it has either kind. Plain computation ("3 * 8 = 24") and a
 * bare answer do not count; neither does a phrase inside the answer. The rules are deliberately
 * simple and tested on examples; they are what the metric means.
 *
 * It knows text; not tokens or tasks.
 */
import { ANSWER_OPEN } from '../data/answer.ts';

const CHECK: readonly RegExp[] = [
  /\b(?:check(?:s|ed|ing)?|verif(?:y|ies|ied|ying)|double[- ]check|confirm(?:s|ed)?)\b/i,
  /\bthat works\b/i,
  /\btoo (?:big|small|high|low|large)\b/i,
  /\bis not -?\d+(?:\.\d+)?\b/i,
  /\b(?:is|equals) (?:not )?the target\b/i,
  /\bthe other way\b/i,
  /\bbackwards?\b/i,
];

const REVISE: readonly RegExp[] = [
  /\bwait\b/i,
  /\bmistakes?\b/i,
  /\bwrong\b/i,
  /\bactually\b/i,
  /\blet me (?:redo|recompute|recalculate|try again|start over)\b/i,
  /\btry again\b/i,
  /\bsomething is off\b/i,
  /\bnot -?\d+(?:\.\d+)?, but\b/i,
  /\binstead\b/i,
];

export interface SelfCheck {
  checks: boolean;
  revises: boolean;
  /** checks || revises */
  any: boolean;
}

/** The reasoning part of a completion: everything before its last `<answer>`. */
export function reasoningOf(completion: string): string {
  const i = completion.lastIndexOf(ANSWER_OPEN);
  return i >= 0 ? completion.slice(0, i) : completion;
}

export function detectSelfCheck(completion: string): SelfCheck {
  const text = reasoningOf(completion);
  const checks = CHECK.some((r) => r.test(text));
  const revises = REVISE.some((r) => r.test(text));
  return { checks, revises, any: checks || revises };
}

export interface SelfCheckSpan {
  /** UTF-16 offsets into the completion, end exclusive. */
  start: number;
  end: number;
  kind: 'check' | 'revise';
}

/**
 * Where the phrases that make a completion self-checking stand (the same rules as detectSelfCheck,
 * in its reasoning part only), in order and without overlaps: what a viewer highlights.
 */
export function selfCheckSpans(completion: string): SelfCheckSpan[] {
  const text = reasoningOf(completion);
  const found: SelfCheckSpan[] = [];
  for (const [kind, rules] of [
    ['check', CHECK],
    ['revise', REVISE],
  ] as const)
    for (const r of rules) for (const m of text.matchAll(new RegExp(r.source, 'gi'))) found.push({ start: m.index, end: m.index + m[0].length, kind });
  found.sort((a, b) => a.start - b.start || b.end - a.end);
  const out: SelfCheckSpan[] = [];
  for (const s of found) if (!out.length || s.start >= out[out.length - 1].end) out.push(s);
  return out;
}
