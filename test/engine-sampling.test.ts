// The engine's pieces without a model: logits processors on hand-made logits, the sampler (greedy,
// temperature, top-k / top-p sets, seeded reproducibility, the logprobs it reports) and the stop
// criteria.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Generator, type Tensor, randn, tensor, tidy } from '../src/core/index.ts';
import { Sampler, StopCriteria, repetitionPenalty, temperature, topK, topKTopP, topP } from '../src/engine/index.ts';

const NO_STATE = { seen: null };
const rows = (t: Tensor): number[][] => t.tolist() as number[][];
/** Ids whose processed logit is finite, per row. */
const kept = (t: Tensor): number[][] => rows(t).map((r) => r.flatMap((v, i) => (Number.isFinite(v) ? [i] : [])));

describe('logits processors', () => {
  test('temperature divides the logits', () => {
    tidy(() => {
      const x = tensor([[1, -2, 4]], { dtype: 'float64' });
      assert.deepEqual(rows(temperature(0.5)(x, NO_STATE)), [[2, -4, 8]]);
      assert.deepEqual(rows(temperature(2)(x, NO_STATE)), [[0.5, -1, 2]]);
      assert.throws(() => temperature(0), /positive/);
    });
  });

  test('top-k keeps exactly the k largest of each row (ties at the k-th value kept)', () => {
    tidy(() => {
      const x = tensor([
        [1, 5, 3, 4, 2],
        [9, 0, 8, 7, 6],
        [1, 3, 3, 0, 2],
      ]);
      assert.deepEqual(kept(topK(2)(x, NO_STATE)), [
        [1, 3],
        [0, 2],
        [1, 2],
      ]);
      assert.deepEqual(kept(topK(1)(x, NO_STATE)), [[1], [0], [1, 2]]);
      assert.deepEqual(kept(topK(9)(x, NO_STATE)), [
        [0, 1, 2, 3, 4],
        [0, 1, 2, 3, 4],
        [0, 1, 2, 3, 4],
      ]);
      // kept values are unchanged
      assert.deepEqual(rows(topK(2)(x, NO_STATE))[0], [-Infinity, 5, -Infinity, 4, -Infinity]);
    });
  });

  test('top-p keeps the smallest most-likely set whose mass reaches p', () => {
    tidy(() => {
      // probabilities 0.15, 0.5, 0.1, 0.25 (ids ranked 1, 3, 0, 2)
      const x = tensor([[0.15, 0.5, 0.1, 0.25].map(Math.log)], { dtype: 'float64' });
      assert.deepEqual(kept(topP(0.4)(x, NO_STATE)), [[1]]);
      assert.deepEqual(kept(topP(0.7)(x, NO_STATE)), [[1, 3]]); // 0.5 + 0.25 = 0.75 ≥ 0.7
      assert.deepEqual(kept(topP(0.8)(x, NO_STATE)), [[0, 1, 3]]); // 0.75 < 0.8: add 0.15
      assert.deepEqual(kept(topP(0.95)(x, NO_STATE)), [[0, 1, 2, 3]]);
      assert.deepEqual(kept(topP(1)(x, NO_STATE)), [[0, 1, 2, 3]]);
      // rows are independent; the most likely token is always kept
      const y = tensor([[0.15, 0.5, 0.1, 0.25].map(Math.log), [0.97, 0.01, 0.01, 0.01].map(Math.log)], { dtype: 'float64' });
      assert.deepEqual(kept(topP(0.7)(y, NO_STATE)), [[1, 3], [0]]);
      assert.throws(() => topP(0), /\(0, 1\]/);
    });
  });

  test('top-k + top-p in one pass keeps the same set as top-k then top-p', () => {
    tidy(() => {
      const x = tensor([[0.15, 0.5, 0.1, 0.25].map(Math.log), [0.05, 0.05, 0.3, 0.6].map(Math.log)], { dtype: 'float64' });
      // after top-2: row 0 {1: 2/3, 3: 1/3}, row 1 {3: 2/3, 2: 1/3}
      assert.deepEqual(kept(topKTopP(2, 0.6)(x, NO_STATE)), [[1], [3]]);
      assert.deepEqual(kept(topKTopP(2, 0.7)(x, NO_STATE)), [
        [1, 3],
        [2, 3],
      ]);
      assert.deepEqual(kept(topKTopP(3, 0.8)(x, NO_STATE)), [
        [1, 3],
        [2, 3],
      ]); // renormalised over 3: 5/9 + 5/18 = 0.83 ≥ 0.8
      assert.deepEqual(kept(topKTopP(3, 0.85)(x, NO_STATE)), [
        [0, 1, 3],
        [2, 3],
      ]);
      const r = randn([16, 300], { generator: new Generator(8), dtype: 'float64' });
      for (const [k, p] of [
        [5, 0.5],
        [40, 0.9],
        [300, 0.7],
        [1, 0.3],
      ] as const) {
        assert.deepEqual(rows(topKTopP(k, p)(r, NO_STATE)), rows(topP(p)(topK(k)(r, NO_STATE), NO_STATE)), `k ${k} p ${p}`);
      }
    });
  });

  test('repetition penalty: seen tokens divided by p when positive, multiplied when negative', () => {
    tidy(() => {
      const x = tensor([[2, -2, 1, -1]], { dtype: 'float64' });
      const seen = tensor([[true, true, false, false]]);
      assert.deepEqual(rows(repetitionPenalty(2)(x, { seen })), [[1, -4, 1, -1]]);
      assert.deepEqual(rows(repetitionPenalty(2)(x, NO_STATE)), [[2, -2, 1, -1]]);
    });
  });
});

describe('sampler', () => {
  test('temperature 0 is the argmax; logprob is log_softmax of the raw logits', () => {
    tidy(() => {
      const logits = randn([6, 50], { generator: new Generator(1), dtype: 'float64' });
      const s = new Sampler({ temperature: 0, topK: 3, topP: 0.1 }).sample(logits, NO_STATE, { samplingLogprobs: true, entropy: true });
      assert.deepEqual(s.ids.toArray(), logits.argmax(-1).toArray());
      const logp = logits.logSoftmax(-1);
      assert.deepEqual(s.logprobs.toArray(), logp.gather(1, s.ids.unsqueeze(1)).squeeze(1).toArray());
      assert.deepEqual(s.samplingLogprobs!.toArray(), [0, 0, 0, 0, 0, 0]);
      const h = logp.exp().mul(logp).sum(-1).neg().toArray();
      s.entropy!.toArray().forEach((v, i) => assert.ok(Math.abs(v - h[i]) < 1e-12));
    });
  });

  test('temperature scales the sampling distribution, not the reported logprob', () => {
    tidy(() => {
      const logits = randn([4, 30], { generator: new Generator(2), dtype: 'float64' });
      const s = new Sampler({ temperature: 0.5 }, new Generator(3)).sample(logits, NO_STATE, { samplingLogprobs: true });
      const idx = s.ids.unsqueeze(1);
      const want = logits.div(0.5).logSoftmax(-1).gather(1, idx).squeeze(1).toArray();
      s.samplingLogprobs!.toArray().forEach((v, i) => assert.ok(Math.abs(v - want[i]) < 1e-12));
      const raw = logits.logSoftmax(-1).gather(1, idx).squeeze(1).toArray();
      assert.deepEqual(s.logprobs.toArray(), raw);
      // empirically: at temperature t, frequencies follow softmax(logits / t)
      const one = tensor([[0, Math.log(3)]], { dtype: 'float64' }).expand([4000, 2]);
      const cold = new Sampler({ temperature: 0.5 }, new Generator(4)).sample(one).ids.toArray();
      const share = cold.filter((i) => i === 1).length / cold.length; // 9/10 at t = 0.5, 3/4 at t = 1
      assert.ok(Math.abs(share - 0.9) < 0.025, `share ${share}`);
    });
  });

  test('top-k and top-p restrict the draws to their sets', () => {
    tidy(() => {
      const probs = [0.3, 0.05, 0.25, 0.2, 0.1, 0.1];
      const logits = tensor([probs.map(Math.log)], { dtype: 'float64' }).expand([3000, 6]);
      const k2 = new Set(new Sampler({ topK: 2 }, new Generator(5)).sample(logits).ids.toArray());
      assert.deepEqual([...k2].sort(), [0, 2]);
      const p = new Set(new Sampler({ topP: 0.7 }, new Generator(6)).sample(logits).ids.toArray());
      assert.deepEqual([...p].sort(), [0, 2, 3]); // 0.3 + 0.25 = 0.55 < 0.7 ≤ 0.75
    });
  });

  test('the same seed gives the same draws; another seed others', () => {
    tidy(() => {
      const logits = randn([8, 100], { generator: new Generator(7) });
      const draw = (seed: number): number[] => new Sampler({ temperature: 1.3, topP: 0.9 }, new Generator(seed)).sample(logits).ids.toArray();
      assert.deepEqual(draw(11), draw(11));
      assert.notDeepEqual(draw(11), draw(12));
    });
  });

  test('invalid settings are clear errors', () => {
    assert.throws(() => new Sampler({ temperature: -1 }), /temperature must be a finite number ≥ 0/);
    assert.throws(() => new Sampler({ topK: 1.5 }), /topK must be an integer/);
    assert.throws(() => new Sampler({ topP: 1.5 }), /topP must be in \(0, 1\]/);
    assert.throws(() => new Sampler({ repetitionPenalty: 0 }), /repetitionPenalty must be a positive/);
  });
});

describe('stop criteria', () => {
  const stop = new StopCriteria({ eosIds: [1], stopSequences: [[8], [20, 21, 22]], maxNewTokens: 6 });

  test('end-of-sequence id', () => {
    assert.equal(stop.check([5, 6]), null);
    assert.deepEqual(stop.check([5, 1]), { reason: 'stop', match: { kind: 'eos', id: 1 } });
  });

  test('a one-id stop sequence (</answer> = 8) and a multi-id one', () => {
    assert.deepEqual(stop.check([3, 8]), { reason: 'stop', match: { kind: 'sequence', index: 0 } });
    assert.equal(stop.check([20, 21]), null);
    assert.equal(stop.check([21, 22]), null, 'a partial match does not stop');
    assert.equal(stop.check([20, 9, 21, 22]), null);
    assert.deepEqual(stop.check([4, 20, 21, 22]), { reason: 'stop', match: { kind: 'sequence', index: 1 } });
  });

  test('max new tokens gives length; a stop on the last allowed id is a stop', () => {
    assert.deepEqual(stop.check([2, 3, 4, 5, 6, 7]), { reason: 'length', match: null });
    assert.deepEqual(stop.check([2, 3, 4, 5, 6, 8]), { reason: 'stop', match: { kind: 'sequence', index: 0 } });
  });

  test('bad criteria are clear errors', () => {
    assert.throws(() => new StopCriteria({ maxNewTokens: 0 }), /maxNewTokens must be a positive integer/);
    assert.throws(() => new StopCriteria({ maxNewTokens: 4, stopSequences: [[]] }), /stop sequence 0 is empty/);
    assert.throws(() => new StopCriteria({ maxNewTokens: 4, eosIds: [-1] }), /eos ids/);
  });
});
