/**
 * Plain arithmetic documents for the corpus, so that the base model learns to compute the steps
 * its traces need: a times table, lists of sums, differences, products and exact quotients over the
 * tasks' number ranges, and multiplications by place-value parts ("347 * 20 = 6940"). Every line
 * is true. A `keep` predicate lets the caller drop lines that would leak a held-out problem (a
 * product that is itself a held-out multiplication problem).
 *
 * It knows nothing about tasks or splits beyond that predicate.
 */
import type { Rng } from '../rng.ts';

export interface FactLine {
  readonly text: string;
  /** Present for products, so the caller can filter held-out multiplication problems. */
  readonly product?: readonly [number, number];
}

const sum = (a: number, b: number): FactLine => ({ text: `${a} + ${b} = ${a + b}` });
const diff = (a: number, b: number): FactLine => ({ text: `${a} - ${b} = ${a - b}` });
const prod = (a: number, b: number): FactLine => ({ text: `${a} * ${b} = ${a * b}`, product: [a, b] });
const quot = (a: number, b: number): FactLine => ({ text: `${a * b} / ${b} = ${a}` });

/** One facts document, or null when the predicate removed every line. */
export function factsDocument(rng: Rng, keep: (line: FactLine) => boolean): string | null {
  const kind = rng.int(0, 5);
  let title: string;
  let lines: FactLine[];
  const count = rng.int(6, 12);
  const many = (f: () => FactLine): FactLine[] => Array.from({ length: count }, f);
  switch (kind) {
    case 0: {
      const n = rng.int(2, 12);
      title = `Times table of ${n}:`;
      lines = Array.from({ length: 12 }, (_, i) => prod(n, i + 1));
      break;
    }
    case 1:
      title = rng.pick(['Sums:', 'Addition practice:']);
      lines = many(() => sum(rng.int(1, 200), rng.int(1, 200)));
      break;
    case 2:
      title = rng.pick(['Differences:', 'Subtraction practice:']);
      lines = many(() => {
        const a = rng.int(2, 300);
        return diff(a, rng.int(1, a - 1));
      });
      break;
    case 3:
      title = rng.pick(['Products:', 'Multiplication practice:']);
      lines = many(() => prod(rng.int(2, 99), rng.int(2, 12)));
      break;
    case 4:
      title = rng.pick(['Exact divisions:', 'Division practice:']);
      lines = many(() => quot(rng.int(1, 50), rng.int(2, 12)));
      break;
    default: {
      title = 'Multiplying by tens and hundreds:';
      lines = many(() => {
        const a = rng.int(2, 999);
        const b = rng.int(1, 9) * 10 ** rng.int(0, 2);
        return prod(a, b);
      });
      break;
    }
  }
  const kept = lines.filter(keep);
  if (kept.length === 0) return null;
  return `${title}\n${kept.map((l) => l.text).join('\n')}\n`;
}
