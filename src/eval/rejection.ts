/**
 * Rejection sampling, DeepSeek-R1's way of turning a reasoning model into training data: a teacher
 * samples K completions per prompt, and only those that pass every filter are kept. The filters,
 * in the order they are applied (the first that fails names the rejection):
 *
 *   truncated    the completion hit max_new_tokens (it never finished)
 *   malformed    no </think>, or no complete <answer>…</answer> after it
 *   wrong        the task's rule reward is not 1 (the answer is wrong)
 *   unsound      a step of the reasoning states false arithmetic ("24*4=92"): a right answer reached
 *                through a false step would teach the student the false fact
 *   repetitive   the reasoning loops: a line of 8 or more characters stands 3 or more times, or
 *                fewer than half of its 10 or more lines are distinct
 *   unreadable   the reasoning holds undecodable bytes or control characters, or a word outside the
 *                Latin script (R1 kept only readable, language-consistent chains of thought)
 *   duplicate    the same text as a completion already kept for this prompt
 *   surplus      the prompt already has `keepPerPrompt` kept completions
 *
 * Every rejection is counted by its filter, so a log can say where the teacher's samples went.
 *
 * It knows tasks, the engine's API and the filters; not files, runs or training.
 */
import {
  type Problem,
  type PromptFormat,
  THINK_CLOSE,
  decodeCompletion,
  encodeTaskPrompt,
  extractAnswer,
  isGarbled,
  latinWordShare,
  scoreCompletion,
} from '../data/index.ts';
import { generate } from '../engine/index.ts';
import type { DeepSeekV3 } from '../model/transformer.ts';
import type { Tokenizer } from '../tokenizer/index.ts';

export const REJECTIONS = ['truncated', 'malformed', 'wrong', 'unsound', 'repetitive', 'unreadable', 'duplicate', 'surplus'] as const;
export type Rejection = (typeof REJECTIONS)[number];

export interface Candidate {
  completion: string;
  /** Generated ids (EOS included when it stopped there). */
  tokens: number;
  truncated: boolean;
}

/** Why a completion is rejected on its own (truncated … unreadable), or null when it passes. */
export function rejectionOf(c: Candidate, p: Problem): Exclude<Rejection, 'duplicate' | 'surplus'> | null {
  if (c.truncated) return 'truncated';
  const cut = c.completion.indexOf(THINK_CLOSE);
  if (cut < 0) return 'malformed';
  const a = extractAnswer(c.completion.slice(cut));
  if (!a.found) return 'malformed';
  if (scoreCompletion(c.completion, p).reward !== 1) return 'wrong';
  if (falseSteps(c.completion.slice(0, cut)).length) return 'unsound';
  const reasoning = c.completion.slice(0, cut);
  if (isRepetitive(reasoning)) return 'repetitive';
  if (isGarbled(reasoning) || latinWordShare(reasoning) < 1) return 'unreadable';
  return null;
}

/** One binary step on whole numbers, "a op b = c" (not part of a longer number or expression on its left). */
const STEP = /(?<![\d)])(?<!\d\.)(-?\d+)\s*([+\-*/×x])\s*(-?\d+)\s*=\s*(-?\d+)(?!\d|\.\d|\/)/g;

/** The binary steps of a text that state false arithmetic, as written ("24*4=92"). */
export function falseSteps(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(STEP)) {
    const [a, b, c] = [BigInt(m[1]), BigInt(m[3]), BigInt(m[4])];
    const op = m[2];
    const ok = op === '+' ? a + b === c : op === '-' ? a - b === c : op === '/' ? b !== 0n && a === b * c : a * b === c;
    if (!ok) out.push(m[0]);
  }
  return out;
}

/** Whether reasoning loops (see the module comment for the rule). */
export function isRepetitive(reasoning: string): boolean {
  const lines = reasoning
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
  const counts = new Map<string, number>();
  for (const l of lines) if (l.length >= 8) counts.set(l, (counts.get(l) ?? 0) + 1);
  if ([...counts.values()].some((n) => n >= 3)) return true;
  return lines.length >= 10 && new Set(lines).size < lines.length / 2;
}

export interface KeptTrace {
  problem: Problem;
  completion: string;
  tokens: number;
}

export interface RejectionOptions {
  /** Completions sampled per prompt (K). */
  samples: number;
  /** Most completions kept per prompt. */
  keepPerPrompt: number;
  temperature: number;
  topP?: number;
  maxNewTokens: number;
  seed: number;
  /** Prompts per generation batch (rows = batchSize × samples). */
  batchSize?: number;
  /** How the teacher is asked (its own format). Default r1-zero. */
  format?: PromptFormat;
}

export interface RejectionBatch {
  kept: KeptTrace[];
  /** Candidates rejected by each filter. */
  rejected: Record<Rejection, number>;
  /** A few rejected completions with their filter, for a log to show. */
  rejectedExamples: { problem: Problem; completion: string; why: Rejection }[];
  candidates: number;
  generatedTokens: number;
  seconds: number;
}

export const noRejections = (): Record<Rejection, number> => Object.fromEntries(REJECTIONS.map((r) => [r, 0])) as Record<Rejection, number>;

/** Samples the teacher on these problems and keeps what passes the filters. */
export function rejectionSample(model: DeepSeekV3, tok: Tokenizer, problems: readonly Problem[], o: RejectionOptions): RejectionBatch {
  if (!Number.isInteger(o.samples) || o.samples < 1) throw new RangeError(`rejection sampling: samples must be a positive integer, got ${o.samples}`);
  if (o.temperature === 0 && o.samples > 1)
    throw new RangeError('rejection sampling: greedy decoding (temperature 0) gives identical samples; use a temperature > 0');
  const batchSize = o.batchSize ?? 8;
  const sp = tok.special;
  const out: RejectionBatch = { kept: [], rejected: noRejections(), rejectedExamples: [], candidates: 0, generatedTokens: 0, seconds: 0 };
  for (let start = 0; start < problems.length; start += batchSize) {
    const batch = problems.slice(start, start + batchSize);
    const r = generate(
      model,
      batch.map((p) => encodeTaskPrompt(tok, p, o.format ?? 'r1-zero')),
      {
        maxNewTokens: o.maxNewTokens,
        groupSize: o.samples,
        temperature: o.temperature,
        topP: o.topP,
        seed: o.seed + start,
        eosIds: [sp.eos].filter((id) => id >= 0),
        stopSequences: sp.answerClose >= 0 ? [[sp.answerClose]] : [],
        padId: sp.pad >= 0 ? sp.pad : undefined,
      },
    );
    out.generatedTokens += r.stats.generatedTokens;
    out.seconds += (r.stats.prefillMs + r.stats.decodeMs) / 1000;
    batch.forEach((p, b) => {
      const seen = new Set<string>();
      let kept = 0;
      for (let g = 0; g < o.samples; g++) {
        const row = b * o.samples + g;
        const ids = r.tokens[row];
        const c: Candidate = { completion: decodeCompletion(tok, ids), tokens: ids.length, truncated: r.finishReason[row] === 'length' };
        out.candidates++;
        const why: Rejection | null = rejectionOf(c, p) ?? (seen.has(c.completion) ? 'duplicate' : kept >= o.keepPerPrompt ? 'surplus' : null);
        if (why) {
          out.rejected[why]++;
          if (out.rejectedExamples.length < 4 && why !== 'surplus' && why !== 'duplicate')
            out.rejectedExamples.push({ problem: p, completion: c.completion, why });
          continue;
        }
        seen.add(c.completion);
        kept++;
        out.kept.push({ problem: p, completion: c.completion, tokens: c.tokens });
      }
    });
  }
  return out;
}
