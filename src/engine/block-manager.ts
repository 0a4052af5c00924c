/**
 * Which KV blocks are in use, and the prefix cache over them.
 *
 * Blocks are reference-counted: a sequence holds each block of its table once; a full block whose
 * ids are known is registered under its hash and can be shared by every later sequence whose
 * prompt starts with the same ids. The hash of block i chains the hash of block i − 1 with the
 * block's own ids (sha-256), and block 0's parent is a root that names the cache namespace (API
 * key, `user_id`) and the model, so only a prefix identical from token 0 in the same namespace can
 * hit. A hit is verified against the stored ids (a hash collision can never serve wrong keys).
 *
 * A block whose count drops to 0 keeps its hash and contents: it stays findable, in least-recently
 * used order, until a new allocation needs it; only then is its hash forgotten (the vLLM trap: a
 * freed block must not be found after it was reused). Allocation takes never-hashed free blocks
 * first, then evicts the least recently used cached one.
 *
 * Block 0 is the pool's scratch block (kv-pool.ts) and is never handed out.
 *
 * It knows block ids, counts and hashes; not tensors (the disk copy is disk-cache.ts's), requests or the model.
 */
import { createHash } from 'node:crypto';

export interface CachedBlock {
  readonly block: number;
  readonly hash: string;
}

/** The root of a namespace's hash chain. */
export function rootHash(namespace: string, salt: string): string {
  return createHash('sha256').update(`tinyseek-prefix-v1\0${salt}\0${namespace}`).digest('hex');
}

/** The hash of a full block of `ids` after the block whose hash is `parent`. */
export function blockHash(parent: string, ids: ArrayLike<number>): string {
  const h = createHash('sha256').update(parent);
  h.update(new Uint8Array(Int32Array.from(ids as ArrayLike<number>).buffer));
  return h.digest('hex');
}

export class BlockManager {
  readonly numBlocks: number;
  readonly blockSize: number;
  private readonly refs: Int32Array;
  private readonly hashes: (string | null)[];
  private readonly ids: (Int32Array | null)[];
  private readonly byHash = new Map<string, number>();
  /** Free blocks that hold nothing findable (a stack). */
  private readonly freeBlank: number[] = [];
  /** Free blocks that keep their hash, oldest use first (Map order). */
  private readonly freeCached = new Map<number, true>();
  /** Called when a cached block is evicted for reuse. */
  onEvict: ((hash: string) => void) | null = null;

  constructor(numBlocks: number, blockSize: number) {
    this.numBlocks = numBlocks;
    this.blockSize = blockSize;
    this.refs = new Int32Array(numBlocks);
    this.hashes = new Array(numBlocks).fill(null);
    this.ids = new Array(numBlocks).fill(null);
    for (let b = numBlocks - 1; b >= 1; b--) this.freeBlank.push(b);
  }

  /** Blocks that can be handed out now (blank plus evictable cached ones). */
  get available(): number {
    return this.freeBlank.length + this.freeCached.size;
  }

  /** Blocks held by running sequences. */
  get inUse(): number {
    return this.numBlocks - 1 - this.available;
  }

  /** Blocks that keep a findable hash (in use or not). */
  get cached(): number {
    return this.byHash.size;
  }

  /** A block with count 1, or null when every block is held. */
  allocate(): number | null {
    let b = this.freeBlank.pop();
    if (b === undefined) {
      const oldest = this.freeCached.keys().next();
      if (oldest.done) return null;
      b = oldest.value;
      this.freeCached.delete(b);
      this.forget(b);
    }
    this.refs[b] = 1;
    return b;
  }

  /** Drops one hold on `block`; at 0 it becomes free (and stays findable when hashed). */
  release(block: number): void {
    if (block <= 0 || block >= this.numBlocks || this.refs[block] <= 0) throw new Error(`block ${block} is not held`);
    this.refs[block]--;
    if (this.refs[block] > 0) return;
    if (this.hashes[block] !== null) this.freeCached.set(block, true);
    else this.freeBlank.push(block);
  }

  /** The cached block with this hash and these ids, now held once more; null on a miss. */
  lookup(hash: string, ids: ArrayLike<number>): number | null {
    const b = this.byHash.get(hash);
    if (b === undefined) return null;
    const stored = this.ids[b]!;
    if (stored.length !== ids.length) return null;
    for (let i = 0; i < stored.length; i++) if (stored[i] !== ids[i]) return null;
    if (this.refs[b] === 0) this.freeCached.delete(b);
    this.refs[b]++;
    return b;
  }

  /** Whether a block with this hash is findable. */
  has(hash: string): boolean {
    return this.byHash.has(hash);
  }

  /**
   * Makes a held, full block findable under `hash`. When another block already holds that hash the
   * existing one stays the cached copy and this block remains blank (it is freed as usual).
   */
  register(block: number, hash: string, ids: ArrayLike<number>): boolean {
    if (this.refs[block] <= 0) throw new Error(`block ${block} is not held`);
    if (this.byHash.has(hash) || this.hashes[block] !== null) return false;
    this.byHash.set(hash, block);
    this.hashes[block] = hash;
    this.ids[block] = Int32Array.from(ids);
    return true;
  }

  /** Every findable block (for flushing to disk). */
  entries(): CachedBlock[] {
    return [...this.byHash.entries()].map(([hash, block]) => ({ hash, block }));
  }

  /** The ids a findable block holds. */
  idsOf(block: number): Int32Array | null {
    return this.ids[block];
  }

  private forget(b: number): void {
    const h = this.hashes[b];
    if (h === null) return;
    this.byHash.delete(h);
    this.hashes[b] = null;
    this.ids[b] = null;
    this.onEvict?.(h);
  }
}
