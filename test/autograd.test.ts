/**
 * Autograd: analytic gradients against central finite differences (float64), and the behaviour of
 * requiresGrad, grad accumulation, detach, noGrad, inferenceMode and backward's options.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  Generator,
  type Tensor,
  TorchError,
  backward,
  cat,
  crossEntropy,
  einsum,
  enableGrad,
  inferenceMode,
  isGradEnabled,
  isInferenceMode,
  noGrad,
  ones,
  randn,
  tensor,
  tidy,
  where,
} from '../src/core/index.ts';

// ---- finite-difference gradient check --------------------------------------------------------------

/** Central differences with step H; analytic and numeric agree when |a - n| <= RTOL·max(|a|, |n|) + ATOL. */
const H = 1e-5;
const RTOL = 1e-6;
const ATOL = 1e-9;

type Params = Record<string, Tensor>;

/** The accumulated gradient's values, or null when there is none. */
function gradOf(t: Tensor): number[] | null {
  const g = t.grad;
  return g === null ? null : g.toArray();
}

function f64(values: readonly number[], shape: readonly number[], requiresGrad = false): Tensor {
  return tensor(Float64Array.from(values), { shape, requiresGrad });
}

/**
 * Checks d f / d p for every element of every parameter. `f` maps float64 parameters to a scalar;
 * parameters start from seeded normal values (times `scale`).
 */
function gradcheck(shapes: Record<string, number[]>, f: (p: Params) => Tensor, seed: number, scale = 1): void {
  const g = new Generator(seed);
  const names = Object.keys(shapes);
  const init: Record<string, number[]> = {};
  for (const k of names)
    init[k] = randn(shapes[k], { generator: g, dtype: 'float64' })
      .toArray()
      .map((v) => v * scale);

  // Analytic gradients.
  const leaves: Params = {};
  for (const k of names) leaves[k] = f64(init[k], shapes[k], true);
  const grads = tidy(() => {
    const out = f(leaves);
    assert.equal(out.dtype, 'float64', 'the checked function runs in float64');
    assert.deepEqual(out.shape, [], 'the checked function returns a scalar');
    out.backward();
    const r: Record<string, number[]> = {};
    for (const k of names) {
      const gk = leaves[k].grad;
      assert.ok(gk !== null, `parameter ${k} received a gradient`);
      assert.deepEqual(gk.shape, shapes[k], `gradient of ${k} has the parameter's shape`);
      r[k] = gk.toArray();
    }
    return r;
  });

  // Numeric gradients, one element at a time, without recording.
  const evalAt = (k: string, i: number, delta: number): number =>
    tidy(() =>
      noGrad(() => {
        const p: Params = {};
        for (const n of names) p[n] = f64(n === k ? init[n].map((v, j) => (j === i ? v + delta : v)) : init[n], shapes[n]);
        return f(p).item();
      }),
    );
  let largest = 0;
  for (const k of names) {
    for (let i = 0; i < init[k].length; i++) {
      const numeric = (evalAt(k, i, H) - evalAt(k, i, -H)) / (2 * H);
      const analytic = grads[k][i];
      largest = Math.max(largest, Math.abs(analytic));
      const err = Math.abs(analytic - numeric);
      assert.ok(
        err <= RTOL * Math.max(Math.abs(analytic), Math.abs(numeric)) + ATOL,
        `d f/d ${k}[${i}]: analytic ${analytic}, numeric ${numeric}; |diff| ${err.toExponential(2)} exceeds ${RTOL}·max(|a|, |n|) + ${ATOL}`,
      );
    }
  }
  assert.ok(largest > 1e-3, 'the gradients are not all (near) zero');
}

describe('gradients against finite differences (float64)', () => {
  it('matmul, broadcast add, silu, reshape/permute, softmax, logsumexp, gather, indexSelect, mean', () => {
    const idx = tensor(
      [
        [[1], [4]],
        [[0], [2]],
      ],
      { dtype: 'int64' },
    );
    const ids = tensor([1, 3, 3, 0], { dtype: 'int64' });
    gradcheck(
      { x: [4, 3], W: [3, 5], b: [5], E: [6, 5] },
      (p) => {
        const h = p.x.matmul(p.W).add(p.b).silu(); // [4, 5], b broadcast over rows
        const h3 = h.reshape([2, 2, 5]).permute([1, 0, 2]); // [2, 2, 5]
        const probs = h3.softmax(-1);
        const lse = h3.mul(0.5).logsumexp(-1); // [2, 2]
        const picked = probs.gather(-1, idx).squeeze(-1); // [2, 2]
        const emb = p.E.indexSelect(0, ids).reshape([2, 2, 5]); // rows 2, 4, 5 of E get no gradient
        return picked.mul(lse).mean().add(probs.mul(emb).sum(-1).mean());
      },
      31,
    );
  });

  it('crossEntropy with ignoreIndex and label smoothing, cat, narrow, maskedFill, transpose', () => {
    const target = tensor([1, -100, 3, 0], { dtype: 'int64' });
    const mask = tensor([[false, true, false, false]]);
    gradcheck(
      { a: [2, 4], b: [2, 4], s: [4] },
      (p) => {
        const logits = cat([p.a, p.b.mul(p.s)], 0); // [4, 4]
        const masked = logits.maskedFill(mask.expand([4, 4]).logicalAnd(tensor([[true], [false], [false], [true]])), -5);
        const ce = crossEntropy(masked, target, { labelSmoothing: 0.1 });
        const extra = masked.transpose(0, 1).narrow(0, 1, 2).tanh().sum().div(8);
        return ce.add(extra);
      },
      7,
    );
  });

  it('var, norm, sqrt, exp, log, div, maximum, where, cumsum, einsum', () => {
    gradcheck(
      { u: [3, 4], v: [4] },
      (p) => {
        const a = p.u.var(1).add(p.u.norm(2, 0).sum());
        const pos = p.u.exp().add(1).log(); // softplus, positive
        const ratio = pos.div(pos.sum(1, true)).sqrt();
        const m = p.u.maximum(p.v.expand([3, 4]).mul(0.3));
        const w = where(p.u.gt(0), p.u, p.u.mul(0.1)); // leaky ReLU via where
        const e = einsum('ij,j->i', p.u, p.v).cumsum(0).mean();
        return a.sum().add(ratio.mean()).add(m.mean()).add(w.square().mean()).add(e);
      },
      12,
    );
  });
});

// ---- autograd state ----------------------------------------------------------------------------------

describe('requiresGrad and the graph', () => {
  it('requiresGrad propagates to results; leaves and gradFn', () => {
    const x = tensor([1, 2, 3], { dtype: 'float64', requiresGrad: true });
    const c = tensor([4, 5, 6], { dtype: 'float64' });
    assert.equal(x.requiresGrad, true);
    assert.equal(x.isLeaf, true);
    assert.equal(x.gradFn, null);
    assert.equal(c.requiresGrad, false);
    const y = x.mul(c);
    assert.equal(y.requiresGrad, true);
    assert.equal(y.isLeaf, false);
    assert.equal(y.gradFn, 'MulBackward0');
    assert.equal(y.sum().gradFn, 'SumBackward0');
    assert.equal(c.add(1).requiresGrad, false);
    assert.equal(c.add(1).gradFn, null);
    // A view of a tensor that requires grad requires grad too.
    assert.equal(x.reshape([3, 1]).requiresGrad, true);
  });

  it('requiresGrad_ returns the tensor and can be turned off', () => {
    const x = ones([2]);
    assert.equal(x.requiresGrad_(), x);
    assert.equal(x.requiresGrad, true);
    x.requiresGrad_(false);
    assert.equal(x.requiresGrad, false);
    assert.equal(x.mul(2).requiresGrad, false);
  });

  it('gradients accumulate over two backward calls', () => {
    const x = tensor([1, 2, 3], { dtype: 'float64', requiresGrad: true });
    assert.equal(x.grad, null, 'no gradient before backward');
    x.mul(x).sum().backward();
    assert.deepEqual(gradOf(x), [2, 4, 6]);
    x.mul(x).sum().backward();
    assert.deepEqual(gradOf(x), [4, 8, 12]);
  });

  it('grad = null clears; assigning a gradient sets it', () => {
    const x = tensor([1, 2, 3], { dtype: 'float64', requiresGrad: true });
    x.mul(3).sum().backward();
    assert.deepEqual(gradOf(x), [3, 3, 3]);
    x.grad = null;
    assert.equal(x.grad, null);
    x.mul(x).sum().backward();
    assert.deepEqual(gradOf(x), [2, 4, 6], 'a fresh gradient after clearing');
    x.grad = tensor([10, 10, 10], { dtype: 'float64' });
    x.sum().backward();
    assert.deepEqual(gradOf(x), [11, 11, 11], 'backward accumulates onto an assigned gradient');
  });

  it('a gradient through several paths is summed', () => {
    const x = tensor([2], { dtype: 'float64', requiresGrad: true });
    x.mul(x).add(x.mul(3)).add(x.exp()).sum().backward(); // d/dx (x² + 3x + eˣ) = 2x + 3 + eˣ
    assert.ok(Math.abs(x.grad!.item() - (4 + 3 + Math.exp(2))) < 1e-12, 'gradient 2x + 3 + eˣ within 1e-12');
  });

  it('detach stops gradients', () => {
    const x = tensor([1, 2, 3], { dtype: 'float64', requiresGrad: true });
    const d = x.detach();
    assert.equal(d.requiresGrad, false);
    assert.equal(d.gradFn, null);
    assert.deepEqual(d.toArray(), [1, 2, 3]);
    x.mul(x.detach()).sum().backward(); // only the first factor is differentiated
    assert.deepEqual(gradOf(x), [1, 2, 3]);
    // detach shares storage with its source.
    noGrad(() => x.detach().mul_(2));
    assert.deepEqual(x.toArray(), [2, 4, 6]);
  });

  it('multi-output backward()', () => {
    const a = tensor([1, 2], { dtype: 'float64', requiresGrad: true });
    backward([a.mul(2).sum(), a.mul(3)], [null, tensor([1, 0.5], { dtype: 'float64' })]);
    assert.deepEqual(gradOf(a), [5, 3.5]);
  });

  it('createGraph gives a differentiable gradient (second order)', () => {
    const x = tensor([1, 2], { dtype: 'float64', requiresGrad: true });
    x.pow(3).sum().backward(undefined, { createGraph: true });
    const g = x.grad!;
    assert.deepEqual(g.toArray(), [3, 12]); // 3x²
    assert.equal(g.requiresGrad, true);
    x.grad = null;
    g.sum().backward();
    assert.deepEqual(gradOf(x), [6, 12]); // 6x
  });
});

describe('grad modes', () => {
  it('noGrad blocks recording and restores the mode', () => {
    const x = tensor([1, 2], { requiresGrad: true });
    assert.equal(isGradEnabled(), true);
    const y = noGrad(() => {
      assert.equal(isGradEnabled(), false);
      return x.mul(2);
    });
    assert.equal(y.requiresGrad, false);
    assert.equal(y.gradFn, null);
    assert.equal(isGradEnabled(), true);
    assert.equal(x.mul(2).requiresGrad, true);
  });

  it('noGrad restores the mode when the function throws', () => {
    assert.throws(
      () =>
        noGrad(() => {
          throw new Error('boom');
        }),
      { message: 'boom' },
    );
    assert.equal(isGradEnabled(), true);
    // A libtorch error inside also leaves the mode restored.
    assert.throws(() => noGrad(() => ones([2, 3]).matmul(ones([2, 3]))), TorchError);
    assert.equal(isGradEnabled(), true);
  });

  it('noGrad refuses an async function and restores the mode', async () => {
    assert.throws(() => noGrad(async () => 1), { name: 'TypeError', message: /noGrad\(\) needs a synchronous function/ });
    assert.equal(isGradEnabled(), true);
  });

  it('enableGrad inside noGrad records again; nesting restores each level', () => {
    const x = tensor([1], { requiresGrad: true });
    noGrad(() => {
      const y = enableGrad(() => {
        assert.equal(isGradEnabled(), true);
        return x.mul(2);
      });
      assert.equal(y.requiresGrad, true);
      assert.equal(isGradEnabled(), false);
      noGrad(() => assert.equal(isGradEnabled(), false));
      assert.equal(isGradEnabled(), false);
    });
    assert.equal(isGradEnabled(), true);
  });

  it('inferenceMode: nothing recorded, mode restored, also after a throw', () => {
    const x = tensor([1, 2], { requiresGrad: true });
    assert.equal(isInferenceMode(), false);
    const y = inferenceMode(() => {
      assert.equal(isInferenceMode(), true);
      return x.mul(2);
    });
    assert.equal(isInferenceMode(), false);
    assert.equal(y.requiresGrad, false);
    assert.deepEqual(y.toArray(), [2, 4]);
    assert.throws(() => inferenceMode(() => ones([2]).view([3])), TorchError);
    assert.equal(isInferenceMode(), false);
    assert.equal(isGradEnabled(), true);
    // Nested scopes exit in order.
    inferenceMode(() => inferenceMode(() => assert.equal(isInferenceMode(), true)));
    assert.equal(isInferenceMode(), false);
  });

  it('inference tensors cannot be saved for backward later (TorchError, not a crash)', () => {
    const t = inferenceMode(() => ones([2], { dtype: 'float64' }));
    const x = tensor([1, 2], { dtype: 'float64', requiresGrad: true });
    assert.throws(
      () => x.mul(t),
      (e: unknown) => e instanceof TorchError && /aten::mul/.test(e.message) && /Inference tensors/.test(e.message),
    );
    assert.deepEqual(x.mul(t.clone()).toArray(), [1, 2], 'a clone is a normal tensor');
  });
});

describe('backward errors and options', () => {
  it('backward on a non-scalar needs a gradient', () => {
    const x = tensor([1, 2, 3], { dtype: 'float64', requiresGrad: true });
    const y = x.mul(2);
    assert.throws(
      () => y.backward(),
      (e: unknown) => e instanceof TorchError && e.op === 'backward' && /only for scalar outputs/.test(e.message) && /\[3\]/.test(e.message),
    );
    y.backward(tensor([1, 0.5, 2], { dtype: 'float64' }));
    assert.deepEqual(gradOf(x), [2, 1, 4]);
  });

  it('backward of a tensor that does not require grad is a clear error', () => {
    assert.throws(
      () => ones([2]).sum().backward(),
      (e: unknown) => e instanceof TorchError && /does not require grad/.test(e.message) && /noGrad/.test(e.message),
    );
    const x = tensor([1], { requiresGrad: true });
    assert.throws(
      () =>
        noGrad(() => x.mul(2))
          .sum()
          .backward(),
      TorchError,
    );
  });

  it('retainGraph allows a second backward; without it libtorch refuses', () => {
    const x = tensor([1, 2], { dtype: 'float64', requiresGrad: true });
    const y = x.mul(x).sum();
    y.backward(undefined, { retainGraph: true });
    y.backward();
    assert.deepEqual(gradOf(x), [4, 8]);
    assert.throws(
      () => y.backward(),
      (e: unknown) => e instanceof TorchError && e.op === 'backward' && /backward through the graph a second time/.test(e.message),
    );
    assert.deepEqual(gradOf(x), [4, 8], 'a failed backward changes nothing');
  });

  it('in-place on a leaf that requires grad is refused', () => {
    const x = tensor([1, 2], { requiresGrad: true });
    assert.throws(
      () => x.add_(1),
      (e: unknown) => e instanceof TorchError && /aten::add_/.test(e.message) && /leaf Variable/.test(e.message),
    );
    noGrad(() => x.add_(1)); // allowed without recording (as optimizers do)
    assert.deepEqual(x.toArray(), [2, 3]);
  });

  it('a gradient of the wrong shape is refused', () => {
    const x = tensor([1, 2, 3], { requiresGrad: true });
    assert.throws(
      () => {
        x.grad = ones([2]);
      },
      (e: unknown) => e instanceof TorchError && /does not match tensor shape \[3\]/.test(e.message),
    );
    assert.throws(() => x.mul(2).backward(ones([2])), TorchError);
    assert.equal(x.grad, null);
  });
});
