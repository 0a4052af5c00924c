/**
 * Byte-level BPE training: count the pre-tokens of a corpus, start from the 256 byte tokens, and
 * repeatedly merge the most frequent adjacent pair into a new token.
 *
 * Pair counts are kept up to date incrementally: each merge visits only the words that contain the
 * merged pair (an index pair → words) and adjusts the counts of the pairs around each occurrence,
 * as Hugging Face's trainer does; a max-heap with lazy deletion picks the next pair. Ties (equal
 * counts) go to the pair whose (left id, right id) is smallest, so training is deterministic; with
 * ids 0-255 being the bytes in byte order and later ids in creation order, that means "lower bytes
 * first, then older tokens first".
 *
 * Knows bytes, ids and counts; nothing about special tokens or file formats. Ids here start at 0
 * for byte 0; the caller shifts them past its special tokens.
 */
import { bytesToByteLevel, utf8 } from './bytes.ts';
import type { Merge } from './bpe.ts';
import type { PreTokenizer } from './pretokenize.ts';

export interface TrainOptions {
  /** Stop when this many tokens (256 bytes + merged tokens) exist. */
  tokens: number;
  /** Stop when the most frequent pair occurs fewer times than this. */
  minFrequency: number;
  /** Byte-level strings no merge may produce (the added tokens' texts): such pairs are never merged. */
  reserved?: ReadonlySet<string>;
}

export interface TrainedBpe {
  /** Byte-level token strings: ids 0-255 are the bytes in byte order, then merged tokens. */
  tokens: string[];
  /** Merges in rank order. */
  merges: Merge[];
}

/** Max-heap of (count, pair key): highest count first, then smallest key. */
class PairHeap {
  private counts: number[] = [];
  private keys: number[] = [];

  get size(): number {
    return this.keys.length;
  }

  private above(i: number, j: number): boolean {
    const ci = this.counts[i];
    const cj = this.counts[j];
    return ci > cj || (ci === cj && this.keys[i] < this.keys[j]);
  }

  private swap(i: number, j: number): void {
    [this.counts[i], this.counts[j]] = [this.counts[j], this.counts[i]];
    [this.keys[i], this.keys[j]] = [this.keys[j], this.keys[i]];
  }

  push(count: number, key: number): void {
    this.counts.push(count);
    this.keys.push(key);
    let i = this.keys.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.above(i, p)) break;
      this.swap(i, p);
      i = p;
    }
  }

  /** Removes the top; returns [count, key]. */
  pop(): [number, number] {
    const top: [number, number] = [this.counts[0], this.keys[0]];
    const lastCount = this.counts.pop()!;
    const lastKey = this.keys.pop()!;
    const n = this.keys.length;
    if (n > 0) {
      this.counts[0] = lastCount;
      this.keys[0] = lastKey;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < n && this.above(l, m)) m = l;
        if (r < n && this.above(r, m)) m = r;
        if (m === i) break;
        this.swap(i, m);
        i = m;
      }
    }
    return top;
  }
}

/** Counts the pre-tokens of a corpus. */
export function countWords(texts: Iterable<string>, pre: PreTokenizer): Map<string, number> {
  const counts = new Map<string, number>();
  for (const text of texts) {
    if (typeof text !== 'string') throw new TypeError(`training texts must be strings, got ${typeof text}`);
    pre.forEachPiece(text, (p) => counts.set(p, (counts.get(p) ?? 0) + 1));
  }
  return counts;
}

export function trainBpe(wordCounts: ReadonlyMap<string, number>, o: TrainOptions): TrainedBpe {
  const tokens: string[] = [];
  for (let b = 0; b < 256; b++) tokens.push(bytesToByteLevel(Uint8Array.of(b)));
  const tokenIds = new Map<string, number>(tokens.map((t, i) => [t, i]));
  const merges: Merge[] = [];
  if (o.tokens <= 256) return { tokens, merges };

  // Pair (a, b) ↔ key a * K + b; every id stays below K.
  const K = o.tokens;
  const words: number[][] = [];
  const freqs: number[] = [];
  for (const [word, count] of wordCounts) {
    const bytes = utf8(word);
    if (bytes.length < 2) continue; // nothing to merge inside a one-byte word
    words.push(Array.from(bytes));
    freqs.push(count);
  }

  const pairCounts = new Map<number, number>();
  const where = new Map<number, number[]>();
  const noteWord = (key: number, w: number): void => {
    const list = where.get(key);
    if (list === undefined) where.set(key, [w]);
    else if (list[list.length - 1] !== w) list.push(w);
  };
  for (let w = 0; w < words.length; w++) {
    const s = words[w];
    const f = freqs[w];
    for (let i = 0; i + 1 < s.length; i++) {
      const key = s[i] * K + s[i + 1];
      pairCounts.set(key, (pairCounts.get(key) ?? 0) + f);
      noteWord(key, w);
    }
  }
  const heap = new PairHeap();
  for (const [key, count] of pairCounts) heap.push(count, key);

  const blocked = new Set<number>();
  const visited = new Int32Array(words.length).fill(-1);
  const changed = new Set<number>();
  const add = (key: number, delta: number): void => {
    pairCounts.set(key, (pairCounts.get(key) ?? 0) + delta);
    changed.add(key);
  };

  while (tokens.length < o.tokens && heap.size > 0) {
    const [count, key] = heap.pop();
    if (pairCounts.get(key) !== count || blocked.has(key)) continue; // stale (a fresher entry holds the count) or blocked
    if (count < o.minFrequency || count <= 0) break;
    const a = Math.floor(key / K);
    const b = key - a * K;
    const text = tokens[a] + tokens[b];
    if (o.reserved?.has(text)) {
      blocked.add(key); // its count stays up to date, but it is never merged
      continue;
    }
    let c = tokenIds.get(text);
    if (c === undefined) {
      c = tokens.length;
      tokens.push(text);
      tokenIds.set(text, c);
    }
    merges.push({ left: a, right: b, merged: c });

    changed.clear();
    const iteration = merges.length;
    for (const w of where.get(key) ?? []) {
      if (visited[w] === iteration) continue;
      visited[w] = iteration;
      const s = words[w];
      const f = freqs[w];
      const out: number[] = [];
      let i = 0;
      let hit = false;
      while (i < s.length) {
        if (i + 1 < s.length && s[i] === a && s[i + 1] === b) {
          hit = true;
          if (out.length > 0) {
            const prev = out[out.length - 1];
            add(prev * K + a, -f);
            add(prev * K + c, f);
            noteWord(prev * K + c, w);
          }
          if (i + 2 < s.length) {
            const next = s[i + 2];
            add(b * K + next, -f);
            add(c * K + next, f);
            noteWord(c * K + next, w);
          }
          out.push(c);
          i += 2;
        } else {
          out.push(s[i]);
          i++;
        }
      }
      if (hit) words[w] = out;
    }
    // Every occurrence of (a, b) is gone: merging left to right leaves no adjacent a, b.
    pairCounts.set(key, 0);
    where.delete(key);
    changed.delete(key);
    for (const k of changed) {
      const n = pairCounts.get(k)!;
      if (n > 0) heap.push(n, k);
      else pairCounts.delete(k);
    }
  }
  return { tokens, merges };
}
