/**
 * Packed fixed-length sequences for pretraining. Documents (already tokenized, each
 * [BOS, …, EOS] — see encode.ts) are concatenated into one token stream S; sequence i is the
 * window S[i·T … i·T + T] of T + 1 tokens (T = seqLen), giving inputs S[i·T … i·T + T − 1] and
 * targets S[i·T + 1 … i·T + T]. Consecutive windows share one token, so every token of the stream
 * except the first is a target exactly once. A tail shorter than T + 1 tokens is dropped
 * (reported as droppedTokens).
 *
 * Document boundaries: with `crossDocument: 'ignore'` a target whose input is the EOS that ends a
 * document (that is, the next document's BOS predicted from the previous one's EOS: the only
 * target whose input and target belong to different documents) is IGNORE_INDEX; with 'keep' (the
 * default, as GPT-2/nanoGPT packing does) it is trained like any other. Attention is not masked by
 * packing: each batch carries `segments`, the document index of every input position counted from
 * 0 within its row (a new segment starts at each BOS), for a trainer that wants block-diagonal
 * attention.
 *
 * It knows nothing about tokenizers (ids are given) or tensors (see batch.ts).
 */
import { IGNORE_INDEX } from './batch.ts';
import { EpochIterator, type IteratorState } from './shuffle.ts';
import type { SeedPart } from './rng.ts';

export interface PackOptions {
  /** T: tokens per input row (each window holds T + 1 tokens). */
  seqLen: number;
  bos: number;
  eos: number;
  /** 'keep' (default) or 'ignore' the EOS → next-BOS target. */
  crossDocument?: 'keep' | 'ignore';
}

export interface PackedCorpus {
  readonly seqLen: number;
  /** The concatenated token stream. */
  readonly stream: Int32Array;
  readonly numSequences: number;
  readonly documents: number;
  readonly droppedTokens: number;
  readonly bos: number;
  readonly eos: number;
  readonly crossDocument: 'keep' | 'ignore';
}

export function packDocuments(docs: Iterable<ArrayLike<number>>, o: PackOptions): PackedCorpus {
  const T = o.seqLen;
  if (!Number.isInteger(T) || T < 1) throw new Error(`packDocuments: seqLen must be a positive integer, got ${T}`);
  const crossDocument = o.crossDocument ?? 'keep';
  if (crossDocument !== 'keep' && crossDocument !== 'ignore') throw new Error(`packDocuments: crossDocument must be 'keep' or 'ignore', got ${JSON.stringify(crossDocument)}`);
  const chunks: ArrayLike<number>[] = [];
  let total = 0;
  let documents = 0;
  for (const d of docs) {
    if (d.length < 2 || d[0] !== o.bos || d[d.length - 1] !== o.eos) {
      throw new Error(`packDocuments: document ${documents} must start with BOS (${o.bos}) and end with EOS (${o.eos}); encode documents with encodeDocument()`);
    }
    chunks.push(d);
    total += d.length;
    documents++;
  }
  const stream = new Int32Array(total);
  let off = 0;
  for (const c of chunks) {
    stream.set(c, off);
    off += c.length;
  }
  const numSequences = total >= T + 1 ? Math.floor((total - 1) / T) : 0;
  const used = numSequences === 0 ? 0 : numSequences * T + 1;
  return { seqLen: T, stream, numSequences, documents, droppedTokens: total - used, bos: o.bos, eos: o.eos, crossDocument };
}

export interface PretrainBatch {
  /** [B, T] input ids. */
  readonly inputs: Int32Array;
  /** [B, T] next-token targets (IGNORE_INDEX where ignored). */
  readonly targets: Int32Array;
  /** [B, T] document index of each input position within its row (0, 1, …). */
  readonly segments: Int32Array;
  readonly shape: readonly [number, number];
  /** Which sequences of the packed corpus these rows are. */
  readonly sequenceIds: readonly number[];
}

/** Rows `ids` of the packed corpus as one batch. */
export function packedBatch(p: PackedCorpus, ids: readonly number[]): PretrainBatch {
  const T = p.seqLen;
  const B = ids.length;
  const inputs = new Int32Array(B * T);
  const targets = new Int32Array(B * T);
  const segments = new Int32Array(B * T);
  for (let r = 0; r < B; r++) {
    const i = ids[r];
    if (!Number.isInteger(i) || i < 0 || i >= p.numSequences) throw new Error(`packedBatch: sequence ${i} does not exist (the corpus packs into ${p.numSequences})`);
    const base = i * T;
    let seg = -1;
    for (let t = 0; t < T; t++) {
      const x = p.stream[base + t];
      const y = p.stream[base + t + 1];
      if (t === 0 || x === p.bos) seg++;
      inputs[r * T + t] = x;
      segments[r * T + t] = seg;
      targets[r * T + t] = p.crossDocument === 'ignore' && x === p.eos && y === p.bos ? IGNORE_INDEX : y;
    }
  }
  return { inputs, targets, segments, shape: [B, T], sequenceIds: [...ids] };
}

export interface PretrainLoaderOptions {
  batchSize: number;
  seed: SeedPart;
  /** Resume from a state saved with loader.state(). */
  resume?: IteratorState;
}

/** Endless shuffled batches of packed sequences, epoch after epoch, resumable from a cursor. */
export class PretrainLoader {
  private readonly it: EpochIterator<number>;

  constructor(
    readonly corpus: PackedCorpus,
    private readonly o: PretrainLoaderOptions,
  ) {
    if (!Number.isInteger(o.batchSize) || o.batchSize < 1) throw new Error(`PretrainLoader: batchSize must be a positive integer, got ${o.batchSize}`);
    if (corpus.numSequences === 0) throw new Error(`PretrainLoader: the corpus has ${corpus.stream.length} tokens, fewer than one sequence of ${corpus.seqLen + 1}; add documents or lower seqLen`);
    const ids = Array.from({ length: corpus.numSequences }, (_, i) => i);
    this.it = o.resume ? EpochIterator.resume(ids, o.resume) : new EpochIterator(ids, { seed: o.seed });
  }

  next(): PretrainBatch {
    return packedBatch(this.corpus, this.it.take(this.o.batchSize));
  }

  /** Save this with the checkpoint; pass it back as `resume`. */
  state(): IteratorState {
    return this.it.state();
  }
}
