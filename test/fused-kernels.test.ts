// The addon's fused inference kernels (tinyseek::rms_norm, rotary, moe_select) against the
// composite forms they replace, the batch-1 MoE path against the grouped one, and the rule that a
// gradient always takes the composite form.
import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import { type Tensor, enableGrad, moeSelect, noGrad, randn, rmsNormFused, setFusedKernels, tensor, tidy } from '../src/core/index.ts';
import { loadPreset, parseConfig } from '../src/model/config.ts';
import { Gate, MoE } from '../src/model/moe.ts';
import { applyRotary } from '../src/model/rope.ts';
import { DeepSeekV3 } from '../src/model/transformer.ts';
import { generate } from '../src/engine/index.ts';
import { rmsNorm } from '../src/nn/layers.ts';

const maxDiff = (a: Tensor, b: Tensor): number => tidy(() => a.sub(b).abs().max().item());

/** The same call with the fused kernels off, then on. */
function bothWays<T>(f: () => T): [T, T] {
  setFusedKernels(false);
  const composite = f();
  setFusedKernels(true);
  return [composite, f()];
}

afterEach(() => setFusedKernels(true));

describe('fused kernels', () => {
  test('rms_norm equals the composite form (float32, 2e-6) on any leading shape', () => {
    noGrad(() => {
      for (const shape of [[7], [3, 64], [2, 5, 256]]) {
        const x = randn(shape).mul(3);
        const w = randn([shape.at(-1)!]);
        const [a, b] = bothWays(() => rmsNorm(x, w, 1e-6));
        assert.ok(maxDiff(a, b) < 2e-6, `${shape}: ${maxDiff(a, b)}`);
      }
    });
  });

  test('rotary equals the composite form exactly, for sliced inputs and per-row positions', () => {
    noGrad(() => {
      const q = randn([2, 3, 4, 24]).narrow(3, 8, 16); // (B, S, H, R), not contiguous
      for (const [cos, sin] of [
        [randn([3, 1, 8]), randn([3, 1, 8])],
        [randn([2, 3, 1, 8]), randn([2, 3, 1, 8])],
      ]) {
        const [a, b] = bothWays(() => applyRotary(q, cos, sin));
        assert.equal(maxDiff(a, b), 0);
      }
    });
  });

  test('moe_select picks the experts the composite routing picks, in the same order', () => {
    noGrad(() => {
      const base = loadPreset('small');
      for (const [groups, kept, k, method] of [
        [4, 2, 2, 'noaux_tc'],
        [1, 1, 3, 'noaux_tc'],
        [4, 1, 2, 'group_limited_greedy'],
        [2, 2, 4, 'noaux_tc'],
      ] as const) {
        const gate = new Gate(parseConfig({ ...base, n_group: groups, topk_group: kept, num_experts_per_tok: k, topk_method: method }));
        gate.bias?.copy_(randn([gate.nExperts]).mul(0.1));
        const x = randn([64, base.hidden_size]);
        const [a, b] = bothWays(() => gate.route(x));
        assert.deepEqual(b.indices.toArray(), a.indices.toArray(), `${groups} groups, ${kept} kept, k ${k}, ${method}`);
        assert.equal(maxDiff(a.weights, b.weights), 0);
      }
    });
  });

  test('a bad operand is a clear error, not a crash', () => {
    noGrad(() => {
      assert.throws(() => rmsNormFused(randn([2, 8], { dtype: 'float64' }), randn([8]), 1e-6), /tinyseek::rms_norm: x must be float32/);
      assert.throws(() => rmsNormFused(randn([2, 8]), randn([4]), 1e-6), /weight must be \(8\)/);
      assert.throws(() => moeSelect(randn([2, 8]), null, 3, 1, 2), /8 experts do not split into 3 groups/);
      assert.throws(() => moeSelect(randn([2, 8]), null, 4, 1, 3), /k = 3 exceeds the 2 experts of the kept groups/);
    });
  });

  test('with a gradient wanted the composite form runs, and the gradients arrive', () => {
    enableGrad(() => {
      const x = randn([3, 16]).requiresGrad_();
      const w = randn([16]).requiresGrad_();
      rmsNorm(x, w, 1e-6).sum().backward();
      assert.ok(x.grad && w.grad, 'both operands get a gradient');
      assert.ok(x.grad.abs().sum().item() > 0);
    });
  });
});

describe('the batch-1 MoE path', () => {
  test('one token through MoE equals the grouped path over a batch holding it', () => {
    noGrad(() => {
      const c = parseConfig({ ...loadPreset('small'), routed_scaling_factor: 2.5 });
      const moe = new MoE(c).eval();
      moe.gate.bias?.copy_(randn([moe.gate.nExperts]).mul(0.05));
      const xs = randn([1, 6, c.hidden_size]);
      const grouped = moe.forward(xs).out; // (1, 6, D): T = 6 takes the grouped path
      for (let t = 0; t < 6; t++) {
        const one = moe.forward(xs.narrow(1, t, 1)).out; // (1, 1, D)
        assert.ok(maxDiff(one, grouped.narrow(1, t, 1)) < 1e-6, `token ${t}`);
        assert.equal(
          moe.lastLoad.reduce((a, b) => a + b, 0),
          c.num_experts_per_tok,
        );
      }
    });
  });

  test('greedy decoding is the same with the fused kernels on and off', () => {
    const model = new DeepSeekV3(parseConfig({ ...loadPreset('small'), vocab_size: 300, num_nextn_predict_layers: 0 }), { seed: 5 }).eval();
    noGrad(() => {
      for (const [name, b] of model.namedBuffers()) if (name.endsWith('e_score_correction_bias')) b.copy_(randn(b.shape).mul(0.05));
    });
    const ids = Array.from({ length: 24 }, (_, i) => 10 + ((i * 11) % 280));
    const [a, b] = bothWays(() => generate(model, [ids], { maxNewTokens: 24, temperature: 0, eosIds: [] }).tokens[0]);
    assert.deepEqual(b, a);
    const [la, lb] = bothWays(() => noGrad(() => model.forward(tensor([ids], { dtype: 'int64' })).logits));
    assert.ok(maxDiff(la, lb) < 1e-5, `logits differ by ${maxDiff(la, lb)}`);
  });
});
