/**
 * The prefix cache on disk: full KV blocks kept as files so that cache hits survive a restart, as
 * DeepSeek's context caching keeps prefixes on disk. One file per block, named by its chained hash,
 * under a folder named by the pool layout (model dtype, block size, buffer shapes) — a cache written
 * for another model shape is never read. Each file holds a small header (the hash, the block's ids,
 * the byte size of each buffer) and the buffers' bytes.
 *
 * Files are written to a temporary name and renamed, so a reader never sees half a block; one that
 * is damaged anyway (a crash before the data reached the disk) fails its checks on load and is
 * deleted. The folder stays within a byte budget: the least recently used files go first.
 *
 * It knows files and bytes; not tensors, block counts or requests.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

const MAGIC = 'TSKV1\n';

export interface DiskBlock {
  ids: Int32Array;
  buffers: Uint8Array[];
}

export class DiskCache {
  readonly dir: string;
  readonly budgetBytes: number;
  /** hash → file size, oldest use first (Map order). */
  private readonly index = new Map<string, number>();
  private bytes = 0;

  constructor(root: string, layout: string, budgetBytes: number) {
    this.dir = path.join(root, createHash('sha256').update(layout).digest('hex').slice(0, 16));
    this.budgetBytes = budgetBytes;
    fs.mkdirSync(this.dir, { recursive: true });
    const found: { hash: string; size: number; mtime: number }[] = [];
    for (const name of fs.readdirSync(this.dir)) {
      const file = path.join(this.dir, name);
      if (name.endsWith('.tmp')) {
        fs.rmSync(file, { force: true });
        continue;
      }
      if (!/^[0-9a-f]{64}\.blk$/.test(name)) continue;
      const st = fs.statSync(file);
      found.push({ hash: name.slice(0, 64), size: st.size, mtime: st.mtimeMs });
    }
    found.sort((a, b) => a.mtime - b.mtime);
    for (const f of found) {
      this.index.set(f.hash, f.size);
      this.bytes += f.size;
    }
    this.trim();
  }

  /** Blocks on disk. */
  get size(): number {
    return this.index.size;
  }

  get usedBytes(): number {
    return this.bytes;
  }

  has(hash: string): boolean {
    return this.index.has(hash);
  }

  private file(hash: string): string {
    return path.join(this.dir, `${hash}.blk`);
  }

  /** Writes a block (a no-op when it is there already). */
  save(hash: string, ids: ArrayLike<number>, buffers: readonly Uint8Array[]): void {
    if (this.index.has(hash)) {
      this.touch(hash);
      return;
    }
    const header = Buffer.from(JSON.stringify({ hash, ids: Array.from(ids), sizes: buffers.map((b) => b.byteLength) }), 'utf8');
    const len = Buffer.alloc(4);
    len.writeUInt32LE(header.byteLength);
    const data = Buffer.concat([Buffer.from(MAGIC), len, header, ...buffers.map((b) => Buffer.from(b.buffer, b.byteOffset, b.byteLength))]);
    if (data.byteLength > this.budgetBytes) return;
    const file = this.file(hash);
    const tmp = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, data);
    fs.renameSync(tmp, file);
    this.index.set(hash, data.byteLength);
    this.bytes += data.byteLength;
    this.trim();
  }

  /** The block stored under `hash`, or null (missing or damaged: a damaged file is deleted). */
  load(hash: string): DiskBlock | null {
    if (!this.index.has(hash)) return null;
    const file = this.file(hash);
    try {
      const data = fs.readFileSync(file);
      if (data.subarray(0, MAGIC.length).toString('utf8') !== MAGIC) throw new Error('bad magic');
      const hlen = data.readUInt32LE(MAGIC.length);
      const start = MAGIC.length + 4;
      const header = JSON.parse(data.subarray(start, start + hlen).toString('utf8')) as { hash: string; ids: number[]; sizes: number[] };
      if (header.hash !== hash || !Array.isArray(header.ids) || !Array.isArray(header.sizes)) throw new Error('bad header');
      let at = start + hlen;
      const buffers: Uint8Array[] = [];
      for (const n of header.sizes) {
        if (at + n > data.byteLength) throw new Error('truncated');
        buffers.push(new Uint8Array(data.subarray(at, at + n)));
        at += n;
      }
      if (at !== data.byteLength) throw new Error('trailing bytes');
      this.touch(hash);
      return { ids: Int32Array.from(header.ids), buffers };
    } catch {
      this.remove(hash);
      return null;
    }
  }

  private touch(hash: string): void {
    const n = this.index.get(hash)!;
    this.index.delete(hash);
    this.index.set(hash, n);
    const now = new Date();
    try {
      fs.utimesSync(this.file(hash), now, now);
    } catch {
      // recency on disk is a hint for the next start only
    }
  }

  private remove(hash: string): void {
    const n = this.index.get(hash);
    if (n === undefined) return;
    this.index.delete(hash);
    this.bytes -= n;
    fs.rmSync(this.file(hash), { force: true });
  }

  private trim(): void {
    for (const hash of this.index.keys()) {
      if (this.bytes <= this.budgetBytes) break;
      this.remove(hash);
    }
  }
}
