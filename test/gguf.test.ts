/**
 * GGUF export: the writer's encodings on hand values, the header read back, and llama.cpp itself
 * (node-llama-cpp's prebuilt CPU build, llama.cpp v0.4.0) running exported files: the same tokens
 * from the same text, the same next-token log-probabilities at every position, the same greedy
 * continuation.
 *
 * Tolerances (max |Δ log p| over every position and every token with log p > −15):
 *   f32 with an f32 KV cache   1e-3 (measured ~1e-5 on the tiny random models, 1.0e-4 on small-base
 *                              over an 87-token trace: float32 sums in another order)
 *   f16 with llama.cpp's default f16 KV cache   0.15 (measured 0.063 on the small-base of
 *   2026-12-02): ggml rounds the activations to f16 inside f16 matrix products and keeps the cached
 *   latent in f16, so the gap is llama.cpp's arithmetic, not the file (the same file with an f32
 *   cache: 0.006). The shipped base is compared on a trace in its own format: on the older trace
 *   format below, the base of 2026-12-04 showed 1.66 at the last position, in a tail token of a
 *   distribution it never learned.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type Llama, type LlamaModel, LlamaLogLevel, type Token, getLlama } from 'node-llama-cpp';
import { exportGguf } from '../src/cli/export.ts';
import { noGrad, tensor, tidy } from '../src/core/index.ts';
import { generate } from '../src/engine/index.ts';
import { type GgufValue, encodeTensor, fromHalf, readGgufHeader, toBf16, toHalf, writeGguf } from '../src/io/gguf.ts';
import { loadCheckpoint, saveCheckpoint } from '../src/model/checkpoint.ts';
import { type ModelConfigInput, loadPreset, parseConfig } from '../src/model/config.ts';
import { type GgufDType, splitKvB } from '../src/model/gguf.ts';
import { DeepSeekV3 } from '../src/model/transformer.ts';
import { Tokenizer } from '../src/tokenizer/index.ts';

const root = mkdtempSync(join(tmpdir(), 'tinyseek-gguf-'));
after(() => rmSync(root, { recursive: true, force: true }));
const SMALL = join(import.meta.dirname, '..', 'checkpoints', 'small-base');
const tok = Tokenizer.load(join(SMALL, 'tokenizer.json'));

describe('the GGUF writer', () => {
  test('half, bfloat16 and q8_0 encodings on hand values', () => {
    assert.equal(toHalf(1), 0x3c00);
    assert.equal(toHalf(-2), 0xc000);
    assert.equal(toHalf(65504), 0x7bff);
    assert.equal(toHalf(1e6), 0x7c00, 'overflow to +inf');
    assert.equal(toHalf(2 ** -24), 0x0001, 'the smallest subnormal');
    assert.equal(toHalf(1 + 2 ** -11), 0x3c00, 'a tie rounds to even');
    assert.equal(fromHalf(toHalf(0.1)), 0.0999755859375);
    assert.equal(toBf16(1), 0x3f80);
    assert.equal(toBf16(1 + 2 ** -8), 0x3f80, 'a tie rounds to even');
    const x = Float32Array.from({ length: 32 }, (_, i) => i - 16); // max |x| = 16
    const q = encodeTensor('q8_0', x);
    assert.equal(q.length, 34);
    const dv = new DataView(q.buffer);
    assert.equal(dv.getUint16(0, true), toHalf(16 / 127));
    assert.equal(dv.getInt8(2), -127);
    assert.equal(dv.getInt8(2 + 24), Math.round((8 * 127) / 16)); // x = 8
    assert.throws(() => encodeTensor('q8_0', new Float32Array(31)), /multiple of 32/);
  });

  test('a written file reads back: metadata, row-major shapes, types, aligned offsets', () => {
    const file = join(root, 'w.gguf');
    const md = new Map<string, GgufValue>([
      ['general.architecture', { type: 'string', value: 'deepseek2' }],
      ['a.u', { type: 'u32', value: 7 }],
      ['a.f', { type: 'f32', value: 0.5 }],
      ['a.b', { type: 'bool', value: true }],
      ['a.s', { type: 'array', itemType: 'string', value: ['x', 'y z'] }],
      ['a.i', { type: 'array', itemType: 'i32', value: [1, -3] }],
    ]);
    writeGguf(file, md, [
      { name: 'm', shape: [3, 32], type: 'q8_0', data: () => new Float32Array(96) },
      { name: 'v', shape: [5], type: 'f32', data: () => new Float32Array(5) },
      { name: 'h', shape: [2, 3, 4], type: 'f16', data: () => new Float32Array(24) },
    ]);
    const h = readGgufHeader(file);
    assert.equal(h.metadata.get('general.architecture'), 'deepseek2');
    assert.equal(h.metadata.get('a.u'), 7);
    assert.equal(h.metadata.get('a.f'), 0.5);
    assert.equal(h.metadata.get('a.b'), true);
    assert.deepEqual(h.metadata.get('a.s'), ['x', 'y z']);
    assert.deepEqual(h.metadata.get('a.i'), [1, -3]);
    assert.deepEqual(
      h.tensors.map((t) => [t.name, t.shape, t.type, t.offset]),
      [
        ['m', [3, 32], 'q8_0', 0],
        ['v', [5], 'f32', 128], // 102 bytes, aligned to 32
        ['h', [2, 3, 4], 'f16', 160],
      ],
    );
    assert.equal(h.dataStart % 32, 0);
    assert.throws(() => writeGguf(file, md, [{ name: 'q', shape: [2, 20], type: 'q8_0', data: () => new Float32Array(40) }]), /write it as f16/);
    assert.throws(() => writeGguf(join(root, 'bad.gguf'), new Map([['k', { type: 'u32', value: -1 }]]), []), /not a valid u32/);
  });

  test("kv_b splits into llama.cpp's attn_k_b (transposed per head) and attn_v_b", () => {
    // 2 heads, nope 2, v 1, kv_lora 3: rows per head [k0, k1, v0]
    const w = Float32Array.from({ length: 2 * 3 * 3 }, (_, i) => i);
    const { kB, vB } = splitKvB(w, 2, 2, 1, 3);
    // head 0: K rows [0 1 2], [3 4 5] → transposed [[0 3], [1 4], [2 5]]; V row [6 7 8]
    assert.deepEqual([...kB.subarray(0, 6)], [0, 3, 1, 4, 2, 5]);
    assert.deepEqual([...vB.subarray(0, 3)], [6, 7, 8]);
    assert.deepEqual([...kB.subarray(6)], [9, 12, 10, 13, 11, 14]);
    assert.deepEqual([...vB.subarray(3)], [15, 16, 17]);
  });
});

const PROMPTS = [
  'User: Using the numbers [3, 7, 12], create an equation that equals 19. Assistant: <think>',
  '<｜User｜>Using the numbers [11, 2, 18], create an equation that equals 7.<｜Assistant｜><think>\n11+2=13. 18-11=7.\n</think>\n\n<answer>18 - 11</answer>',
];

/** tinyseek's log-probabilities, (S, V), for one sequence. */
function ourLogProbs(model: DeepSeekV3, ids: readonly number[]): number[][] {
  model.eval();
  return tidy(() =>
    noGrad(
      () =>
        model
          .forward(tensor(BigInt64Array.from(ids, BigInt), { shape: [1, ids.length] }))
          .logits.logSoftmax(-1)
          .squeeze(0)
          .tolist() as number[][],
    ),
  );
}

type KvType = 'F32' | 'F16';

/** node-llama-cpp brands token ids; tinyseek's are plain numbers of the same vocabulary. */
const asToken = (id: number): Token => id as unknown as Token;

/** llama.cpp's next-token distribution after each prefix of `ids`, as log-probabilities (S, V). */
async function llamaLogProbs(m: LlamaModel, ids: readonly number[], vocab: number, kv: KvType): Promise<number[][]> {
  const ctx = await m.createContext({ contextSize: 256, threads: 1, experimentalKvCacheKeyType: kv, experimentalKvCacheValueType: kv });
  try {
    const options = { temperature: 1, topK: 0, topP: 1, minP: 0 };
    const res = await ctx.getSequence().controlledEvaluate(ids.map((t) => [asToken(t), { generateNext: { probabilities: true, options } }] as const));
    return res.map((r, t) => {
      const p = r?.next?.probabilities;
      assert.ok(p, `llama.cpp returned no distribution at position ${t}`);
      return Array.from({ length: vocab }, (_, v) => Math.log(p.get(asToken(v)) ?? 0));
    });
  } finally {
    await ctx.dispose();
  }
}

/** max |a − b| over positions and tokens where tinyseek's log p > −15 (the rest underflow in llama.cpp's f32 softmax). */
function maxGap(a: number[][], b: number[][]): { gap: number; at: number } {
  let gap = 0;
  let at = -1;
  a.forEach((row, t) =>
    row.forEach((x, v) => {
      const d = Math.abs(x - (b[t]?.[v] ?? Number.NaN));
      if (x > -15 && !(d <= gap)) [gap, at] = [d, t];
    }),
  );
  return { gap, at };
}

/** llama.cpp's greedy continuation of `ids`, `n` tokens. */
async function llamaGreedy(m: LlamaModel, ids: readonly number[], n: number, kv: KvType): Promise<number[]> {
  const ctx = await m.createContext({ contextSize: 256, threads: 1, experimentalKvCacheKeyType: kv, experimentalKvCacheValueType: kv });
  try {
    const out: number[] = [];
    for await (const t of ctx.getSequence().evaluate(ids.map(asToken), { temperature: 0 })) {
      out.push(Number(t));
      if (out.length === n) break;
    }
    return out;
  } finally {
    await ctx.dispose();
  }
}

describe('llama.cpp runs the exported model', () => {
  let llama: Llama;
  before(async () => {
    llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error });
  });
  after(async () => {
    await llama?.dispose();
  });

  test('the tokenizer: llama.cpp splits text as tinyseek does (digits, spaces, newlines, added tokens)', async () => {
    const file = join(root, 'small-f16.gguf');
    exportGguf(SMALL, file, 'f16');
    const m = await llama.loadModel({ modelPath: file });
    try {
      const texts = [...PROMPTS, "  It's 2026!\n\n\tdon't  stop 123456 (x) <answer>7</answer> ... Ünïcödé ☃", 'a\r\nb  \n  c'];
      for (const text of texts) assert.deepEqual([...m.tokenize(text, true)], tok.encode(text, { allowSpecial: true }), text);
      assert.equal(m.tokens.bos, tok.special.bos);
      assert.equal(m.tokens.eos, tok.special.eos);
    } finally {
      await m.dispose();
    }
  });

  const TRACE = `${PROMPTS[0]} 3 + 7 = 10. 12 + 10 = 22, not 19. 12 + 7 = 19. That works!</think> <answer>12 + 7</answer>`;

  // the shipped model's own trace format (the search corpus's): what it is run on, and where its
  // distributions are the ones it learned — off its format, f16's rounding shows in the tails
  const SHIPPED_TRACE =
    'User: Using the numbers [3, 7, 12], create an equation that equals 33. Think in <think> </think>, answer in <answer> </answer>.\nAssistant: <think>\n' +
    '3, 7 (12) to 33:\n3+7=10. 10+12=22.\n3*7=21. 21+12=33 reached.\nCheck: 3*7=21, 21+12=33. 33 is the target. Uses 3, 7, 12, each once.\n</think>\n<answer>3 * 7 + 12</answer>';

  const agrees = async (dir: string, dtype: GgufDType, kv: KvType, model: DeepSeekV3, tolerance: number, label: string, text = TRACE): Promise<LlamaModel> => {
    const file = join(root, `${label}-${dtype}.gguf`);
    exportGguf(dir, file, dtype);
    const m = await llama.loadModel({ modelPath: file });
    const ids = [tok.special.bos, ...tok.encode(text, { allowSpecial: true })];
    const { gap, at } = maxGap(ourLogProbs(model, ids), await llamaLogProbs(m, ids, tok.vocabSize, kv));
    assert.ok(gap < tolerance, `${label} ${dtype} (${kv} cache): max |Δ log p| ${gap.toExponential(2)} at position ${at} of ${ids.length}, over ${tolerance}`);
    return m;
  };

  // tiny random V3s (weights std 0.2, so the distributions are far from uniform) cover the
  // architecture's switches: query compression or none, sigmoid + group-limited routing with the
  // aux-free bias or softmax greedy routing, routed scaling, a dense first layer or none, YaRN, MTP
  const VARIANTS: Record<string, Partial<ModelConfigInput>> = {
    'V3 (q_lora, sigmoid, 4 groups, MTP)': {},
    'no query compression, softmax routing': {
      q_lora_rank: null,
      scoring_func: 'softmax',
      topk_method: 'greedy',
      n_group: 1,
      topk_group: 1,
      norm_topk_prob: false,
    },
    'YaRN ×4, routed scale 2.5, no dense layer': {
      rope_scaling: { type: 'yarn', factor: 4, original_max_position_embeddings: 16, beta_fast: 32, beta_slow: 1, mscale: 1, mscale_all_dim: 1 },
      routed_scaling_factor: 2.5,
      first_k_dense_replace: 0,
    },
  };
  for (const [label, over] of Object.entries(VARIANTS)) {
    test(`f32: next-token log-probabilities at every position within 1e-3 — ${label}`, async () => {
      const dir = join(root, label.replace(/\W+/g, '-'));
      const config = parseConfig({ ...loadPreset('tiny'), vocab_size: tok.vocabSize, max_position_embeddings: 256, initializer_range: 0.2, ...over });
      const model = new DeepSeekV3(config, { seed: 3 });
      await saveCheckpoint(dir, model);
      copyFileSync(join(SMALL, 'tokenizer.json'), join(dir, 'tokenizer.json'));
      const m = await agrees(dir, 'f32', 'F32', model, 1e-3, 'tiny');
      await m.dispose();
    });
  }

  test('the shipped small-base: f32 and f16 agree (1e-3 and 0.15) and continue greedily with the same 40 tokens', async () => {
    const model = loadCheckpoint(SMALL);
    const ids = [tok.special.bos, ...tok.encode(PROMPTS[0], { allowSpecial: true })];
    const ours = generate(model, [ids], { maxNewTokens: 40, temperature: 0, eosIds: [] }).tokens[0];
    for (const [dtype, kv, tolerance] of [
      ['f32', 'F32', 1e-3],
      ['f16', 'F16', 0.15],
    ] as const) {
      const m = await agrees(SMALL, dtype, kv, model, tolerance, 'small-base', SHIPPED_TRACE);
      try {
        assert.deepEqual(await llamaGreedy(m, ids, 40, kv), ours, `${dtype}: llama.cpp's greedy continuation differs from tinyseek's`);
      } finally {
        await m.dispose();
      }
    }
  });
});
