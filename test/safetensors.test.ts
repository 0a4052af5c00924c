import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DTYPES, type DType, type Tensor, Generator, fromTypedArray, randn, scalar, tensor, zeros } from '../src/core/index.ts';
import { SafetensorsError, SafetensorsFile, loadSafetensors, parseHeader, saveSafetensors, saveSafetensorsSync } from '../src/io/safetensors.ts';

let dir = '';
before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tinyseek-safetensors-'));
});
after(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

/** A file laid out as the reference writes one: u64 LE header length, JSON header, data. */
function build(header: string | object, data: Uint8Array = new Uint8Array(0), pad = true): Uint8Array {
  let json = typeof header === 'string' ? header : JSON.stringify(header);
  if (pad) json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const h = Buffer.from(json, 'utf8');
  const out = new Uint8Array(8 + h.byteLength + data.byteLength);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.byteLength), true);
  out.set(h, 8);
  out.set(data, 8 + h.byteLength);
  return out;
}

function f32(...v: number[]): Uint8Array {
  return new Uint8Array(Float32Array.from(v).buffer);
}

/** parseHeader on an in-memory file must throw a SafetensorsError whose message matches. */
function rejects(bytes: Uint8Array, pattern: RegExp, fileSize = bytes.byteLength): void {
  assert.throws(
    () => parseHeader(bytes, fileSize, 'bad.safetensors'),
    (e: unknown) => {
      assert.ok(e instanceof SafetensorsError, `expected SafetensorsError, got ${String(e)}`);
      assert.match(e.message, /^bad\.safetensors: /);
      assert.match(e.message, pattern);
      return true;
    },
  );
}

function sameTensor(a: Tensor, b: Tensor): void {
  assert.equal(b.dtype, a.dtype);
  assert.deepEqual(b.shape, a.shape);
  assert.deepEqual(b.toBytes(), a.toBytes()); // bit-exact, NaN payloads and -0 included
  assert.deepEqual(b.toArray(), a.toArray());
}

function sample(dtype: DType): Tensor {
  const g = new Generator(7);
  switch (dtype) {
    case 'bool':
      return tensor([
        [true, false, true],
        [false, false, true],
      ]);
    case 'int64': // beyond 2^53 and negative: survives only if bytes are kept exactly
      return fromTypedArray(BigInt64Array.from([-(2n ** 62n), 2n ** 53n + 1n, -1n, 0n, 42n, 2n ** 63n - 1n]), [3, 2]);
    case 'float32':
    case 'float64':
    case 'float16':
    case 'bfloat16':
      return randn([2, 3, 4], { generator: g }).to(dtype);
    case 'uint8':
      return tensor([0, 1, 2, 3, 200, 255], { dtype, shape: [2, 3] });
    default:
      return tensor([-128, -1, 0, 1, 2, 127], { dtype, shape: [2, 3] });
  }
}

describe('round trip', () => {
  test('every dtype keeps its values, shape and dtype exactly', async () => {
    const tensors: Record<string, Tensor> = {};
    for (const d of DTYPES) tensors[`t.${d}`] = sample(d);
    const file = path.join(dir, 'all.safetensors');
    await saveSafetensors(file, tensors);
    const loaded = loadSafetensors(file);
    assert.deepEqual(Object.keys(loaded).sort(), Object.keys(tensors).sort());
    for (const [name, t] of Object.entries(tensors)) sameTensor(t, loaded[name]);
    const int64 = new BigInt64Array(loaded['t.int64'].toBytes().slice().buffer);
    assert.equal(int64[0], -(2n ** 62n));
    assert.equal(int64[1], 2n ** 53n + 1n);
    assert.equal(int64[5], 2n ** 63n - 1n);
    assert.deepEqual(loaded['t.bool'].tolist(), [
      [true, false, true],
      [false, false, true],
    ]);
  });

  test('0-d and 0-element tensors', () => {
    const file = path.join(dir, 'edge.safetensors');
    const tensors = new Map<string, Tensor>([
      ['scalar', scalar(2.5)],
      ['scalar.int64', scalar(-7, { dtype: 'int64' })],
      ['empty', zeros([0, 3])],
      ['empty.bf16', zeros([4, 0], { dtype: 'bfloat16' })],
    ]);
    saveSafetensorsSync(file, tensors);
    const f = SafetensorsFile.open(file);
    try {
      assert.deepEqual(f.info('scalar'), { dtype: 'F32', shape: [], byteLength: 4 });
      assert.deepEqual(f.info('empty'), { dtype: 'F32', shape: [0, 3], byteLength: 0 });
      assert.deepEqual(f.info('empty.bf16'), { dtype: 'BF16', shape: [4, 0], byteLength: 0 });
      for (const [name, t] of tensors) sameTensor(t, f.read(name));
      assert.equal(f.read('scalar').item(), 2.5);
      assert.equal(f.read('scalar.int64').item(), -7);
    } finally {
      f.close();
    }
  });

  test('metadata, names and file with no tensors', async () => {
    const file = path.join(dir, 'meta.safetensors');
    const metadata = { format: 'pt', 'tinyseek.step': '1200', note: 'ünïcödé "quoted" \n' };
    await saveSafetensors(file, { b: scalar(1), a: scalar(2) }, metadata);
    const f = SafetensorsFile.open(file);
    assert.deepEqual(f.metadata, metadata);
    assert.deepEqual(f.names, ['a', 'b']);
    assert.equal(f.has('a'), true);
    f.close();
    assert.throws(() => f.readRaw('a'), /closed/);

    const empty = path.join(dir, 'empty.safetensors');
    await saveSafetensors(empty, {});
    const g = SafetensorsFile.open(empty);
    assert.deepEqual(g.names, []);
    assert.equal(g.metadata, null);
    g.close();
  });

  test('readRaw returns the stored bytes; an unknown name names the file and the tensor', () => {
    const file = path.join(dir, 'raw.safetensors');
    saveSafetensorsSync(file, { w: tensor([1, 2], { dtype: 'int16' }) });
    const f = SafetensorsFile.open(file);
    try {
      assert.deepEqual(f.readRaw('w'), new Uint8Array([1, 0, 2, 0]));
      assert.throws(
        () => f.read('nope'),
        (e: unknown) => e instanceof SafetensorsError && /raw\.safetensors: tensor 'nope': no such tensor.*'w'/.test(e.message),
      );
    } finally {
      f.close();
    }
  });
});

describe('reference layout', () => {
  // Byte vectors of the reference implementation's own serialization tests (safetensors/src/tensor.rs).
  test('one F32 tensor: byte-identical in both directions', () => {
    const header = '{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}';
    assert.equal(header.length, 64); // already a multiple of 8: no padding
    const expected = build(header, f32(0, 1, 2, 3, 4, 5));
    const file = path.join(dir, 'ref1.safetensors');
    fs.writeFileSync(file, expected);
    const loaded = loadSafetensors(file);
    assert.deepEqual(loaded['attn.0'].shape, [1, 2, 3]);
    assert.deepEqual(loaded['attn.0'].toArray(), [0, 1, 2, 3, 4, 5]);

    const mine = path.join(dir, 'mine1.safetensors');
    saveSafetensorsSync(mine, { 'attn.0': tensor([0, 1, 2, 3, 4, 5], { shape: [1, 2, 3] }) });
    assert.deepEqual(new Uint8Array(fs.readFileSync(mine)), expected);
  });

  test('header padded with spaces to a multiple of 8', () => {
    const header = '{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}'; // 65 bytes
    const expected = build(header + ' '.repeat(7), f32(0, 1, 2, 3, 4, 5), false);
    assert.equal(new DataView(expected.buffer).getBigUint64(0, true), 72n);
    const mine = path.join(dir, 'mine2.safetensors');
    saveSafetensorsSync(mine, { attn0: tensor([0, 1, 2, 3, 4, 5], { shape: [1, 1, 2, 3] }) });
    assert.deepEqual(new Uint8Array(fs.readFileSync(mine)), expected);
  });

  test('no tensors, with and without metadata', () => {
    const plain = path.join(dir, 'mine3.safetensors');
    saveSafetensorsSync(plain, {});
    assert.deepEqual(new Uint8Array(fs.readFileSync(plain)), new Uint8Array([8, 0, 0, 0, 0, 0, 0, 0, 0x7b, 0x7d, 32, 32, 32, 32, 32, 32]));
    const meta = path.join(dir, 'mine4.safetensors');
    saveSafetensorsSync(meta, {}, { framework: 'pt' });
    assert.deepEqual(new Uint8Array(fs.readFileSync(meta)), build('{"__metadata__":{"framework":"pt"}}     ', undefined, false));
  });

  test('mixed dtypes: __metadata__ first, then descending dtype alignment, then name', () => {
    // The reference sorts by its dtype enum (BOOL < U8 < … < F16 < BF16 < I32 < F32 < F64 < I64),
    // largest first, so every tensor starts aligned to its element size without padding.
    const i64 = new Uint8Array(BigInt64Array.from([1n, -2n]).buffer);
    const bf16 = new Uint8Array([0x80, 0x3f, 0x00, 0x40, 0x40, 0x40]); // 1, 2, 3
    const header =
      '{"__metadata__":{"format":"pt"},' +
      '"ids":{"dtype":"I64","shape":[2],"data_offsets":[0,16]},' +
      '"b":{"dtype":"F32","shape":[1],"data_offsets":[16,20]},' +
      '"z":{"dtype":"F32","shape":[],"data_offsets":[20,24]},' +
      '"w":{"dtype":"BF16","shape":[3],"data_offsets":[24,30]},' +
      '"mask":{"dtype":"BOOL","shape":[2],"data_offsets":[30,32]}}';
    const expected = build(header, new Uint8Array([...i64, ...f32(0.5), ...f32(-1), ...bf16, 1, 0]));

    const file = path.join(dir, 'ref-mixed.safetensors');
    fs.writeFileSync(file, expected);
    const f = SafetensorsFile.open(file);
    assert.deepEqual(f.names, ['ids', 'b', 'z', 'w', 'mask']);
    assert.deepEqual(f.metadata, { format: 'pt' });
    assert.deepEqual(f.read('w').toArray(), [1, 2, 3]);
    assert.equal(f.read('w').dtype, 'bfloat16');
    assert.deepEqual(f.read('ids').toArray(), [1, -2]);
    assert.deepEqual(f.read('mask').tolist(), [true, false]);
    assert.deepEqual(f.read('z').shape, []);
    f.close();

    const loaded = loadSafetensors(file);
    const mine = path.join(dir, 'mine-mixed.safetensors');
    saveSafetensorsSync(mine, { mask: loaded.mask, w: loaded.w, z: loaded.z, ids: loaded.ids, b: loaded.b }, { format: 'pt' });
    assert.deepEqual(new Uint8Array(fs.readFileSync(mine)), expected);
  });

  test('dtypes without a tinyseek dtype are readable raw only', () => {
    const header = {
      q: { dtype: 'F8_E4M3', shape: [2], data_offsets: [0, 2] },
      r: { dtype: 'F8_E5M2', shape: [1], data_offsets: [2, 3] },
      u: { dtype: 'U16', shape: [1], data_offsets: [4, 6] },
      v: { dtype: 'U32', shape: [1], data_offsets: [8, 12] },
      x: { dtype: 'U64', shape: [1], data_offsets: [16, 24] },
      pad: { dtype: 'U8', shape: [1], data_offsets: [3, 4] },
      pad2: { dtype: 'I16', shape: [1], data_offsets: [6, 8] },
      pad3: { dtype: 'I32', shape: [1], data_offsets: [12, 16] },
    };
    const data = Uint8Array.from({ length: 24 }, (_, i) => i);
    const file = path.join(dir, 'f8.safetensors');
    fs.writeFileSync(file, build(header, data));
    const f = SafetensorsFile.open(file);
    try {
      assert.deepEqual(f.info('q'), { dtype: 'F8_E4M3', shape: [2], byteLength: 2 });
      assert.deepEqual(f.readRaw('q'), new Uint8Array([0, 1]));
      assert.deepEqual(f.readRaw('x'), data.slice(16, 24));
      for (const [name, dt] of [
        ['q', 'F8_E4M3'],
        ['r', 'F8_E5M2'],
        ['u', 'U16'],
        ['v', 'U32'],
        ['x', 'U64'],
      ]) {
        assert.throws(
          () => f.read(name),
          (e: unknown) => e instanceof SafetensorsError && e.message.includes(`tensor '${name}': dtype ${dt}`) && e.message.includes(`readRaw('${name}')`),
        );
      }
      assert.deepEqual(f.read('pad').toArray(), [3]);
    } finally {
      f.close();
    }
  });
});

describe('validation', () => {
  const ok = (name = 'w') => ({ [name]: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } });

  test('file shorter than 8 bytes', () => {
    rejects(new Uint8Array([1, 0, 0]), /3 bytes, shorter than the 8-byte header length/);
    const file = path.join(dir, 'tiny.safetensors');
    fs.writeFileSync(file, new Uint8Array(5));
    assert.throws(
      () => SafetensorsFile.open(file),
      (e: unknown) => e instanceof SafetensorsError && e.message.startsWith(`${file}: file is 5 bytes`),
    );
  });

  test('header length larger than 100 MB', () => {
    const b = new Uint8Array(16);
    new DataView(b.buffer).setBigUint64(0, 2n ** 40n, true);
    rejects(b, /header length 1099511627776 is larger than the 100 MB limit/);
  });

  test('header length larger than the file', () => {
    const b = build(ok(), new Uint8Array(8));
    new DataView(b.buffer).setBigUint64(0, 1000n, true);
    rejects(b, /header length 1000 is larger than the file \(\d+ bytes\).*truncated/);
  });

  test('header not UTF-8', () => {
    const b = build('{"w":1}');
    b[10] = 0xff;
    rejects(b, /header is not valid UTF-8/);
  });

  test('header not JSON, or not an object', () => {
    rejects(build('{"w": {'), /header is not valid JSON/);
    rejects(build('\uFEFF{}'), /header is not valid JSON/); // a BOM is not JSON whitespace
    rejects(build('[1, 2]'), /header must be a JSON object, got \[1,2\]/);
    rejects(build('null'), /header must be a JSON object, got null/);
  });

  test('duplicate tensor names (and duplicate keys in an entry)', () => {
    const e = '{"dtype":"F32","shape":[1],"data_offsets":[0,4]}';
    rejects(build(`{"w":${e},"w":${e}}`, f32(1)), /tensor name 'w' appears twice/);
    rejects(build(`{"w":${e},"\\u0077":${e}}`, f32(1)), /tensor name 'w' appears twice/); // same name, escaped
    rejects(build('{"w":{"dtype":"F32","shape":[1],"dtype":"F64","data_offsets":[0,4]}}', f32(1)), /key 'dtype' appears twice/);
    // the same key in sibling objects, or inside string values, is fine
    const two = build(`{"a":${e},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},"__metadata__":{"s":"\\"a\\":{"}}`, f32(1, 2));
    assert.deepEqual([...parseHeader(two, two.byteLength).tensors.keys()], ['a', 'b']);
  });

  test('unknown dtype', () => {
    rejects(build({ w: { dtype: 'F128', shape: [1], data_offsets: [0, 16] } }, new Uint8Array(16)), /tensor 'w': unknown dtype "F128".*BF16/);
    rejects(build({ w: { dtype: 'float32', shape: [1], data_offsets: [0, 4] } }, f32(1)), /unknown dtype "float32"/);
  });

  test('shape not an array of non-negative integers', () => {
    for (const shape of [[-1], [1.5], '2', [2, null], { 0: 2 }]) {
      rejects(build({ w: { dtype: 'F32', shape, data_offsets: [0, 8] } }, f32(1, 2)), /tensor 'w': shape must be an array of non-negative integers/);
    }
  });

  test('data_offsets not two non-negative integers with begin <= end', () => {
    for (const offs of [[0], [0, 8, 9], [-8, 0], [8, 0], [0, '8'], [0, 8.5], null]) {
      rejects(build({ w: { dtype: 'F32', shape: [2], data_offsets: offs } }, f32(1, 2)), /tensor 'w': data_offsets must be two non-negative integers/);
    }
    rejects(build({ w: 'F32' }), /tensor 'w': header entry must be an object/);
  });

  test('byte length != numel * itemsize', () => {
    rejects(
      build({ w: { dtype: 'BF16', shape: [2, 3], data_offsets: [0, 8] } }, new Uint8Array(8)),
      /tensor 'w': data_offsets \[0, 8\] span 8 bytes but shape \[2, 3\] of BF16 needs 12/,
    );
  });

  test('offsets out of range of the data buffer', () => {
    rejects(build(ok(), f32(1)), /tensor 'w': data_offsets \[0, 8\] are out of range of the data buffer \(4 bytes\).*truncated/);
  });

  test('overlapping tensors', () => {
    const h = { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } };
    rejects(build(h, f32(1, 2)), /tensor 'b': data_offsets \[4, 8\] overlap tensor 'a' \[0, 8\]/);
  });

  test('holes in the data buffer', () => {
    const gap = { a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] }, b: { dtype: 'F32', shape: [1], data_offsets: [8, 12] } };
    rejects(build(gap, f32(1, 2, 3)), /tensor 'b': the data buffer has a hole: bytes \[4, 8\)/);
    rejects(build({ a: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, f32(1, 2)), /bytes \[0, 4\) before this tensor belong to no tensor/);
    rejects(build(ok(), f32(1, 2, 3)), /its last 4 bytes \(from 8 to 12\) belong to no tensor/);
  });

  test('__metadata__ not a string -> string object', () => {
    for (const m of [{ step: 3 }, ['a'], 'pt', { a: { b: 'c' } }]) {
      rejects(build({ __metadata__: m, ...ok() }, f32(1, 2)), /__metadata__ must map strings to strings/);
    }
    const nullMeta = build({ __metadata__: null, ...ok() }, f32(1, 2)); // the reference reads null as none
    assert.equal(parseHeader(nullMeta, nullMeta.byteLength).metadata, null);
  });

  test('open() errors carry the path and the tensor', () => {
    const file = path.join(dir, 'overlap.safetensors');
    const h = { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } };
    fs.writeFileSync(file, build(h, f32(1, 2)));
    assert.throws(
      () => SafetensorsFile.open(file),
      (e: unknown) => e instanceof SafetensorsError && e.file === file && e.tensor === 'b',
    );
  });
});

describe('writing', () => {
  test('refuses empty, reserved and duplicated names', async () => {
    const t = scalar(1);
    const file = path.join(dir, 'names.safetensors');
    await assert.rejects(saveSafetensors(file, { '': t }), (e: unknown) => e instanceof SafetensorsError && /empty name/.test(e.message));
    await assert.rejects(
      saveSafetensors(file, { __metadata__: t }),
      (e: unknown) => e instanceof SafetensorsError && /tensor '__metadata__': the name is reserved/.test(e.message),
    );
    assert.throws(
      () =>
        saveSafetensorsSync(file, [
          ['x', t],
          ['x', t],
        ]),
      (e: unknown) => e instanceof SafetensorsError && /tensor 'x': the name appears twice/.test(e.message),
    );
    assert.equal(fs.existsSync(file), false);
  });

  test('a name like __proto__ stays an ordinary tensor name', () => {
    const file = path.join(dir, 'proto.safetensors');
    saveSafetensorsSync(file, new Map([['__proto__', scalar(3)]]));
    const loaded = loadSafetensors(file);
    assert.ok(Object.hasOwn(loaded, '__proto__'));
    assert.equal(Object.getPrototypeOf(loaded), Object.prototype);
  });

  test('a failed write leaves the existing file untouched and no temp file', async () => {
    const file = path.join(dir, 'atomic.safetensors');
    await saveSafetensors(file, { w: tensor([1, 2, 3]) });
    const before = fs.readFileSync(file);
    const listing = () =>
      fs
        .readdirSync(dir)
        .filter((n) => n.includes('atomic'))
        .sort();

    // Found while planning, before any byte is written.
    const gone = tensor([4, 5, 6]);
    gone.dispose();
    await assert.rejects(
      saveSafetensors(file, { w: tensor([9]), v: gone }),
      (e: unknown) => e instanceof SafetensorsError && /tensor 'v': cannot save: .*disposed/.test(e.message),
    );
    assert.throws(() => saveSafetensorsSync(file, { v: gone }), SafetensorsError);

    // Found mid-write, after the temp file holds the header and earlier tensors.
    for (const save of [saveSafetensors, async (...a: Parameters<typeof saveSafetensorsSync>) => saveSafetensorsSync(...a)]) {
      const broken = tensor([7, 8]);
      broken.toBytes = () => {
        throw new Error('device lost');
      };
      await assert.rejects(save(file, { a: tensor([1, 2, 3, 4]), b: broken }), /tensor 'b': cannot save: device lost/);
      assert.deepEqual(fs.readFileSync(file), before);
      assert.deepEqual(listing(), ['atomic.safetensors']);
    }
    assert.deepEqual(loadSafetensors(file).w.toArray(), [1, 2, 3]);
  });

  test('overwrites atomically and accepts non-contiguous tensors', async () => {
    const file = path.join(dir, 'over.safetensors');
    await saveSafetensors(file, { w: tensor([1]) });
    const x = randn([3, 4], { generator: new Generator(1) });
    await saveSafetensors(file, { w: x.mT }); // a transposed view is written in row-major order
    const w = loadSafetensors(file).w;
    sameTensor(x.mT.contiguous(), w);
    assert.deepEqual(
      fs.readdirSync(dir).filter((n) => n.includes('over.')),
      ['over.safetensors'],
    );
  });
});
