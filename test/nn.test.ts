// nn basics: Module registry and state dicts, layers, AdamW against a scalar reference, gradient
// clipping and learning-rate schedules.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Generator, type Tensor, tensor, zeros, ones, randn, tidy, crossEntropy } from '../src/core/index.ts';
import {
  AdamW,
  Dropout,
  Embedding,
  Linear,
  Module,
  ModuleList,
  RMSNorm,
  StateDictError,
  applyLr,
  clipGradNorm,
  warmupCosine,
  warmupStableDecay,
  weightDecayGroups,
} from '../src/nn/index.ts';

const close = (a: number[], b: number[], tol: number, what: string): void => {
  assert.equal(a.length, b.length, `${what}: length`);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - b[i]) <= tol * Math.max(1, Math.abs(b[i])), `${what}[${i}]: ${a[i]} vs ${b[i]} (tol ${tol})`);
};

class Block extends Module {
  readonly proj: Linear;
  readonly norm: RMSNorm;
  constructor(g: Generator) {
    super();
    this.proj = this.registerModule('proj', new Linear(4, 4, { generator: g, bias: false }));
    this.norm = this.registerModule('norm', new RMSNorm(4));
    this.registerBuffer('scale', ones([1]));
    this.registerBuffer('cache', zeros([2]), false);
  }
}

class Net extends Module {
  readonly embed: Embedding;
  readonly layers: ModuleList<Block>;
  readonly head: Linear;
  constructor(seed = 0) {
    super();
    const g = new Generator(seed);
    this.embed = this.registerModule('embed', new Embedding(10, 4, { generator: g }));
    this.layers = this.registerModule('layers', new ModuleList([new Block(g), new Block(g)]));
    this.head = this.registerModule('head', new Linear(4, 10, { generator: g }));
  }
  forward(ids: Tensor): Tensor {
    let h = this.embed.forward(ids);
    for (const b of this.layers) h = b.norm.forward(b.proj.forward(h));
    return this.head.forward(h);
  }
}

describe('Module', () => {
  test('names nest with dots and ModuleList counts from 0', () => {
    const names = [...new Net().namedParameters()].map(([n]) => n);
    assert.deepEqual(names, [
      'embed.weight',
      'layers.0.proj.weight',
      'layers.0.norm.weight',
      'layers.1.proj.weight',
      'layers.1.norm.weight',
      'head.weight',
      'head.bias',
    ]);
  });

  test('state dict holds parameters and persistent buffers only', () => {
    const keys = [...new Net().stateDict().keys()];
    assert.ok(keys.includes('layers.0.scale'));
    assert.ok(!keys.includes('layers.0.cache'));
    assert.equal(keys.length, 9);
  });

  test('numParameters counts elements', () => {
    assert.equal(new Net().numParameters(), 10 * 4 + 2 * (16 + 4) + 40 + 10);
  });

  test('train/eval reach every submodule', () => {
    const n = new Net().eval();
    assert.ok([...n.namedModules()].every(([, m]) => !m.training));
    n.train();
    assert.ok([...n.namedModules()].every(([, m]) => m.training));
  });

  test('loadStateDict copies values and the models then agree', () => {
    const a = new Net(1);
    const b = new Net(2);
    const ids = tensor([[1, 2, 3]], { dtype: 'int64' });
    assert.notDeepEqual(a.forward(ids).toArray(), b.forward(ids).toArray());
    const res = b.loadStateDict(a.stateDict());
    assert.deepEqual(res, { missing: [], unexpected: [] });
    assert.deepEqual(b.forward(ids).toArray(), a.forward(ids).toArray());
  });

  test('a mismatched state dict is reported in one error and changes nothing', () => {
    const n = new Net(3);
    const before = n.head.weight.toArray();
    const sd = new Map(n.stateDict());
    sd.delete('head.bias');
    sd.set('extra.weight', zeros([2]));
    sd.set('head.weight', zeros([3, 4]));
    assert.throws(
      () => n.loadStateDict(sd),
      (e: unknown) =>
        e instanceof StateDictError &&
        e.missing.includes('head.bias') &&
        e.unexpected.includes('extra.weight') &&
        e.mismatched.length === 1 &&
        /head\.weight: expected \[10, 4\], got \[3, 4\]/.test(e.message),
    );
    assert.deepEqual(n.head.weight.toArray(), before);
    // non-strict tolerates missing/unexpected, never a wrong shape
    sd.set('head.weight', n.head.weight);
    assert.deepEqual(n.loadStateDict(sd, false), { missing: ['head.bias'], unexpected: ['extra.weight'] });
  });

  test('to(dtype) converts in place, keeping identity and requiresGrad', () => {
    const n = new Net();
    const w = n.head.weight;
    const v = w.toArray();
    n.to('float64');
    assert.equal(n.head.weight, w);
    assert.equal(w.dtype, 'float64');
    assert.equal(w.requiresGrad, true);
    close(w.toArray(), v, 0, 'values survive');
  });

  test('registering a name twice is an error', () => {
    class Bad extends Module {
      constructor() {
        super();
        this.registerParameter('w', zeros([1]));
        this.registerParameter('w', zeros([1]));
      }
    }
    assert.throws(() => new Bad(), /already registered/);
  });
});

describe('layers', () => {
  test('Linear computes x·Wᵀ + b and initialises within ±1/√in', () => {
    const l = new Linear(3, 2, { generator: new Generator(0) });
    const bound = 1 / Math.sqrt(3);
    assert.ok(l.weight.toArray().every((v) => Math.abs(v) <= bound));
    l.weight.requiresGrad_(false).copy_(
      tensor([
        [1, 2, 3],
        [4, 5, 6],
      ]),
    );
    l.bias!.requiresGrad_(false).copy_(tensor([0.5, -1]));
    close(
      l
        .forward(
          tensor([
            [1, 0, -1],
            [2, 1, 0],
          ]),
        )
        .toArray(),
      [1 - 3 + 0.5, 4 - 6 - 1, 2 + 2 + 0.5, 8 + 5 - 1],
      1e-6,
      'linear',
    );
  });

  test('the same seed gives the same weights', () => {
    assert.deepEqual(new Linear(5, 7, { generator: new Generator(9) }).weight.toArray(), new Linear(5, 7, { generator: new Generator(9) }).weight.toArray());
  });

  test('Embedding picks rows', () => {
    const e = new Embedding(3, 2);
    e.weight.requiresGrad_(false).copy_(
      tensor([
        [0, 1],
        [2, 3],
        [4, 5],
      ]),
    );
    assert.deepEqual(e.forward(tensor([2, 0], { dtype: 'int64' })).tolist(), [
      [4, 5],
      [0, 1],
    ]);
  });

  test('RMSNorm divides by the root mean square', () => {
    const n = new RMSNorm(2, { eps: 0 });
    n.weight.requiresGrad_(false).copy_(tensor([1, 2]));
    const rms = Math.sqrt((9 + 16) / 2);
    close(n.forward(tensor([[3, 4]])).toArray(), [3 / rms, (2 * 4) / rms], 1e-6, 'rmsnorm');
  });

  test('RMSNorm keeps bfloat16 inputs in bfloat16', () => {
    const n = new RMSNorm(4).to('bfloat16');
    assert.equal(n.forward(randn([2, 4]).bfloat16()).dtype, 'bfloat16');
  });

  test('Dropout: identity in eval, p of zeros and 1/(1-p) scaling in train, reproducible', () => {
    const d = new Dropout(0.25, new Generator(3));
    const x = ones([4000]);
    d.eval();
    assert.deepEqual(d.forward(x).toArray().slice(0, 4), [1, 1, 1, 1]);
    d.train();
    const y = d.forward(x).toArray();
    const zerosShare = y.filter((v) => v === 0).length / y.length;
    assert.ok(Math.abs(zerosShare - 0.25) < 0.03, `share of zeros ${zerosShare}`);
    assert.ok(y.every((v) => v === 0 || Math.abs(v - 1 / 0.75) < 1e-6));
    const again = new Dropout(0.25, new Generator(3));
    assert.deepEqual(again.forward(x).toArray(), y);
  });
});

/** Scalar AdamW, written from the paper's update rule, as the reference. */
function adamwReference(p0: number[], grads: number[][], lr: number, wd: number, b1 = 0.9, b2 = 0.999, eps = 1e-8): number[] {
  const p = [...p0];
  const m = p.map(() => 0);
  const v = p.map(() => 0);
  grads.forEach((g, k) => {
    const t = k + 1;
    for (let i = 0; i < p.length; i++) {
      p[i] *= 1 - lr * wd;
      m[i] = b1 * m[i] + (1 - b1) * g[i];
      v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
      const mh = m[i] / (1 - b1 ** t);
      const vh = v[i] / (1 - b2 ** t);
      p[i] -= (lr * mh) / (Math.sqrt(vh) + eps);
    }
  });
  return p;
}

describe('AdamW', () => {
  const grads = [
    [0.5, -1, 2],
    [0.1, 0.3, -0.7],
    [-2, 0.05, 1],
  ];

  test('matches the reference update over three steps, per group', () => {
    const a = tensor([1, -2, 3], { dtype: 'float64' }).requiresGrad_();
    const b = tensor([0.5, 0.5, 0.5], { dtype: 'float64' }).requiresGrad_();
    const opt = new AdamW(
      [
        { params: [a], lr: 0.1, weightDecay: 0.1 },
        { params: [b], lr: 0.01, weightDecay: 0 },
      ],
      { betas: [0.9, 0.999], eps: 1e-8 },
    );
    for (const g of grads) {
      a.grad = tensor(g, { dtype: 'float64' });
      b.grad = tensor(g, { dtype: 'float64' });
      opt.step();
    }
    close(a.toArray(), adamwReference([1, -2, 3], grads, 0.1, 0.1), 1e-12, 'group 0');
    close(b.toArray(), adamwReference([0.5, 0.5, 0.5], grads, 0.01, 0), 1e-12, 'group 1');
  });

  test('parameters without a gradient are left alone', () => {
    const a = tensor([1, 2]).requiresGrad_();
    const b = tensor([3, 4]).requiresGrad_();
    const opt = new AdamW([a, b], { lr: 0.1 });
    a.grad = tensor([1, 1]);
    opt.step();
    assert.deepEqual(b.toArray(), [3, 4]);
    assert.notDeepEqual(a.toArray(), [1, 2]);
  });

  test('state dict round trip resumes exactly', () => {
    const run = (steps: number[][], resumeAt: number): number[] => {
      const p = tensor([1, -1, 0.5], { dtype: 'float64' }).requiresGrad_();
      let opt = new AdamW([p], { lr: 0.05 });
      steps.forEach((g, k) => {
        if (k === resumeAt) {
          const saved = opt.stateDict();
          const copy = { ...saved, expAvg: saved.expAvg.map((t) => t?.clone() ?? null), expAvgSq: saved.expAvgSq.map((t) => t?.clone() ?? null) };
          opt = new AdamW([p], { lr: 0.05 });
          opt.loadStateDict(copy);
        }
        p.grad = tensor(g, { dtype: 'float64' });
        opt.step();
      });
      return p.toArray();
    };
    assert.deepEqual(run(grads, 2), run(grads, -1));
  });

  test('weightDecayGroups decays matrices only', () => {
    const groups = weightDecayGroups(new Net(), 0.1);
    assert.equal(
      groups[0].params.every((p) => p.ndim >= 2),
      true,
    );
    assert.equal(
      groups[1].params.every((p) => p.ndim < 2),
      true,
    );
    assert.equal(groups[1].weightDecay, 0);
  });

  test('rejects bad hyper-parameters and duplicated parameters', () => {
    const p = tensor([1]).requiresGrad_();
    assert.throws(() => new AdamW([p], { lr: -1 }), /lr must be >= 0/);
    assert.throws(() => new AdamW([p], { betas: [1, 0.9] }), /betas/);
    assert.throws(() => new AdamW([{ params: [p] }, { params: [p] }]), /more than one group/);
  });

  test('trains a small classifier', () => {
    const net = new Net(5);
    const opt = new AdamW(weightDecayGroups(net, 0.01), { lr: 0.05 });
    const ids = tensor([[1, 2, 3, 4]], { dtype: 'int64' });
    const target = tensor([[2, 3, 4, 5]], { dtype: 'int64' });
    const lossAt = (): number => tidy(() => crossEntropy(net.forward(ids).reshape([4, 10]), target.reshape([4])).item());
    const before = lossAt();
    for (let i = 0; i < 50; i++) {
      tidy(() => {
        crossEntropy(net.forward(ids).reshape([4, 10]), target.reshape([4])).backward();
        opt.step();
        opt.zeroGrad();
      });
    }
    assert.ok(lossAt() < before / 4, `loss ${before} → ${lossAt()}`);
  });
});

describe('clipGradNorm', () => {
  test('returns the global norm and scales to maxNorm', () => {
    const a = tensor([0, 0]).requiresGrad_();
    const b = tensor([0]).requiresGrad_();
    a.grad = tensor([3, 4]);
    b.grad = tensor([12]);
    const total = clipGradNorm([a, b], 6.5);
    assert.ok(Math.abs(total - 13) < 1e-5);
    close([...a.grad!.toArray(), ...b.grad!.toArray()], [1.5, 2, 6], 1e-5, 'clipped');
  });

  test('leaves small gradients alone', () => {
    const a = tensor([0, 0]).requiresGrad_();
    a.grad = tensor([0.3, 0.4]);
    assert.ok(Math.abs(clipGradNorm([a], 1) - 0.5) < 1e-6);
    close(a.grad!.toArray(), [0.3, 0.4], 1e-7, 'unchanged');
  });

  test('a non-finite norm is reported, or thrown on request', () => {
    const a = tensor([0]).requiresGrad_();
    a.grad = tensor([Number.POSITIVE_INFINITY]);
    assert.equal(clipGradNorm([a], 1), Number.POSITIVE_INFINITY);
    assert.throws(() => clipGradNorm([a], 1, { errorIfNonfinite: true }), /not finite/);
  });
});

describe('schedules', () => {
  test('warmup + cosine', () => {
    const s = warmupCosine({ maxLr: 1, minLr: 0.1, warmupSteps: 10, totalSteps: 110 });
    assert.equal(s(0), 0.1);
    assert.equal(s(9), 1);
    assert.equal(s(10), 1);
    assert.ok(Math.abs(s(60) - 0.55) < 1e-12);
    assert.equal(s(110), 0.1);
    assert.equal(s(1000), 0.1);
  });

  test('warmup-stable-decay holds, then decays over the last fraction', () => {
    const s = warmupStableDecay({ maxLr: 1, minLr: 0, warmupSteps: 10, totalSteps: 100, decayFraction: 0.2 });
    assert.equal(s(4), 0.5);
    assert.equal(s(50), 1);
    assert.equal(s(79), 1);
    assert.equal(s(80), 1);
    assert.equal(s(90), 0.5);
    assert.equal(s(100), 0);
  });

  test('bad schedules are rejected', () => {
    assert.throws(() => warmupCosine({ maxLr: 1, warmupSteps: 10, totalSteps: 10 }), /totalSteps/);
    assert.throws(() => warmupStableDecay({ maxLr: 1, warmupSteps: 0, totalSteps: 10, decayFraction: 2 }), /decayFraction/);
  });

  test('applyLr writes every group', () => {
    const opt = new AdamW([tensor([1]).requiresGrad_()]);
    applyLr(opt, 0.123);
    assert.equal(opt.groups[0].lr, 0.123);
  });
});
