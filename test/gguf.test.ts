/**
 * GGUF export: the writer's encodings on hand values, the header read back, and llama.cpp itself
 * (node-llama-cpp's prebuilt CPU build, llama.cpp v0.4.0) loading an exported file and splitting
 * text into the same tokens as tinyseek.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type Llama, LlamaLogLevel, getLlama } from 'node-llama-cpp';
import { exportGguf } from '../src/cli/export.ts';
import { type GgufValue, encodeTensor, fromHalf, readGgufHeader, toBf16, toHalf, writeGguf } from '../src/io/gguf.ts';
import { splitKvB } from '../src/model/gguf.ts';
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
});
