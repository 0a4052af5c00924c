/**
 * Data for pretraining, prepared once and cached: the synthetic corpus (train documents 0..N-1,
 * validation documents from a separate index range, so none is seen in training), a BPE tokenizer
 * trained on the train documents, and both sets tokenized and packed.
 *
 * The cache lives in <runsDir>/cache/pretrain-data-<key>/, the key hashing everything that shapes
 * the data (corpus config, vocabulary size, document counts, sequence length). A rerun with the same
 * settings loads it in a second; the directory is written whole into a temporary name and renamed.
 *
 * It knows text, tokens and files; not models.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  type ContextCoverage,
  type CorpusConfig,
  type PackLayout,
  type PackedCorpus,
  contextCoverage,
  corpusDocument,
  encodeDocument,
  packDocuments,
} from '../data/index.ts';
import { FIM_TOKENS, type FimIds, fimDocument } from '../data/fim.ts';
import { Rng } from '../data/rng.ts';
import { syncDir, writeAllSync, writeFileDurable } from '../io/durable.ts';
import { Tokenizer } from '../tokenizer/index.ts';

/** Validation documents are corpus documents VAL_OFFSET + i: never among the training documents. */
export const VAL_OFFSET = 1_000_000_000;

export interface DataSpec {
  corpus: CorpusConfig;
  vocabSize: number;
  splitDigits: boolean;
  trainDocuments: number;
  valDocuments: number;
  seqLen: number;
  /** 'stream' windows or whole 'documents' per row (data/pack.ts). */
  packing: PackLayout;
  /** Share of training documents in fill-in-the-middle order (data/fim.ts); 0: none. */
  fimRate: number;
}

export interface PreparedData {
  tokenizer: Tokenizer;
  train: PackedCorpus;
  val: PackedCorpus;
  dir: string;
  /** Whether it came from the cache. */
  cached: boolean;
  /** The context probe of the training packing (data/pack.ts contextCoverage). */
  coverage: ContextCoverage;
}

/** Documents used to train the tokenizer (more adds time, hardly any quality at these sizes). */
const TOKENIZER_DOCUMENTS = 20_000;

/** The data settings of a pretraining config. */
export function dataSpecOf(
  c: Pick<DataSpec, 'corpus' | 'vocabSize' | 'splitDigits' | 'trainDocuments' | 'valDocuments' | 'seqLen' | 'packing'> & { fimRate?: number },
): DataSpec {
  return {
    corpus: c.corpus,
    vocabSize: c.vocabSize,
    splitDigits: c.splitDigits,
    trainDocuments: c.trainDocuments,
    valDocuments: c.valDocuments,
    seqLen: c.seqLen,
    packing: c.packing,
    fimRate: c.fimRate ?? 0,
  };
}

/** The ids of the FIM tokens in a tokenizer trained with them; an error naming the fix otherwise. */
export function fimIdsOf(tok: Tokenizer): FimIds {
  const [begin, hole, end] = FIM_TOKENS.map((t) => tok.tokenToId(t));
  if (begin === undefined || hole === undefined || end === undefined)
    throw new Error(`the tokenizer has no FIM tokens (${FIM_TOKENS.join(', ')}): pretrain with fimRate > 0 so that the tokenizer is trained with them`);
  return { bos: tok.special.bos, eos: tok.special.eos, begin, hole, end };
}

export function dataKey(spec: DataSpec): string {
  return createHash('sha256')
    .update(
      JSON.stringify({
        v: spec.corpus.kind === 'search' ? 3 : 1,
        ...spec,
        packing: spec.packing === 'stream' ? undefined : spec.packing,
        fimRate: spec.fimRate > 0 ? spec.fimRate : undefined,
      }),
    )
    .digest('hex')
    .slice(0, 16);
}

function writeStream(file: string, stream: Int32Array): void {
  const fd = fs.openSync(file, 'wx');
  try {
    writeAllSync(fd, new Uint8Array(stream.buffer, stream.byteOffset, stream.byteLength));
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

function readStream(file: string): Int32Array {
  const b = fs.readFileSync(file);
  if (b.byteLength % 4 !== 0) throw new Error(`${file} is truncated (${b.byteLength} bytes); delete the cache directory to rebuild it`);
  const out = new Int32Array(b.byteLength / 4);
  new Uint8Array(out.buffer).set(b);
  return out;
}

interface StreamMeta {
  documents: number;
  tokens: number;
  truncatedDocuments?: number;
}

function packed(stream: Int32Array, meta: StreamMeta, seqLen: number, tok: Tokenizer, layout: PackLayout): PackedCorpus {
  const T = seqLen;
  if (layout === 'documents') {
    return {
      seqLen: T,
      stream,
      numSequences: Math.floor(stream.length / (T + 1)),
      documents: meta.documents,
      droppedTokens: 0,
      bos: tok.special.bos,
      eos: tok.special.eos,
      crossDocument: 'keep',
      layout,
      pad: tok.special.pad,
      truncatedDocuments: meta.truncatedDocuments ?? 0,
    };
  }
  const numSequences = stream.length >= T + 1 ? Math.floor((stream.length - 1) / T) : 0;
  const used = numSequences === 0 ? 0 : numSequences * T + 1;
  return {
    seqLen: T,
    stream,
    numSequences,
    documents: meta.documents,
    droppedTokens: stream.length - used,
    bos: tok.special.bos,
    eos: tok.special.eos,
    crossDocument: 'keep',
    layout,
    pad: -1,
    truncatedDocuments: 0,
  };
}

function logCoverage(log: (s: string) => void, c: ContextCoverage, layout: PackLayout): void {
  log(
    `data: context probe: ${(c.share * 100).toFixed(1)}% of ${c.targets} trained target tokens see their document's beginning (the problem) in their ${layout === 'documents' ? 'row' : 'window'}`,
  );
}

export function preparePretrainData(spec: DataSpec, runsDir: string, log: (s: string) => void): PreparedData {
  const key = dataKey(spec);
  const dir = path.join(runsDir, 'cache', `pretrain-data-${key}`);
  const done = path.join(dir, 'data.json');
  if (fs.existsSync(done)) {
    const meta = JSON.parse(fs.readFileSync(done, 'utf8')) as { train: StreamMeta; val: StreamMeta; contextCoverage?: ContextCoverage };
    const tokenizer = Tokenizer.load(path.join(dir, 'tokenizer.json'));
    const train = packed(readStream(path.join(dir, 'train.bin')), meta.train, spec.seqLen, tokenizer, spec.packing);
    const val = packed(readStream(path.join(dir, 'val.bin')), meta.val, spec.seqLen, tokenizer, spec.packing);
    log(`data: cached in ${dir} (${meta.train.tokens} train tokens, ${meta.val.tokens} validation tokens, vocabulary ${tokenizer.vocabSize})`);
    const coverage = meta.contextCoverage ?? contextCoverage(train); // stored by data preparation
    logCoverage(log, coverage, spec.packing);
    return { tokenizer, train, val, dir, cached: true, coverage };
  }

  const t0 = performance.now();
  const trainTexts: string[] = [];
  for (let i = 0; i < spec.trainDocuments; i++) trainTexts.push(corpusDocument(spec.corpus, i).text);
  const valTexts: string[] = [];
  for (let i = 0; i < spec.valDocuments; i++) valTexts.push(corpusDocument(spec.corpus, VAL_OFFSET + i).text);
  log(`data: generated ${trainTexts.length} train and ${valTexts.length} validation documents (${((performance.now() - t0) / 1000).toFixed(1)} s)`);

  const t1 = performance.now();
  const tokenizer = Tokenizer.train(trainTexts.slice(0, TOKENIZER_DOCUMENTS), {
    vocabSize: spec.vocabSize,
    splitDigits: spec.splitDigits,
    ...(spec.fimRate > 0 ? { specialTokens: [...FIM_TOKENS] } : {}),
  });
  log(`data: trained a ${tokenizer.vocabSize}-token BPE tokenizer (${((performance.now() - t1) / 1000).toFixed(1)} s)`);

  const t2 = performance.now();
  const fim = spec.fimRate > 0 ? fimIdsOf(tokenizer) : null;
  let fimDocs = 0;
  const train = packDocuments(
    trainTexts.map((t, i) => {
      const doc = encodeDocument(tokenizer, t);
      const rng = new Rng('fim', i);
      if (!fim || !rng.bool(spec.fimRate)) return doc;
      fimDocs++;
      return fimDocument(doc, fim, rng);
    }),
    { seqLen: spec.seqLen, bos: tokenizer.special.bos, eos: tokenizer.special.eos, layout: spec.packing, pad: tokenizer.special.pad },
  );
  const val = packDocuments(
    valTexts.map((t) => encodeDocument(tokenizer, t)),
    { seqLen: spec.seqLen, bos: tokenizer.special.bos, eos: tokenizer.special.eos, layout: spec.packing, pad: tokenizer.special.pad },
  );
  log(
    `data: ${train.stream.length} train tokens (${train.numSequences} sequences of ${spec.seqLen}${train.truncatedDocuments ? `, ${train.truncatedDocuments} documents cut to one row` : ''}), ${val.stream.length} validation tokens (${((performance.now() - t2) / 1000).toFixed(1)} s)`,
  );
  const coverage = contextCoverage(train);
  logCoverage(log, coverage, spec.packing);
  if (fim) log(`data: ${fimDocs} of ${trainTexts.length} training documents in fill-in-the-middle order (fimRate ${spec.fimRate})`);

  fs.mkdirSync(path.dirname(dir), { recursive: true });
  const tmp = `${dir}.tmp-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp);
  try {
    tokenizer.save(path.join(tmp, 'tokenizer.json'));
    writeStream(path.join(tmp, 'train.bin'), train.stream);
    writeStream(path.join(tmp, 'val.bin'), val.stream);
    const meta = {
      spec,
      train: { documents: train.documents, tokens: train.stream.length, truncatedDocuments: train.truncatedDocuments },
      val: { documents: val.documents, tokens: val.stream.length, truncatedDocuments: val.truncatedDocuments },
      contextCoverage: coverage,
    };
    writeFileDurable(path.join(tmp, 'data.json'), `${JSON.stringify(meta, null, 2)}\n`);
    syncDir(tmp);
    fs.rmSync(dir, { recursive: true, force: true });
    fs.renameSync(tmp, dir);
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  return { tokenizer, train, val, dir, cached: false, coverage };
}
