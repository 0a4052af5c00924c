/**
 * The arithmetic probe: does the model compute the single steps its own reasoning writes? Each
 * problem's full reference trace (data: referenceCompletion — the Countdown search without an
 * early stop, the multiplication scratchpad) follows its prompt, teacher-forced in one forward pass,
 * and every equation "a op b=c" of the trace is scored at the digits of its result c:
 *
 *   digit accuracy   the share of result digits whose most likely next token is the right digit;
 *   whole result     the share of equations whose every result digit is the most likely token and
 *                    whose next most likely token after the last digit is not a digit — exactly the
 *                    equations that greedy decoding from the same context completes right (greedy
 *                    feeds back its own most likely tokens, which here are the reference's, so its
 *                    inputs are the teacher-forced ones until the first miss).
 *
 * Figures are given per operation (+ − * /) and over all. The equations come from the task's
 * held-out problems at the task's difficulty, so they are the ones a search over them computes.
 * A tokenizer that does not give one token per digit is refused (the probe reads digit tokens).
 *
 * It knows prompts, traces, the model's forward and the tokenizer; not training.
 */
import { type Problem, type SearchTraceFormat, encodeProblemPrompt, encodeText, referenceCompletion } from '../data/index.ts';
import type { DeepSeekV3 } from '../model/transformer.ts';
import type { Tokenizer } from '../tokenizer/index.ts';
import { teacherForced } from './teacher-forced.ts';

export type ProbeOp = '+' | '-' | '*' | '/';
export const PROBE_OPS: readonly ProbeOp[] = ['+', '-', '*', '/'];

export interface ProbeFigures {
  equations: number;
  /** Equations whose whole result greedy decoding gets right (see the module header). */
  whole: number;
  /** Result digits predicted right / result digits. */
  digits: number;
}

export interface ArithProbe {
  overall: ProbeFigures;
  byOp: Record<ProbeOp, ProbeFigures>;
  problems: number;
  /** Up to 8 equations the model got wrong, with what it predicted. */
  misses: { equation: string; predicted: string }[];
}

const EQUATION = /(?<![\d+\-*/])(\d+)([+\-*/])(\d+)=(\d+)/g;

interface Span {
  /** Token index of the first result digit in the sequence. */
  start: number;
  length: number;
  op: ProbeOp;
  text: string;
}

/** Prompt + completion ids with the token spans of every equation's result. */
function encodeWithSpans(tok: Tokenizer, p: Problem, completion: string): { ids: number[]; spans: Span[] } {
  const ids = [...encodeProblemPrompt(tok, p)];
  const spans: Span[] = [];
  let last = 0;
  for (const m of completion.matchAll(EQUATION)) {
    const resultAt = m.index + m[0].length - m[4].length;
    ids.push(...encodeText(tok, completion.slice(last, resultAt)));
    const digits = encodeText(tok, m[4]);
    if (digits.length !== m[4].length)
      throw new Error(`arithProbe: the tokenizer does not split "${m[4]}" into one token per digit; the probe needs a digit-splitting tokenizer (splitDigits)`);
    spans.push({ start: ids.length, length: digits.length, op: m[2] as ProbeOp, text: m[0] });
    ids.push(...digits);
    last = resultAt + m[4].length;
  }
  ids.push(...encodeText(tok, completion.slice(last)));
  return { ids, spans };
}

const zero = (): ProbeFigures => ({ equations: 0, whole: 0, digits: 0 });

/** The Countdown trace format the model was trained on (a field left out: the corpus default), and: */
export interface ArithProbeOptions extends SearchTraceFormat {
  /** Sequences per forward pass (default 16). */
  batchSize?: number;
}

export function arithProbe(model: DeepSeekV3, tok: Tokenizer, problems: readonly Problem[], o: ArithProbeOptions = {}): ArithProbe {
  const digitIds = new Set<number>();
  for (let d = 0; d <= 9; d++) for (const id of tok.encode(String(d))) digitIds.add(id);
  const rows: { ids: number[]; spans: Span[] }[] = [];
  for (const p of problems) {
    const c = referenceCompletion(p, o);
    if (c === null) continue;
    const r = encodeWithSpans(tok, p, c);
    if (r.ids.length > model.config.max_position_embeddings) r.ids = r.ids.slice(0, model.config.max_position_embeddings);
    r.spans = r.spans.filter((s) => s.start + s.length < r.ids.length);
    rows.push(r);
  }
  const byOp = { '+': zero(), '-': zero(), '*': zero(), '/': zero() } as Record<ProbeOp, ProbeFigures>;
  const misses: ArithProbe['misses'] = [];
  const perOp = Object.fromEntries(PROBE_OPS.map((op) => [op, { whole: 0, digits: 0, digitsRight: 0, equations: 0 }])) as Record<
    ProbeOp,
    { whole: number; digits: number; digitsRight: number; equations: number }
  >;
  const predicted = teacherForced(
    model,
    rows.map((r) => r.ids),
    { pad: Math.max(tok.special.pad, 0), batchSize: o.batchSize ?? 16, read: (logits) => logits.argmax(-1).cpu().tolist() as number[][] }, // (B, L)
  );
  rows.forEach((r, i) => {
    const pred = predicted[i];
    for (const sp of r.spans) {
      let right = 0;
      for (let k = 0; k < sp.length; k++) if (pred[sp.start + k - 1] === r.ids[sp.start + k]) right++;
      const after = pred[sp.start + sp.length - 1];
      const whole = right === sp.length && !digitIds.has(after);
      const f = perOp[sp.op];
      f.equations++;
      f.digits += sp.length;
      f.digitsRight += right;
      if (whole) f.whole++;
      else if (misses.length < 8) {
        const got = Array.from({ length: sp.length }, (_, k) => pred[sp.start + k - 1]);
        misses.push({ equation: sp.text, predicted: `${tok.decode(got)}${digitIds.has(after) ? '…' : ''}` });
      }
    }
  });
  let eq = 0;
  let whole = 0;
  let digits = 0;
  let digitsRight = 0;
  for (const op of PROBE_OPS) {
    const f = perOp[op];
    byOp[op] = { equations: f.equations, whole: f.equations ? f.whole / f.equations : 0, digits: f.digits ? f.digitsRight / f.digits : 0 };
    eq += f.equations;
    whole += f.whole;
    digits += f.digits;
    digitsRight += f.digitsRight;
  }
  const overall: ProbeFigures = { equations: eq, whole: eq ? whole / eq : 0, digits: digits ? digitsRight / digits : 0 };
  return { overall, byOp, problems: rows.length, misses };
}

/** The whole-result accuracy of each operation that had equations. */
export function wholeByOp(a: ArithProbe): Record<string, number> {
  return Object.fromEntries(PROBE_OPS.filter((op) => a.byOp[op].equations > 0).map((op) => [op, a.byOp[op].whole]));
}

/** "+ 98.1% · − 97.0% · * 92.4% · / 99.0% (whole results, 1234 equations)" */
export function formatArithProbe(a: ArithProbe): string {
  const parts = PROBE_OPS.filter((op) => a.byOp[op].equations > 0).map((op) => `${op} ${(a.byOp[op].whole * 100).toFixed(1)}%`);
  return `${(a.overall.whole * 100).toFixed(1)}% of ${a.overall.equations} results right (${parts.join(', ')}; digits ${(a.overall.digits * 100).toFixed(1)}%)`;
}
