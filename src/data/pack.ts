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
 * Layout 'documents' (document packing): each row is T + 1 tokens holding whole documents only —
 * documents are placed in order and a document that does not fit in the rest of a row starts the
 * next one; the rest of a row is the pad id, and targets on pads are IGNORE_INDEX. No document is
 * ever trained apart from its beginning (its problem statement), which the 'stream' layout cannot
 * promise: `contextCoverage` measures that share for either layout. A document longer than T + 1
 * tokens is cut to T + 1 (counted as truncatedDocuments).
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
  /** 'stream' (default): fixed windows over the concatenation; 'documents': whole documents per row. */
  layout?: PackLayout;
  /** The pad id filling rows in the 'documents' layout (required there). */
  pad?: number;
}

export type PackLayout = 'stream' | 'documents';

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
  /** 'stream': window i is stream[i·T … i·T + T]; 'documents': row i is stream[i·(T+1) … i·(T+1) + T]. */
  readonly layout: PackLayout;
  /** The pad id ('documents' layout; −1 in 'stream'). */
  readonly pad: number;
  /** Documents cut to one row ('documents' layout). */
  readonly truncatedDocuments: number;
}

/** Packs whole documents into rows of T + 1 tokens (see the module header). */
function packByDocument(chunks: readonly ArrayLike<number>[], o: PackOptions, crossDocument: 'keep' | 'ignore'): PackedCorpus {
  const W = o.seqLen + 1;
  if (o.pad === undefined || !Number.isInteger(o.pad)) throw new Error("packDocuments: the 'documents' layout needs the pad id (pad)");
  const pad = o.pad;
  const rows: number[][] = [];
  let row: number[] = [];
  let truncated = 0;
  for (const d of chunks) {
    let doc = Array.from(d);
    if (doc.length > W) {
      doc = doc.slice(0, W);
      truncated++;
    }
    if (row.length + doc.length > W) {
      rows.push(row);
      row = [];
    }
    row.push(...doc);
  }
  if (row.length) rows.push(row);
  const stream = new Int32Array(rows.length * W).fill(pad);
  rows.forEach((r, i) => stream.set(r, i * W));
  return {
    seqLen: o.seqLen,
    stream,
    numSequences: rows.length,
    documents: chunks.length,
    droppedTokens: 0,
    bos: o.bos,
    eos: o.eos,
    crossDocument,
    layout: 'documents',
    pad,
    truncatedDocuments: truncated,
  };
}

export function packDocuments(docs: Iterable<ArrayLike<number>>, o: PackOptions): PackedCorpus {
  const T = o.seqLen;
  if (!Number.isInteger(T) || T < 1) throw new Error(`packDocuments: seqLen must be a positive integer, got ${T}`);
  const crossDocument = o.crossDocument ?? 'keep';
  if (crossDocument !== 'keep' && crossDocument !== 'ignore')
    throw new Error(`packDocuments: crossDocument must be 'keep' or 'ignore', got ${JSON.stringify(crossDocument)}`);
  const chunks: ArrayLike<number>[] = [];
  let total = 0;
  let documents = 0;
  for (const d of docs) {
    if (d.length < 2 || d[0] !== o.bos || d[d.length - 1] !== o.eos) {
      throw new Error(
        `packDocuments: document ${documents} must start with BOS (${o.bos}) and end with EOS (${o.eos}); encode documents with encodeDocument()`,
      );
    }
    chunks.push(d);
    total += d.length;
    documents++;
  }
  if ((o.layout ?? 'stream') === 'documents') return packByDocument(chunks, o, crossDocument);
  if (o.layout !== undefined && o.layout !== 'stream')
    throw new Error(`packDocuments: layout must be 'stream' or 'documents', got ${JSON.stringify(o.layout)}`);
  const stream = new Int32Array(total);
  let off = 0;
  for (const c of chunks) {
    stream.set(c, off);
    off += c.length;
  }
  const numSequences = total >= T + 1 ? Math.floor((total - 1) / T) : 0;
  const used = numSequences === 0 ? 0 : numSequences * T + 1;
  return {
    seqLen: T,
    stream,
    numSequences,
    documents,
    droppedTokens: total - used,
    bos: o.bos,
    eos: o.eos,
    crossDocument,
    layout: 'stream',
    pad: -1,
    truncatedDocuments: 0,
  };
}

/** Where row / window i starts in the stream. */
const rowStart = (p: PackedCorpus, i: number): number => (p.layout === 'documents' ? i * (p.seqLen + 1) : i * p.seqLen);

export interface ContextCoverage {
  /** Trained target tokens (not ignored, not pads). */
  targets: number;
  /** Of those, the ones whose document begins (its BOS) inside the same row or window. */
  inView: number;
  /** inView / targets. */
  share: number;
}

/**
 * The context probe of a packing: the share of trained target tokens whose document's beginning —
 * the problem statement — is inside the row or window they are trained in.
 */
export function contextCoverage(p: PackedCorpus): ContextCoverage {
  const T = p.seqLen;
  let targets = 0;
  let inView = 0;
  for (let i = 0; i < p.numSequences; i++) {
    const base = rowStart(p, i);
    let seenBos = false;
    for (let t = 0; t < T; t++) {
      const x = p.stream[base + t];
      const y = p.stream[base + t + 1];
      if (x === p.bos) seenBos = true;
      if (p.layout === 'documents' && (x === p.pad || y === p.pad)) continue;
      if (p.crossDocument === 'ignore' && x === p.eos && y === p.bos) continue;
      targets++;
      if (seenBos || y === p.bos) inView++;
    }
  }
  return { targets, inView, share: targets ? inView / targets : 1 };
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
    if (!Number.isInteger(i) || i < 0 || i >= p.numSequences)
      throw new Error(`packedBatch: sequence ${i} does not exist (the corpus packs into ${p.numSequences})`);
    const base = rowStart(p, i);
    let seg = -1;
    for (let t = 0; t < T; t++) {
      const x = p.stream[base + t];
      const y = p.stream[base + t + 1];
      if (t === 0 || x === p.bos) seg++;
      inputs[r * T + t] = x;
      segments[r * T + t] = seg;
      const padded = p.layout === 'documents' && (x === p.pad || y === p.pad);
      targets[r * T + t] = padded || (p.crossDocument === 'ignore' && x === p.eos && y === p.bos) ? IGNORE_INDEX : y;
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
    if (corpus.numSequences === 0)
      throw new Error(
        `PretrainLoader: the corpus has ${corpus.stream.length} tokens, fewer than one sequence of ${corpus.seqLen + 1}; add documents or lower seqLen`,
      );
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
