/**
 * Checkpoints in the Hugging Face DeepSeek-V3 layout: round trips (single file, sharded, float32
 * exact, bfloat16/float16 close), DeepSeek's tensor names, FP8 (E4M3 + block scales) loading, the
 * errors a broken checkpoint gives, and the atomicity of saving.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DisposedTensorError, type Tensor, fromTypedArray, tensor, zeros } from '../src/core/index.ts';
import { SafetensorsError, SafetensorsFile, loadSafetensors, saveSafetensors } from '../src/io/safetensors.ts';
import {
  CheckpointError,
  INDEX_FILE,
  WEIGHTS_FILE,
  decodeE4M3,
  e4m3ToNumber,
  loadCheckpoint,
  loadWeightsInto,
  saveCheckpoint,
} from '../src/model/checkpoint.ts';
import { loadPreset } from '../src/model/config.ts';
import { tensorSpecs } from '../src/model/params.ts';
import { DeepSeekV3 } from '../src/model/transformer.ts';

let root = '';
let base = ''; // a float32 single-file checkpoint of model(0), read-only for the tests
let ref: DeepSeekV3;
let refLogits: Float32Array;

const IDS = [
  [1, 2, 3, 4, 5, 6, 7, 8],
  [200, 17, 33, 90, 255, 0, 12, 99],
];

function model(seed: number): DeepSeekV3 {
  return new DeepSeekV3(loadPreset('tiny'), { seed }).eval();
}

function logits(m: DeepSeekV3): Float32Array {
  return m
    .forward(tensor(IDS, { dtype: 'int64' }))
    .logits.float()
    .toTypedArray() as Float32Array;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

function maxAbs(a: Float32Array): number {
  let m = 0;
  for (const v of a) m = Math.max(m, Math.abs(v));
  return m;
}

/** A fresh directory path (not created) under the test root. */
let counter = 0;
function fresh(name: string): string {
  return path.join(root, `${name}-${counter++}`);
}

/** A copy of the base checkpoint to break. */
function copyOfBase(name: string): string {
  const d = fresh(name);
  fs.cpSync(base, d, { recursive: true });
  return d;
}

/** Every tensor name across the weight files of a checkpoint directory, with its file. */
function storedNames(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const f of fs.readdirSync(dir).filter((n) => n.endsWith('.safetensors'))) {
    const sf = SafetensorsFile.open(path.join(dir, f));
    for (const n of sf.names) out.set(n, f);
    sf.close();
  }
  return out;
}

/** Entries of the parent of `dir` that a save may leave behind (.name.tmp-*, .name.old-*). */
function leftovers(dir: string): string[] {
  const prefix = `.${path.basename(dir)}.`;
  return fs.readdirSync(path.dirname(dir)).filter((n) => n.startsWith(prefix));
}

function expectCheckpointError(fn: () => unknown, check: (e: CheckpointError) => void): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof CheckpointError, `expected a CheckpointError, got ${String(e)}`);
    check(e);
    return true;
  });
}

before(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'tinyseek-checkpoint-'));
  ref = model(0);
  refLogits = logits(ref);
  base = path.join(root, 'base');
  await saveCheckpoint(base, ref);
});

after(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

// ---- round trips --------------------------------------------------------------------------------------

describe('save and load', () => {
  test('float32 single file: identical logits and weights, config preserved', () => {
    assert.deepEqual(fs.readdirSync(base).sort(), ['config.json', WEIGHTS_FILE]);
    const m = loadCheckpoint(base);
    assert.deepEqual(logits(m), refLogits, 'float32 round trip is exact');
    const a = ref.stateDict();
    for (const [k, t] of m.stateDict()) assert.deepEqual(t.toBytes(), a.get(k)?.toBytes(), k);
    const cfg = JSON.parse(fs.readFileSync(path.join(base, 'config.json'), 'utf8'));
    assert.equal(cfg.architectures[0], 'DeepseekV3ForCausalLM');
    assert.equal(cfg.torch_dtype, 'float32');
    assert.deepEqual({ ...m.config }, { ...ref.config });
    const sf = SafetensorsFile.open(path.join(base, WEIGHTS_FILE));
    assert.equal(sf.metadata?.format, 'pt');
    sf.close();
  });

  test("the files hold exactly tensorSpecs' names, DeepSeek's MTP names and the shared copies", () => {
    const names = storedNames(base);
    const specs = tensorSpecs(ref.config);
    assert.deepEqual([...names.keys()].sort(), specs.map((s) => s.name).sort());
    for (const n of [
      'model.embed_tokens.weight',
      'lm_head.weight',
      'model.norm.weight',
      'model.layers.0.self_attn.kv_a_proj_with_mqa.weight',
      'model.layers.0.mlp.gate_proj.weight',
      'model.layers.1.mlp.gate.e_score_correction_bias',
      'model.layers.1.mlp.experts.7.down_proj.weight',
      'model.layers.1.mlp.shared_experts.up_proj.weight',
      'model.layers.2.enorm.weight',
      'model.layers.2.hnorm.weight',
      'model.layers.2.eh_proj.weight',
      'model.layers.2.shared_head.norm.weight',
      'model.layers.2.embed_tokens.weight',
      'model.layers.2.shared_head.head.weight',
      'model.layers.2.self_attn.q_a_proj.weight',
    ]) {
      assert.ok(names.has(n), `${n} is in the checkpoint`);
    }
    const sf = SafetensorsFile.open(path.join(base, WEIGHTS_FILE));
    assert.deepEqual(sf.readRaw('model.layers.2.embed_tokens.weight'), sf.readRaw('model.embed_tokens.weight'));
    assert.deepEqual(sf.readRaw('model.layers.2.shared_head.head.weight'), sf.readRaw('lm_head.weight'));
    sf.close();
  });

  test('sharded: HF file names, an index covering every tensor, identical logits', async () => {
    const dir = fresh('sharded');
    const r = await saveCheckpoint(dir, ref, { maxShardBytes: 100_000, metadata: { note: 'test' } });
    const n = r.files.length;
    assert.ok(n > 2, `${n} shards`);
    const files = fs.readdirSync(dir).sort();
    assert.ok(!files.includes(WEIGHTS_FILE));
    const shards = files.filter((f) => f.endsWith('.safetensors'));
    const pad = String(n).padStart(5, '0');
    assert.deepEqual(
      shards,
      Array.from({ length: n }, (_, i) => `model-${String(i + 1).padStart(5, '0')}-of-${pad}.safetensors`),
    );

    const index = JSON.parse(fs.readFileSync(path.join(dir, INDEX_FILE), 'utf8'));
    assert.deepEqual(Object.keys(index), ['metadata', 'weight_map']);
    const stored = storedNames(dir);
    assert.deepEqual(new Map(Object.entries(index.weight_map)), stored, 'weight_map names every tensor with its file');
    assert.deepEqual(Object.keys(index.weight_map), [...Object.keys(index.weight_map)].sort(), 'sorted keys, as json.dumps(sort_keys=True)');
    let total = 0;
    for (const f of shards) {
      const sf = SafetensorsFile.open(path.join(dir, f));
      let bytes = 0;
      for (const t of sf.names) bytes += sf.info(t).byteLength;
      // At most maxShardBytes of tensor data, unless one tensor alone is larger (HF's rule).
      assert.ok(bytes <= 100_000 || sf.names.length === 1, `${f}: ${bytes} bytes in ${sf.names.length} tensors`);
      assert.equal(sf.metadata?.note, 'test');
      assert.equal(sf.metadata?.format, 'pt');
      sf.close();
      total += bytes;
    }
    assert.equal(index.metadata.total_size, total);
    assert.equal(r.totalBytes, total);

    const m = loadCheckpoint(dir);
    assert.deepEqual(logits(m), refLogits);
  });

  test('bfloat16 and float16 checkpoints load close to the float32 model', async () => {
    // Rounding each weight to bf16 (8 significant bits) or fp16 (11) perturbs it by at most
    // 2^-9 resp. 2^-12 relative; through the tiny model that moves logits by well under
    // 1e-2 resp. 2e-3 of the largest logit (measured: about 3e-3 and 4e-4).
    const scale = maxAbs(refLogits);
    for (const [dtype, tol, code] of [
      ['bfloat16', 1e-2, 'BF16'],
      ['float16', 2e-3, 'F16'],
    ] as const) {
      const dir = fresh(dtype);
      await saveCheckpoint(dir, ref, { dtype });
      const sf = SafetensorsFile.open(path.join(dir, WEIGHTS_FILE));
      assert.equal(sf.info('model.embed_tokens.weight').dtype, code);
      sf.close();
      assert.equal(JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')).torch_dtype, dtype);
      const m = loadCheckpoint(dir);
      assert.equal(m.model.embed_tokens.weight.dtype, 'float32');
      const d = maxAbsDiff(logits(m), refLogits);
      assert.ok(d > 0 && d <= tol * scale, `${dtype}: max |Δlogit| ${d} vs bound ${tol * scale}`);
    }
    // Loading into another dtype converts.
    const m16 = loadCheckpoint(base, { dtype: 'bfloat16' });
    assert.equal(m16.model.layers.at(0).input_layernorm.weight.dtype, 'bfloat16');
  });

  test('loadWeightsInto fills an existing model', () => {
    const m = model(1);
    assert.notDeepEqual(logits(m), refLogits);
    const r = loadWeightsInto(m, base);
    assert.equal(r.loaded, m.stateDict().size);
    assert.deepEqual(logits(m), refLogits);
  });
});

// ---- FP8 ----------------------------------------------------------------------------------------

/** Reference decoder built differently from the module's: float32 bit patterns. */
function refE4M3(b: number): number {
  const sign = b >> 7;
  const e = (b >> 3) & 15;
  const m = b & 7;
  if (e === 15 && m === 7) return NaN;
  const bits = new Uint32Array(1);
  const f = new Float32Array(bits.buffer);
  if (e === 0) {
    f[0] = m / 512; // subnormal: m · 2^-9, exact
    if (sign) f[0] = -f[0];
    return f[0];
  }
  bits[0] = (sign << 31) | ((e - 7 + 127) << 23) | (m << 20);
  return f[0];
}

/** Non-negative finite E4M3 values in byte order 0x00..0x7E (increasing). */
const POSITIVE = Array.from({ length: 0x7f }, (_, b) => refE4M3(b));

/** E4M3 byte nearest to x (binary search of the table; clamps to ±448). */
function encodeE4M3(x: number): number {
  const sign = x < 0 ? 0x80 : 0;
  const a = Math.min(Math.abs(x), 448);
  let lo = 0;
  let hi = POSITIVE.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (POSITIVE[mid] < a) lo = mid + 1;
    else hi = mid;
  }
  if (lo > 0 && a - POSITIVE[lo - 1] <= POSITIVE[lo] - a) lo--;
  return sign | lo;
}

interface RawEntry {
  name: string;
  dtype: string;
  shape: number[];
  bytes: Uint8Array;
}

/** Writes a safetensors file by hand (saveSafetensors cannot write F8_E4M3). */
function writeRaw(file: string, entries: RawEntry[]): void {
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const e of entries) {
    header[e.name] = { dtype: e.dtype, shape: e.shape, data_offsets: [offset, offset + e.bytes.byteLength] };
    offset += e.bytes.byteLength;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const h = Buffer.from(json, 'utf8');
  const out = Buffer.alloc(8 + h.byteLength + offset);
  out.writeBigUInt64LE(BigInt(h.byteLength), 0);
  h.copy(out, 8);
  let at = 8 + h.byteLength;
  for (const e of entries) {
    out.set(e.bytes, at);
    at += e.bytes.byteLength;
  }
  fs.writeFileSync(file, out);
}

/**
 * Writes an FP8 copy of the base checkpoint: each 2-D weight quantised per br×bc block with
 * scale = max|w|/448 and bytes = E4M3(w/scale), plus its float32 <name>_scale_inv; 1-D tensors
 * stay float32. Returns the per-element error bound check data.
 */
function writeFp8(dir: string, block: [number, number], o: { dropScale?: string; config?: object } = {}): void {
  fs.mkdirSync(dir, { recursive: true });
  const cfg = JSON.parse(fs.readFileSync(path.join(base, 'config.json'), 'utf8'));
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...cfg, ...o.config }));
  const sf = SafetensorsFile.open(path.join(base, WEIGHTS_FILE));
  const entries: RawEntry[] = [];
  for (const name of sf.names) {
    const info = sf.info(name);
    const raw = sf.readRaw(name);
    if (info.shape.length !== 2) {
      entries.push({ name, dtype: info.dtype, shape: info.shape, bytes: raw });
      continue;
    }
    const [R, C] = info.shape;
    const w = new Float32Array(raw.buffer, raw.byteOffset, R * C);
    const [br, bc] = block;
    const nr = Math.ceil(R / br);
    const nc = Math.ceil(C / bc);
    const scales = new Float32Array(nr * nc);
    const q = new Uint8Array(R * C);
    for (let bi = 0; bi < nr; bi++) {
      for (let bj = 0; bj < nc; bj++) {
        let max = 0;
        for (let i = bi * br; i < Math.min(R, (bi + 1) * br); i++)
          for (let j = bj * bc; j < Math.min(C, (bj + 1) * bc); j++) max = Math.max(max, Math.abs(w[i * C + j]));
        const s = Math.fround(max > 0 ? max / 448 : 1);
        scales[bi * nc + bj] = s;
        for (let i = bi * br; i < Math.min(R, (bi + 1) * br); i++)
          for (let j = bj * bc; j < Math.min(C, (bj + 1) * bc); j++) q[i * C + j] = encodeE4M3(w[i * C + j] / s);
      }
    }
    entries.push({ name, dtype: 'F8_E4M3', shape: [R, C], bytes: q });
    if (`${name}_scale_inv` !== o.dropScale) {
      entries.push({ name: `${name}_scale_inv`, dtype: 'F32', shape: [nr, nc], bytes: new Uint8Array(scales.buffer) });
    }
  }
  sf.close();
  writeRaw(path.join(dir, WEIGHTS_FILE), entries);
}

/**
 * Every weight of `m` is within FP8 rounding of the original. For |x| ≤ 448, E4M3 rounds to the
 * nearest of values spaced 2^(e-3) in [2^e, 2^(e+1)), so |x − q(x)| ≤ 2^-4·|x|, and ≤ 2^-10 in the
 * subnormal range; times the block scale s: |w − ŵ| ≤ max(2^-4·|w|, 2^-10·s), plus float32
 * rounding of the product. In particular |w − ŵ| ≤ 2^-4 · (block max).
 */
function checkFp8Weights(m: DeepSeekV3, block: [number, number]): void {
  const orig = ref.stateDict();
  let checked = 0;
  for (const [name, t] of m.stateDict()) {
    const a = orig.get(name) as Tensor;
    const w = a.toTypedArray() as Float32Array;
    const got = t.toTypedArray() as Float32Array;
    if (a.shape.length !== 2) {
      assert.deepEqual(got, w, `${name} stays exact`);
      continue;
    }
    const [R, C] = a.shape;
    const [br, bc] = block;
    const blockMax = new Map<number, number>();
    const key = (i: number, j: number): number => Math.floor(i / br) * 1e6 + Math.floor(j / bc);
    for (let i = 0; i < R; i++) for (let j = 0; j < C; j++) blockMax.set(key(i, j), Math.max(blockMax.get(key(i, j)) ?? 0, Math.abs(w[i * C + j])));
    for (let i = 0; i < R; i++) {
      for (let j = 0; j < C; j++) {
        const k = i * C + j;
        const bm = blockMax.get(key(i, j)) as number;
        const s = bm / 448;
        const err = Math.abs(got[k] - w[k]);
        const bound = Math.max(2 ** -4 * Math.abs(w[k]), 2 ** -10 * s) + 2 ** -20 * bm;
        if (!(err <= bound)) assert.fail(`${name}[${i}][${j}]: ${got[k]} vs ${w[k]} (error ${err} > ${bound})`);
        assert.ok(err <= 2 ** -4 * bm + 2 ** -20 * bm);
      }
    }
    checked++;
  }
  assert.ok(checked > 50, `${checked} FP8 weights checked`);
}

describe('FP8 (E4M3 with block scales)', () => {
  test('the decoder maps all 256 bytes', () => {
    const hand: [number, number][] = [
      [0x00, 0],
      [0x38, 1],
      [0x40, 2],
      [0x7e, 448],
      [0x01, 2 ** -9],
      [0x07, 7 * 2 ** -9],
      [0x08, 2 ** -6],
      [0x39, 1.125],
      [0x30, 0.5],
      [0xb8, -1],
      [0xfe, -448],
    ];
    const viaTensor = decodeE4M3(fromTypedArray(Uint8Array.from({ length: 256 }, (_, b) => b))).toTypedArray() as Float32Array;
    for (const [b, v] of hand) {
      assert.equal(e4m3ToNumber(b), v, `0x${b.toString(16)}`);
      assert.equal(viaTensor[b], v, `0x${b.toString(16)} via the tensor op`);
    }
    assert.ok(Object.is(viaTensor[0x80], -0), '0x80 is -0');
    assert.ok(Number.isNaN(viaTensor[0x7f]) && Number.isNaN(viaTensor[0xff]), '0x7F and 0xFF are NaN');
    for (let b = 0; b < 256; b++) {
      assert.ok(Object.is(viaTensor[b], refE4M3(b)) || (Number.isNaN(viaTensor[b]) && Number.isNaN(refE4M3(b))), `byte 0x${b.toString(16)}`);
      assert.ok(Object.is(e4m3ToNumber(b), refE4M3(b)) || Number.isNaN(refE4M3(b)));
    }
    const nan = viaTensor.filter((v) => Number.isNaN(v)).length;
    assert.equal(nan, 2, 'no other NaN, no infinities');
    for (let b = 1; b < 0x7f; b++) assert.ok(viaTensor[b] > viaTensor[b - 1], 'positive bytes increase');
    // The test's encoder inverts the decoder on every finite value.
    for (let b = 0; b < 256; b++) if (b !== 0x7f && b !== 0xff && b !== 0x80) assert.equal(encodeE4M3(viaTensor[b]), b);
  });

  test('an FP8 checkpoint (128×128 blocks) loads within FP8 rounding of the original', () => {
    const dir = fresh('fp8');
    writeFp8(dir, [128, 128]);
    const sf = SafetensorsFile.open(path.join(dir, WEIGHTS_FILE));
    assert.equal(sf.info('model.layers.0.self_attn.o_proj.weight').dtype, 'F8_E4M3');
    assert.deepEqual(sf.info('model.layers.0.self_attn.o_proj.weight_scale_inv').shape, [1, 1]);
    assert.deepEqual(sf.info('model.embed_tokens.weight_scale_inv').shape, [2, 1]);
    sf.close();
    const m = loadCheckpoint(dir);
    checkFp8Weights(m, [128, 128]);
    // Still a working model: logits near the original's.
    const d = maxAbsDiff(logits(m), refLogits);
    assert.ok(d < 0.15 * maxAbs(refLogits), `max |Δlogit| ${d}`);
  });

  test('quantization_config.weight_block_size is honoured', () => {
    const dir = fresh('fp8-block');
    const block: [number, number] = [16, 32];
    writeFp8(dir, block, { config: { quantization_config: { quant_method: 'fp8', fmt: 'e4m3', activation_scheme: 'dynamic', weight_block_size: block } } });
    const m = loadCheckpoint(dir);
    checkFp8Weights(m, block);
    // The same files read with the default 128×128 blocks have the wrong scale shapes.
    const cfgPath = path.join(dir, 'config.json');
    const cfg = JSON.parse(fs.readFileSync(cfgPath, 'utf8'));
    delete cfg.quantization_config;
    fs.writeFileSync(cfgPath, JSON.stringify(cfg));
    expectCheckpointError(
      () => loadCheckpoint(dir),
      (e) => {
        assert.ok(e.mismatched.some((s) => s.startsWith('model.layers.0.self_attn.o_proj.weight_scale_inv: expected [1, 1]')));
        assert.deepEqual(e.missing, []);
        assert.deepEqual(e.unexpected, [], '_scale_inv tensors are not unexpected');
      },
    );
  });

  test('an FP8 weight without its scale is an error naming it', () => {
    const dir = fresh('fp8-noscale');
    writeFp8(dir, [128, 128], { dropScale: 'model.layers.1.mlp.experts.3.up_proj.weight_scale_inv' });
    expectCheckpointError(
      () => loadCheckpoint(dir),
      (e) => {
        assert.deepEqual(e.missing, ['model.layers.1.mlp.experts.3.up_proj.weight_scale_inv']);
        assert.match(
          e.message,
          /FP8 weight model\.layers\.1\.mlp\.experts\.3\.up_proj\.weight \(F8_E4M3\) has no model\.layers\.1\.mlp\.experts\.3\.up_proj\.weight_scale_inv/,
        );
      },
    );
  });
});

// ---- errors -------------------------------------------------------------------------------------

describe('broken checkpoints', () => {
  test('missing, unexpected and mis-shaped tensors are reported together, and nothing changes', async () => {
    const dir = copyOfBase('mixed');
    const sd = loadSafetensors(path.join(dir, WEIGHTS_FILE));
    delete sd['model.layers.0.self_attn.o_proj.weight'];
    delete sd['model.layers.1.mlp.experts.5.gate_proj.weight'];
    sd['model.layers.0.bogus.weight'] = zeros([3]);
    sd['model.norm.weight'] = zeros([65]);
    sd['model.layers.2.shared_head.head.weight'] = zeros([256, 63]);
    fs.rmSync(path.join(dir, WEIGHTS_FILE));
    await saveSafetensors(path.join(dir, WEIGHTS_FILE), sd);

    const m = model(1);
    const before = logits(m);
    expectCheckpointError(
      () => loadWeightsInto(m, dir),
      (e) => {
        assert.equal(e.dir, dir);
        assert.deepEqual(e.missing.sort(), ['model.layers.0.self_attn.o_proj.weight', 'model.layers.1.mlp.experts.5.gate_proj.weight']);
        assert.deepEqual(e.unexpected, ['model.layers.0.bogus.weight']);
        assert.deepEqual(e.mismatched.sort(), [
          'model.layers.2.shared_head.head.weight: expected [256, 64], got [256, 63]',
          'model.norm.weight: expected [64], got [65]',
        ]);
        assert.ok(e.message.includes(dir));
        assert.match(e.message, /missing 2: .*o_proj/);
        assert.match(e.message, /unexpected 1: model\.layers\.0\.bogus\.weight/);
        assert.match(e.message, /mismatched 2: /);
      },
    );
    assert.deepEqual(logits(m), before, 'the model is unchanged');
    // strict: false tolerates missing and unexpected, never a wrong shape.
    expectCheckpointError(
      () => loadWeightsInto(m, dir, { strict: false }),
      (e) => assert.equal(e.mismatched.length, 2),
    );
  });

  test('strict: false loads what is there and reports the rest', async () => {
    const dir = copyOfBase('lenient');
    const sd = loadSafetensors(path.join(dir, WEIGHTS_FILE));
    delete sd['model.layers.2.embed_tokens.weight']; // a shared copy: absent is fine even when strict
    delete sd['model.layers.0.post_attention_layernorm.weight'];
    sd.extra = zeros([2]);
    fs.rmSync(path.join(dir, WEIGHTS_FILE));
    await saveSafetensors(path.join(dir, WEIGHTS_FILE), sd);
    const m = model(1);
    const r = loadWeightsInto(m, dir, { strict: false });
    assert.deepEqual(r.missing, ['model.layers.0.post_attention_layernorm.weight']);
    assert.deepEqual(r.unexpected, ['extra']);
  });

  test('a config.json that does not match the weights', () => {
    const dir = copyOfBase('config');
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...cfg, vocab_size: 300 }));
    expectCheckpointError(
      () => loadCheckpoint(dir),
      (e) => {
        assert.ok(e.mismatched.includes('model.embed_tokens.weight: expected [300, 64], got [256, 64]'));
        assert.ok(e.mismatched.includes('lm_head.weight: expected [300, 64], got [256, 64]'));
      },
    );
  });

  test('a truncated shard surfaces as a SafetensorsError naming the file', async () => {
    const dir = fresh('truncated');
    await saveCheckpoint(dir, ref, { maxShardBytes: 100_000 });
    const shard = path.join(
      dir,
      'model-00002-of-' +
        fs
          .readdirSync(dir)
          .find((f) => f.startsWith('model-00001-of-'))
          ?.slice(15),
    );
    fs.truncateSync(shard, fs.statSync(shard).size - 100);
    const m = model(1);
    const before = logits(m);
    assert.throws(
      () => loadWeightsInto(m, dir),
      (e: unknown) => e instanceof SafetensorsError && e.file === shard && e.message.includes(shard),
    );
    assert.deepEqual(logits(m), before, 'validated before anything was copied');
  });

  test('an index pointing at a missing shard, and an index entry its shard lacks', async () => {
    const dir = fresh('index');
    const r = await saveCheckpoint(dir, ref, { maxShardBytes: 100_000 });
    const index = JSON.parse(fs.readFileSync(path.join(dir, INDEX_FILE), 'utf8'));
    const gone = r.files[1];
    const inGone = Object.keys(index.weight_map).filter((k) => index.weight_map[k] === gone);
    fs.rmSync(path.join(dir, gone));
    expectCheckpointError(
      () => loadCheckpoint(dir),
      (e) => {
        assert.ok(e.problems.some((p) => p.includes(`lists shard ${gone}`) && p.includes('does not exist')));
        assert.match(e.message, new RegExp(gone.replace(/\./g, '\\.')));
        assert.deepEqual(e.missing.sort(), inGone.filter((n) => tensorSpecs(ref.config).find((s) => s.name === n)?.role !== 'shared-copy').sort());
      },
    );

    const dir2 = fresh('index2');
    await saveCheckpoint(dir2, ref, { maxShardBytes: 100_000 });
    const idx2 = JSON.parse(fs.readFileSync(path.join(dir2, INDEX_FILE), 'utf8'));
    const name = 'model.layers.1.mlp.experts.0.up_proj.weight';
    const wrong = Object.values(idx2.weight_map as Record<string, string>).find((f) => f !== idx2.weight_map[name]) as string;
    idx2.weight_map[name] = wrong;
    fs.writeFileSync(path.join(dir2, INDEX_FILE), JSON.stringify(idx2));
    expectCheckpointError(
      () => loadCheckpoint(dir2),
      (e) => {
        assert.ok(e.missing.includes(name));
        assert.ok(
          e.problems.some((p) => p.includes(wrong) && p.includes(name)),
          e.message,
        );
      },
    );
  });

  test('a directory that does not exist, or holds no weights', () => {
    expectCheckpointError(
      () => loadCheckpoint(path.join(root, 'nowhere')),
      (e) => assert.match(e.message, /does not exist/),
    );
    const dir = copyOfBase('noweights');
    fs.rmSync(path.join(dir, WEIGHTS_FILE));
    expectCheckpointError(
      () => loadCheckpoint(dir),
      (e) => assert.match(e.problems[0], /no weights/),
    );
  });
});

// ---- atomicity ----------------------------------------------------------------------------------

describe('atomic save', () => {
  test('overwriting replaces the checkpoint as a whole and keeps other files', async () => {
    const dir = fresh('overwrite');
    await saveCheckpoint(dir, ref, { maxShardBytes: 100_000 });
    fs.writeFileSync(path.join(dir, 'tokenizer.json'), '{"tok": true}');
    const other = model(1);
    await saveCheckpoint(dir, other); // single file now: the old shards and index must be gone
    assert.deepEqual(fs.readdirSync(dir).sort(), ['config.json', WEIGHTS_FILE, 'tokenizer.json']);
    assert.deepEqual(logits(loadCheckpoint(dir)), logits(other));
    assert.deepEqual(leftovers(dir), []);
  });

  test('a save that fails half-way leaves the previous checkpoint intact and no temp directory', async () => {
    const dir = fresh('halfway');
    await saveCheckpoint(dir, ref, { maxShardBytes: 100_000 });
    fs.writeFileSync(path.join(dir, 'tokenizer.json'), '{}');
    const before = fs.readdirSync(dir).sort();

    // Writing a late tensor fails after config.json and several shards were written.
    const other = model(1);
    const victim = other.model.norm.weight;
    let seenInTemp: string[] = [];
    victim.toBytes = () => {
      const tmp = leftovers(dir).find((n) => n.includes('.tmp-'));
      seenInTemp = tmp ? fs.readdirSync(path.join(path.dirname(dir), tmp)) : [];
      throw new Error('simulated disk failure');
    };
    await assert.rejects(saveCheckpoint(dir, other, { maxShardBytes: 100_000 }), /simulated disk failure/);
    assert.ok(
      seenInTemp.includes('config.json') && seenInTemp.filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f)).length >= 2,
      `half-way: ${seenInTemp.join(', ')}`,
    );
    assert.deepEqual(fs.readdirSync(dir).sort(), before);
    assert.deepEqual(leftovers(dir), [], 'no temp directory left behind');
    assert.deepEqual(logits(loadCheckpoint(dir)), refLogits, 'the previous checkpoint still loads');

    // A disposed tensor fails before anything is written.
    const broken = model(2);
    broken.model.layers.at(1).post_attention_layernorm.weight.dispose();
    await assert.rejects(saveCheckpoint(dir, broken), DisposedTensorError);
    assert.deepEqual(leftovers(dir), []);
    assert.deepEqual(logits(loadCheckpoint(dir)), refLogits);
  });

  test('an unusable parent directory fails cleanly', async (t) => {
    // The parent is a regular file: nothing can be created under it.
    const file = fresh('plainfile');
    fs.writeFileSync(file, 'x');
    await assert.rejects(saveCheckpoint(path.join(file, 'ckpt'), ref));

    if (process.getuid?.() === 0) {
      t.diagnostic('running as root: permission bits do not stop writes, skipping the read-only parent case');
      return;
    }
    const parent = fresh('readonly');
    const dir = path.join(parent, 'ckpt');
    await saveCheckpoint(dir, ref);
    fs.chmodSync(parent, 0o555);
    try {
      await assert.rejects(saveCheckpoint(dir, model(1)));
      assert.deepEqual(leftovers(dir), []);
      assert.deepEqual(logits(loadCheckpoint(dir)), refLogits);
    } finally {
      fs.chmodSync(parent, 0o755);
    }
  });
});
