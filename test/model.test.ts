// The DeepSeek-V3 model: config validation, parameter counts, MLA forms, incremental decoding,
// routing rules, the aux-loss-free bias update, MTP and gradients.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Generator, type Tensor, noGrad, randint, randn, tensor, tidy, cat, zeros } from '../src/core/index.ts';
import { ConfigError, type ModelConfig, loadPreset, parseConfig, softmaxScale } from '../src/model/config.ts';
import { countParameters, kvCacheFigures, tensorSpecs } from '../src/model/params.ts';
import { MLA, mlaLatentCheaper } from '../src/model/attention.ts';
import { inverseFrequencies } from '../src/model/rope.ts';
import { DeepSeekV3 } from '../src/model/transformer.ts';
import { Gate, MoE } from '../src/model/moe.ts';

const within = (x: number, want: number, rel: number, what: string): void => {
  assert.ok(Math.abs(x - want) <= rel * want, `${what}: ${x} is not within ${rel * 100}% of ${want}`);
};

const maxDiff = (a: Tensor, b: Tensor): number => tidy(() => a.sub(b).abs().max().item());

function variant(base: string, over: Partial<ModelConfig>): ModelConfig {
  return parseConfig({ ...loadPreset(base), ...over });
}

describe('config', () => {
  test('every preset loads', () => {
    for (const p of ['tiny', 'small', 'gpt', 'v2-lite', 'v2', 'v3']) assert.ok(loadPreset(p).hidden_size > 0, p);
  });

  test('an invalid config names the field and the reason', () => {
    const bad = { ...loadPreset('tiny'), num_experts_per_tok: 99, n_group: 3, hidden_size: -4 };
    assert.throws(
      () => parseConfig(bad, 'test'),
      (e: unknown) =>
        e instanceof ConfigError &&
        /hidden_size: /.test(e.message) &&
        /num_experts_per_tok: cannot pick 99 of 8 experts/.test(e.message) &&
        /n_group: 8 experts do not split into 3 groups/.test(e.message),
    );
    assert.throws(() => parseConfig({ ...loadPreset('tiny'), kv_lora_rank: null }), /kv_lora_rank: MLA needs kv_lora_rank/);
    assert.throws(() => parseConfig({ ...loadPreset('gpt'), num_key_value_heads: 3 }), /num_key_value_heads/);
  });

  test('unknown keys survive a round trip (real configs carry many)', () => {
    const c = parseConfig({ ...loadPreset('v3'), quantization_config: { fmt: 'e4m3' }, auto_map: { x: 'y' } });
    assert.deepEqual((c as Record<string, unknown>).quantization_config, { fmt: 'e4m3' });
  });
});

describe('parameter counts (no allocation)', () => {
  test('V3: 671B total, ~37B activated (report: 36.7B), MTP 11.5B, KV 576 per token per layer', () => {
    const c = loadPreset('v3');
    const p = countParameters(c);
    within(p.total, 671e9, 0.005, 'V3 total');
    within(p.activated, 36.7e9, 0.01, 'V3 activated');
    within(p.mtp, 11.5e9, 0.01, 'V3 MTP unique');
    const kv = kvCacheFigures(c);
    assert.equal(kv.perTokenPerLayer, 576);
    assert.equal(kv.mhaEquivalent, 2 * 128 * 160, 'MHA: 128 heads × (192 key + 128 value)');
  });

  test('V2-Lite 15.7B / 2.4B and V2 236B / 21B', () => {
    const lite = countParameters(loadPreset('v2-lite'));
    within(lite.total, 15.7e9, 0.005, 'V2-Lite total');
    // The report rounds to 2.4B; the count is 2.45B (one embedding row, the gate and the head included).
    within(lite.activated, 2.4e9, 0.025, 'V2-Lite activated');
    const v2 = countParameters(loadPreset('v2'));
    within(v2.total, 236e9, 0.005, 'V2 total');
    within(v2.activated, 21e9, 0.01, 'V2 activated');
  });

  test('the tiny preset is well under 1M parameters and small is a few million', () => {
    assert.ok(countParameters(loadPreset('tiny')).totalWithMtp < 1e6);
    const s = countParameters(loadPreset('small')).totalWithMtp;
    assert.ok(s > 2e6 && s < 10e6, `small: ${s}`);
  });

  test('the model holds exactly the listed tensors', () => {
    for (const name of ['tiny', 'gpt']) {
      const c = loadPreset(name);
      const m = new DeepSeekV3(c, { seed: 0 });
      const sd = m.stateDict();
      const specs = tensorSpecs(c).filter((s) => s.role !== 'shared-copy');
      assert.deepEqual([...sd.keys()].sort(), specs.map((s) => s.name).sort(), name);
      for (const s of specs) assert.deepEqual(sd.get(s.name)!.shape, s.shape, s.name);
      assert.equal(
        m.numParameters() + (m.moeLayers().length ? m.moeLayers().length * (c.n_routed_experts ?? 0) : 0),
        countParameters(c).totalWithMtp,
        'counted without allocating = allocated',
      );
    }
  });
});

describe('RoPE and YaRN', () => {
  test('without scaling: θ_i = base^(-2i/d)', () => {
    const inv = inverseFrequencies(loadPreset('tiny'), 8);
    assert.deepEqual([...inv], [1, 10000 ** -0.25, 10000 ** -0.5, 10000 ** -0.75]);
  });

  test('YaRN keeps fast frequencies and divides slow ones by the factor', () => {
    const c = variant('tiny', {
      rope_scaling: { type: 'yarn', factor: 40, original_max_position_embeddings: 64, beta_fast: 32, beta_slow: 1, mscale: 1, mscale_all_dim: 1 },
      max_position_embeddings: 256,
    });
    const plain = inverseFrequencies(loadPreset('tiny'), 64);
    const yarn = inverseFrequencies(c, 64);
    assert.equal(yarn[0], plain[0], 'the fastest frequency is kept');
    assert.ok(Math.abs(yarn[31] - plain[31] / 40) < 1e-18, 'the slowest is interpolated by the factor');
  });

  test('softmax scale: (d_qk)^-½ · mscale², mscale = 0.1·m·ln(s) + 1', () => {
    const v3 = loadPreset('v3');
    const m = 0.1 * 1.0 * Math.log(40) + 1;
    assert.ok(Math.abs(softmaxScale(v3) - 192 ** -0.5 * m * m) < 1e-12);
    const lite = loadPreset('v2-lite');
    // biome-ignore lint/suspicious/noApproximativeNumericConstant: v2-lite's config states mscale 0.707, not 1/√2
    const m2 = 0.1 * 0.707 * Math.log(40) + 1;
    assert.ok(Math.abs(softmaxScale(lite) - 192 ** -0.5 * m2 * m2) < 1e-12);
  });
});

describe('MLA and decoding', () => {
  const c64 = variant('tiny', {
    rope_scaling: { type: 'yarn', factor: 4, original_max_position_embeddings: 64, beta_fast: 32, beta_slow: 1, mscale: 1, mscale_all_dim: 1 },
  });
  const ids = randint(0, 256, [2, 10], { generator: new Generator(3) }).keep();

  const latentOnly = (m: DeepSeekV3): DeepSeekV3 => {
    for (const b of m.blocks) if (b.self_attn instanceof MLA) b.self_attn.absorbedForm = 'latent';
    return m;
  };

  test('naive and absorbed MLA give the same logits (float64: 1e-10, float32: 1e-5)', () => {
    const m64 = latentOnly(new DeepSeekV3(c64, { seed: 1, dtype: 'float64' }));
    noGrad(() => assert.ok(maxDiff(m64.forward(ids, { mla: 'naive' }).logits, m64.forward(ids, { mla: 'absorbed' }).logits) < 1e-10));
    const m32 = latentOnly(new DeepSeekV3(c64, { seed: 1 }));
    noGrad(() => assert.ok(maxDiff(m32.forward(ids, { mla: 'naive' }).logits, m32.forward(ids, { mla: 'absorbed' }).logits) < 1e-5));
  });

  test("the latent cache's prefill expands to K/V where that is cheaper, with the same logits as the latent form", () => {
    const tiny = { heads: 4, nope: 16, rope: 8, vDim: 16, rank: 32 };
    assert.equal(mlaLatentCheaper(1, 500, tiny), true, 'one decoding query');
    assert.equal(mlaLatentCheaper(10, 10, tiny), false, 'a prompt');
    const v3 = { heads: 128, nope: 128, rope: 64, vDim: 128, rank: 512 }; // DeepSeek-V3
    assert.equal(mlaLatentCheaper(1, 4096, v3), true);
    assert.equal(mlaLatentCheaper(4096, 4096, v3), false);
    const m64 = new DeepSeekV3(c64, { seed: 1, dtype: 'float64' });
    const latent = latentOnly(new DeepSeekV3(c64, { seed: 1, dtype: 'float64' }));
    noGrad(() => {
      const cache = m64.createCache(2, 12, 'absorbed');
      const auto = m64.forward(ids, { cache }).logits;
      assert.ok(maxDiff(auto, latent.forward(ids, { mla: 'absorbed' }).logits) < 1e-10);
      // the next position decodes over the latent written by the expanded prefill
      const next = ids.narrow(1, 9, 1);
      const step = m64.forward(next, { cache, startPos: 10 }).logits; // (2, 1, V)
      const full = latent.forward(cat([ids, next], 1), { mla: 'absorbed' }).logits.narrow(1, 10, 1);
      assert.ok(maxDiff(step, full) < 1e-10);
    });
  });

  for (const [name, cfg, mla] of [
    ['MLA absorbed (latent + rotary key cache)', c64, 'absorbed'],
    ['MLA naive (K/V cache)', c64, 'naive'],
    [
      'grouped-query attention',
      variant('gpt', {
        attention_type: 'gqa',
        num_key_value_heads: 2,
        vocab_size: 256,
        hidden_size: 64,
        head_dim: 16,
        intermediate_size: 128,
        num_hidden_layers: 2,
        first_k_dense_replace: 2,
      }),
      'naive',
    ],
  ] as const) {
    test(`token-by-token decoding equals the full forward: ${name} (float64, 1e-10)`, () => {
      const m = new DeepSeekV3(cfg, { seed: 2, dtype: 'float64' });
      noGrad(() =>
        tidy(() => {
          const full = m.forward(ids, { mla }).logits; // (B, S, V)
          const cache = m.createCache(2, 16, mla);
          const parts = [m.forward(ids.narrow(1, 0, 4), { cache, startPos: 0 }).logits];
          for (let i = 4; i < 10; i++) parts.push(m.forward(ids.narrow(1, i, 1), { cache, startPos: i }).logits);
          assert.ok(maxDiff(cat(parts, 1), full) < 1e-10);
        }),
      );
    });
  }

  test('the absorbed cache stores kv_lora_rank + qk_rope_head_dim per token per layer', () => {
    const m = new DeepSeekV3(loadPreset('tiny'), { seed: 0 });
    const cache = m.createCache(1, 8, 'absorbed');
    const l = cache.layers[0];
    assert.deepEqual([l.latent!.shape, l.kpe!.shape, l.k, l.v], [[1, 8, 32], [1, 8, 8], undefined, undefined]);
  });

  test('a cache overflow or a position past the table is a clear error', () => {
    const m = new DeepSeekV3(loadPreset('tiny'), { seed: 0 });
    const cache = m.createCache(2, 4, 'absorbed');
    assert.throws(() => noGrad(() => m.forward(ids.narrow(1, 0, 5), { cache, startPos: 0 })), /KV cache holds 4 positions/);
    assert.throws(() => m.createCache(1, 10_000), /exceeds max_position_embeddings/);
  });
});

describe('routing', () => {
  const c = loadPreset('tiny'); // 8 experts, 4 groups, keep 2, top-2, sigmoid + bias
  const x = randn([64, 64], { generator: new Generator(5) }).keep(); // (T, D)

  test('the bias changes which experts are chosen, not the weights of the chosen ones', () => {
    const gate = new Gate(c, { generator: new Generator(6) });
    const before = noGrad(() => gate.route(x));
    noGrad(() => gate.bias!.copy_(tensor([0, 0, 0, 0, 0, 0, 0, 5])));
    const after = noGrad(() => gate.route(x));
    assert.notDeepEqual(after.indices.toArray(), before.indices.toArray(), 'selection moved');
    assert.ok(after.indices.eq(7).any(1).all().item() === 1, 'every token now picks expert 7');
    // weights = original scores of the chosen experts, renormalised — the bias does not enter.
    const original = after.scores.gather(1, after.indices);
    const expected = original.div(original.sum(-1, true));
    assert.ok(maxDiff(after.weights, expected) < 1e-6);
    assert.ok(maxDiff(after.scores, before.scores) === 0, 'scores do not depend on the bias');
  });

  test('group-limited routing never picks an expert outside the kept groups', () => {
    const gate = new Gate(c, { generator: new Generator(7) });
    noGrad(() => gate.bias!.copy_(randn([8], { generator: new Generator(8) }).mul(0.1)));
    const { indices, scores } = noGrad(() => gate.route(x));
    const sel = noGrad(() => scores.add(gate.bias!)).tolist() as number[][];
    const chosen = indices.tolist() as number[][];
    sel.forEach((row, t) => {
      const groupScore = [0, 1, 2, 3].map((g) => {
        const two = row.slice(2 * g, 2 * g + 2).sort((a, b) => b - a);
        return two[0] + two[1];
      });
      const kept = groupScore
        .map((s, g) => [s, g])
        .sort((a, b) => b[0] - a[0])
        .slice(0, 2)
        .map(([, g]) => g);
      for (const e of chosen[t]) assert.ok(kept.includes(Math.floor(e / 2)), `token ${t}: expert ${e} outside kept groups ${kept}`);
    });
  });

  test('softmax scoring with max group scores and no renormalisation (V2 rules)', () => {
    const v2like = variant('tiny', { scoring_func: 'softmax', topk_method: 'group_limited_greedy', norm_topk_prob: false, routed_scaling_factor: 2 });
    const gate = new Gate(v2like, { generator: new Generator(9) });
    assert.equal(gate.bias, null);
    const { weights, indices, scores } = noGrad(() => gate.route(x));
    assert.ok(maxDiff(weights, scores.gather(1, indices).mul(2)) < 1e-7);
  });

  test('on a skewed router, bias updates bring max/mean load from > 3 down below 1.5', () => {
    const moe = new MoE(c, { generator: new Generator(10) });
    // Skew: inputs share a positive component and the gate rows of experts 0 and 1 point along it.
    const skewInput = randn([4, 32, 64], { generator: new Generator(11) })
      .add(1)
      .keep(); // (B, S, D)
    noGrad(() => moe.gate.weight.narrow(0, 0, 2).add_(0.05));
    const ratio = (): number => {
      noGrad(() => tidy(() => moe.forward(skewInput)));
      return moe.load().maxOverMean;
    };
    const first = ratio();
    moe.updateBias(0); // measuring only
    assert.ok(first > 3, `skewed start: max/mean ${first}`);
    let last = first;
    for (let i = 0; i < 300; i++) {
      last = ratio();
      moe.updateBias(0.01);
    }
    last = ratio();
    assert.ok(last < 1.5, `after 300 updates with γ = 0.01: max/mean ${last} (started at ${first})`);
  });
});

describe('training pieces', () => {
  test('every trainable parameter gets a gradient; the bias gets none', () => {
    const m = new DeepSeekV3(loadPreset('tiny'), { seed: 4 });
    const ids = randint(0, 256, [4, 32], { generator: new Generator(12) });
    const targets = randint(0, 256, [4, 32], { generator: new Generator(13) });
    m.loss(ids, targets).loss.backward();
    const noGradNames = [...m.namedParameters()].filter(([, p]) => !p.grad).map(([n]) => n);
    // An expert that received no token has no gradient; the batch is large enough to reach all.
    const idle = m.moeLayers().flatMap((moe, li) => moe.lastLoad.map((n, e) => (n === 0 ? `${li}:${e}` : null)).filter(Boolean));
    assert.deepEqual(idle, [], 'every expert saw tokens');
    assert.deepEqual(noGradNames, []);
    for (const moe of m.moeLayers()) {
      assert.equal(moe.gate.bias!.requiresGrad, false);
      assert.equal(moe.gate.bias!.grad, null);
    }
  });

  test('loss = L_main + (λ/D)·Σ L_MTP + balance loss', () => {
    const m = new DeepSeekV3(variant('tiny', { aux_loss_alpha: 0.01 }), { seed: 5 });
    const ids = randint(0, 256, [2, 12], { generator: new Generator(14) });
    const targets = randint(0, 256, [2, 12], { generator: new Generator(15) });
    const r = m.loss(ids, targets, { mtpWeight: 0.25 });
    assert.equal(r.mtpLosses.length, 1);
    const want = r.lmLoss.item() + 0.25 * r.mtpLosses[0].item() + r.auxLoss!.item();
    assert.ok(Math.abs(r.loss.item() - want) < 1e-5);
    assert.ok(r.auxLoss!.item() > 0);
    m.eval();
    assert.equal(m.loss(ids, targets).auxLoss, null, 'no balance loss in eval mode');
  });

  test('the MTP module predicts t_{i+2}: its loss uses targets shifted by one', () => {
    const m = new DeepSeekV3(loadPreset('tiny'), { seed: 6 });
    const ids = randint(0, 256, [1, 8], { generator: new Generator(16) });
    const targets = randint(0, 256, [1, 8], { generator: new Generator(17) });
    const base = m.loss(ids, targets).mtpLosses[0].item();
    // Changing the last target changes the MTP loss (it is used at position 6), the first does not.
    const t2 = targets.clone();
    noGrad(() => t2.narrow(1, 0, 1).fill_(-100));
    assert.equal(m.loss(ids, t2).mtpLosses[0].item(), base);
    const t3 = targets.clone();
    noGrad(() => t3.narrow(1, 7, 1).fill_((targets.toArray()[7] + 1) % 256));
    assert.notEqual(m.loss(ids, t3).mtpLosses[0].item(), base);
  });

  test('tied embeddings: no lm_head, the head is the embedding', () => {
    const m = new DeepSeekV3(variant('tiny', { tie_word_embeddings: true }), { seed: 7 });
    assert.equal(m.lm_head, null);
    assert.equal(m.headWeight(), m.model.embed_tokens.weight);
    assert.ok(![...m.stateDict().keys()].includes('lm_head.weight'));
  });

  test('a few AdamW steps lower the loss of the tiny model', async () => {
    const { AdamW, weightDecayGroups } = await import('../src/nn/index.ts');
    const m = new DeepSeekV3(loadPreset('tiny'), { seed: 8 });
    const opt = new AdamW(weightDecayGroups(m, 0.1), { lr: 3e-3 });
    const ids = randint(0, 256, [4, 16], { generator: new Generator(18) });
    const targets = cat([ids.narrow(1, 1, 15), zeros([4, 1], { dtype: 'int64' })], 1);
    const step = (): number =>
      tidy(() => {
        const r = m.loss(ids, targets);
        r.loss.backward();
        opt.step();
        opt.zeroGrad();
        m.updateBias(0.001);
        return r.lmLoss.item();
      });
    const first = step();
    let last = first;
    for (let i = 0; i < 30; i++) last = step();
    assert.ok(last < first - 1, `loss ${first} → ${last}`);
  });
});
