/**
 * The Tokenizer: byte-level BPE with added (control) tokens, trained here or read from a Hugging
 * Face tokenizer.json, encoding text to ids and decoding ids to text.
 *
 * encode(text) pipeline: (1) only with { allowSpecial: true }, added tokens such as
 * "<｜User｜>" are cut out of the text first and become their ids; by default their strings in
 * the text are ordinary text, encoded byte by byte like any other, so user text can never inject
 * a control token; (2) the pre-tokenizer's regexes cut the rest into pieces; (3) each piece's UTF-8
 * bytes are merged by BPE (cached per piece). encode never adds BOS or EOS: the chat template
 * (chat.ts) places them.
 *
 * Knows how the parts fit together; the parts themselves live in pretokenize.ts, bpe.ts, train.ts,
 * decode.ts and tokenizer-json.ts.
 */
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { BYTE_TO_CHAR, byteLevelToBytes, utf8 } from './bytes.ts';
import { AddedTokenMatcher } from './added.ts';
import { BpeEncoder, type Merge } from './bpe.ts';
import { createStreamDecoder, decodeIds, type StreamDecoder } from './decode.ts';
import { CL100K_PATTERN, DIGIT_PATTERN, PreTokenizer } from './pretokenize.ts';
import { SKIPPED_WHEN_DECODING, SPECIAL_NAMES, SPECIAL_TOKENS, resolveSpecialIds, type SpecialIds } from './special.ts';
import { parseTokenizerJson, toTokenizerJson, TokenizerJsonError, type AddedTokenSpec, type TokenizerSpec } from './tokenizer-json.ts';
import { countWords, trainBpe } from './train.ts';

export interface TrainTokenizerOptions {
  /** Total ids: special tokens + 256 byte tokens + merged tokens. */
  vocabSize: number;
  /** Extra special tokens, after tinyseek's nine (which are always there). */
  specialTokens?: string[];
  /** Pairs seen fewer times than this are not merged, even if vocabSize is not reached (default 2). */
  minFrequency?: number;
  /**
   * Split every number into single digits before the GPT-4 pattern (as DeepSeek LLM and LLaMA do),
   * instead of GPT-4's groups of up to three: small models learn arithmetic far more easily when a
   * digit is a token. Default false.
   */
  splitDigits?: boolean;
}

/** The pre-tokenizer patterns a trained tokenizer uses (saved in its tokenizer.json). */
export function trainingPatterns(o: { splitDigits?: boolean }): string[] {
  return o.splitDigits ? [DIGIT_PATTERN, CL100K_PATTERN] : [CL100K_PATTERN];
}

export interface LoadTokenizerOptions {
  /**
   * Accept a tokenizer that lacks some of tinyseek's control tokens (DeepSeek's own has no
   * `<answer>` tags); their `special` ids are then -1. Default false: such a tokenizer is an error.
   */
  allowMissingSpecial?: boolean;
}

export interface EncodeOptions {
  /** Turn added-token strings in the text ("<｜User｜>", "<think>", …) into their ids. Default false. */
  allowSpecial?: boolean;
}

export interface DecodeOptions {
  /** Leave out control tokens (BOS, EOS, pad, User, Assistant and other special tokens). Default false. */
  skipSpecial?: boolean;
}

export class Tokenizer {
  /** Ids of tinyseek's control tokens (-1 for one a tokenizer loaded with allowMissingSpecial lacks). */
  readonly special: SpecialIds;
  private readonly spec: TokenizerSpec;
  private readonly pre: PreTokenizer;
  private readonly bpe: BpeEncoder;
  private readonly tokenOf: (string | undefined)[] = [];
  private readonly bytesOf: (Uint8Array | undefined)[] = [];
  private readonly skippable: Uint8Array;
  private readonly ids = new Map<string, number>();
  private readonly addedIds = new Map<string, number>();
  private readonly added: AddedTokenMatcher;
  private readonly size: number;

  private constructor(spec: TokenizerSpec, o: LoadTokenizerOptions) {
    this.spec = spec;
    for (const [token, id] of spec.vocab) {
      this.ids.set(token, id);
      this.tokenOf[id] = token;
      this.bytesOf[id] = byteLevelToBytes(token) ?? utf8(token);
    }
    for (const t of spec.addedTokens) {
      const other = this.tokenOf[t.id];
      if (other !== undefined && other !== t.content) {
        throw new TokenizerJsonError(`added token ${JSON.stringify(t.content)} has id ${t.id}, which the vocabulary gives to ${JSON.stringify(other)}`);
      }
      const prior = this.addedIds.get(t.content);
      if (prior !== undefined && prior !== t.id)
        throw new TokenizerJsonError(`added token ${JSON.stringify(t.content)} appears with two ids, ${prior} and ${t.id}`);
      this.ids.set(t.content, t.id);
      this.addedIds.set(t.content, t.id);
      this.tokenOf[t.id] = t.content;
      this.bytesOf[t.id] = utf8(t.content);
    }
    this.size = this.tokenOf.length;
    this.skippable = new Uint8Array(this.size);
    for (const t of spec.addedTokens) if (t.special) this.skippable[t.id] = 1;

    const idOf = (t: string, what: string): number => {
      const id = spec.vocab.get(t);
      if (id === undefined) throw new TokenizerJsonError(`${what} ${JSON.stringify(t)} is not in model.vocab`);
      return id;
    };
    const merges: Merge[] = spec.merges.map(([a, b], i) => ({
      left: idOf(a, `merge ${i} ("${a} ${b}"): its left token`),
      right: idOf(b, `merge ${i} ("${a} ${b}"): its right token`),
      merged: idOf(a + b, `merge ${i} ("${a} ${b}"): the merged token`),
    }));
    const byteIds = new Int32Array(256);
    for (let b = 0; b < 256; b++) byteIds[b] = spec.vocab.get(BYTE_TO_CHAR[b]) ?? -1;
    this.bpe = new BpeEncoder(byteIds, merges, spec.ignoreMerges ? spec.vocab : undefined);
    this.pre = new PreTokenizer(spec.patterns);

    this.added = new AddedTokenMatcher(this.addedIds.keys());
    this.special = resolveSpecialIds((t) => this.addedIds.get(t), o.allowMissingSpecial ?? false);
  }

  /**
   * Trains a byte-level BPE tokenizer on `texts` with GPT-4's pre-tokenization pattern. Ids:
   * 0-8 are tinyseek's control tokens in SPECIAL_TOKENS order (bos, eos, pad, user, assistant,
   * thinkOpen, thinkClose, answerOpen, answerClose), then `specialTokens`, then the 256 bytes in
   * byte order, then merged tokens in the order they were learned. Added-token strings in the
   * texts are not learned from. Deterministic: the same texts and options give the same tokenizer.
   */
  static train(texts: Iterable<string>, o: TrainTokenizerOptions): Tokenizer {
    const control = SPECIAL_NAMES.map((n) => SPECIAL_TOKENS[n] as string);
    const extra = (o.specialTokens ?? []).filter((t, i, all) => !control.includes(t) && all.indexOf(t) === i);
    for (const t of extra) if (typeof t !== 'string' || t === '') throw new Error(`special tokens must be non-empty strings, got ${JSON.stringify(t)}`);
    const addedList = [...control, ...extra];
    const minimum = addedList.length + 256;
    if (!Number.isInteger(o.vocabSize) || o.vocabSize < minimum) {
      throw new Error(`vocabSize ${o.vocabSize} is too small: it must hold ${addedList.length} special tokens and 256 byte tokens, so at least ${minimum}`);
    }
    const minFrequency = o.minFrequency ?? 2;
    // As Hugging Face's trainer does, added-token strings in the corpus are cut out, not learned
    // from; and no learned token may have an added token's string (one vocabulary key, one id).
    const matcher = new AddedTokenMatcher(addedList);
    const ordinary = function* (): Generator<string> {
      const parts: string[] = [];
      for (const t of texts) {
        if (typeof t !== 'string') throw new TypeError(`training texts must be strings, got ${typeof t}`);
        matcher.split(
          t,
          (s) => parts.push(s),
          () => {},
        );
        yield* parts;
        parts.length = 0;
      }
    };
    const patterns = trainingPatterns(o);
    const trained = trainBpe(countWords(ordinary(), new PreTokenizer(patterns)), {
      tokens: o.vocabSize - addedList.length,
      minFrequency,
      reserved: new Set(addedList),
    });
    const shift = addedList.length;
    const vocab = new Map<string, number>();
    const addedTokens: AddedTokenSpec[] = addedList.map((content, id) => {
      vocab.set(content, id);
      return { id, content, special: SKIPPED_WHEN_DECODING.has(content) || extra.includes(content) };
    });
    trained.tokens.forEach((t, i) => vocab.set(t, i + shift));
    const merges = trained.merges.map((m): [string, string] => [trained.tokens[m.left], trained.tokens[m.right]]);
    return new Tokenizer({ vocab, merges, addedTokens, patterns, ignoreMerges: false, postProcessor: null }, {});
  }

  /** Reads a parsed tokenizer.json; errors name an unsupported feature or a missing control token. */
  static fromJSON(json: unknown, o: LoadTokenizerOptions = {}): Tokenizer {
    return new Tokenizer(parseTokenizerJson(json), o);
  }

  /** Reads a tokenizer.json file. */
  static load(path: string, o: LoadTokenizerOptions = {}): Tokenizer {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') throw new Error(`tokenizer file not found: ${path} (train one with \`tinyseek tokenizer train\`)`);
      throw new Error(`cannot read tokenizer file ${path}: ${(e as Error).message}`);
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (e) {
      throw new Error(`${path} is not valid JSON (${(e as Error).message}); is it a complete tokenizer.json?`);
    }
    try {
      return Tokenizer.fromJSON(json, o);
    } catch (e) {
      if (e instanceof Error) e.message = `${path}: ${e.message}`;
      throw e;
    }
  }

  /** The Hugging Face tokenizer.json object. */
  toJSON(): object {
    return toTokenizerJson(this.spec);
  }

  /** Writes tokenizer.json atomically (a temporary file, then a rename). */
  save(path: string): void {
    mkdirSync(dirname(path), { recursive: true });
    const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
    try {
      writeFileSync(tmp, JSON.stringify(this.toJSON()));
      renameSync(tmp, path);
    } catch (e) {
      rmSync(tmp, { force: true });
      throw new Error(`cannot save the tokenizer to ${path}: ${(e as Error).message}`);
    }
  }

  /** The pre-tokenizer's split patterns, in order (what an exporter matches to another library's pre-tokenizer). */
  get patterns(): readonly string[] {
    return this.spec.patterns;
  }

  /** The BPE merges in rank order, as pairs of byte-level token strings. */
  get merges(): readonly (readonly [string, string])[] {
    return this.spec.merges;
  }

  /** Whether an added token is special (a control token dropped by decode's skipSpecial). */
  isSpecial(id: number): boolean {
    return this.skippable[id] === 1;
  }

  /** Total ids (the largest id + 1), added tokens included. */
  get vocabSize(): number {
    return this.size;
  }

  /** Text → ids. See the module comment for what allowSpecial changes. */
  encode(text: string, o: EncodeOptions = {}): number[] {
    if (typeof text !== 'string') throw new TypeError(`encode expects a string, got ${typeof text}`);
    const out: number[] = [];
    if (o.allowSpecial) {
      this.added.split(
        text,
        (s) => this.encodeOrdinary(s, out),
        (t) => out.push(this.addedIds.get(t)!),
      );
    } else {
      this.encodeOrdinary(text, out);
    }
    return out;
  }

  private encodeOrdinary(text: string, out: number[]): void {
    const bpe = this.bpe;
    this.pre.forEachPiece(text, (piece) => bpe.encodePiece(piece, out));
  }

  /** Ids → text. An unknown id is an error; bytes that are not valid UTF-8 become U+FFFD. */
  decode(ids: readonly number[], o: DecodeOptions = {}): string {
    return decodeIds(ids, (id) => this.bytesOf[id], o.skipSpecial ? (id) => this.skippable[id] === 1 : () => false, this.size);
  }

  /** A decoder for token-by-token streaming that holds back incomplete UTF-8 characters. */
  createDecoder(o: DecodeOptions = {}): StreamDecoder {
    return createStreamDecoder((id) => this.bytesOf[id], o.skipSpecial ? (id) => this.skippable[id] === 1 : () => false, this.size);
  }

  /** The id of a token: an added token's text ("<think>") or a vocabulary string ("Ġthe"). */
  tokenToId(token: string): number | undefined {
    return this.ids.get(token);
  }

  /** The token of an id: an added token's text, or the byte-level vocabulary string ("Ġthe"). */
  idToToken(id: number): string | undefined {
    return this.tokenOf[id];
  }

  /** The bytes an id stands for (a token can hold part of a UTF-8 character). */
  idToBytes(id: number): Uint8Array | undefined {
    return this.bytesOf[id];
  }

  /** Whether an id is an added (control) token. */
  isAdded(id: number): boolean {
    const t = this.tokenOf[id];
    return t !== undefined && this.addedIds.get(t) === id;
  }
}
