/**
 * Exact rational numbers over BigInt, always reduced, denominator > 0. Used by the arithmetic
 * evaluator and the Countdown generator so that (1 / 3) * 3 is exactly 1 and a huge literal is a
 * huge number, never Infinity or NaN.
 *
 * It knows nothing about parsing; division by zero returns null instead of throwing so that the
 * caller decides what it means.
 */

export interface Rational {
  readonly n: bigint;
  readonly d: bigint;
}

function abs(x: bigint): bigint {
  return x < 0n ? -x : x;
}

export function gcd(a: bigint, b: bigint): bigint {
  a = abs(a);
  b = abs(b);
  while (b !== 0n) {
    const t = a % b;
    a = b;
    b = t;
  }
  return a;
}

export function rat(n: bigint | number, d: bigint | number = 1n): Rational {
  let nn = BigInt(n);
  let dd = BigInt(d);
  if (dd === 0n) throw new Error('rat: zero denominator');
  if (dd < 0n) {
    nn = -nn;
    dd = -dd;
  }
  const g = gcd(nn, dd);
  return g > 1n ? { n: nn / g, d: dd / g } : { n: nn, d: dd };
}

export const add = (a: Rational, b: Rational): Rational => rat(a.n * b.d + b.n * a.d, a.d * b.d);
export const sub = (a: Rational, b: Rational): Rational => rat(a.n * b.d - b.n * a.d, a.d * b.d);
export const mul = (a: Rational, b: Rational): Rational => rat(a.n * b.n, a.d * b.d);
export const neg = (a: Rational): Rational => ({ n: -a.n, d: a.d });

/** a / b, or null when b is zero. */
export function div(a: Rational, b: Rational): Rational | null {
  if (b.n === 0n) return null;
  return rat(a.n * b.d, a.d * b.n);
}

export const isInteger = (a: Rational): boolean => a.d === 1n;

/**
 * |a − target| < 10^-5, decided exactly: |n − target·d| · 10^5 < d. This is TinyZero's tolerance
 * rule (`abs(result - target) < 1e-5`) without floating-point rounding.
 */
export function withinTolerance(a: Rational, target: bigint | number): boolean {
  return abs(a.n - BigInt(target) * a.d) * 100000n < a.d;
}

/** The nearest double (for display only; may be ±Infinity for huge values). */
export function toNumber(a: Rational): number {
  return Number(a.n) / Number(a.d);
}

// biome-ignore lint/suspicious/noShadowRestrictedNames: the module's exported name (rational.toString), not the global
export function toString(a: Rational): string {
  return a.d === 1n ? a.n.toString() : `${a.n}/${a.d}`;
}
