// The safe arithmetic evaluator (precedence, parentheses, division, unary minus, limits, never
// throwing), exact rationals, the seeded PRNG and the hash split.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { evalArith, parseArith, showExpr, Rng, splitOf, splitPoint, rationalToString, withinTolerance } from '../src/data/index.ts';

const value = (s: string): string => {
  const r = evalArith(s);
  if (!r.ok) return `error:${r.error}`;
  return rationalToString(r.value);
};
const shape = (s: string): string => {
  const r = parseArith(s);
  return r.ok ? showExpr(r.expr) : `error:${r.error}`;
};

describe('arithmetic evaluator', () => {
  test('precedence: * and / bind tighter than + and -', () => {
    assert.equal(value('2 + 3 * 4'), '14');
    assert.equal(value('2 * 3 + 4'), '10');
    assert.equal(value('10 - 6 / 2'), '7');
    assert.equal(shape('1 + 2 * 3 - 4 / 5'), '((1 + (2 * 3)) - (4 / 5))');
  });

  test('left associativity of - and /', () => {
    assert.equal(value('10 - 3 - 2'), '5');
    assert.equal(value('100 / 10 / 5'), '2');
    assert.equal(value('2 * 3 / 4'), '3/2');
  });

  test('parentheses', () => {
    assert.equal(value('(2 + 3) * 4'), '20');
    assert.equal(value('10 - (3 - 2)'), '9');
    assert.equal(value('100 / (10 / 5)'), '50');
    assert.equal(value('((((7))))'), '7');
  });

  test('division is exact rational arithmetic', () => {
    assert.equal(value('1 / 3'), '1/3');
    assert.equal(value('1 / 3 * 3'), '1');
    assert.equal(value('7 / 2 + 1 / 2'), '4');
    assert.equal(value('5 / 0'), 'error:division-by-zero');
    assert.equal(value('5 / (2 - 2)'), 'error:division-by-zero');
    assert.equal(value('0 / 5'), '0');
  });

  test('unary minus and plus, as in Python', () => {
    assert.equal(value('-3 + 5'), '2');
    assert.equal(value('2 * -3'), '-6');
    assert.equal(value('--3'), '3');
    assert.equal(value('-(2 + 3)'), '-5');
    assert.equal(value('+4'), '4');
    assert.equal(value('3 - -2'), '5');
    assert.equal(shape('-2 * 3'), '((-2) * 3)');
  });

  test('rejections', () => {
    for (const [s, e] of [
      ['', 'empty'],
      ['  ', 'empty'],
      ['2 +', 'syntax'],
      ['2 3', 'syntax'],
      ['()', 'syntax'],
      ['(2', 'syntax'],
      ['2)', 'syntax'],
      ['2 ** 3', 'syntax'],
      ['7 // 2', 'syntax'],
      ['1.5', 'syntax'],
      ['.5', 'syntax'],
      ['07', 'syntax'],
      ['2 ^ 3', 'unsafe-chars'],
      ['1e3', 'unsafe-chars'],
      ['abs(2)', 'unsafe-chars'],
      ['٣ + 4', 'unsafe-chars'],
      ['３ + 4', 'unsafe-chars'],
      ['2 × 3', 'unsafe-chars'],
      ['2 − 3', 'unsafe-chars'],
    ] as const) {
      assert.equal(value(s), `error:${e}`, s);
    }
    assert.equal(value('0'), '0');
    assert.equal(value('00'.slice(1)), '0');
  });

  test('limits: length and depth', () => {
    assert.equal(value(`1${' + 1'.repeat(249)}`), '250');
    assert.equal(value(`1${' + 1'.repeat(250)}`), 'error:too-long');
    assert.equal(value(`${'('.repeat(32)}1${')'.repeat(32)}`), '1');
    assert.equal(value(`${'('.repeat(33)}1${')'.repeat(33)}`), 'error:too-deep');
    assert.equal(evalArith('1 + 1', { maxLength: 3, maxDepth: 4 }).ok, false);
  });

  test('huge literals stay exact', () => {
    const big = `1${'0'.repeat(400)}`;
    assert.equal(value(`${big} - ${'9'.repeat(400)}`), '1');
    const r = evalArith(`${big} * ${big}`);
    assert.ok(r.ok && r.value.n === 10n ** 800n);
  });

  type Tree = { kind: 'num'; v: number } | { kind: 'op'; op: '+' | '-' | '*' | '/'; l: Tree; r: Tree } | { kind: 'neg'; a: Tree };
  const tree: fc.Arbitrary<Tree> = fc.letrec<{ t: Tree }>((tie) => ({
    t: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      fc.integer({ min: 0, max: 50 }).map((v): Tree => ({ kind: 'num', v })),
      fc.record({ kind: fc.constant('op' as const), op: fc.constantFrom('+' as const, '-' as const, '*' as const, '/' as const), l: tie('t'), r: tie('t') }),
      fc.record({ kind: fc.constant('neg' as const), a: tie('t') }),
    ),
  })).t;
  const render = (t: Tree): string => (t.kind === 'num' ? String(t.v) : t.kind === 'neg' ? `-(${render(t.a)})` : `(${render(t.l)} ${t.op} ${render(t.r)})`);
  const evalF = (t: Tree): number => {
    if (t.kind === 'num') return t.v;
    if (t.kind === 'neg') return -evalF(t.a);
    const a = evalF(t.l);
    const b = evalF(t.r);
    return t.op === '+' ? a + b : t.op === '-' ? a - b : t.op === '*' ? a * b : a / b;
  };

  test('agrees with floating-point evaluation on random expressions', () => {
    fc.assert(
      fc.property(tree, (t) => {
        const s = render(t);
        const r = evalArith(s, { maxLength: 100_000, maxDepth: 1000 });
        const f = evalF(t);
        if (!r.ok) {
          assert.equal(r.error, 'division-by-zero', `${s}: ${r.error}`);
          return;
        }
        const x = Number(r.value.n) / Number(r.value.d);
        if (Number.isFinite(f) && Math.abs(f) < 1e12) assert.ok(Math.abs(x - f) <= 1e-9 * Math.max(1, Math.abs(f)), `${s}: ${x} vs ${f}`);
      }),
      { numRuns: 2000 },
    );
  });

  test('minimal-parenthesis rendering keeps the value (without parentheses where precedence allows)', () => {
    assert.equal(value('2 + 3 * 4 - 6 / 2'), '11');
    assert.equal(value('2 + (3 * 4) - (6 / 2)'), '11');
  });

  test('never throws on any string', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ maxLength: 200 }),
          fc.array(fc.constantFrom('(', ')', '-', '+', '*', '/', '1', ' ', '.'), { maxLength: 300 }).map((a) => a.join('')),
        ),
        (s) => {
          evalArith(s);
        },
      ),
      { numRuns: 3000 },
    );
  });

  test('tolerance rule |x − t| < 1e-5 on exact values', () => {
    const r = (s: string) => {
      const e = evalArith(s);
      assert.ok(e.ok);
      return e.value;
    };
    assert.ok(withinTolerance(r('1'), 1));
    assert.ok(!withinTolerance(r('100001 / 100000'), 1), 'exactly 1e-5 away is not within');
    assert.ok(withinTolerance(r('1000001 / 1000000'), 1));
  });
});

describe('seeded PRNG', () => {
  test('same seed, same stream; different seeds or labels, different streams', () => {
    const a = new Rng(42, 'x');
    const b = new Rng(42, 'x');
    const c = new Rng(42, 'y');
    const d = new Rng(43, 'x');
    const sa = Array.from({ length: 20 }, () => a.nextU32());
    assert.deepEqual(
      sa,
      Array.from({ length: 20 }, () => b.nextU32()),
    );
    assert.notDeepEqual(
      sa,
      Array.from({ length: 20 }, () => c.nextU32()),
    );
    assert.notDeepEqual(
      sa,
      Array.from({ length: 20 }, () => d.nextU32()),
    );
    assert.notDeepEqual(new Rng('ab').nextU32(), new Rng('a', 'b').nextU32());
  });

  test('the stream is pinned (a change to the generator would reshuffle every dataset)', () => {
    const r = new Rng(0);
    assert.deepEqual(
      Array.from({ length: 4 }, () => r.nextU32()),
      PINNED,
    );
  });

  test('state save / restore continues the same stream', () => {
    const a = new Rng(7);
    for (let i = 0; i < 10; i++) a.nextU32();
    const b = Rng.fromState(a.getState());
    assert.deepEqual(
      Array.from({ length: 10 }, () => a.float()),
      Array.from({ length: 10 }, () => b.float()),
    );
  });

  test('int() is unbiased and in range; float() in [0, 1)', () => {
    const r = new Rng(1);
    const counts = new Array(6).fill(0);
    for (let i = 0; i < 60_000; i++) {
      const v = r.int(1, 6);
      assert.ok(v >= 1 && v <= 6);
      counts[v - 1]++;
    }
    for (const c of counts) assert.ok(Math.abs(c - 10_000) < 500, `counts ${counts}`);
    for (let i = 0; i < 1000; i++) {
      const f = r.float();
      assert.ok(f >= 0 && f < 1);
    }
    assert.throws(() => r.int(3, 2), /lo <= hi/);
    assert.throws(() => new Rng(1.5), /integers or strings/);
  });
});

describe('hash split', () => {
  test('deterministic, about the asked fraction, monotone in the fraction', () => {
    let held = 0;
    for (let i = 0; i < 20_000; i++) {
      const key = `k${i}`;
      assert.equal(splitOf(key), splitOf(key));
      if (splitOf(key, 0.1) === 'heldout') {
        held++;
        assert.equal(splitOf(key, 0.2), 'heldout', 'held out at 0.1 ⇒ held out at 0.2');
      }
    }
    assert.ok(Math.abs(held / 20_000 - 0.1) < 0.01, `${held}`);
    assert.ok(splitPoint('x') >= 0 && splitPoint('x') < 1);
    assert.equal(splitOf('anything', 0), 'train');
    assert.equal(splitOf('anything', 1), 'heldout');
    assert.throws(() => splitOf('x', 2), /\[0, 1\]/);
  });
});

const PINNED: number[] = [2086780332, 1238771875, 89008343, 2436865216];
