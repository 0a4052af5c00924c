/**
 * Values of the tensor engine's operators against hand-computed references.
 *
 * Every expected value below is a literal or plain JS arithmetic on literals; no expected value is
 * computed by calling the engine. Float results are compared with `assertClose`, whose tolerance
 * is stated in each failure message; integer and boolean results are compared exactly.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  Generator,
  Tensor,
  addcdiv,
  addcmul,
  arange,
  bincount,
  callOp,
  cat,
  chunk,
  crossEntropy,
  einsum,
  empty,
  eye,
  full,
  fullLike,
  index,
  indexPut,
  lerp,
  linear,
  linspace,
  logsumexp,
  manualSeed,
  matmul,
  maximum,
  mean,
  minimum,
  multinomial,
  oneHot,
  ones,
  onesLike,
  rand,
  randint,
  randn,
  scalar,
  scatter,
  softmax,
  split,
  stack,
  sum,
  tensor,
  tidy,
  where,
  zeros,
  zerosLike,
  type DType,
  type NestedArray,
} from '../src/core/index.ts';

// ---- helpers --------------------------------------------------------------------------------------

/** Float32 results: |actual - expected| <= F32_TOL · max(1, |expected|). */
const F32_TOL = 1e-6;

function flat(x: NestedArray | readonly number[] | number): number[] {
  if (typeof x === 'number') return [x];
  if (typeof x === 'boolean') return [x ? 1 : 0];
  const out: number[] = [];
  for (const e of x as readonly (NestedArray | number)[]) out.push(...flat(e as NestedArray));
  return out;
}

/** Elementwise |a - e| <= tol · max(1, |e|), NaN matching NaN; the tolerance is in the message. */
function assertClose(actual: Tensor | readonly number[] | number, expected: NestedArray | readonly number[] | number, tol = F32_TOL, what = 'value'): void {
  const a = actual instanceof Tensor ? actual.toArray() : flat(actual as number[] | number);
  const e = flat(expected as NestedArray);
  assert.equal(a.length, e.length, `${what}: ${a.length} elements, expected ${e.length}`);
  for (let i = 0; i < e.length; i++) {
    if (Number.isNaN(e[i])) {
      assert.ok(Number.isNaN(a[i]), `${what}[${i}]: got ${a[i]}, expected NaN`);
      continue;
    }
    if (e[i] === a[i]) continue; // covers infinities
    const err = Math.abs(a[i] - e[i]);
    assert.ok(
      err <= tol * Math.max(1, Math.abs(e[i])),
      `${what}[${i}]: got ${a[i]}, expected ${e[i]} (|diff| = ${err.toExponential(2)} exceeds tolerance ${tol} · max(1, |expected|))`,
    );
  }
}

function assertTensor(t: Tensor, dtype: DType, shape: number[], values?: NestedArray): void {
  assert.equal(t.dtype, dtype, 'dtype');
  assert.deepEqual(t.shape, shape, 'shape');
  if (values !== undefined) assert.deepEqual(t.tolist(), values);
}

const i64 = (data: NestedArray): Tensor => tensor(data as number[], { dtype: 'int64' });
const sigmoid = (v: number): number => 1 / (1 + Math.exp(-v));
const lse = (row: readonly number[]): number => {
  const m = Math.max(...row);
  return m + Math.log(row.reduce((s, v) => s + Math.exp(v - m), 0));
};

/** x = [[0, 1, 2], [3, 4, 5]] as int64 (arange(6) viewed 2x3). */
const x23 = (): Tensor => arange(6).reshape([2, 3]);

// ---- creation -------------------------------------------------------------------------------------

describe('creation', () => {
  it('tensor() infers shape and dtype from nested arrays', () => {
    assertTensor(
      tensor([
        [1, 2, 3],
        [4, 5, 6],
      ]),
      'float32',
      [2, 3],
      [
        [1, 2, 3],
        [4, 5, 6],
      ],
    );
    assertTensor(tensor([true, false, true]), 'bool', [3], [true, false, true]);
    assertTensor(tensor([]), 'float32', [0], []);
    assertTensor(
      tensor(
        [
          [1, 2],
          [3, 4],
        ],
        { shape: [4] },
      ),
      'float32',
      [4],
      [1, 2, 3, 4],
    );
  });

  it('tensor() honours each dtype', () => {
    assertTensor(tensor([1, -2, 3], { dtype: 'int64' }), 'int64', [3], [1, -2, 3]);
    assertTensor(tensor([1, -2, 3], { dtype: 'int32' }), 'int32', [3], [1, -2, 3]);
    assertTensor(tensor([0.5, -2, 3], { dtype: 'float16' }), 'float16', [3], [0.5, -2, 3]);
    assertTensor(tensor([0.5, -2, 3], { dtype: 'bfloat16' }), 'bfloat16', [3], [0.5, -2, 3]);
    assertTensor(tensor([0, 2, -1], { dtype: 'bool' }), 'bool', [3], [false, true, true]);
    assertTensor(tensor([0.1, 0.2], { dtype: 'float64' }), 'float64', [2], [0.1, 0.2]);
  });

  it('tensor() keeps float64 and large int64 values exact', () => {
    assert.equal(tensor([1 / 3], { dtype: 'float64' }).item(), 1 / 3);
    assert.equal(tensor([16777217], { dtype: 'int64' }).item(), 16777217); // 2^24 + 1: not a float32
    assert.equal(tensor([2 ** 53], { dtype: 'int64' }).item(), 2 ** 53);
    // Default float32 rounds, as in PyTorch.
    assert.equal(tensor([0.1]).item(), Math.fround(0.1));
  });

  it('tensor() takes typed arrays in their own dtype', () => {
    assertTensor(
      tensor(new Int32Array([1, 2, 3, 4]), { shape: [2, 2] }),
      'int32',
      [2, 2],
      [
        [1, 2],
        [3, 4],
      ],
    );
    assertTensor(tensor(new Float64Array([0.25, 0.5])), 'float64', [2], [0.25, 0.5]);
    assertTensor(tensor(new BigInt64Array([5n, -6n])), 'int64', [2], [5, -6]);
    assertTensor(tensor(new Uint8Array([7, 0])), 'uint8', [2], [7, 0]);
    assertTensor(tensor(new Float32Array([1.5, 2.5]), { dtype: 'int64' }), 'int64', [2], [1, 2]);
  });

  it('scalar() makes a 0-d tensor', () => {
    const s = scalar(3.5);
    assertTensor(s, 'float32', [], 3.5);
    assert.equal(s.item(), 3.5);
    assert.equal(scalar(true).dtype, 'bool');
  });

  it('zeros/ones/full in every dtype', () => {
    for (const dtype of ['float32', 'bfloat16', 'float16', 'int64', 'int32', 'bool'] as DType[]) {
      const z = zeros([2, 3], { dtype });
      const o = ones([3], { dtype });
      assertTensor(z, dtype, [2, 3]);
      assertTensor(o, dtype, [3]);
      assert.deepEqual(z.toArray(), [0, 0, 0, 0, 0, 0], `zeros ${dtype}`);
      assert.deepEqual(o.toArray(), [1, 1, 1], `ones ${dtype}`);
      const f = full([2, 2], dtype === 'bool' ? 1 : 7, { dtype });
      assertTensor(f, dtype, [2, 2]);
      assert.deepEqual(f.toArray(), dtype === 'bool' ? [1, 1, 1, 1] : [7, 7, 7, 7], `full ${dtype}`);
    }
    assertTensor(zeros([2, 3]), 'float32', [2, 3]);
    assertTensor(zeros([]), 'float32', [], 0);
    assertTensor(zeros([0, 3]), 'float32', [0, 3], []);
  });

  it('full() picks float32 for numbers and bool for booleans', () => {
    assertTensor(full([2], 2.5), 'float32', [2], [2.5, 2.5]);
    assertTensor(full([2], true), 'bool', [2], [true, true]);
    assertTensor(full([3], 2.5, { dtype: 'float16' }), 'float16', [3], [2.5, 2.5, 2.5]);
    assertTensor(full([1], -3, { dtype: 'int32' }), 'int32', [1], [-3]);
  });

  it('empty() has the requested shape and dtype', () => {
    assertTensor(empty([4, 2], { dtype: 'int64' }), 'int64', [4, 2]);
  });

  it('arange: int64 for integers, float32 otherwise, dtype overrides', () => {
    assertTensor(arange(5), 'int64', [5], [0, 1, 2, 3, 4]);
    assertTensor(arange(2, 8, 3), 'int64', [2], [2, 5]);
    assertTensor(arange(5, 0, -2), 'int64', [3], [5, 3, 1]);
    assertTensor(arange(0, 1, 0.25), 'float32', [4], [0, 0.25, 0.5, 0.75]);
    assertTensor(arange(0.5, 3), 'float32', [3], [0.5, 1.5, 2.5]);
    assertTensor(arange(3, undefined, 1, { dtype: 'float64' }), 'float64', [3], [0, 1, 2]);
    assertTensor(arange(4, undefined, 1, { dtype: 'int32' }), 'int32', [4], [0, 1, 2, 3]);
    assertTensor(arange(0), 'int64', [0], []);
  });

  it('linspace includes both ends', () => {
    assertTensor(linspace(0, 1, 5), 'float32', [5], [0, 0.25, 0.5, 0.75, 1]);
    assertTensor(linspace(-1, 1, 3, { dtype: 'float64' }), 'float64', [3], [-1, 0, 1]);
    assertTensor(linspace(2, 2, 1), 'float32', [1], [2]);
  });

  it('eye', () => {
    assertTensor(
      eye(3),
      'float32',
      [3, 3],
      [
        [1, 0, 0],
        [0, 1, 0],
        [0, 0, 1],
      ],
    );
    assertTensor(
      eye(2, { dtype: 'int64' }),
      'int64',
      [2, 2],
      [
        [1, 0],
        [0, 1],
      ],
    );
  });

  it('*Like factories keep shape and dtype', () => {
    const base = tensor([[1, 2]], { dtype: 'int32' });
    assertTensor(zerosLike(base), 'int32', [1, 2], [[0, 0]]);
    assertTensor(onesLike(base), 'int32', [1, 2], [[1, 1]]);
    assertTensor(fullLike(base, 9), 'int32', [1, 2], [[9, 9]]);
    assertTensor(zerosLike(base, { dtype: 'float64' }), 'float64', [1, 2], [[0, 0]]);
  });

  it('requiresGrad option', () => {
    assert.equal(zeros([2], { requiresGrad: true }).requiresGrad, true);
    assert.equal(tensor([1, 2], { dtype: 'float64', requiresGrad: true }).requiresGrad, true);
    assert.equal(zeros([2]).requiresGrad, false);
  });

  it('device is cpu', () => {
    assert.equal(zeros([1]).device, 'cpu');
  });
});

// ---- randomness -----------------------------------------------------------------------------------

describe('seeded randomness', () => {
  it('manualSeed makes the global stream repeat', () => {
    manualSeed(123);
    const a = randn([6]).toArray();
    const u = rand([3]).toArray();
    manualSeed(123);
    assert.deepEqual(randn([6]).toArray(), a);
    assert.deepEqual(rand([3]).toArray(), u);
  });

  it('generators with the same seed agree, different seeds differ', () => {
    const a = randn([8], { generator: new Generator(7) }).toArray();
    const b = randn([8], { generator: new Generator(7) }).toArray();
    const c = randn([8], { generator: new Generator(8) }).toArray();
    assert.deepEqual(a, b);
    assert.notDeepEqual(a, c);
    assert.equal(new Set(a).size, 8, 'samples are distinct');
  });

  it('a generator is independent of the global stream', () => {
    const g1 = new Generator(11);
    const a = rand([4], { generator: g1 }).toArray();
    const g2 = new Generator(11);
    randn([100]); // draws from the global generator in between
    assert.deepEqual(rand([4], { generator: g2 }).toArray(), a);
  });

  it('getState/setState reproduce the stream; manualSeed restarts it', () => {
    const g = new Generator(42);
    assert.equal(g.seed, 42n);
    randn([5], { generator: g }); // advance
    const state = g.getState();
    assert.equal(state.dtype, 'uint8');
    const a = randn([5], { generator: g }).toArray();
    const b = rand([3], { generator: g }).toArray();
    g.setState(state);
    assert.deepEqual(randn([5], { generator: g }).toArray(), a);
    assert.deepEqual(rand([3], { generator: g }).toArray(), b);
    const first = randn([4], { generator: g.manualSeed(42) }).toArray();
    assert.deepEqual(randn([4], { generator: new Generator(42) }).toArray(), first);
  });

  it('rand is in [0, 1); randn has mean ~0 and std ~1', () => {
    const g = new Generator(3);
    const u = rand([4000], { generator: g }).toArray();
    assert.ok(
      u.every((v) => v >= 0 && v < 1),
      'rand in [0, 1)',
    );
    const uMean = u.reduce((s, v) => s + v, 0) / u.length;
    assert.ok(Math.abs(uMean - 0.5) < 0.03, `rand mean ${uMean} within 0.03 of 0.5`);
    const n = randn([4000], { generator: g }).toArray();
    const m = n.reduce((s, v) => s + v, 0) / n.length;
    const sd = Math.sqrt(n.reduce((s, v) => s + (v - m) ** 2, 0) / (n.length - 1));
    assert.ok(Math.abs(m) < 0.06, `randn mean ${m} within 0.06 of 0`);
    assert.ok(Math.abs(sd - 1) < 0.06, `randn std ${sd} within 0.06 of 1`);
    assert.equal(randn([2], { generator: g, dtype: 'float64' }).dtype, 'float64');
  });

  it('randint stays in [low, high) and covers it', () => {
    const r = randint(3, 7, [2000], { generator: new Generator(5) });
    assertTensor(r, 'int64', [2000]);
    const v = r.toArray();
    assert.ok(
      v.every((k) => k >= 3 && k < 7),
      'all in [3, 7)',
    );
    assert.deepEqual([...new Set(v)].sort(), [3, 4, 5, 6]);
    assert.equal(randint(0, 2, [3], { dtype: 'int32' }).dtype, 'int32');
    assert.deepEqual(randint(0, 9, [6], { generator: new Generator(1) }).toArray(), randint(0, 9, [6], { generator: new Generator(1) }).toArray());
  });

  it('normal_ and uniform_ with a generator', () => {
    const a = zeros([5]).normal_(2, 0.5, new Generator(9)).toArray();
    const b = zeros([5]).normal_(2, 0.5, new Generator(9)).toArray();
    assert.deepEqual(a, b);
    const u = zeros([200]).uniform_(-2, -1, new Generator(9)).toArray();
    assert.ok(
      u.every((v) => v >= -2 && v < -1),
      'uniform_ in [-2, -1)',
    );
  });

  it('multinomial counts follow the probabilities', () => {
    const probs = tensor([0.2, 0, 0.8]);
    const draws = multinomial(probs, 2000, true, new Generator(17));
    assertTensor(draws, 'int64', [2000]);
    const counts = [0, 0, 0];
    for (const k of draws.toArray()) counts[k]++;
    assert.equal(counts[1], 0, 'a zero-probability class is never drawn');
    assert.ok(counts[0] > 320 && counts[0] < 480, `class 0 drawn ${counts[0]} times, expected ~400`);
    assert.equal(counts[0] + counts[2], 2000);
    // Same seed, same draws; without replacement each index once.
    assert.deepEqual(probs.multinomial(50, true, new Generator(17)).toArray(), draws.toArray().slice(0, 50));
    const perm = multinomial(tensor([1, 1, 1, 1]), 4, false, new Generator(2)).toArray();
    assert.deepEqual([...perm].sort(), [0, 1, 2, 3]);
    // Batched: one row per distribution.
    const rows = multinomial(
      tensor([
        [0, 1],
        [1, 0],
      ]),
      3,
      true,
      new Generator(2),
    );
    assert.deepEqual(rows.tolist(), [
      [1, 1, 1],
      [0, 0, 0],
    ]);
  });
});

// ---- views and indexing ---------------------------------------------------------------------------

describe('views and indexing', () => {
  it('reshape and view', () => {
    assertTensor(
      x23().reshape([3, 2]),
      'int64',
      [3, 2],
      [
        [0, 1],
        [2, 3],
        [4, 5],
      ],
    );
    assertTensor(x23().reshape([-1]), 'int64', [6], [0, 1, 2, 3, 4, 5]);
    assertTensor(
      x23().view([3, -1]),
      'int64',
      [3, 2],
      [
        [0, 1],
        [2, 3],
        [4, 5],
      ],
    );
    // A view shares storage with its base.
    const base = zeros([2, 3]);
    base.view([6]).add_(1);
    assert.deepEqual(base.tolist(), [
      [1, 1, 1],
      [1, 1, 1],
    ]);
  });

  it('permute and transpose', () => {
    const x = arange(24).reshape([2, 3, 4]);
    const p = x.permute([2, 0, 1]);
    assert.deepEqual(p.shape, [4, 2, 3]);
    const expected: number[] = [];
    for (let i = 0; i < 4; i++) for (let j = 0; j < 2; j++) for (let k = 0; k < 3; k++) expected.push(j * 12 + k * 4 + i);
    assert.deepEqual(p.toArray(), expected);
    const t = x23().transpose(0, 1);
    assertTensor(
      t,
      'int64',
      [3, 2],
      [
        [0, 3],
        [1, 4],
        [2, 5],
      ],
    );
    assert.deepEqual(t.strides(), [1, 3], 'transpose is a strided view');
    assert.deepEqual(x23().mT.tolist(), [
      [0, 3],
      [1, 4],
      [2, 5],
    ]);
    assert.deepEqual(t.contiguous().strides(), [2, 1]);
  });

  it('slice, narrow, select', () => {
    assert.deepEqual(x23().slice(1, 0, 3, 2).tolist(), [
      [0, 2],
      [3, 5],
    ]);
    assert.deepEqual(x23().slice(0, 1).tolist(), [[3, 4, 5]]);
    assert.deepEqual(x23().slice(1, -2).tolist(), [
      [1, 2],
      [4, 5],
    ]);
    assert.deepEqual(x23().slice(1, null, 2).tolist(), [
      [0, 1],
      [3, 4],
    ]);
    assert.deepEqual(x23().narrow(1, 1, 2).tolist(), [
      [1, 2],
      [4, 5],
    ]);
    assertTensor(x23().select(0, 1), 'int64', [3], [3, 4, 5]);
    assertTensor(x23().select(1, -1), 'int64', [2], [2, 5]);
  });

  it('squeeze, unsqueeze, flatten, expand, repeat, flip, roll', () => {
    assert.deepEqual(zeros([1, 3, 1]).squeeze().shape, [3]);
    assert.deepEqual(zeros([1, 3, 1]).squeeze(0).shape, [3, 1]);
    assert.deepEqual(zeros([3]).unsqueeze(-1).shape, [3, 1]);
    assert.deepEqual(zeros([2, 3, 4]).flatten(1).shape, [2, 12]);
    assert.deepEqual(
      tensor([[1], [2]])
        .expand([2, 3])
        .tolist(),
      [
        [1, 1, 1],
        [2, 2, 2],
      ],
    );
    assert.deepEqual(
      tensor([[1], [2]])
        .expand([-1, 2])
        .tolist(),
      [
        [1, 1],
        [2, 2],
      ],
    );
    assert.deepEqual(tensor([1, 2]).repeat([2, 2]).tolist(), [
      [1, 2, 1, 2],
      [1, 2, 1, 2],
    ]);
    assert.deepEqual(x23().flip([1]).tolist(), [
      [2, 1, 0],
      [5, 4, 3],
    ]);
    assert.deepEqual(arange(5).roll(2).tolist(), [3, 4, 0, 1, 2]);
    assert.deepEqual(x23().roll(1, 0).tolist(), [
      [3, 4, 5],
      [0, 1, 2],
    ]);
  });

  it('cat and stack', () => {
    assert.deepEqual(cat([x23(), x23()], 0).shape, [4, 3]);
    assert.deepEqual(cat([x23(), arange(2).reshape([2, 1])], 1).tolist(), [
      [0, 1, 2, 0],
      [3, 4, 5, 1],
    ]);
    assert.deepEqual(cat([x23(), x23()], -1).tolist(), [
      [0, 1, 2, 0, 1, 2],
      [3, 4, 5, 3, 4, 5],
    ]);
    const a = tensor([1, 2]);
    const b = tensor([3, 4]);
    assert.deepEqual(stack([a, b]).tolist(), [
      [1, 2],
      [3, 4],
    ]);
    assert.deepEqual(stack([a, b], 1).tolist(), [
      [1, 3],
      [2, 4],
    ]);
  });

  it('split and chunk', () => {
    assert.deepEqual(
      split(arange(5), 2).map((t) => t.tolist()),
      [[0, 1], [2, 3], [4]],
    );
    assert.deepEqual(
      arange(5)
        .split([1, 4])
        .map((t) => t.tolist()),
      [[0], [1, 2, 3, 4]],
    );
    assert.deepEqual(
      x23()
        .split(2, 1)
        .map((t) => t.tolist()),
      [
        [
          [0, 1],
          [3, 4],
        ],
        [[2], [5]],
      ],
    );
    assert.deepEqual(
      chunk(arange(5), 2).map((t) => t.tolist()),
      [
        [0, 1, 2],
        [3, 4],
      ],
    );
    assert.deepEqual(
      x23()
        .chunk(3, 1)
        .map((t) => t.tolist()),
      [
        [[0], [3]],
        [[1], [4]],
        [[2], [5]],
      ],
    );
  });

  it('indexSelect and gather', () => {
    assert.deepEqual(
      x23()
        .indexSelect(1, i64([2, 0]))
        .tolist(),
      [
        [2, 0],
        [5, 3],
      ],
    );
    assert.deepEqual(
      x23()
        .indexSelect(0, tensor([1, 1], { dtype: 'int32' }))
        .tolist(),
      [
        [3, 4, 5],
        [3, 4, 5],
      ],
    );
    assert.deepEqual(
      x23()
        .gather(
          1,
          i64([
            [0, 0],
            [2, 1],
          ]),
        )
        .tolist(),
      [
        [0, 0],
        [5, 4],
      ],
    );
    assert.deepEqual(
      x23()
        .gather(0, i64([[1, 0, 1]]))
        .tolist(),
      [[3, 1, 5]],
    );
  });

  it('scatter, scatterAdd, indexAdd', () => {
    assert.deepEqual(
      zeros([2, 3])
        .scatter(1, i64([[2], [0]]), tensor([[10], [20]]))
        .tolist(),
      [
        [0, 0, 10],
        [20, 0, 0],
      ],
    );
    assert.deepEqual(scatter(zeros([2, 3]), 1, i64([[1], [2]]), 5).tolist(), [
      [0, 5, 0],
      [0, 0, 5],
    ]);
    assert.deepEqual(
      zeros([3])
        .scatter(0, i64([0, 0, 2]), tensor([1, 5, 2]), 'sum')
        .tolist(),
      [6, 0, 2],
    );
    assert.deepEqual(
      zeros([3])
        .scatter(0, i64([0, 0, 2]), tensor([1, 5, -2]), 'amax')
        .tolist(),
      [5, 0, 0],
    );
    assert.deepEqual(
      zeros([2])
        .scatterAdd(0, i64([0, 1, 0]), tensor([1, 2, 3]))
        .tolist(),
      [4, 2],
    );
    const ia = zeros([3, 2]).indexAdd(0, i64([0, 2, 0]), ones([3, 2]), 2);
    assert.deepEqual(ia.tolist(), [
      [4, 4],
      [0, 0],
      [2, 2],
    ]);
  });

  it('advanced index and indexPut', () => {
    assert.deepEqual(index(x23(), [i64([1, 0]), i64([2, 1])]).tolist(), [5, 1]);
    assert.deepEqual(
      x23()
        .index([null, i64([0, 2])])
        .tolist(),
      [
        [0, 2],
        [3, 5],
      ],
    );
    assert.deepEqual(
      x23()
        .index([x23().gt(3)])
        .tolist(),
      [4, 5],
    );
    assert.deepEqual(indexPut(zeros([3]), [i64([0, 2])], tensor([5, 6])).tolist(), [5, 0, 6]);
    assert.deepEqual(indexPut(zeros([3]), [i64([1, 1, 2])], tensor([1, 2, 3]), true).tolist(), [0, 3, 3]);
  });

  it('maskedFill and where', () => {
    const mask = tensor([
      [true, false, true],
      [false, false, true],
    ]);
    assert.deepEqual(x23().maskedFill(mask, -1).tolist(), [
      [-1, 1, -1],
      [3, 4, -1],
    ]);
    assert.deepEqual(
      tensor([1, 2, 3])
        .maskedFill(tensor([false, true, false]), scalar(9))
        .tolist(),
      [1, 9, 3],
    );
    // Mask broadcast over rows.
    assert.deepEqual(
      x23()
        .maskedFill(tensor([true, false, false]), 0)
        .tolist(),
      [
        [0, 1, 2],
        [0, 4, 5],
      ],
    );
    const cond = tensor([[true], [false]]);
    assert.deepEqual(where(cond, tensor([1, 2, 3]), scalar(0)).tolist(), [
      [1, 2, 3],
      [0, 0, 0],
    ]);
  });

  it('tril and triu with diagonals', () => {
    const o = ones([3, 3]);
    assert.deepEqual(o.tril().tolist(), [
      [1, 0, 0],
      [1, 1, 0],
      [1, 1, 1],
    ]);
    assert.deepEqual(o.tril(-1).tolist(), [
      [0, 0, 0],
      [1, 0, 0],
      [1, 1, 0],
    ]);
    assert.deepEqual(o.triu().tolist(), [
      [1, 1, 1],
      [0, 1, 1],
      [0, 0, 1],
    ]);
    assert.deepEqual(o.triu(1).tolist(), [
      [0, 1, 1],
      [0, 0, 1],
      [0, 0, 0],
    ]);
    assert.deepEqual(x23().triu(1).tolist(), [
      [0, 1, 2],
      [0, 0, 5],
    ]);
  });
});

// ---- elementwise and broadcasting -----------------------------------------------------------------

describe('elementwise and broadcasting', () => {
  const a = (): Tensor =>
    tensor([
      [1, 2, 3],
      [4, 5, 6],
    ]);
  const row = (): Tensor => tensor([10, 20, 30]);
  const col = (): Tensor => tensor([[1], [2]]);

  it('add/sub/mul/div with broadcasting', () => {
    assert.deepEqual(a().add(row()).tolist(), [
      [11, 22, 33],
      [14, 25, 36],
    ]);
    assert.deepEqual(a().add(row(), 2).tolist(), [
      [21, 42, 63],
      [24, 45, 66],
    ]);
    assert.deepEqual(a().add(1.5).tolist(), [
      [2.5, 3.5, 4.5],
      [5.5, 6.5, 7.5],
    ]);
    assert.deepEqual(a().add(1, 3).tolist(), [
      [4, 5, 6],
      [7, 8, 9],
    ]);
    assert.deepEqual(a().sub(col()).tolist(), [
      [0, 1, 2],
      [2, 3, 4],
    ]);
    assert.deepEqual(a().mul(col()).tolist(), [
      [1, 2, 3],
      [8, 10, 12],
    ]);
    assert.deepEqual(a().div(2).tolist(), [
      [0.5, 1, 1.5],
      [2, 2.5, 3],
    ]);
    assert.deepEqual(
      a().div(row()).tolist(),
      [
        [0.1, 0.1, 0.1],
        [0.4, 0.25, 0.2],
      ].map((r) => r.map(Math.fround)),
    );
    assert.deepEqual(a().rsub(10).tolist(), [
      [9, 8, 7],
      [6, 5, 4],
    ]);
    const outer = col().mul(row());
    assertTensor(
      outer,
      'float32',
      [2, 3],
      [
        [10, 20, 30],
        [20, 40, 60],
      ],
    );
  });

  it('integer and float promotion', () => {
    assertTensor(arange(3).add(tensor([0.5, 0.5, 0.5])), 'float32', [3], [0.5, 1.5, 2.5]);
    assertTensor(arange(3).add(2.5), 'float32', [3], [2.5, 3.5, 4.5]);
    assertTensor(arange(3).mul(2), 'int64', [3], [0, 2, 4]);
    assertTensor(arange(3).div(2), 'float32', [3], [0, 0.5, 1]); // true division
    assertTensor(arange(3).div(arange(1, 4)), 'float32', [3], [0, 0.5, Math.fround(2 / 3)]);
    assertTensor(tensor([1, 2], { dtype: 'int32' }).add(i64([3, 4])), 'int64', [2], [4, 6]);
    assertTensor(tensor([true, false]).add(1), 'int64', [2], [2, 1]);
    assertTensor(tensor([1, 2], { dtype: 'float16' }).add(tensor([1, 1])), 'float32', [2], [2, 3]);
    assertTensor(tensor([1, 2], { dtype: 'bfloat16' }).add(tensor([1, 1], { dtype: 'float16' })), 'float32', [2], [2, 3]);
    assertTensor(tensor([1, 2], { dtype: 'int32' }).add(tensor([0.5, 0.5], { dtype: 'float64' })), 'float64', [2], [1.5, 2.5]);
    // A 0-d tensor does not promote a dimensioned one of the same category.
    assertTensor(ones([2]).add(scalar(2, { dtype: 'float64' })), 'float32', [2], [3, 3]);
    assertTensor(tensor([1, 2], { dtype: 'bfloat16' }).mul(0.5), 'bfloat16', [2], [0.5, 1]);
  });

  it('division rounding modes and remainder', () => {
    const n = i64([-7, 7, -8, 5]);
    assertTensor(n.div(2, 'trunc'), 'int64', [4], [-3, 3, -4, 2]);
    assertTensor(n.div(2, 'floor'), 'int64', [4], [-4, 3, -4, 2]);
    assertTensor(n.div(i64([2, -2, 3, 5]), 'floor'), 'int64', [4], [-4, -4, -3, 1]);
    assertTensor(tensor([-7.5, 7.5]).div(2, 'floor'), 'float32', [2], [-4, 3]);
    assertTensor(tensor([-7.5, 7.5]).div(2, 'trunc'), 'float32', [2], [-3, 3]);
    assertTensor(i64([-7, 7]).remainder(3), 'int64', [2], [2, 1]);
    assertTensor(i64([7, -7]).remainder(-3), 'int64', [2], [-2, -1]);
    assertTensor(tensor([5.5, -5.5]).remainder(tensor([2, 2])), 'float32', [2], [1.5, 0.5]);
  });

  it('pow, maximum, minimum', () => {
    assert.deepEqual(tensor([1, 2, 3]).pow(2).tolist(), [1, 4, 9]);
    assert.deepEqual(tensor([4, 9]).pow(0.5).tolist(), [2, 3]);
    assert.deepEqual(
      tensor([2, 3])
        .pow(tensor([3, 2]))
        .tolist(),
      [8, 9],
    );
    assert.deepEqual(maximum(tensor([1, 5, 3]), tensor([4, 2, 3])).tolist(), [4, 5, 3]);
    assert.deepEqual(minimum(tensor([1, 5, 3]), tensor([4, 2, 3])).tolist(), [1, 2, 3]);
    assert.deepEqual(
      tensor([[1], [5]])
        .maximum(tensor([2, 4]))
        .tolist(),
      [
        [2, 4],
        [5, 5],
      ],
    );
  });

  it('unary math against Math.*', () => {
    const v = [-2, -0.5, 0.25, 1, 3];
    const x = tensor(v);
    assertClose(
      x.neg(),
      v.map((t) => -t),
      F32_TOL,
      'neg',
    );
    assertClose(x.abs(), v.map(Math.abs), F32_TOL, 'abs');
    assertClose(x.exp(), v.map(Math.exp), F32_TOL, 'exp');
    assertClose(
      x.abs().log(),
      v.map((t) => Math.log(Math.abs(t))),
      F32_TOL,
      'log',
    );
    assertClose(x.log1p(), v.map(Math.log1p), F32_TOL, 'log1p');
    assertClose(x.expm1(), v.map(Math.expm1), F32_TOL, 'expm1');
    assertClose(
      x.abs().sqrt(),
      v.map((t) => Math.sqrt(Math.abs(t))),
      F32_TOL,
      'sqrt',
    );
    assertClose(
      x.abs().rsqrt(),
      v.map((t) => 1 / Math.sqrt(Math.abs(t))),
      1e-5,
      'rsqrt',
    ); // rsqrt may use an approximate kernel
    assertClose(x.sin(), v.map(Math.sin), F32_TOL, 'sin');
    assertClose(x.cos(), v.map(Math.cos), F32_TOL, 'cos');
    assertClose(x.tanh(), v.map(Math.tanh), F32_TOL, 'tanh');
    assertClose(x.sigmoid(), v.map(sigmoid), F32_TOL, 'sigmoid');
    assertClose(
      x.relu(),
      v.map((t) => Math.max(0, t)),
      F32_TOL,
      'relu',
    );
    assertClose(
      x.square(),
      v.map((t) => t * t),
      F32_TOL,
      'square',
    );
    assertClose(
      x.reciprocal(),
      v.map((t) => 1 / t),
      F32_TOL,
      'reciprocal',
    );
    assertClose(x.sign(), v.map(Math.sign), F32_TOL, 'sign');
    assertClose(
      x.softplus(),
      v.map((t) => Math.log1p(Math.exp(t))),
      F32_TOL,
      'softplus',
    );
    const c = Math.sqrt(2 / Math.PI);
    assertClose(
      x.gelu('tanh'),
      v.map((t) => 0.5 * t * (1 + Math.tanh(c * (t + 0.044715 * t ** 3)))),
      F32_TOL,
      'gelu tanh',
    );
    assertClose(tensor([0]).gelu(), [0], F32_TOL, 'gelu(0)');
  });

  it('silu is x·sigmoid(x)', () => {
    const v = [-3, -1, 0, 0.5, 2, 6];
    assertClose(
      tensor(v).silu(),
      v.map((t) => t * sigmoid(t)),
      F32_TOL,
      'silu',
    );
    assertClose(
      tensor(v, { dtype: 'float64' }).silu(),
      v.map((t) => t * sigmoid(t)),
      1e-12,
      'silu float64',
    );
  });

  it('rounding functions', () => {
    const x = tensor([-1.5, -0.5, 0.5, 1.5, 2.5, 2.7]);
    assert.deepEqual(x.floor().toArray(), [-2, -1, 0, 1, 2, 2]);
    assert.deepEqual(x.ceil().toArray(), [-1, -0, 1, 2, 3, 3]);
    assert.deepEqual(x.round().toArray(), [-2, -0, 0, 2, 2, 3]); // half to even
    assert.deepEqual(x.trunc().toArray(), [-1, -0, 0, 1, 2, 2]);
  });

  it('clamp, lerp, addcmul, addcdiv (out of place)', () => {
    assert.deepEqual(tensor([-2, 0.5, 3]).clamp(0, 1).tolist(), [0, 0.5, 1]);
    assert.deepEqual(tensor([-2, 0.5, 3]).clamp(null, 1).tolist(), [-2, 0.5, 1]);
    assert.deepEqual(tensor([-2, 0.5, 3]).clamp(0).tolist(), [0, 0.5, 3]);
    assert.deepEqual(lerp(tensor([0, 10]), tensor([4, 20]), 0.25).tolist(), [1, 12.5]);
    assert.deepEqual(
      tensor([0, 10])
        .lerp(tensor([4, 20]), tensor([0.5, 1]))
        .tolist(),
      [2, 20],
    );
    assert.deepEqual(addcmul(tensor([1, 1]), tensor([2, 3]), tensor([4, 5]), 0.5).tolist(), [5, 8.5]);
    assert.deepEqual(addcdiv(tensor([1, 1]), tensor([2, 3]), tensor([4, 6]), 2).tolist(), [2, 2]);
  });
});

// ---- comparisons and logical ops ------------------------------------------------------------------

describe('comparisons and logical ops', () => {
  const a = (): Tensor => tensor([1, 2, 3]);
  const b = (): Tensor => tensor([3, 2, 1]);

  it('comparisons return bool tensors', () => {
    assertTensor(a().eq(b()), 'bool', [3], [false, true, false]);
    assertTensor(a().ne(b()), 'bool', [3], [true, false, true]);
    assertTensor(a().lt(b()), 'bool', [3], [true, false, false]);
    assertTensor(a().le(b()), 'bool', [3], [true, true, false]);
    assertTensor(a().gt(b()), 'bool', [3], [false, false, true]);
    assertTensor(a().ge(b()), 'bool', [3], [false, true, true]);
    assertTensor(a().gt(1.5), 'bool', [3], [false, true, true]);
    assertTensor(a().eq(2), 'bool', [3], [false, true, false]);
    assertTensor(a().lt(2), 'bool', [3], [true, false, false]);
    assertTensor(a().le(2), 'bool', [3], [true, true, false]);
    assertTensor(a().ge(2), 'bool', [3], [false, true, true]);
    assertTensor(a().ne(2), 'bool', [3], [true, false, true]);
    assertTensor(arange(3).eq(tensor([0, 1.5, 2])), 'bool', [3], [true, false, true]); // int vs float
    assertTensor(
      tensor([[1], [2]]).lt(tensor([2, 3])),
      'bool',
      [2, 2],
      [
        [true, true],
        [false, true],
      ],
    );
  });

  it('logical ops and predicates', () => {
    const p = tensor([true, true, false, false]);
    const q = tensor([true, false, true, false]);
    assert.deepEqual(p.logicalAnd(q).tolist(), [true, false, false, false]);
    assert.deepEqual(p.logicalOr(q).tolist(), [true, true, true, false]);
    assert.deepEqual(p.logicalNot().tolist(), [false, false, true, true]);
    assert.deepEqual(tensor([0, 2, -1]).logicalNot().tolist(), [true, false, false]);
    const s = tensor([NaN, Infinity, -Infinity, 1]);
    assert.deepEqual(s.isnan().tolist(), [true, false, false, false]);
    assert.deepEqual(s.isfinite().tolist(), [false, false, false, true]);
  });
});

// ---- reductions -----------------------------------------------------------------------------------

describe('reductions', () => {
  const x = (): Tensor =>
    tensor([
      [1, 2, 3],
      [4, 6, 5],
    ]);

  it('sum and mean, with dims and keepdim', () => {
    assertTensor(x().sum(), 'float32', [], 21);
    assertTensor(x().sum(0), 'float32', [3], [5, 8, 8]);
    assertTensor(x().sum(1, true), 'float32', [2, 1], [[6], [15]]);
    assertTensor(sum(x(), [0, 1]), 'float32', [], 21);
    assertTensor(arange(4).sum(), 'int64', [], 6); // integer sums stay int64
    assertTensor(tensor([true, true, false]).sum(), 'int64', [], 2);
    assertTensor(x().sum(undefined, false, 'float64'), 'float64', [], 21);
    assertTensor(x().mean(), 'float32', [], 3.5);
    assertTensor(mean(x(), -1), 'float32', [2], [2, 5]);
    assertTensor(x().mean(0, true), 'float32', [1, 3], [[2.5, 4, 4]]);
  });

  it('max/min with indices, amax/amin, argmax/argmin', () => {
    assertTensor(x().max(), 'float32', [], 6);
    assertTensor(x().min(), 'float32', [], 1);
    const mx = x().max(1);
    assertTensor(mx.values, 'float32', [2], [3, 6]);
    assertTensor(mx.indices, 'int64', [2], [2, 1]);
    const mn = x().min(0, true);
    assertTensor(mn.values, 'float32', [1, 3], [[1, 2, 3]]);
    assertTensor(mn.indices, 'int64', [1, 3], [[0, 0, 0]]);
    assertTensor(x().amax(), 'float32', [], 6);
    assertTensor(x().amax(0), 'float32', [3], [4, 6, 5]);
    assertTensor(x().amin([1], true), 'float32', [2, 1], [[1], [4]]);
    assertTensor(x().argmax(), 'int64', [], 4);
    assertTensor(x().argmax(1), 'int64', [2], [2, 1]);
    assertTensor(x().argmin(1, true), 'int64', [2, 1], [[0], [0]]);
  });

  it('prod', () => {
    assertTensor(x().prod(), 'float32', [], 720);
    assertTensor(x().prod(1), 'float32', [2], [6, 120]);
    assertTensor(x().prod(0, true), 'float32', [1, 3], [[4, 12, 15]]);
    assertTensor(arange(1, 5).prod(), 'int64', [], 24);
  });

  it('var and std with correction', () => {
    const v = [1, 2, 3, 4, 6, 5];
    const m = 3.5;
    const ss = v.reduce((s, t) => s + (t - m) ** 2, 0); // 17.5
    assertClose(x().var(), ss / 5, F32_TOL, 'var (correction 1)');
    assertClose(x().var(undefined, 0), ss / 6, F32_TOL, 'var (correction 0)');
    assertClose(x().std(), Math.sqrt(ss / 5), F32_TOL, 'std');
    assertClose(x().std(undefined, 0), Math.sqrt(ss / 6), F32_TOL, 'std (correction 0)');
    assertClose(x().var(1), [1, 1], F32_TOL, 'var along dim 1');
    const r = x().var(0, 1, true);
    assert.deepEqual(r.shape, [1, 3]);
    assertClose(r, [4.5, 8, 2], F32_TOL, 'var along dim 0');
    assertClose(x().std(1, 0), [Math.sqrt(2 / 3), Math.sqrt(2 / 3)], F32_TOL, 'std dim 1 correction 0');
  });

  it('norm', () => {
    assertClose(x().norm(), Math.sqrt(1 + 4 + 9 + 16 + 36 + 25), F32_TOL, '2-norm');
    assertClose(x().norm(1), 21, F32_TOL, '1-norm');
    assertClose(x().norm(Infinity), 6, F32_TOL, 'inf-norm');
    assertClose(x().norm(2, 1), [Math.sqrt(14), Math.sqrt(77)], F32_TOL, '2-norm along dim 1');
    assert.deepEqual(x().norm(2, 0, true).shape, [1, 3]);
  });

  it('logsumexp', () => {
    assertClose(x().logsumexp(1), [lse([1, 2, 3]), lse([4, 6, 5])], F32_TOL, 'logsumexp dim 1');
    assertClose(logsumexp(x(), [0, 1]), lse([1, 2, 3, 4, 6, 5]), F32_TOL, 'logsumexp all');
    // Stable for large inputs.
    assertClose(tensor([1000, 1000]).logsumexp(0), 1000 + Math.log(2), F32_TOL, 'logsumexp large');
    assert.deepEqual(x().logsumexp(0, true).shape, [1, 3]);
  });

  it('cumsum', () => {
    assertTensor(
      x().cumsum(1),
      'float32',
      [2, 3],
      [
        [1, 3, 6],
        [4, 10, 15],
      ],
    );
    assertTensor(
      x().cumsum(0),
      'float32',
      [2, 3],
      [
        [1, 2, 3],
        [5, 8, 8],
      ],
    );
    assertTensor(arange(4).cumsum(0), 'int64', [4], [0, 1, 3, 6]);
    assertTensor(tensor([1, 2], { dtype: 'int32' }).cumsum(0, 'float64'), 'float64', [2], [1, 3]);
  });

  it('all and any', () => {
    const b = tensor([
      [true, false],
      [true, true],
    ]);
    assertTensor(b.all(), 'bool', [], false);
    assertTensor(b.any(), 'bool', [], true);
    assertTensor(b.all(1), 'bool', [2], [false, true]);
    assertTensor(b.any(0, true), 'bool', [1, 2], [[true, true]]);
    assert.equal(tensor([1, 2]).all().item(), 1);
    assert.equal(zeros([3]).any().item(), 0);
  });
});

// ---- linear algebra -------------------------------------------------------------------------------

describe('matmul, bmm, einsum', () => {
  const A = (): Tensor =>
    tensor([
      [1, 2],
      [3, 4],
    ]);
  const B = (): Tensor =>
    tensor([
      [5, 6],
      [7, 8],
    ]);

  it('matmul and mm', () => {
    assertTensor(
      matmul(A(), B()),
      'float32',
      [2, 2],
      [
        [19, 22],
        [43, 50],
      ],
    );
    assertTensor(
      A().mm(B()),
      'float32',
      [2, 2],
      [
        [19, 22],
        [43, 50],
      ],
    );
    assertTensor(A().matmul(tensor([5, 6])), 'float32', [2], [17, 39]);
    assertTensor(tensor([1, 2]).matmul(tensor([3, 4])), 'float32', [], 11);
    assertTensor(tensor([[1, 2, 3]]).matmul(tensor([[1], [0], [-1]])), 'float32', [1, 1], [[-2]]);
    assertTensor(
      A().matmul(B()).mT,
      'float32',
      [2, 2],
      [
        [19, 43],
        [22, 50],
      ],
    );
    assertTensor(
      A().mT.matmul(B()),
      'float32',
      [2, 2],
      [
        [26, 30],
        [38, 44],
      ],
    ); // transposed operand
  });

  it('batched matmul and bmm', () => {
    const a = stack([A(), B()]); // [2, 2, 2]
    const b = stack([
      eye(2),
      tensor([
        [0, 1],
        [1, 0],
      ]),
    ]);
    assertTensor(
      a.bmm(b),
      'float32',
      [2, 2, 2],
      [
        [
          [1, 2],
          [3, 4],
        ],
        [
          [6, 5],
          [8, 7],
        ],
      ],
    );
    // Broadcast: [2, 2, 2] @ [2, 1].
    assertTensor(
      a.matmul(tensor([[1], [1]])),
      'float32',
      [2, 2, 1],
      [
        [[3], [7]],
        [[11], [15]],
      ],
    );
    assert.deepEqual(matmul(zeros([3, 1, 2, 4]), zeros([5, 4, 6])).shape, [3, 5, 2, 6]);
  });

  it('integer and float64 matmul', () => {
    assertTensor(
      i64([
        [1, 2],
        [3, 4],
      ]).matmul(
        i64([
          [5, 6],
          [7, 8],
        ]),
      ),
      'int64',
      [2, 2],
      [
        [19, 22],
        [43, 50],
      ],
    );
    const d = tensor([[0.1, 0.2]], { dtype: 'float64' }).matmul(tensor([[0.3], [0.4]], { dtype: 'float64' }));
    assertTensor(d, 'float64', [1, 1]);
    assertClose(d, [0.1 * 0.3 + 0.2 * 0.4], 1e-15, 'float64 dot');
  });

  it('einsum', () => {
    assert.deepEqual(einsum('ij,jk->ik', A(), B()).tolist(), [
      [19, 22],
      [43, 50],
    ]);
    assert.deepEqual(einsum('ij->ji', A()).tolist(), [
      [1, 3],
      [2, 4],
    ]);
    assert.deepEqual(einsum('i,i->', tensor([1, 2, 3]), tensor([4, 5, 6])).tolist(), 32);
    assert.deepEqual(einsum('i,j->ij', tensor([1, 2]), tensor([3, 4, 5])).tolist(), [
      [3, 4, 5],
      [6, 8, 10],
    ]);
    assert.deepEqual(einsum('ii->i', A()).tolist(), [1, 4]);
    assert.deepEqual(einsum('bij->b', stack([A(), B()])).tolist(), [10, 26]);
    // Attention scores: q·kᵀ per batch and head.
    const q = tensor([
      [
        [
          [1, 0],
          [0, 1],
        ],
      ],
    ]); // [1, 1, 2, 2]
    const k = tensor([
      [
        [
          [2, 3],
          [4, 5],
          [6, 7],
        ],
      ],
    ]); // [1, 1, 3, 2]
    assert.deepEqual(einsum('bhqd,bhkd->bhqk', q, k).tolist(), [
      [
        [
          [2, 4, 6],
          [3, 5, 7],
        ],
      ],
    ]);
  });

  it('linear is x·Wᵀ + b', () => {
    const x = tensor([[1, 2]]);
    const w = tensor([
      [1, 0],
      [0, 1],
      [1, 1],
    ]);
    assert.deepEqual(linear(x, w, tensor([0.5, 0, -1])).tolist(), [[1.5, 2, 2]]);
    assert.deepEqual(linear(x, w).tolist(), [[1, 2, 3]]);
  });

  it('linear of one row through mv (a weight of 2^17 elements or more) keeps shape, bias and values', () => {
    // W[o][i] = 1 when i == o mod 4, else 0; x = 1..1024 as (1, 1, 1024): y[o] = Σ of x[i] over i ≡ o (mod 4)
    const [O, I] = [256, 1024];
    const wv = new Float32Array(O * I);
    for (let o = 0; o < O; o++) for (let i = o % 4; i < I; i += 4) wv[o * I + i] = 1;
    const w = tensor(wv, { shape: [O, I] });
    const x = tensor(
      Float32Array.from({ length: I }, (_, i) => i + 1),
      { shape: [1, 1, I] },
    );
    const y = linear(x, w, tensor(new Float32Array(O).fill(0.5)));
    assert.deepEqual(y.shape, [1, 1, O]);
    const sums = [0, 1, 2, 3].map((r) => Array.from({ length: I / 4 }, (_, k) => 4 * k + r + 1).reduce((a, b) => a + b, 0));
    assert.deepEqual(
      y.toArray(),
      Array.from({ length: O }, (_, o) => sums[o % 4] + 0.5),
    );
  });

  it('fp32 matmul matches a float64 reference (64x48 @ 48x32)', () => {
    // Checks the BLAS kernels (core type chosen in blas.ts) compute correct numbers.
    const [M, K, N] = [64, 48, 32];
    const g = new Generator(2024);
    const a = randn([M, K], { generator: g });
    const b = randn([K, N], { generator: g });
    const c = a.matmul(b).toArray();
    const av = a.toArray();
    const bv = b.toArray();
    let worst = 0;
    let worstAbs = 0;
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        let ref = 0;
        let mag = 0; // Σ|a_ik·b_kj|: the scale of the rounding error of a dot product
        for (let k = 0; k < K; k++) {
          ref += av[i * K + k] * bv[k * N + j];
          mag += Math.abs(av[i * K + k] * bv[k * N + j]);
        }
        const err = Math.abs(c[i * N + j] - ref);
        worst = Math.max(worst, err / mag);
        worstAbs = Math.max(worstAbs, err);
      }
    }
    assert.ok(worst < 1e-5, `max relative error ${worst.toExponential(2)} (|c - ref| / Σ|a·b|) must be < 1e-5`);
    assert.ok(worstAbs < 1e-4, `max absolute error ${worstAbs.toExponential(2)} must be < 1e-4`);
    // Transposed operands go through another BLAS path.
    const ct = b.mT.contiguous().matmul(a.mT.contiguous()).mT.contiguous().toArray();
    assertClose(ct, c, 1e-5, 'matmul via transposed operands');
  });
});

// ---- softmax and cross-entropy ------------------------------------------------------------------

describe('softmax and logSoftmax', () => {
  const rows = [
    [1, 2, 3],
    [-1, 0, 5],
  ];
  const sm = (r: number[]): number[] => {
    const z = lse(r);
    return r.map((v) => Math.exp(v - z));
  };

  it('softmax over the last and the first dim', () => {
    assertClose(tensor(rows).softmax(-1), rows.map(sm), F32_TOL, 'softmax dim -1');
    const cols = [0, 1, 2].map((j) => sm([rows[0][j], rows[1][j]]));
    assertClose(
      softmax(tensor(rows), 0),
      [0, 1].map((i) => cols.map((c) => c[i])),
      F32_TOL,
      'softmax dim 0',
    );
    const s = tensor(rows).softmax(1).sum(1);
    assertClose(s, [1, 1], F32_TOL, 'rows sum to 1');
  });

  it('logSoftmax and dtype option', () => {
    assertClose(
      tensor(rows).logSoftmax(1),
      rows.map((r) => r.map((v) => v - lse(r))),
      F32_TOL,
      'logSoftmax',
    );
    const d = tensor(rows).softmax(1, 'float64');
    assert.equal(d.dtype, 'float64');
    assertClose(d, rows.map(sm), F32_TOL, 'softmax to float64');
    assertClose(tensor([1000, 0]).softmax(0), [1, 0], F32_TOL, 'softmax is stable');
  });
});

describe('crossEntropy', () => {
  const L = [
    [1, 2, 3],
    [1, 0, -1],
    [0.5, 0.5, 2],
  ];
  const logits = (): Tensor => tensor(L);
  const nll = (i: number, y: number): number => lse(L[i]) - L[i][y];
  const smoothTerm = (i: number): number => L[i].reduce((s, v) => s + (lse(L[i]) - v), 0); // Σ_c -log p_c

  it('mean over the non-ignored targets', () => {
    const expected = (nll(0, 2) + nll(1, 0)) / 2;
    assertClose(crossEntropy(logits(), i64([2, 0, -100])), expected, F32_TOL, 'default ignoreIndex -100');
    assertClose(crossEntropy(logits(), i64([2, 0, 1]), { ignoreIndex: 1 }), expected, F32_TOL, 'ignoreIndex 1');
    assertClose(crossEntropy(logits(), i64([2, 0, 1])), (nll(0, 2) + nll(1, 0) + nll(2, 1)) / 3, F32_TOL, 'none ignored');
  });

  it("reduction 'none' and 'sum'", () => {
    const none = crossEntropy(logits(), i64([2, 0, -100]), { reduction: 'none' });
    assert.deepEqual(none.shape, [3]);
    assertClose(none, [nll(0, 2), nll(1, 0), 0], F32_TOL, "reduction 'none'");
    assertClose(crossEntropy(logits(), i64([2, 0, -100]), { reduction: 'sum' }), nll(0, 2) + nll(1, 0), F32_TOL, "reduction 'sum'");
  });

  it('label smoothing: (1-ε)·nll + ε/C·Σ_c -log p_c', () => {
    const eps = 0.1;
    const C = 3;
    const per = (i: number, y: number): number => (1 - eps) * nll(i, y) + (eps / C) * smoothTerm(i);
    const all = crossEntropy(logits(), i64([2, 0, 1]), { labelSmoothing: eps });
    assertClose(all, (per(0, 2) + per(1, 0) + per(2, 1)) / 3, F32_TOL, 'label smoothing, mean');
    const ign = crossEntropy(logits(), i64([2, -100, 1]), { labelSmoothing: eps });
    assertClose(ign, (per(0, 2) + per(2, 1)) / 2, F32_TOL, 'label smoothing with an ignored target');
    const none = crossEntropy(logits(), i64([2, -100, 1]), { labelSmoothing: eps, reduction: 'none' });
    assertClose(none, [per(0, 2), 0, per(2, 1)], F32_TOL, "label smoothing, reduction 'none'");
  });

  it('class weights: Σ w_y·nll / Σ w_y', () => {
    const w = [1, 2, 0.5];
    const r = crossEntropy(logits(), i64([2, 0, 1]), { weight: tensor(w) });
    const expected = (w[2] * nll(0, 2) + w[0] * nll(1, 0) + w[1] * nll(2, 1)) / (w[2] + w[0] + w[1]);
    assertClose(r, expected, F32_TOL, 'weighted mean');
  });

  it('(N, C, d) logits with (N, d) targets', () => {
    // Two positions per sample: logits[n, :, d].
    const lg = tensor([
      [
        [1, 0.5],
        [2, 0.5],
        [3, 2],
      ],
    ]); // [1, 3, 2]: position 0 is L[0], position 1 is L[2]
    assertClose(crossEntropy(lg, i64([[2, 1]])), (nll(0, 2) + nll(2, 1)) / 2, F32_TOL, 'spatial cross-entropy');
  });
});

// ---- top-k, sorting, counting ---------------------------------------------------------------------

describe('topk, sort, argsort, bincount, oneHot', () => {
  it('topk', () => {
    const t = tensor([1, 5, 3, 4]).topk(2);
    assert.deepEqual(t.values.tolist(), [5, 4]);
    assertTensor(t.indices, 'int64', [2], [1, 3]);
    const s = tensor([1, 5, 3, 4]).topk(2, -1, false);
    assert.deepEqual(
      [s.values.tolist(), s.indices.tolist()],
      [
        [1, 3],
        [0, 2],
      ],
    );
    const r = tensor([
      [1, 9, 2],
      [7, 3, 8],
    ]).topk(1, 1);
    assert.deepEqual(
      [r.values.tolist(), r.indices.tolist()],
      [
        [[9], [8]],
        [[1], [2]],
      ],
    );
    const c = tensor([
      [1, 9, 2],
      [7, 3, 8],
    ]).topk(1, 0);
    assert.deepEqual(c.indices.tolist(), [[1, 0, 1]]);
  });

  it('sort is stable, ascending and descending', () => {
    const x = tensor([3, 1, 2, 1, 3]);
    const up = x.sort();
    assert.deepEqual(up.values.tolist(), [1, 1, 2, 3, 3]);
    assertTensor(up.indices, 'int64', [5], [1, 3, 2, 0, 4]);
    const down = x.sort(-1, true);
    assert.deepEqual(down.values.tolist(), [3, 3, 2, 1, 1]);
    assert.deepEqual(down.indices.tolist(), [0, 4, 2, 1, 3]);
    // Stability on a long run of ties (beyond any small-size special case).
    const ties = tensor(Array.from({ length: 64 }, (_, i) => i % 2));
    assert.deepEqual(ties.sort().indices.toArray(), [...Array.from({ length: 32 }, (_, i) => 2 * i), ...Array.from({ length: 32 }, (_, i) => 2 * i + 1)]);
    const m = tensor([
      [2, 0, 1],
      [0, 2, 1],
    ]).sort(0);
    assert.deepEqual(
      [m.values.tolist(), m.indices.tolist()],
      [
        [
          [0, 0, 1],
          [2, 2, 1],
        ],
        [
          [1, 0, 0],
          [0, 1, 1],
        ],
      ],
    );
  });

  it('argsort', () => {
    assertTensor(tensor([0.3, -1, 2, 0]).argsort(), 'int64', [4], [1, 3, 0, 2]);
    assert.deepEqual(tensor([0.3, -1, 2, 0]).argsort(-1, true).tolist(), [2, 0, 3, 1]);
    assert.deepEqual(
      tensor([
        [3, 1, 2],
        [1, 2, 3],
      ])
        .argsort(1)
        .tolist(),
      [
        [1, 2, 0],
        [0, 1, 2],
      ],
    );
  });

  it('bincount with weights and minlength', () => {
    const v = i64([0, 1, 1, 3]);
    assertTensor(v.bincount(), 'int64', [4], [1, 2, 0, 1]);
    assertTensor(bincount(v, null, 6), 'int64', [6], [1, 2, 0, 1, 0, 0]);
    const w = v.bincount(tensor([0.5, 1, 2, 0.25]));
    assert.deepEqual(w.shape, [4]);
    assert.deepEqual(w.toArray(), [0.5, 3, 0, 0.25]);
    assert.deepEqual(v.bincount(tensor([0.5, 1, 2, 0.25], { dtype: 'float64' }), 5).toArray(), [0.5, 3, 0, 0.25, 0]);
  });

  it('oneHot', () => {
    assertTensor(
      oneHot(i64([0, 2, 1]), 3),
      'int64',
      [3, 3],
      [
        [1, 0, 0],
        [0, 0, 1],
        [0, 1, 0],
      ],
    );
    assertTensor(
      oneHot(i64([1, 3])),
      'int64',
      [2, 4],
      [
        [0, 1, 0, 0],
        [0, 0, 0, 1],
      ],
    ); // classes inferred
    assert.deepEqual(oneHot(i64([[0], [1]]), 2).shape, [2, 1, 2]);
  });
});

// ---- in-place ops ---------------------------------------------------------------------------------

describe('in-place ops', () => {
  it('add_, sub_, mul_, div_ return the same tensor', () => {
    const x = tensor([1, 2, 3]);
    assert.equal(x.add_(1), x);
    assert.deepEqual(x.tolist(), [2, 3, 4]);
    x.add_(tensor([1, 1, 1]), 3);
    assert.deepEqual(x.tolist(), [5, 6, 7]);
    x.add_(1, -2);
    assert.deepEqual(x.tolist(), [3, 4, 5]);
    assert.equal(x.mul_(2), x);
    assert.deepEqual(x.tolist(), [6, 8, 10]);
    x.mul_(tensor([0.5, 0.25, 0.1]));
    assert.deepEqual(x.tolist(), [3, 2, Math.fround(Math.fround(10) * Math.fround(0.1))]);
    x.sub_(tensor([1, 1, 1]));
    x.sub_(1);
    assert.deepEqual(x.toArray().slice(0, 2), [1, 0]);
    x.div_(tensor([2, 1, 1]));
    assert.equal(x.toArray()[0], 0.5);
    x.div_(0.5);
    assert.equal(x.toArray()[0], 1);
  });

  it('addcmul_, addcdiv_, lerp_', () => {
    const x = tensor([1, 1]);
    assert.equal(x.addcmul_(tensor([2, 3]), tensor([4, 5]), 0.5), x);
    assert.deepEqual(x.tolist(), [5, 8.5]);
    x.addcdiv_(tensor([2, 3]), tensor([4, 6]), 2);
    assert.deepEqual(x.tolist(), [6, 9.5]);
    x.addcmul_(tensor([1, 1]), tensor([1, 2]));
    assert.deepEqual(x.tolist(), [7, 11.5]);
    assert.equal(x.lerp_(tensor([11, 3.5]), 0.25), x);
    assert.deepEqual(x.tolist(), [8, 9.5]);
  });

  it('clamp_, zero_, fill_, sqrt_', () => {
    const x = tensor([-2, 0.5, 3]);
    assert.equal(x.clamp_(0, 1), x);
    assert.deepEqual(x.tolist(), [0, 0.5, 1]);
    x.clamp_(null, 0.25);
    assert.deepEqual(x.tolist(), [0, 0.25, 0.25]);
    x.sqrt_();
    assert.deepEqual(x.tolist(), [0, 0.5, 0.5]);
    assert.equal(x.fill_(3), x);
    assert.deepEqual(x.tolist(), [3, 3, 3]);
    assert.equal(x.zero_(), x);
    assert.deepEqual(x.tolist(), [0, 0, 0]);
    assert.deepEqual(zeros([2], { dtype: 'bool' }).fill_(true).tolist(), [true, true]);
    assert.deepEqual(zeros([2], { dtype: 'int64' }).fill_(-4).tolist(), [-4, -4]);
  });

  it('copy_ broadcasts and converts dtype', () => {
    const dst = zeros([2, 3], { dtype: 'int64' });
    assert.equal(dst.copy_(tensor([-1.7, 2.9, 0.5])), dst);
    assert.deepEqual(dst.tolist(), [
      [-1, 2, 0],
      [-1, 2, 0],
    ]);
    const f = zeros([2]).copy_(tensor([1.5, 2.5], { dtype: 'float64' }));
    assertTensor(f, 'float32', [2], [1.5, 2.5]);
  });

  it('maskedFill_', () => {
    const x = tensor([
      [1, 2],
      [3, 4],
    ]);
    assert.equal(
      x.maskedFill_(
        tensor([
          [true, false],
          [false, true],
        ]),
        -Infinity,
      ),
      x,
    );
    assert.deepEqual(x.tolist(), [
      [-Infinity, 2],
      [3, -Infinity],
    ]);
    x.maskedFill_(tensor([true, false]), 0); // broadcast mask
    assert.deepEqual(x.tolist(), [
      [0, 2],
      [0, -Infinity],
    ]);
  });

  it('in-place on a view writes through to the base', () => {
    const base = zeros([2, 3]);
    base.select(0, 1).fill_(7);
    base.slice(1, 0, 1).add_(1);
    base.mT.select(0, 2).mul_(2); // column 2
    assert.deepEqual(base.tolist(), [
      [1, 0, 0],
      [8, 7, 14],
    ]);
  });
});

// ---- dtype conversions ----------------------------------------------------------------------------

describe('dtype conversions', () => {
  it('bfloat16 and float16 rounding of 1/3', () => {
    // float32(1/3) = 0x3EAAAAAB; bfloat16 keeps 8 significant bits, rounding to nearest even:
    // 0x3EAB → (1 + 43/128) / 4 = 171/512.
    const b = tensor([1 / 3]).to('bfloat16');
    assert.equal(b.dtype, 'bfloat16');
    assert.equal(b.item(), 171 / 512);
    assert.equal(b.toArray()[0], 0.333984375);
    assert.deepEqual([...b.toBytes()], [0xab, 0x3e]);
    // float16 keeps 11 significant bits: 1.0101010101b · 2^-2 = 1365/4096.
    const h = tensor([1 / 3]).half();
    assert.equal(h.dtype, 'float16');
    assert.equal(h.item(), 1365 / 4096);
    assert.deepEqual([...h.toBytes()], [0x55, 0x35]);
    // 257 needs 9 significant bits: bfloat16 rounds it to even (256); float16 holds it.
    assert.deepEqual(tensor([257, 258]).bfloat16().toArray(), [256, 258]);
    assert.deepEqual(tensor([257]).half().toArray(), [257]);
    // float16 overflows to infinity above 65504.
    assert.deepEqual(tensor([65504, 70000]).half().toArray(), [65504, Infinity]);
  });

  it('float ↔ int ↔ bool conversions', () => {
    assertTensor(tensor([-1.7, 2.9, -0.5]).long(), 'int64', [3], [-1, 2, 0]); // truncation toward zero
    assertTensor(tensor([-1.7, 2.9]).int(), 'int32', [2], [-1, 2]);
    assertTensor(tensor([0, 0.5, -2]).bool(), 'bool', [3], [false, true, true]);
    assertTensor(tensor([true, false]).float(), 'float32', [2], [1, 0]);
    assertTensor(arange(3).double(), 'float64', [3], [0, 1, 2]);
    assert.equal(
      tensor([1 / 3])
        .double()
        .item(),
      Math.fround(1 / 3),
    );
    assertTensor(tensor([1.5]).to({ dtype: 'float64', device: 'cpu' }), 'float64', [1], [1.5]);
  });

  it('to() returns the same tensor when nothing changes, unless copy', () => {
    const x = tensor([1, 2]);
    assert.equal(x.to('float32'), x);
    assert.equal(x.to('cpu'), x);
    const c = x.to('float32', true);
    assert.notEqual(c, x);
    c.add_(1);
    assert.deepEqual(x.tolist(), [1, 2], 'a copy does not share storage');
  });

  it('typed arrays per dtype', () => {
    assert.ok(tensor([1]).toTypedArray() instanceof Float32Array);
    assert.ok(tensor([1], { dtype: 'float64' }).toTypedArray() instanceof Float64Array);
    assert.ok(arange(2).toTypedArray() instanceof BigInt64Array);
    assert.ok(tensor([1], { dtype: 'int32' }).toTypedArray() instanceof Int32Array);
    assert.ok(tensor([true]).toTypedArray() instanceof Uint8Array);
    assert.ok(tensor([1], { dtype: 'bfloat16' }).toTypedArray() instanceof Float32Array);
    assert.deepEqual([...(arange(3).toTypedArray() as BigInt64Array)], [0n, 1n, 2n]);
    // Non-contiguous tensors read back in logical (row-major) order.
    assert.deepEqual(x23().mT.toArray(), [0, 3, 1, 4, 2, 5]);
  });

  it('item of int, float and bool tensors', () => {
    assert.equal(arange(4).sum().item(), 6);
    assert.equal(scalar(2.5).item(), 2.5);
    assert.equal(tensor([true]).all().item(), 1);
    assert.equal(x23().select(0, 1).select(0, 2).item(), 5);
  });
});

// ---- generic operator calls ------------------------------------------------------------------------

describe('callOp', () => {
  it('int list, bool and dtype operands', () => {
    const [s] = callOp('aten::sum', 'dim_IntList', [x23(), [1], true]);
    assert.ok(s instanceof Tensor);
    assertTensor(s, 'int64', [2, 1], [[3], [12]]);
    const [d] = callOp('aten::sum', 'dim_IntList', [x23(), [0], false, { dtype: 'float64' }]);
    assertTensor(d as Tensor, 'float64', [3], [3, 5, 7]);
    const [c] = callOp('aten::to', 'dtype', [x23(), { dtype: 'bfloat16' }]);
    assertTensor(c as Tensor, 'bfloat16', [2, 3]);
  });

  it('float and int scalars', () => {
    const [a] = callOp('aten::add', 'Scalar', [arange(3), { float: 2 }]);
    assertTensor(a as Tensor, 'float32', [3], [2, 3, 4]); // a float Scalar promotes
    const [b] = callOp('aten::add', 'Scalar', [arange(3), 2]);
    assertTensor(b as Tensor, 'int64', [3], [2, 3, 4]); // an integral number passes as an int
    const [l] = callOp('aten::leaky_relu', '', [tensor([-10, 10]), { float: 0.1 }]);
    assertClose(l as Tensor, [-1, 10], F32_TOL, 'leaky_relu');
  });

  it('None and default operands', () => {
    const [c] = callOp('aten::clamp', '', [tensor([-2, 0, 5]), null, 1]);
    assert.deepEqual((c as Tensor).tolist(), [-2, 0, 1]);
    const [m] = callOp('aten::mean', 'dim', [
      tensor([
        [1, 2],
        [3, 4],
      ]),
      [1],
      undefined,
      { dtype: 'float64' },
    ]);
    assertTensor(m as Tensor, 'float64', [2], [1.5, 3.5]);
    const [v] = callOp('aten::var', 'correction', [tensor([1, 2, 3, 4]), null, 0]);
    assertClose(v as Tensor, 1.25, F32_TOL, 'var with correction 0, dim None');
  });

  it('string operands', () => {
    const [q] = callOp('aten::div', 'Tensor_mode', [i64([-7, 7]), i64([2, 2]), 'floor']);
    assertTensor(q as Tensor, 'int64', [2], [-4, 3]);
    const [e] = callOp('aten::einsum', '', ['i,i->', [tensor([1, 2]), tensor([3, 4])]]);
    assert.equal((e as Tensor).item(), 11);
  });

  it('tensor list and optional tensor list operands', () => {
    const [c] = callOp('aten::cat', '', [[x23(), x23()], 1]);
    assert.deepEqual((c as Tensor).shape, [2, 6]);
    const [s] = callOp('aten::stack', '', [[tensor([1, 2]), tensor([3, 4])]]);
    assert.deepEqual((s as Tensor).tolist(), [
      [1, 2],
      [3, 4],
    ]);
    const [i] = callOp('aten::index', 'Tensor', [x23(), [null, i64([2, 0])]]);
    assert.deepEqual((i as Tensor).tolist(), [
      [2, 0],
      [5, 3],
    ]);
  });

  it('tuple and list results', () => {
    const r = callOp('aten::max', 'dim', [
      tensor([
        [1, 5, 2],
        [7, 0, 3],
      ]),
      1,
    ]);
    assert.equal(r.length, 2);
    assert.deepEqual((r[0] as Tensor).tolist(), [5, 7]);
    assertTensor(r[1] as Tensor, 'int64', [2], [1, 0]);
    const [v, m] = callOp('aten::var_mean', 'correction', [tensor([1, 2, 3, 4]), null, 1, false]);
    assertClose(v as Tensor, 5 / 3, F32_TOL, 'var_mean var');
    assertClose(m as Tensor, 2.5, F32_TOL, 'var_mean mean');
    const [parts] = callOp('aten::split_with_sizes', '', [arange(5), [2, 3]]);
    assert.ok(Array.isArray(parts));
    assert.deepEqual(
      (parts as Tensor[]).map((t) => t.tolist()),
      [
        [0, 1],
        [2, 3, 4],
      ],
    );
  });

  it('results that are not tensors', () => {
    assert.deepEqual(callOp('aten::size', 'int', [x23(), 1]), [3]);
    assert.deepEqual(callOp('aten::is_floating_point', '', [x23()]), [false]);
    assert.deepEqual(callOp('aten::_local_scalar_dense', '', [scalar(2.5)]), [2.5]);
  });

  it('results that alias operands come back as the same objects', () => {
    const x = tensor([1, 2]);
    const [r] = callOp('aten::add_', 'Scalar', [x, 1]);
    assert.equal(r, x);
    assert.deepEqual(x.tolist(), [2, 3]);
    // broadcast_tensors returns same-shaped inputs themselves, inside a list.
    const a = tensor([1, 2]);
    const b = tensor([3, 4]);
    const [both] = callOp('aten::broadcast_tensors', '', [[a, b]]);
    assert.ok(Array.isArray(both));
    assert.equal((both as Tensor[])[0], a);
    assert.equal((both as Tensor[])[1], b);
    const [mixed] = callOp('aten::broadcast_tensors', '', [[tensor([[1], [2]]), b]]);
    assert.deepEqual(
      (mixed as Tensor[]).map((t) => t.tolist()),
      [
        [
          [1, 1],
          [2, 2],
        ],
        [
          [3, 4],
          [3, 4],
        ],
      ],
    );
  });

  it('a generator operand', () => {
    const draw = (): number[] => (callOp('aten::randn', 'generator', [[3], { generator: new Generator(4).id }])[0] as Tensor).toArray();
    assert.deepEqual(draw(), draw());
    assert.deepEqual(draw(), randn([3], { generator: new Generator(4) }).toArray());
  });

  it('works inside tidy()', () => {
    const out = tidy(() => callOp('aten::mul', 'Tensor', [tensor([2, 3]), tensor([4, 5])])[0] as Tensor);
    assert.deepEqual(out.tolist(), [8, 15]);
  });
});
