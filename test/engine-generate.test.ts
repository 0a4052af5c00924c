// Batched generation with the KV cache on the tiny preset in float64: left-padded batches equal
// generating each prompt alone (proves per-row positions and pad masks), group sharing equals
// prefilling each copy, logprobs equal a full forward's log_softmax, stop criteria and finish
// reasons, compaction, streaming, memory, and the model's mode.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { memoryStats, noGrad, tensor, tidy } from '../src/core/index.ts';
import { type ModelConfig, loadPreset, parseConfig } from '../src/model/config.ts';
import { DeepSeekV3 } from '../src/model/transformer.ts';
import { type GenerateResult, Sampler, generate, layoutTensors, leftPad, streamGenerate } from '../src/engine/index.ts';

const tiny = loadPreset('tiny');
const model = new DeepSeekV3(tiny, { seed: 1, dtype: 'float64' }).eval();
// multi-head attention with a dense MLP (the gpt baseline's shape, small): the naive K/V cache
const gqaConfig: ModelConfig = parseConfig({
  ...loadPreset('gpt'),
  attention_type: 'gqa',
  num_key_value_heads: 2,
  vocab_size: 256,
  hidden_size: 64,
  head_dim: 16,
  intermediate_size: 128,
  num_hidden_layers: 2,
  first_k_dense_replace: 2,
  max_position_embeddings: 128,
});
const gqa = new DeepSeekV3(gqaConfig, { seed: 2, dtype: 'float64' }).eval();

const PROMPTS = [[0, 17, 33, 90], [0, 5], [0, 200, 12, 99, 4, 81, 7, 63, 150], [42], [0, 9, 9, 9, 9]];

function maxAbsDiff(a: readonly number[], b: readonly number[]): number {
  assert.equal(a.length, b.length);
  return a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
}

function sameAs(got: GenerateResult, row: number, want: GenerateResult, wantRow: number, what: string): void {
  assert.deepEqual(got.tokens[row], want.tokens[wantRow], `${what}: tokens`);
  assert.ok(
    maxAbsDiff(got.logprobs[row], want.logprobs[wantRow]) < 1e-9,
    `${what}: logprobs differ by ${maxAbsDiff(got.logprobs[row], want.logprobs[wantRow])}`,
  );
  assert.equal(got.finishReason[row], want.finishReason[wantRow], `${what}: finish reason`);
}

describe('batched generation', () => {
  test('left-padded layout: ids, per-row positions column − padLeft (pads at 0), key padding over the cache', () => {
    const l = leftPad([[5, 6, 7], [9], [1, 2]], 0, 256);
    assert.deepEqual([...l.ids], [5, 6, 7, 0, 0, 9, 0, 1, 2]);
    assert.deepEqual([...l.padLeft], [0, 2, 1]);
    tidy(() => {
      const t = layoutTensors(l, 5, 'cpu');
      assert.deepEqual(t.positions!.tolist(), [
        [0, 1, 2],
        [0, 0, 0],
        [0, 0, 1],
      ]);
      assert.deepEqual(t.keyPadding!.tolist(), [
        [false, false, false, false, false],
        [true, true, false, false, false],
        [true, false, false, false, false],
      ]);
      assert.deepEqual(t.negPadLeft!.add(4).tolist(), [[4], [2], [3]], 'a decoding step at column 4');
      const same = layoutTensors(
        leftPad(
          [
            [1, 2],
            [3, 4],
          ],
          0,
          256,
        ),
        4,
        'cpu',
      );
      assert.equal(same.positions, null, 'no padding: position = column, no mask');
    });
  });

  for (const [name, m, mla] of [
    ['MLA absorbed cache', model, 'absorbed'],
    ['MLA naive cache', model, 'naive'],
    ['GQA K/V cache', gqa, 'naive'],
  ] as const) {
    test(`a left-padded batch gives the same tokens and logprobs (1e-9) as each prompt alone: ${name}`, () => {
      const o = { maxNewTokens: 12, temperature: 0, eosIds: [], mla, compact: false } as const;
      const batch = generate(m, PROMPTS, o);
      PROMPTS.forEach((p, i) => sameAs(batch, i, generate(m, [p], o), 0, `prompt ${i}`));
      assert.deepEqual(
        batch.promptLengths,
        PROMPTS.map((p) => p.length),
      );
      assert.ok(batch.finishReason.every((r) => r === 'length') && batch.tokens.every((t) => t.length === 12));
    });
  }

  test('logprobs, sampling logprobs and entropies equal those of one full forward over prompt + completion (1e-9)', () => {
    const o = { temperature: 0.9, topP: 0.95, topK: 50 };
    const r = generate(model, PROMPTS, { ...o, maxNewTokens: 10, seed: 3, eosIds: [], entropy: true, samplingLogprobs: true });
    noGrad(() =>
      tidy(() => {
        PROMPTS.forEach((p, i) => {
          const ids = [...p, ...r.tokens[i]];
          const logp = model
            .forward(tensor([ids], { dtype: 'int64' }))
            .logits.logSoftmax(-1)
            .select(0, 0); // (S, V)
          const rows = logp.narrow(0, p.length - 1, r.tokens[i].length); // (n, V): predictions of the completion
          const want = rows
            .gather(1, tensor(r.tokens[i], { dtype: 'int64' }).unsqueeze(1))
            .squeeze(1)
            .toArray();
          assert.ok(maxAbsDiff(r.logprobs[i], want) < 1e-9, `row ${i}`);
          const h = rows.exp().mul(rows).sum(-1).neg().toArray();
          assert.ok(maxAbsDiff(r.entropies![i], h) < 1e-9, `row ${i} entropy`);
          // log q: the processed distribution (temperature, then top-k and top-p) the ids were drawn from
          const q = new Sampler(o).process(rows, { seen: null }).logSoftmax(-1);
          const wantQ = q
            .gather(1, tensor(r.tokens[i], { dtype: 'int64' }).unsqueeze(1))
            .squeeze(1)
            .toArray();
          assert.ok(maxAbsDiff(r.samplingLogprobs![i], wantQ) < 1e-9, `row ${i} sampling logprobs`);
        });
      }),
    );
  });

  test('group sharing (one prefill, G completions) equals prefilling each copy', () => {
    const G = 3;
    const o = { maxNewTokens: 8, temperature: 0, eosIds: [], compact: false } as const;
    const shared = generate(model, PROMPTS, { ...o, groupSize: G });
    const copies = generate(
      model,
      PROMPTS.flatMap((p) => Array.from({ length: G }, () => p)),
      o,
    );
    assert.equal(shared.tokens.length, PROMPTS.length * G);
    for (let r = 0; r < PROMPTS.length * G; r++) sameAs(shared, r, copies, r, `row ${r}`);
    assert.equal(
      shared.stats.promptTokens,
      PROMPTS.reduce((a, p) => a + p.length, 0),
      'each prompt prefilled once',
    );
    // sampled groups: rows of one prompt differ, and a seed reproduces them
    const s1 = generate(model, [PROMPTS[0]], { maxNewTokens: 8, temperature: 1, seed: 9, groupSize: 4, eosIds: [] });
    const s2 = generate(model, [PROMPTS[0]], { maxNewTokens: 8, temperature: 1, seed: 9, groupSize: 4, eosIds: [] });
    assert.deepEqual(s1.tokens, s2.tokens);
    assert.ok(new Set(s1.tokens.map((t) => t.join())).size > 1, 'the group samples differ');
  });

  test('stop criteria: eos, a one-id stop, a multi-id stop, max length; the stop ids stay in', () => {
    const free = generate(model, PROMPTS, { maxNewTokens: 10, temperature: 0, eosIds: [] });
    const t0 = free.tokens[0];
    const t2 = free.tokens[2];
    const t3 = free.tokens[3];
    // row 0 stops at its 4th id through eos; row 2 at its 3rd through a two-id sequence; row 3 at its 6th through a one-id stop
    const r = generate(model, PROMPTS, { maxNewTokens: 10, temperature: 0, eosIds: [t0[3]], stopSequences: [[t2[1], t2[2]], [t3[5]]] });
    const firstStop = (t: number[]): number => {
      for (let i = 0; i < t.length; i++) {
        if (t[i] === t0[3] || t[i] === t3[5] || (i > 0 && t[i - 1] === t2[1] && t[i] === t2[2])) return i;
      }
      return -1;
    };
    free.tokens.forEach((t, i) => {
      const k = firstStop(t);
      if (k < 0) {
        assert.deepEqual(r.tokens[i], t);
        assert.equal(r.finishReason[i], 'length');
        assert.equal(r.stoppedBy[i], null);
      } else {
        assert.deepEqual(r.tokens[i], t.slice(0, k + 1), `row ${i}`);
        assert.equal(r.finishReason[i], 'stop');
        assert.ok(maxAbsDiff(r.logprobs[i], free.logprobs[i].slice(0, k + 1)) < 1e-9);
      }
    });
    assert.ok(firstStop(t0) <= 3 && r.finishReason[0] === 'stop');
    assert.ok(r.stoppedBy.some((s) => s?.kind === 'eos'));
    assert.ok(r.stoppedBy.some((s) => s?.kind === 'sequence'));
  });

  test('compacting finished rows changes nothing but the work', () => {
    const free = generate(model, PROMPTS, { maxNewTokens: 10, temperature: 0, eosIds: [] });
    // stop rows early at different steps: each row's 2nd, 3rd, … id as eos
    const eos = free.tokens.map((t, i) => t[Math.min(1 + i, 9)]);
    const o = { maxNewTokens: 10, temperature: 0, eosIds: eos } as const;
    const compacted = generate(model, PROMPTS, { ...o, compact: 0.2 });
    const plain = generate(model, PROMPTS, { ...o, compact: false });
    assert.ok(compacted.stats.compactions > 0, 'the batch was compacted');
    assert.equal(plain.stats.compactions, 0);
    PROMPTS.forEach((_, i) => sameAs(compacted, i, plain, i, `row ${i}`));
    assert.equal(
      compacted.stats.generatedTokens,
      compacted.tokens.reduce((a, t) => a + t.length, 0),
    );
  });

  test('streaming yields every id as it is made; the return value is the result', async () => {
    const o = { maxNewTokens: 6, temperature: 0.8, seed: 5, groupSize: 2, eosIds: [] } as const;
    const it = streamGenerate(model, PROMPTS.slice(0, 3), o);
    const seen: number[][] = Array.from({ length: 6 }, () => []);
    let step = 0;
    let n = await it.next();
    while (!n.done) {
      assert.equal(n.value.step, step++);
      for (const e of n.value.tokens) seen[e.row].push(e.token);
      n = await it.next();
    }
    assert.deepEqual(seen, n.value.tokens);
    assert.deepEqual(n.value.tokens, generate(model, PROMPTS.slice(0, 3), o).tokens, 'same seed, same samples as generate()');
  });

  test('stopping a stream early, or aborting it, frees the cache', async () => {
    const before = memoryStats().liveTensors;
    for await (const e of streamGenerate(model, PROMPTS, { maxNewTokens: 50, eosIds: [], seed: 1 })) if (e.step === 3) break;
    assert.equal(memoryStats().liveTensors, before);
    const ac = new AbortController();
    await assert.rejects(async () => {
      for await (const e of streamGenerate(model, PROMPTS, { maxNewTokens: 50, eosIds: [], seed: 1, signal: ac.signal })) if (e.step === 2) ac.abort();
    }, /abort/i);
    assert.equal(memoryStats().liveTensors, before);
  });

  test('no tensor outlives a generation; a training-mode model is back in training mode', () => {
    const m = new DeepSeekV3(tiny, { seed: 4 });
    const before = memoryStats().liveTensors;
    generate(m, PROMPTS, { maxNewTokens: 5, seed: 2, groupSize: 2, repetitionPenalty: 1.3, samplingLogprobs: true, entropy: true });
    assert.equal(memoryStats().liveTensors, before);
    assert.equal(m.training, true);
    for (const l of m.moeLayers())
      assert.ok(
        l.load().tokens.every((n) => n === 0),
        'generation does not count toward the expert load',
      );
  });

  test('the repetition penalty changes greedy choices away from repeats', () => {
    const prompt = [3]; // greedy decoding of this model repeats itself after it
    const plain = generate(model, [prompt], { maxNewTokens: 12, temperature: 0, eosIds: [] });
    assert.ok(new Set(plain.tokens[0]).size < 12, 'the plain completion repeats ids');
    const pen = generate(model, [prompt], { maxNewTokens: 12, temperature: 0, eosIds: [], repetitionPenalty: 1e6 });
    const seen = new Set(prompt);
    for (const t of pen.tokens[0]) {
      assert.ok(!seen.has(t), `id ${t} repeated under a huge penalty`);
      seen.add(t);
    }
  });

  test('clear errors: empty prompt, id outside the vocabulary, too long', () => {
    assert.throws(() => generate(model, [[]], { maxNewTokens: 4 }), /prompt 0 is empty/);
    assert.throws(() => generate(model, [[1, 256]], { maxNewTokens: 4 }), /prompt 0 holds 256 at index 1, outside the model's vocabulary \[0, 256\)/);
    assert.throws(() => generate(model, [[1, 2]], { maxNewTokens: 255 }), /needs 257 positions; the model has max_position_embeddings 256/);
    assert.throws(() => generate(model, [], { maxNewTokens: 4 }), /no prompts/);
    assert.throws(() => generate(model, [[1]], { maxNewTokens: 4, groupSize: 0 }), /groupSize must be a positive integer/);
  });
});
