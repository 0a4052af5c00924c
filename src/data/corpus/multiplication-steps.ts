/**
 * Multiplication scratchpads for a model trained from scratch: every step is a single-digit fact
 * with its zeros, an addition of a round number, or one addition of two partial products — the
 * step sizes a small transformer learns reliably (Lee et al. 2023, "Teaching Arithmetic to Small
 * Transformers": a scratchpad changes how much data arithmetic needs by orders of magnitude).
 *
 *   47*86 = 47*80 + 47*6.
 *   47*6: 40*6=240, 7*6=42, 240+42=282.
 *   47*8: 40*8=320, 7*8=56, 320+56=376, so 47*80=3760.
 *   282+3760=4042.
 *   So 47*86=4042.
 *
 * The factor with more digits (the first when equal) is kept whole; the other is split by place
 * value, ones first. Zero digits are skipped. Every written equation is true.
 *
 * It knows nothing about how documents are mixed or tokenized.
 */
import type { MultiplicationProblem } from '../tasks/types.ts';
import type { Trace } from './common.ts';

/** u × d for a single digit d ≥ 1, by the digits of u: its line body and result. */
function byDigit(u: number, d: number): { text: string; result: number } {
  const parts = String(u)
    .split('')
    .map((c, i, all) => Number(c) * 10 ** (all.length - 1 - i))
    .filter((x) => x > 0);
  if (parts.length === 1) return { text: `${parts[0]}*${d}=${parts[0] * d}`, result: u * d };
  const eqs = parts.map((x) => `${x}*${d}=${x * d}`);
  let sum = parts[0] * d;
  for (let i = 1; i < parts.length; i++) {
    const next = sum + parts[i] * d;
    eqs.push(`${sum}+${parts[i] * d}=${next}`);
    sum = next;
  }
  return { text: eqs.join(', '), result: sum };
}

/** The scratchpad lines of u × v and the product. */
export function multiplicationLines(a: number, b: number): { lines: string[]; product: number } {
  const [u, v] = String(b).length > String(a).length ? [b, a] : [a, b];
  const digits = String(v)
    .split('')
    .map((c, i, all) => ({ d: Number(c), place: 10 ** (all.length - 1 - i) }))
    .filter((x) => x.d > 0)
    .reverse(); // ones first
  const lines: string[] = [];
  if (digits.length > 1)
    lines.push(
      `${a}*${b} = ${digits
        .map((x) => `${u}*${x.d * x.place}`)
        .reverse()
        .join(' + ')}.`,
    );
  const partials: number[] = [];
  for (const { d, place } of digits) {
    const r = byDigit(u, d);
    const value = r.result * place;
    if (String(u).length === 1) {
      lines.push(place === 1 ? `${u}*${d}=${r.result}.` : `${u}*${d}=${r.result}, so ${u}*${d * place}=${value}.`);
    } else {
      lines.push(place === 1 ? `${u}*${d}: ${r.text}.` : `${u}*${d}: ${r.text}, so ${u}*${d * place}=${value}.`);
    }
    partials.push(value);
  }
  let sum = partials[0] ?? 0;
  for (let i = 1; i < partials.length; i++) {
    lines.push(`${sum}+${partials[i]}=${sum + partials[i]}.`);
    sum += partials[i];
  }
  lines.push(`So ${a}*${b}=${sum}.`);
  return { lines, product: sum };
}

export function multiplicationStepsTrace(p: MultiplicationProblem): Trace {
  const { lines, product } = multiplicationLines(p.a, p.b);
  return { lines, answer: String(product), closed: true };
}
