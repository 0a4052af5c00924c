/**
 * Byte-level BPE encoding of one pre-token: its UTF-8 bytes become byte tokens, then merges are
 * applied lowest rank first (leftmost first among equal ranks: Hugging Face's and tiktoken's
 * rule) until none applies. Results are cached per piece.
 *
 * Two merge loops give the same result: for short pieces (nearly all) a scan over an array of
 * pair ranks (tiktoken's loop: O(n) per merge, no hashing after the first pass); for long pieces
 * (a CJK run or a long line of symbols can be thousands of bytes) a linked list and a binary heap,
 * O(n log n) overall, so no input is quadratic.
 *
 * Knows ids, merges and bytes; nothing about strings of the vocabulary, regexes or added tokens.
 */
import { BYTE_TO_CHAR, utf8Into } from './bytes.ts';

/** A merge: the pair (left, right) of ids becomes `merged`, at priority `rank` (0 = first). */
export interface Merge {
  left: number;
  right: number;
  merged: number;
}

/** Open-addressing hash table (left, right) → (rank, merged id), in typed arrays. */
export class PairTable {
  private readonly mask: number;
  private readonly lefts: Int32Array;
  private readonly rights: Int32Array;
  private readonly ranks: Int32Array;
  private readonly merged: Int32Array;

  constructor(merges: readonly Merge[]) {
    let cap = 16;
    while (cap < merges.length * 2) cap *= 2;
    this.mask = cap - 1;
    this.lefts = new Int32Array(cap).fill(-1);
    this.rights = new Int32Array(cap);
    this.ranks = new Int32Array(cap);
    this.merged = new Int32Array(cap);
    merges.forEach((m, rank) => {
      let h = this.hash(m.left, m.right);
      while (this.lefts[h] !== -1) {
        if (this.lefts[h] === m.left && this.rights[h] === m.right) return; // a repeated merge keeps its first rank
        h = (h + 1) & this.mask;
      }
      this.lefts[h] = m.left;
      this.rights[h] = m.right;
      this.ranks[h] = rank;
      this.merged[h] = m.merged;
    });
  }

  private hash(a: number, b: number): number {
    return (Math.imul(a, 0x9e3779b1) ^ Math.imul(b + 0x7f4a7c15, 0x85ebca6b)) & this.mask;
  }

  /** The slot of (a, b), or -1 when the pair has no merge. */
  slot(a: number, b: number): number {
    let h = this.hash(a, b);
    for (;;) {
      const l = this.lefts[h];
      if (l === -1) return -1;
      if (l === a && this.rights[h] === b) return h;
      h = (h + 1) & this.mask;
    }
  }

  /** The rank of (a, b), or NO_MERGE. */
  rank(a: number, b: number): number {
    const s = this.slot(a, b);
    return s < 0 ? NO_MERGE : this.ranks[s];
  }

  /** The id (a, b) merges into; only valid for a pair that has a merge. */
  mergedId(a: number, b: number): number {
    return this.merged[this.slot(a, b)];
  }
}

export const NO_MERGE = 0x7fffffff;

/** Pieces up to this many bytes use the array scan; longer ones the heap. */
const SCAN_LIMIT = 64;
/** Pieces longer than this (in UTF-16 units) are not cached: they rarely repeat. */
const CACHE_MAX_PIECE = 256;
/** The cache is emptied when it reaches this many entries, which bounds its memory. */
const CACHE_CAPACITY = 200_000;

export class BpeEncoder {
  private readonly pairs: PairTable;
  /** id of each byte's token; -1 when the vocabulary lacks it. */
  private readonly byteIds: Int32Array;
  /** Piece → ids (a number when the piece is one token). */
  private readonly cache = new Map<string, number | Int32Array>();
  private bytes = new Uint8Array(1024);
  private syms = new Int32Array(1024);
  private ranks = new Int32Array(1024);

  /**
   * @param byteIds the id of each byte 0..255 (-1 if absent: encoding it is then an error)
   * @param merges in rank order
   * @param wholeTokens when given (Hugging Face's ignore_merges), a piece that is itself a
   *   vocabulary token maps to it without merging: byte-level string → id
   */
  constructor(
    byteIds: Int32Array,
    merges: readonly Merge[],
    private readonly wholeTokens?: ReadonlyMap<string, number>,
  ) {
    this.byteIds = byteIds;
    this.pairs = new PairTable(merges);
  }

  /** Appends the ids of one pre-token to `out`. */
  encodePiece(piece: string, out: number[]): void {
    const hit = this.cache.get(piece);
    if (hit !== undefined) {
      if (typeof hit === 'number') out.push(hit);
      else for (let i = 0; i < hit.length; i++) out.push(hit[i]);
      return;
    }
    const ids = this.encodeUncached(piece);
    if (piece.length <= CACHE_MAX_PIECE) {
      if (this.cache.size >= CACHE_CAPACITY) this.cache.clear();
      this.cache.set(piece, ids.length === 1 ? ids[0] : ids);
    }
    for (let i = 0; i < ids.length; i++) out.push(ids[i]);
  }

  /** The ids of one pre-token, without the cache. */
  encodeUncached(piece: string): Int32Array {
    if (this.bytes.length < piece.length * 3) this.grow(piece.length * 3);
    const n = utf8Into(piece, this.bytes);
    if (this.wholeTokens) {
      let s = '';
      for (let i = 0; i < n; i++) s += BYTE_TO_CHAR[this.bytes[i]];
      const id = this.wholeTokens.get(s);
      if (id !== undefined) return Int32Array.of(id);
    }
    const syms = this.syms;
    for (let i = 0; i < n; i++) {
      const id = this.byteIds[this.bytes[i]];
      if (id < 0) {
        throw new Error(
          `the vocabulary has no token for byte 0x${this.bytes[i].toString(16).padStart(2, '0')}, needed by ${JSON.stringify(piece)}; a byte-level vocabulary must hold all 256 bytes`,
        );
      }
      syms[i] = id;
    }
    const len = n <= SCAN_LIMIT ? this.mergeByScan(n) : this.mergeByHeap(n);
    return syms.slice(0, len);
  }

  private grow(bytes: number): void {
    let cap = this.bytes.length;
    while (cap < bytes) cap *= 2;
    this.bytes = new Uint8Array(cap);
    this.syms = new Int32Array(cap);
    this.ranks = new Int32Array(cap);
  }

  /** Merges syms[0..n) in place by repeated scans of the pair ranks; returns the new length. */
  private mergeByScan(n: number): number {
    const syms = this.syms;
    const ranks = this.ranks;
    const pairs = this.pairs;
    for (let i = 0; i + 1 < n; i++) ranks[i] = pairs.rank(syms[i], syms[i + 1]);
    while (n > 1) {
      let best = NO_MERGE;
      let at = -1;
      for (let i = 0; i + 1 < n; i++) {
        if (ranks[i] < best) {
          best = ranks[i];
          at = i;
        }
      }
      if (at < 0) break;
      syms[at] = pairs.mergedId(syms[at], syms[at + 1]);
      // remove syms[at + 1] and ranks[at]
      for (let j = at + 1; j + 1 < n; j++) {
        syms[j] = syms[j + 1];
        ranks[j] = ranks[j + 1];
      }
      n--;
      if (at > 0) ranks[at - 1] = pairs.rank(syms[at - 1], syms[at]);
      if (at + 1 < n) ranks[at] = pairs.rank(syms[at], syms[at + 1]);
    }
    return n;
  }

  /** Merges syms[0..n) with a linked list and a min-heap of (rank, position); returns the new length. */
  private mergeByHeap(n: number): number {
    const syms = this.syms;
    const pairs = this.pairs;
    const next = new Int32Array(n);
    const prev = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      next[i] = i + 1 < n ? i + 1 : -1;
      prev[i] = i - 1;
    }
    const heap = new MinHeap(n);
    for (let i = 0; i + 1 < n; i++) {
      const r = pairs.rank(syms[i], syms[i + 1]);
      if (r !== NO_MERGE) heap.push(r, i);
    }
    const dead = new Uint8Array(n);
    while (heap.size > 0) {
      const rank = heap.topRank();
      const pos = heap.pop();
      if (dead[pos]) continue;
      const right = next[pos];
      if (right < 0 || pairs.rank(syms[pos], syms[right]) !== rank) continue; // stale entry
      syms[pos] = pairs.mergedId(syms[pos], syms[right]);
      dead[right] = 1;
      const after = next[right];
      next[pos] = after;
      if (after >= 0) prev[after] = pos;
      const before = prev[pos];
      if (before >= 0) {
        const r = pairs.rank(syms[before], syms[pos]);
        if (r !== NO_MERGE) heap.push(r, before);
      }
      if (after >= 0) {
        const r = pairs.rank(syms[pos], syms[after]);
        if (r !== NO_MERGE) heap.push(r, pos);
      }
    }
    let len = 0;
    for (let i = 0; i >= 0; i = next[i]) syms[len++] = syms[i];
    return len;
  }
}

/** A binary min-heap of (rank, position), ordered by rank then position (leftmost first). */
class MinHeap {
  private ranks: Int32Array;
  private poss: Int32Array;
  size = 0;

  constructor(capacity: number) {
    this.ranks = new Int32Array(Math.max(16, capacity));
    this.poss = new Int32Array(Math.max(16, capacity));
  }

  private less(i: number, j: number): boolean {
    return this.ranks[i] < this.ranks[j] || (this.ranks[i] === this.ranks[j] && this.poss[i] < this.poss[j]);
  }

  private swap(i: number, j: number): void {
    const r = this.ranks[i];
    this.ranks[i] = this.ranks[j];
    this.ranks[j] = r;
    const p = this.poss[i];
    this.poss[i] = this.poss[j];
    this.poss[j] = p;
  }

  push(rank: number, pos: number): void {
    if (this.size === this.ranks.length) {
      const r = new Int32Array(this.size * 2);
      r.set(this.ranks);
      this.ranks = r;
      const p = new Int32Array(this.size * 2);
      p.set(this.poss);
      this.poss = p;
    }
    let i = this.size++;
    this.ranks[i] = rank;
    this.poss[i] = pos;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(i, parent)) break;
      this.swap(i, parent);
      i = parent;
    }
  }

  topRank(): number {
    return this.ranks[0];
  }

  /** Removes the top and returns its position. */
  pop(): number {
    const top = this.poss[0];
    this.size--;
    if (this.size > 0) {
      this.ranks[0] = this.ranks[this.size];
      this.poss[0] = this.poss[this.size];
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < this.size && this.less(l, m)) m = l;
        if (r < this.size && this.less(r, m)) m = r;
        if (m === i) break;
        this.swap(i, m);
        i = m;
      }
    }
    return top;
  }
}
