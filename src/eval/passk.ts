/**
 * pass@k, the unbiased estimator of Chen et al. 2021 ("Evaluating Large Language Models Trained on
 * Code", §2.1): with n samples of which c are correct,
 *
 *   pass@k = 1 − C(n − c, k) / C(n, k)   (= 1 when n − c < k),
 *
 * computed as their numpy code does, as a product 1 − Π_{i = n−c+1}^{n} (1 − k / i), which never
 * forms a large binomial. pass@1 is c / n. The figure for a set of problems is the mean over them.
 *
 * Pure arithmetic; it knows nothing about tasks or models.
 */

/** pass@k for one problem: n samples, c of them correct, 1 ≤ k ≤ n. */
export function passAtK(n: number, c: number, k: number): number {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`pass@k: n must be a positive integer, got ${n}`);
  if (!Number.isInteger(c) || c < 0 || c > n) throw new RangeError(`pass@k: c must be an integer in [0, n = ${n}], got ${c}`);
  if (!Number.isInteger(k) || k < 1 || k > n) throw new RangeError(`pass@k: k must be an integer in [1, n = ${n}], got ${k}`);
  if (n - c < k) return 1;
  let fail = 1;
  for (let i = n - c + 1; i <= n; i++) fail *= 1 - k / i;
  return 1 - fail;
}

/** Mean pass@k over problems, each given as its count of correct samples out of n. */
export function meanPassAtK(n: number, correct: readonly number[], k: number): number {
  if (correct.length === 0) return 0;
  return correct.reduce((a, c) => a + passAtK(n, c, k), 0) / correct.length;
}

/** The k to report for n samples: 1, the powers of two below n, and n. */
export function defaultKs(n: number): number[] {
  const ks = new Set<number>([1]);
  for (let k = 2; k < n; k *= 2) ks.add(k);
  ks.add(n);
  return [...ks].sort((a, b) => a - b);
}
