/**
 * The paged KV cache: one pool of fixed-size blocks per layer, shared by every sequence the
 * serving engine runs. A sequence owns a block table (block ids); its position p lives in slot
 * table[p / blockSize] · blockSize + p % blockSize of every layer's pool. For MLA the pool holds
 * what the absorbed form caches — the normalised latent (C) and the rotary key (R) per position —
 * so a block of 64 positions costs 64 · (C + R) values per layer; MHA/GQA models pool K and V. A
 * model with an MTP module also pools that module's layer (its keys at position i come from the main
 * hidden state h_i and the token t_{i+1}), for speculative decoding.
 *
 * The model's forward reads a contiguous cache (B, T, …). `gather` builds one for a step from the
 * rows' slots, left-padded to the longest row (pad columns read slot 0 of block 0, the scratch
 * block, which is never handed out and is masked), with S more columns for the new tokens; the
 * forward writes their keys there; `scatter` copies those S columns into the rows' own slots. So
 * attention reads each sequence's blocks wherever they lie in the pool, as paged attention does,
 * at the price of one copy of the context per step. The pool starts zeroed: a pad column is never
 * NaN.
 *
 * It knows the model's cache layout and slots; not which blocks are free, requests or sampling.
 */
import { type Device, type Tensor, fromBytes, inferenceMode, tensor, zeros } from '../core/index.ts';
import type { LayerCache } from '../model/attention.ts';
import type { DeepSeekV3, KVCache } from '../model/transformer.ts';

const FIELDS = ['latent', 'kpe', 'k', 'v'] as const;
type Field = (typeof FIELDS)[number];

/** One pooled buffer: (numBlocks · blockSize, …per-position shape). */
interface Pooled {
  readonly layer: number;
  readonly field: Field;
  readonly pool: Tensor;
  readonly inner: readonly number[];
}

export interface KVPoolOptions {
  /** Blocks in the pool, the scratch block 0 included. */
  numBlocks: number;
  /** Positions per block. */
  blockSize: number;
}

export class KVPool {
  readonly numBlocks: number;
  readonly blockSize: number;
  /** Bytes one block takes over all layers. */
  readonly blockBytes: number;
  /** The index of the MTP module's layer in a gathered cache, or null (no MTP module). */
  readonly mtpLayer: number | null;
  private readonly buffers: Pooled[];
  private readonly layers: number;
  private readonly model: DeepSeekV3;

  constructor(model: DeepSeekV3, o: KVPoolOptions) {
    if (!Number.isInteger(o.blockSize) || o.blockSize < 1) throw new RangeError(`blockSize must be a positive integer, got ${o.blockSize}`);
    if (!Number.isInteger(o.numBlocks) || o.numBlocks < 2) throw new RangeError(`numBlocks must be at least 2 (block 0 is scratch), got ${o.numBlocks}`);
    this.model = model;
    this.numBlocks = o.numBlocks;
    this.blockSize = o.blockSize;
    const slots = o.numBlocks * o.blockSize;
    const like = model.headWeight();
    // the layers' own cache shapes, for one position, tell each pool's inner shape
    const probe = model.createCache(1, 1, 'absorbed');
    // the first MTP module's layer too, for speculative decoding: the last layer of the gathered cache
    const layerCaches = inferenceMode(() => [...probe.layers, ...(model.mtp.length ? [model.mtp[0].self_attn.allocateCache(1, 1, 'absorbed', like)] : [])]);
    this.layers = layerCaches.length;
    this.mtpLayer = model.mtp.length ? probe.layers.length : null;
    this.buffers = inferenceMode(() =>
      layerCaches.flatMap((l, layer) =>
        FIELDS.filter((f) => l[f]).map((field) => {
          const inner = l[field]!.shape.slice(2);
          l[field]!.dispose();
          return { layer, field, inner, pool: zeros([slots, ...inner], { dtype: like.dtype, device: like.device }).keep() };
        }),
      ),
    );
    const elementBytes = like.dtype === 'float32' ? 4 : like.dtype === 'float64' ? 8 : 2;
    this.blockBytes = this.buffers.reduce((a, b) => a + b.inner.reduce((x, y) => x * y, 1), 0) * o.blockSize * elementBytes;
  }

  /** The device the pool lives on. */
  get device(): Device {
    return this.buffers[0].pool.device;
  }

  /** The slot of position `pos` of a sequence with block table `table`. */
  slot(table: readonly number[], pos: number): number {
    return table[Math.floor(pos / this.blockSize)] * this.blockSize + (pos % this.blockSize);
  }

  /**
   * A contiguous cache for a step: row r holds its first `lengths[r]` positions (from `tables[r]`)
   * right-aligned in columns [width − lengths[r], width), then `extra` columns for new tokens.
   * Call inside the step's inferenceMode/tidy; the tensors are the step's.
   */
  gather(tables: readonly (readonly number[])[], lengths: readonly number[], width: number, extra: number): KVCache {
    const B = tables.length;
    const cols = width + extra;
    const idx = new Int32Array(B * cols); // 0: the scratch slot
    for (let r = 0; r < B; r++) {
      const pad = width - lengths[r];
      for (let p = 0; p < lengths[r]; p++) idx[r * cols + pad + p] = this.slot(tables[r], p);
    }
    const index = tensor(idx, { dtype: 'int64', device: this.buffers[0].pool.device }); // (B·cols)
    const layers: LayerCache[] = Array.from({ length: this.layers }, () => ({}));
    for (const b of this.buffers) layers[b.layer][b.field] = b.pool.indexSelect(0, index).view([B, cols, ...b.inner]); // (B, cols, …)
    return { layers, batch: B, maxLen: cols, mla: 'absorbed' };
  }

  /** Copies columns [width, width + S) of every row of `cache` into `slots` (B·S, row-major). */
  scatter(cache: KVCache, width: number, slots: readonly number[]): void {
    const B = cache.batch;
    const S = slots.length / B;
    const index = tensor(Int32Array.from(slots), { dtype: 'int64', device: this.buffers[0].pool.device }); // (B·S)
    for (const b of this.buffers) {
      const src = cache.layers[b.layer][b.field]!.narrow(1, width, S).reshape([B * S, ...b.inner]); // (B·S, …)
      b.pool.indexCopy_(0, index, src);
    }
  }

  /** The bytes of block `block` in every buffer, in buffer order (for the disk cache). */
  readBlock(block: number): Uint8Array[] {
    return inferenceMode(() =>
      this.buffers.map((b) =>
        b.pool
          .narrow(0, block * this.blockSize, this.blockSize)
          .contiguous()
          .toBytes(),
      ),
    );
  }

  /** Writes bytes read by readBlock (same model, same pool layout) into block `block`. */
  writeBlock(block: number, data: readonly Uint8Array[]): void {
    if (data.length !== this.buffers.length) throw new RangeError(`a block holds ${this.buffers.length} buffers; got ${data.length}`);
    inferenceMode(() => {
      this.buffers.forEach((b, i) => {
        const t = fromBytes(data[i], b.pool.dtype, [this.blockSize, ...b.inner]); // (blockSize, …)
        b.pool.narrow(0, block * this.blockSize, this.blockSize).copy_(t);
        t.dispose();
      });
    });
  }

  /** Layout of the pool's buffers (a disk cache entry must match it). */
  layout(): string {
    return `${this.model.headWeight().dtype};${this.blockSize};${this.buffers.map((b) => `${b.layer}.${b.field}[${b.inner.join('x')}]`).join(',')}`;
  }

  dispose(): void {
    for (const b of this.buffers) b.pool.dispose();
  }
}
