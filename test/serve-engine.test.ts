// The serving engine: continuous batching over the paged KV cache gives the same tokens as the
// plain batched decoder; prefix-cache hits, chunked prefill, preemption and the disk cache leave
// the output unchanged; blocks are counted back.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { inferenceMode, tensor, tidy } from '../src/core/index.ts';
import { generate } from '../src/engine/index.ts';
import { BlockManager, blockHash, rootHash } from '../src/engine/block-manager.ts';
import { Engine, type EngineEvent, type EngineOptions, type EngineRequest } from '../src/engine/scheduler.ts';
import { RowSampler } from '../src/engine/row-sampler.ts';
import { loadPreset, parseConfig } from '../src/model/config.ts';
import { DeepSeekV3 } from '../src/model/transformer.ts';

const model = new DeepSeekV3(parseConfig({ ...loadPreset('tiny'), vocab_size: 64, max_position_embeddings: 128, eos_token_id: null }), { seed: 7 });
const greedy = { temperature: 0, topP: 1, topK: 0, presencePenalty: 0, frequencyPenalty: 0, topLogprobs: 0 };
const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function prompt(n: number, seed: number): number[] {
  return Array.from({ length: n }, (_, i) => (seed * 31 + i * 7) % 64);
}

function request(id: string, p: number[], maxTokens: number, extra: Partial<EngineRequest> = {}): EngineRequest {
  return { id, prompt: p, maxTokens, sampling: greedy, namespace: 'k1', ...extra };
}

/** Runs the engine until every request has ended; returns each request's tokens and events. */
function drain(engine: Engine, onStep?: (step: number) => void): Map<string, { tokens: number[]; events: EngineEvent[] }> {
  const out = new Map<string, { tokens: number[]; events: EngineEvent[] }>();
  for (let step = 0; engine.busy; step++) {
    onStep?.(step);
    for (const e of engine.step()) {
      const r = out.get(e.id) ?? { tokens: [], events: [] };
      r.tokens.push(...e.tokens.map((t) => t.token));
      r.events.push(e);
      out.set(e.id, r);
    }
    assert.ok(step < 10_000, 'the engine must finish');
  }
  return out;
}

function reference(prompts: number[][], maxTokens: number): number[][] {
  return prompts.map((p) => generate(model, [p], { maxNewTokens: maxTokens, temperature: 0, eosIds: [] }).tokens[0]);
}

describe('serving engine', () => {
  const prompts = [prompt(5, 1), prompt(13, 2), prompt(9, 3), prompt(30, 4), prompt(1, 5)];
  const want = reference(prompts, 12);

  const cases: [string, EngineOptions][] = [
    ['blocks of 4, chunks of 3', { blockSize: 4, prefillChunk: 3, maxBatch: 8 }],
    ['one block per sequence, one chunk', { blockSize: 64, prefillChunk: 64, maxBatch: 2 }],
    ['a pool too small for all: preemption by recompute', { blockSize: 4, prefillChunk: 8, maxBatch: 8, numBlocks: 14 }],
  ];
  for (const [name, o] of cases) {
    test(`greedy tokens equal the batched decoder's (${name})`, () => {
      const engine = new Engine(model, { ...o, prefixCaching: false });
      prompts.forEach((p, i) => engine.add(request(`r${i}`, p, 12)));
      const got = drain(engine);
      prompts.forEach((_, i) => {
        assert.deepEqual(got.get(`r${i}`)!.tokens, want[i], `request ${i}`);
        assert.equal(got.get(`r${i}`)!.events.at(-1)!.finish, 'length');
      });
      assert.equal(engine.stats.blocksInUse, 0, 'every block came back');
      if (o.numBlocks) assert.ok(engine.stats.preemptions > 0, 'the small pool preempted');
      engine.dispose();
    });
  }

  test('requests join while others decode, and leave at any step (abort)', () => {
    const engine = new Engine(model, { blockSize: 4, prefillChunk: 4, prefixCaching: false });
    engine.add(request('a', prompts[0], 12));
    engine.add(request('gone', prompts[2], 12));
    const got = drain(engine, (step) => {
      if (step === 3) engine.add(request('b', prompts[1], 12));
      if (step === 5) engine.abort('gone');
    });
    assert.deepEqual(got.get('a')!.tokens, want[0]);
    assert.deepEqual(got.get('b')!.tokens, want[1]);
    assert.equal(got.get('gone')!.events.at(-1)!.finish, 'abort');
    assert.ok(got.get('gone')!.tokens.length < 12);
    assert.equal(engine.stats.blocksInUse, 0);
    engine.dispose();
  });

  test('a repeated prefix hits in whole blocks, a full hit still computes its last token, and the output is unchanged', () => {
    const engine = new Engine(model, { blockSize: 8, prefillChunk: 16 });
    const long = prompt(30, 4);
    engine.add(request('first', long, 12));
    const a = drain(engine).get('first')!;
    assert.equal(a.events[0].cachedTokens, 0);
    engine.add(request('again', long, 12));
    const b = drain(engine).get('again')!;
    assert.equal(b.events[0].cachedTokens, 24, 'three full blocks of 8 of the 30-token prompt');
    assert.deepEqual(b.tokens, want[3]);
    const exact = long.slice(0, 24);
    engine.add(request('exact', exact, 5));
    const c = drain(engine).get('exact')!;
    assert.equal(c.events[0].cachedTokens, 24, 'all three blocks hit');
    assert.deepEqual(c.tokens, reference([exact], 5)[0]);
    engine.add(request('other-key', long, 12, { namespace: 'k2' }));
    assert.equal(drain(engine).get('other-key')!.events[0].cachedTokens, 0, 'another namespace never hits');
    const changed = [...long];
    changed[0] = (changed[0] + 1) % 64;
    engine.add(request('changed', changed, 3));
    assert.equal(drain(engine).get('changed')!.events[0].cachedTokens, 0, 'only a prefix identical from token 0 hits');
    assert.equal(engine.stats.blocksInUse, 0);
    engine.dispose();
  });

  test('the disk cache serves hits after a restart', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tinyseek-kv-'));
    dirs.push(dir);
    const long = prompt(30, 4);
    const e1 = new Engine(model, { blockSize: 8, diskDir: dir, cacheSalt: 'tiny-7' });
    e1.add(request('x', long, 12));
    drain(e1);
    assert.ok(e1.stats.diskBlocks >= 3);
    e1.dispose();
    const e2 = new Engine(model, { blockSize: 8, diskDir: dir, cacheSalt: 'tiny-7' });
    e2.add(request('y', long, 12));
    const y = drain(e2).get('y')!;
    assert.equal(y.events[0].cachedTokens, 24);
    assert.deepEqual(y.tokens, want[3]);
    e2.dispose();
    const e3 = new Engine(model, { blockSize: 8, diskDir: dir, cacheSalt: 'another model' });
    e3.add(request('z', long, 2));
    assert.equal(drain(e3).get('z')!.events[0].cachedTokens, 0, 'a cache written for another model is not read');
    e3.dispose();
  });

  test('a seeded request draws the same tokens whatever shares its batch', () => {
    const sampling = { ...greedy, temperature: 1, topP: 0.9, topK: 20 };
    const alone = new Engine(model, { blockSize: 4, prefixCaching: false });
    alone.add(request('s', prompts[1], 10, { sampling, seed: 42 }));
    const a = drain(alone).get('s')!.tokens;
    const shared = new Engine(model, { blockSize: 4, prefixCaching: false });
    shared.add(request('n1', prompts[0], 10, { sampling, seed: 1 }));
    shared.add(request('s', prompts[1], 10, { sampling, seed: 42 }));
    shared.add(request('n2', prompts[3], 10, { sampling, seed: 2 }));
    assert.deepEqual(drain(shared).get('s')!.tokens, a);
    alone.dispose();
    shared.dispose();
  });

  test('a request that can never fit is refused with the reason', () => {
    const engine = new Engine(model, { blockSize: 4, numBlocks: 5 });
    assert.throws(() => engine.add(request('big', prompt(10, 1), 20)), /needs 8 KV blocks of 4; the pool has 4/);
    assert.throws(() => engine.add(request('long', prompt(100, 1), 50)), /150 positions; the model has 128/);
    assert.throws(() => engine.add(request('bad', [999], 2)), /outside the vocabulary/);
    engine.dispose();
  });
});

describe('block manager', () => {
  test('counts, sharing, and a freed block that keeps its hash until it is reused', () => {
    const m = new BlockManager(4, 2);
    const root = rootHash('ns', 'salt');
    const h = blockHash(root, [1, 2]);
    const a = m.allocate()!;
    m.register(a, h, [1, 2]);
    assert.equal(m.lookup(h, [1, 2]), a);
    assert.equal(m.lookup(h, [1, 3]), null, 'verified against the ids');
    m.release(a);
    m.release(a);
    assert.equal(m.inUse, 0);
    assert.equal(m.lookup(h, [1, 2]), a, 'still findable when free');
    m.release(a);
    const b = m.allocate()!;
    const c = m.allocate()!;
    assert.notEqual(b, a);
    assert.notEqual(c, a);
    const d = m.allocate()!;
    assert.equal(d, a, 'the cached block is reused last');
    assert.equal(m.lookup(h, [1, 2]), null, 'and then forgotten');
    assert.equal(m.allocate(), null);
  });

  test('the chained hash depends on every earlier block and the namespace', () => {
    const r1 = rootHash('a', 's');
    const r2 = rootHash('b', 's');
    assert.notEqual(blockHash(r1, [1, 2]), blockHash(r2, [1, 2]));
    assert.notEqual(blockHash(blockHash(r1, [1, 2]), [3, 4]), blockHash(blockHash(r1, [1, 5]), [3, 4]));
  });
});

describe('row sampler', () => {
  test('greedy, top-k 1, penalties and the allowed set', () => {
    const logits = Float32Array.from([1, 3, 2, 0]);
    const g = new RowSampler(greedy, 1);
    assert.equal(g.choose(logits).token, 1);
    assert.equal(g.choose(logits, (id) => id !== 1).token, 2);
    const k1 = new RowSampler({ ...greedy, temperature: 1, topK: 1 }, 1);
    for (let i = 0; i < 5; i++) assert.equal(k1.choose(logits).token, 1);
    const pen = new RowSampler({ ...greedy, presencePenalty: 0.5, frequencyPenalty: 1 }, 1);
    pen.observe(1);
    assert.equal(pen.choose(logits).token, 2, '3 − 0.5 − 1 < 2');
    const top = new RowSampler({ ...greedy, topLogprobs: 2 }, 1).choose(logits);
    const lse = Math.log([1, 3, 2, 0].reduce((a, x) => a + Math.exp(x), 0));
    assert.ok(Math.abs(top.logprob - (3 - lse)) < 1e-6);
    assert.deepEqual(
      top.top.map((t) => t.token),
      [1, 2],
    );
  });
});

describe('speculative decoding with the MTP module', () => {
  const mtpModel = new DeepSeekV3(
    parseConfig({ ...loadPreset('tiny'), vocab_size: 64, max_position_embeddings: 128, eos_token_id: null, num_nextn_predict_layers: 1 }),
    {
      seed: 11,
    },
  );
  const prompts = [prompt(5, 1), prompt(13, 2), prompt(30, 4), prompt(2, 6)];

  function run(o: EngineOptions, reqs: EngineRequest[]): Map<string, number[]> {
    const engine = new Engine(mtpModel, o);
    for (const r of reqs) engine.add(r);
    const out = new Map<string, number[]>();
    while (engine.busy) for (const e of engine.step()) out.set(e.id, [...(out.get(e.id) ?? []), ...e.tokens.map((t) => t.token)]);
    assert.equal(engine.stats.blocksInUse, 0);
    if (engine.speculative) assert.ok(engine.stats.draftsProposed > 0);
    engine.dispose();
    return out;
  }

  test('greedy output is the same with and without drafts, across blocks, chunks and a small pool', () => {
    const reqs = prompts.map((p, i) => request(`r${i}`, p, 20));
    const plain = run({ blockSize: 4, prefillChunk: 5, speculative: false }, reqs);
    const want = prompts.map((p) => generate(mtpModel, [p], { maxNewTokens: 20, temperature: 0, eosIds: [] }).tokens[0]);
    prompts.forEach((_, i) => assert.deepEqual(plain.get(`r${i}`), want[i]));
    for (const o of [
      { blockSize: 4, prefillChunk: 5 },
      { blockSize: 16, prefillChunk: 64 },
      { blockSize: 4, prefillChunk: 8, numBlocks: 20 },
    ]) {
      const spec = run(o, reqs);
      prompts.forEach((_, i) => assert.deepEqual(spec.get(`r${i}`), want[i], `request ${i} with ${JSON.stringify(o)}`));
    }
  });

  test('a draft that agrees with the main model is kept: an MTP module that copies the main head is always right under greedy decoding', () => {
    // The MTP module's prediction of t_{i+2} from (h_i, t_{i+1}) cannot be forced right in general,
    // but the acceptance is measured: it is between 0 and 1, and each kept draft is one token free.
    const engine = new Engine(mtpModel, { blockSize: 8 });
    engine.add(request('a', prompts[2], 40));
    let steps = 0;
    let tokens = 0;
    while (engine.busy) {
      steps++;
      for (const e of engine.step()) tokens += e.tokens.length;
    }
    const s = engine.stats;
    assert.equal(tokens, 40);
    assert.ok(s.draftsAccepted <= s.draftsProposed);
    assert.equal(
      tokens,
      1 + s.draftsProposed + s.draftsAccepted,
      'one token per verification, one more per kept draft (the first token comes from the prefill)',
    );
    assert.ok(steps <= 41);
    engine.dispose();
  });

  test('sampled: the second token follows the main model distribution with drafts (speculative sampling)', () => {
    const sampling = { ...greedy, temperature: 0.7 };
    const p = prompt(6, 3);
    const n = 600;
    const reqs = Array.from({ length: n }, (_, i) => request(`s${i}`, p, 2, { sampling, seed: i }));
    const spec = run({ blockSize: 8, maxBatch: 64 }, reqs);
    // the exact marginal of the second token: Σ_a p(a) p(b | a)
    const first = softmaxRow(lastLogits(mtpModel, p), 0.7);
    const exact = new Float64Array(64);
    first.forEach((pa, a) => {
      if (pa < 1e-4) return;
      softmaxRow(lastLogits(mtpModel, [...p, a]), 0.7).forEach((pb, b) => {
        exact[b] += pa * pb;
      });
    });
    const counts = new Float64Array(64);
    for (const t of spec.values()) counts[t[1]]++;
    let tv = 0;
    for (let b = 0; b < 64; b++) tv += Math.abs(counts[b] / n - exact[b]) / 2;
    assert.ok(tv < 0.12, `total variation ${tv.toFixed(3)} from the exact distribution`);
  });
});

function lastLogits(m: DeepSeekV3, ids: number[]): Float32Array {
  return inferenceMode(() =>
    tidy(
      () =>
        m
          .forward(tensor(Int32Array.from(ids), { shape: [1, ids.length], dtype: 'int64' }))
          .logits.narrow(1, ids.length - 1, 1)
          .reshape([-1])
          .toTypedArray() as Float32Array,
    ),
  );
}

function softmaxRow(x: Float32Array, t: number): Float64Array {
  const max = Math.max(...x);
  const e = Float64Array.from(x, (v) => Math.exp((v - max) / t));
  const z = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / z);
}
