/**
 * A small seeded pseudo-random generator for the data side: xoshiro128** (Blackman & Vigna) with
 * its 128-bit state filled by splitmix32 from a seed made of any number of parts (numbers and
 * strings), so `new Rng(seed, 'countdown', 'train')` gives an independent, reproducible stream
 * per purpose. Everything here is 32-bit integer arithmetic: the same seed gives the same stream
 * on every platform and Node version.
 *
 * It knows nothing about tensors or libtorch's generators (those live in src/core/random.ts) and
 * is not cryptographic. Never use Math.random in src/data: every generator takes an Rng.
 */

export type SeedPart = number | string;

/** The 4×32-bit state, for saving a stream in a checkpoint and restoring it. */
export type RngState = readonly [number, number, number, number];

function splitmix32(state: { s: number }): number {
  state.s = (state.s + 0x9e3779b9) | 0;
  let z = state.s;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/** Folds one seed part into a 32-bit accumulator (strings by UTF-16 code unit, numbers by their low and high 32 bits). */
function absorb(h: number, part: SeedPart): number {
  const mix = (x: number, v: number): number => {
    let y = Math.imul(x ^ v, 0x9e3779b1);
    y ^= y >>> 15;
    y = Math.imul(y, 0x85ebca77);
    return (y ^ (y >>> 13)) >>> 0;
  };
  if (typeof part === 'string') {
    h = mix(h, 0x5354 + part.length); // type tag: "ST" + length, so 'a','b' ≠ 'ab'
    for (let i = 0; i < part.length; i++) h = mix(h, part.charCodeAt(i));
    return h;
  }
  if (!Number.isFinite(part) || !Number.isInteger(part)) {
    throw new Error(`Rng: seed parts must be integers or strings, got ${part}; round the seed or pass it as a string`);
  }
  const lo = part >>> 0;
  const hi = Math.floor(part / 4294967296) >>> 0;
  return mix(mix(mix(h, 0x4e55), lo), hi);
}

export class Rng {
  private s0 = 0;
  private s1 = 0;
  private s2 = 0;
  private s3 = 0;

  constructor(...seed: SeedPart[]) {
    let h = 0x2545f491;
    for (const p of seed) h = absorb(h, p);
    const sm = { s: h | 0 };
    this.s0 = splitmix32(sm);
    this.s1 = splitmix32(sm);
    this.s2 = splitmix32(sm);
    this.s3 = splitmix32(sm);
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1; // the all-zero state is a fixed point
  }

  /** A generator restored from a saved state. */
  static fromState(state: RngState): Rng {
    const r = new Rng(0);
    r.setState(state);
    return r;
  }

  getState(): RngState {
    return [this.s0, this.s1, this.s2, this.s3];
  }

  setState(state: RngState): void {
    if (state.length !== 4 || state.some((v) => !Number.isInteger(v) || v < 0 || v > 0xffffffff)) {
      throw new Error('Rng.setState: expected 4 unsigned 32-bit integers (as returned by getState())');
    }
    if ((state[0] | state[1] | state[2] | state[3]) === 0) throw new Error('Rng.setState: the all-zero state is invalid');
    [this.s0, this.s1, this.s2, this.s3] = state;
  }

  /** The next uniform unsigned 32-bit integer. */
  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    this.s0 >>>= 0;
    this.s1 >>>= 0;
    this.s2 >>>= 0;
    this.s3 >>>= 0;
    return result;
  }

  /** A uniform float in [0, 1) with 53 random bits. */
  float(): number {
    const hi = this.nextU32() >>> 5; // 27 bits
    const lo = this.nextU32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** A uniform integer in [lo, hi] (both inclusive), without modulo bias. */
  int(lo: number, hi: number): number {
    if (!Number.isSafeInteger(lo) || !Number.isSafeInteger(hi) || hi < lo) {
      throw new Error(`Rng.int: need safe integers lo <= hi, got [${lo}, ${hi}]`);
    }
    const range = hi - lo + 1;
    if (range <= 4294967296) {
      const limit = Math.floor(4294967296 / range) * range;
      for (;;) {
        const u = this.nextU32();
        if (u < limit) return lo + (u % range);
      }
    }
    for (;;) {
      const v = Math.floor(this.float() * range);
      if (v < range) return lo + v;
    }
  }

  /** true with probability p. */
  bool(p = 0.5): boolean {
    return this.float() < p;
  }

  /** One element, uniformly. */
  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('Rng.pick: cannot pick from an empty list');
    return items[this.int(0, items.length - 1)];
  }

  /** An index drawn with probability proportional to its (non-negative) weight. */
  weighted(weights: readonly number[]): number {
    let total = 0;
    for (const w of weights) {
      if (!(w >= 0) || !Number.isFinite(w)) throw new Error(`Rng.weighted: weights must be finite and >= 0, got ${w}`);
      total += w;
    }
    if (total <= 0) throw new Error('Rng.weighted: at least one weight must be positive');
    let x = this.float() * total;
    for (let i = 0; i < weights.length; i++) {
      x -= weights[i];
      if (x < 0) return i;
    }
    for (let i = weights.length - 1; i >= 0; i--) if (weights[i] > 0) return i;
    return weights.length - 1;
  }

  /** Shuffles in place with Fisher–Yates and returns the same array. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(0, i);
      const t = items[i];
      items[i] = items[j];
      items[j] = t;
    }
    return items;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
