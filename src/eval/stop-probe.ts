/**
 * The stop probe: where a Countdown search has just written a line that missed, does the model
 * write the next line, or stop and answer the closest value ("No exact answer yet. Closest: …")?
 * This is the one decision the search corpus leaves to RL: its traces stop early at random
 * (corpus.search.stopFirst after the first missed line, stopLater after any later one), so a
 * policy that keeps searching finds more answers.
 *
 * Each held-out problem's full reference trace (no early stop) follows its prompt, teacher-forced
 * in one forward pass; at every decision point — the start of the line after a missed search line —
 * it reads the model's probability of the stop line's first token, and whether that token is the
 * most likely one (greedy decoding from the same context stops exactly then). Figures are split
 * into the first decision and the later ones.
 *
 * It knows prompts, traces, the model's forward and the tokenizer; not training.
 */
import { type Problem, type SearchTraceFormat, encodeProblemPrompt, encodeText, referenceCompletion } from '../data/index.ts';
import type { DeepSeekV3 } from '../model/transformer.ts';
import type { Tokenizer } from '../tokenizer/index.ts';
import { teacherForced } from './teacher-forced.ts';

/** The text a search writes when it stops without a hit. */
export const STOP_LINE = 'No exact answer yet.';

export interface StopFigures {
  decisions: number;
  /** Mean probability of the stop line's first token. */
  meanStop: number;
  /** Share of the decision points where that token is the most likely one. */
  greedyStops: number;
}

export interface StopProbe {
  problems: number;
  first: StopFigures;
  later: StopFigures;
}

const HEADER = /^\d+, \d+ \(\d+\)(?: to \d+)?:$/;
const NOT_SEARCH = /^(\d+ reached\.|Check: |No exact answer yet\.)/;
/** A search line that hit, in the inline format ("8*5=40. 40+4=44 reached."). */
const HIT = /\d reached\.$/;

/** Prompt + reference ids, and the token index of every decision point (the first token of the line after a missed one). */
function encodeWithDecisions(tok: Tokenizer, p: Problem, completion: string): { ids: number[]; decisions: number[] } {
  const ids = [...encodeProblemPrompt(tok, p)];
  const decisions: number[] = [];
  const lines = completion.split('\n');
  let pending = '';
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const last = i === lines.length - 1;
    pending += line + (last ? '' : '\n');
    const next = lines[i + 1];
    // a search line that missed: it does not end "… reached.", and the line after it is a header or another search line, not "… reached."
    const missed = line !== '' && !HEADER.test(line) && !NOT_SEARCH.test(line) && !HIT.test(line) && next !== undefined && !/^\d+ reached\./.test(next);
    if (missed && next !== undefined && !next.startsWith('</think>')) {
      ids.push(...encodeText(tok, pending));
      pending = '';
      decisions.push(ids.length);
    }
  }
  if (pending) ids.push(...encodeText(tok, pending));
  return { ids, decisions };
}

export function stopProbe(model: DeepSeekV3, tok: Tokenizer, problems: readonly Problem[], o: { batchSize?: number } & SearchTraceFormat = {}): StopProbe {
  const stopId = encodeText(tok, STOP_LINE)[0];
  const rows = problems
    .filter((p) => p.task === 'countdown')
    .map((p) => {
      const c = referenceCompletion(p, o);
      return c === null ? null : encodeWithDecisions(tok, p, c);
    })
    .filter((r): r is { ids: number[]; decisions: number[] } => r !== null)
    .map((r) => {
      const max = model.config.max_position_embeddings;
      return { ids: r.ids.slice(0, max), decisions: r.decisions.filter((d) => d < max) };
    });
  const acc = { first: { n: 0, p: 0, g: 0 }, later: { n: 0, p: 0, g: 0 } };
  const read = teacherForced(
    model,
    rows.map((r) => r.ids),
    {
      pad: Math.max(tok.special.pad, 0),
      batchSize: o.batchSize ?? 16,
      read: (logits) => {
        const probs = logits.softmax(-1).select(2, stopId).cpu().tolist() as number[][]; // (B, L): P(stop token)
        const argmax = logits.argmax(-1).cpu().tolist() as number[][]; // (B, L)
        return probs.map((p, i) => ({ probs: p, argmax: argmax[i] }));
      },
    },
  );
  rows.forEach((r, i) => {
    r.decisions.forEach((d, k) => {
      const a = k === 0 ? acc.first : acc.later;
      a.n++;
      a.p += read[i].probs[d - 1];
      if (read[i].argmax[d - 1] === stopId) a.g++;
    });
  });
  const figures = (a: { n: number; p: number; g: number }): StopFigures => ({
    decisions: a.n,
    meanStop: a.n ? a.p / a.n : 0,
    greedyStops: a.n ? a.g / a.n : 0,
  });
  return { problems: rows.length, first: figures(acc.first), later: figures(acc.later) };
}

export function formatStopProbe(s: StopProbe): string {
  const f = (x: StopFigures): string => `P(stop) ${(x.meanStop * 100).toFixed(1)}%, greedy stops ${(x.greedyStops * 100).toFixed(1)}% of ${x.decisions}`;
  return `after the first missed line: ${f(s.first)}; after later ones: ${f(s.later)} (${s.problems} problems)`;
}
