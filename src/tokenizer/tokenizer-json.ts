/**
 * Hugging Face `tokenizer.json` ↔ a plain description of a byte-level BPE tokenizer.
 *
 * Reads what byte-level BPE tokenizers (GPT-2/4 style, DeepSeek-V3/R1, Llama 3, Qwen) ship:
 * model BPE (byte_fallback false; merges as "a b" strings or [a, b] arrays; ignore_merges),
 * pre_tokenizer ByteLevel or Sequence[Split(Isolated)…, ByteLevel(use_regex false)], decoder
 * ByteLevel, normalizer null or an empty Sequence, added_tokens, and a post_processor that is kept
 * as it is (tinyseek's encode never adds BOS: the chat template does). Anything that would change
 * the ids (another model type, a normalizer, byte fallback, stripping added tokens, …) is refused
 * with an error naming the feature.
 *
 * Knows the file format only; nothing about encoding.
 */
import { GPT2_PATTERN } from './pretokenize.ts';

export interface AddedTokenSpec {
  id: number;
  content: string;
  /** Dropped by decode(…, { skipSpecial: true }). */
  special: boolean;
}

export interface TokenizerSpec {
  /** Model vocabulary: byte-level token string → id. */
  vocab: Map<string, number>;
  /** Merges in rank order, as pairs of byte-level token strings. */
  merges: [string, string][];
  addedTokens: AddedTokenSpec[];
  /** Split patterns (Oniguruma syntax), applied in order before the byte-level mapping. */
  patterns: string[];
  /** Hugging Face's ignore_merges: a piece that is a vocabulary token maps to it directly. */
  ignoreMerges: boolean;
  /** Kept verbatim for saving; it does not affect encode(). */
  postProcessor: unknown;
}

export class TokenizerJsonError extends Error {
  constructor(message: string) {
    super(`tokenizer.json: ${message}`);
    this.name = 'TokenizerJsonError';
  }
}

type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function fail(message: string): never {
  throw new TokenizerJsonError(message);
}

function obj(v: unknown, where: string): Obj {
  if (!isObj(v)) fail(`${where} must be an object, got ${v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v}`);
  return v;
}

/** A feature that must be absent, null, false or one of `ok` values. */
function requireOff(o: Obj, key: string, where: string, ok: unknown[] = [null, undefined, false]): void {
  if (!ok.includes(o[key])) fail(`${where}.${key} = ${JSON.stringify(o[key])} is not supported (tinyseek reads byte-level BPE without it)`);
}

function parseModel(v: unknown): Pick<TokenizerSpec, 'vocab' | 'merges' | 'ignoreMerges'> {
  const m = obj(v, '"model"');
  if (m.type !== undefined && m.type !== 'BPE') fail(`model type ${JSON.stringify(m.type)} is not supported; tinyseek reads byte-level BPE models only`);
  requireOff(m, 'byte_fallback', 'model');
  requireOff(m, 'dropout', 'model', [null, undefined, 0]);
  requireOff(m, 'continuing_subword_prefix', 'model', [null, undefined, '']);
  requireOff(m, 'end_of_word_suffix', 'model', [null, undefined, '']);
  const vocabObj = obj(m.vocab, 'model.vocab');
  const vocab = new Map<string, number>();
  for (const [token, id] of Object.entries(vocabObj)) {
    if (!Number.isInteger(id) || (id as number) < 0) fail(`model.vocab[${JSON.stringify(token)}] must be a non-negative integer id, got ${JSON.stringify(id)}`);
    vocab.set(token, id as number);
  }
  if (!Array.isArray(m.merges)) fail('model.merges must be an array of "a b" strings or [a, b] pairs');
  const merges = m.merges.map((x: unknown, i: number): [string, string] => {
    if (typeof x === 'string') {
      const parts = x.split(' ');
      if (parts.length !== 2) fail(`model.merges[${i}] = ${JSON.stringify(x)} is not of the form "a b"`);
      return [parts[0], parts[1]];
    }
    if (Array.isArray(x) && x.length === 2 && typeof x[0] === 'string' && typeof x[1] === 'string') return [x[0], x[1]];
    return fail(`model.merges[${i}] = ${JSON.stringify(x)} is neither "a b" nor ["a", "b"]`);
  });
  return { vocab, merges, ignoreMerges: m.ignore_merges === true };
}

/** The ByteLevel pre-tokenizer's own regex split, if it has one. */
function byteLevelPatterns(p: Obj, where: string): string[] {
  if (p.add_prefix_space !== false)
    fail(`${where} ByteLevel add_prefix_space = ${JSON.stringify(p.add_prefix_space ?? true)} is not supported (it must be false)`);
  return p.use_regex === false ? [] : [GPT2_PATTERN];
}

function parseSplit(p: Obj, where: string): string {
  if (p.behavior !== 'Isolated') fail(`${where} Split behavior ${JSON.stringify(p.behavior)} is not supported (only "Isolated")`);
  if (p.invert !== false && p.invert !== undefined) fail(`${where} Split invert = true is not supported`);
  const pat = obj(p.pattern, `${where}.pattern`);
  if (typeof pat.Regex === 'string') return pat.Regex;
  if (typeof pat.String === 'string') return pat.String.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&');
  return fail(`${where}.pattern must be {"Regex": …} or {"String": …}`);
}

function parsePreTokenizer(v: unknown): string[] {
  if (v === null || v === undefined) fail('pre_tokenizer is null; a byte-level BPE tokenizer needs a ByteLevel pre-tokenizer');
  const p = obj(v, '"pre_tokenizer"');
  if (p.type === 'ByteLevel') return byteLevelPatterns(p, 'pre_tokenizer');
  if (p.type !== 'Sequence') fail(`pre_tokenizer type ${JSON.stringify(p.type)} is not supported (use Sequence[Split…, ByteLevel] or ByteLevel)`);
  if (!Array.isArray(p.pretokenizers) || p.pretokenizers.length === 0) fail('pre_tokenizer.pretokenizers must be a non-empty array');
  const list = p.pretokenizers as unknown[];
  const patterns: string[] = [];
  list.forEach((item, i) => {
    const where = `pre_tokenizer.pretokenizers[${i}]`;
    const q = obj(item, where);
    const last = i === list.length - 1;
    if (q.type === 'Split') {
      if (last) fail(`${where}: the sequence must end with ByteLevel`);
      patterns.push(parseSplit(q, where));
    } else if (q.type === 'ByteLevel') {
      if (!last) fail(`${where}: ByteLevel must be the last pre-tokenizer`);
      patterns.push(...byteLevelPatterns(q, where));
    } else {
      fail(`${where} type ${JSON.stringify(q.type)} is not supported (only Split and ByteLevel)`);
    }
  });
  return patterns;
}

function parseAddedTokens(v: unknown): AddedTokenSpec[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) fail('added_tokens must be an array');
  return v.map((item: unknown, i: number) => {
    const where = `added_tokens[${i}]`;
    const t = obj(item, where);
    if (!Number.isInteger(t.id) || (t.id as number) < 0) fail(`${where}.id must be a non-negative integer`);
    if (typeof t.content !== 'string' || t.content === '') fail(`${where}.content must be a non-empty string`);
    for (const k of ['lstrip', 'rstrip', 'single_word']) {
      if (t[k] === true) fail(`${where} (${JSON.stringify(t.content)}) has ${k} = true, which is not supported`);
    }
    return { id: t.id as number, content: t.content as string, special: t.special === true };
  });
}

/** Validates a parsed tokenizer.json and returns what tinyseek needs from it. */
export function parseTokenizerJson(json: unknown): TokenizerSpec {
  const root = obj(json, 'the top level');
  const n = root.normalizer;
  if (n !== null && n !== undefined) {
    const no = obj(n, '"normalizer"');
    const emptySequence = no.type === 'Sequence' && Array.isArray(no.normalizers) && no.normalizers.length === 0;
    if (!emptySequence) fail(`normalizer ${JSON.stringify(no.type)} is not supported (tinyseek reads tokenizers without normalization)`);
  }
  if (root.truncation !== null && root.truncation !== undefined) fail('truncation is set; it is not supported (truncate the ids yourself)');
  if (root.decoder !== null && root.decoder !== undefined) {
    const d = obj(root.decoder, '"decoder"');
    if (d.type !== 'ByteLevel') fail(`decoder type ${JSON.stringify(d.type)} is not supported (only ByteLevel)`);
  }
  const model = parseModel(root.model);
  return {
    ...model,
    addedTokens: parseAddedTokens(root.added_tokens),
    patterns: parsePreTokenizer(root.pre_tokenizer),
    postProcessor: root.post_processor ?? null,
  };
}

/** The tokenizer.json object of a spec: every field Hugging Face's loaders expect. */
export function toTokenizerJson(spec: TokenizerSpec): object {
  const vocab: Record<string, number> = {};
  for (const [t, id] of [...spec.vocab].sort((x, y) => x[1] - y[1])) vocab[t] = id;
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: spec.addedTokens.map((t) => ({
      id: t.id,
      content: t.content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: t.special,
    })),
    normalizer: null,
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        ...spec.patterns.map((p) => ({ type: 'Split', pattern: { Regex: p }, behavior: 'Isolated', invert: false })),
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
      ],
    },
    post_processor: spec.postProcessor,
    decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: spec.ignoreMerges,
      vocab,
      merges: spec.merges,
    },
  };
}
