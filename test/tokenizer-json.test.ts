import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Tokenizer as Peer } from '@huggingface/tokenizers';
import { DEEPSEEK_PATTERNS, PreTokenizer, RegexTranslationError, Tokenizer, TokenizerJsonError } from '../src/tokenizer/index.ts';
import { BYTE_TO_CHAR } from '../src/tokenizer/bytes.ts';

const BYTE_BASE = 3; // ids 0-2: BOS, EOS, pad; then the 256 bytes in byte order

/** A small tokenizer.json laid out as DeepSeek-V3/R1 ship theirs. */
function deepseekStyle(o: { mergeForm?: 'string' | 'array'; withAnswerTags?: boolean } = {}): Record<string, unknown> {
  const vocab: Record<string, number> = {
    '<｜begin▁of▁sentence｜>': 0,
    '<｜end▁of▁sentence｜>': 1,
    '<｜▁pad▁｜>': 2,
  };
  BYTE_TO_CHAR.forEach((c, b) => (vocab[c] = BYTE_BASE + b));
  const merges: [string, string][] = [
    ['Ġ', 't'], // 259 Ġt
    ['h', 'e'], // 260 he
    ['Ġt', 'he'], // 261 Ġthe
    ['1', '2'], // 262 12
    ['12', '3'], // 263 123
    ['4', '5'], // 264 45
    ['ä', '¸'], // 265 ä¸ (the first two bytes of 中, E4 B8)
  ];
  merges.forEach(([a, b], i) => (vocab[a + b] = 259 + i));
  const added = (id: number, content: string, special: boolean): object => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: !special,
    special,
  });
  const addedTokens = [
    added(0, '<｜begin▁of▁sentence｜>', true),
    added(1, '<｜end▁of▁sentence｜>', true),
    added(2, '<｜▁pad▁｜>', true),
    added(266, '<｜User｜>', false),
    added(267, '<｜Assistant｜>', false),
    added(268, '<think>', false),
    added(269, '</think>', false),
    added(270, '<｜place▁holder▁no▁0｜>', true),
  ];
  if (o.withAnswerTags) addedTokens.push(added(271, '<answer>', false), added(272, '</answer>', false));
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: addedTokens,
    normalizer: { type: 'Sequence', normalizers: [] },
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        ...DEEPSEEK_PATTERNS.map((p) => ({ type: 'Split', pattern: { Regex: p }, behavior: 'Isolated', invert: false })),
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<｜begin▁of▁sentence｜>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ SpecialToken: { id: '<｜begin▁of▁sentence｜>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '<｜begin▁of▁sentence｜>': { id: '<｜begin▁of▁sentence｜>', ids: [0], tokens: ['<｜begin▁of▁sentence｜>'] } },
    },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      vocab,
      merges: o.mergeForm === 'array' ? merges : merges.map(([a, b]) => `${a} ${b}`),
    },
  };
}

const byte = (c: string): number => BYTE_BASE + c.charCodeAt(0);

describe("a tokenizer.json in DeepSeek's format", () => {
  test('lacking <answer> tags it is refused by default, naming them, and loads with allowMissingSpecial', () => {
    assert.throws(() => Tokenizer.fromJSON(deepseekStyle()), /lacks tinyseek's control tokens <answer> <\/answer>.*allowMissingSpecial/);
    const t = Tokenizer.fromJSON(deepseekStyle(), { allowMissingSpecial: true });
    assert.deepEqual(t.special, { bos: 0, eos: 1, pad: 2, user: 266, assistant: 267, thinkOpen: 268, thinkClose: 269, answerOpen: -1, answerClose: -1 });
    assert.equal(t.vocabSize, 271);
  });

  test('encodes as checked by hand: three Split patterns, then byte-level BPE by merge rank', () => {
    const t = Tokenizer.fromJSON(deepseekStyle({ withAnswerTags: true }));
    // Split 1 (\p{N}{1,3}): "hello the " | 123 | 45 | " 中文"; split 2 (CJK runs): " " | 中文;
    // split 3: "hello" " the" " ". BPE: hello → he l l o; " the" → Ġt h e → Ġt he → Ġthe;
    // 123 → 12 3 → 123; 中 = E4 B8 AD → ä¸ Ń; 文 = E6 96 87, no merges.
    const ids = t.encode('hello the 12345 中文');
    assert.deepEqual(ids, [
      260,
      byte('l'),
      byte('l'),
      byte('o'),
      261,
      byte(' '),
      263,
      264,
      byte(' '),
      265,
      BYTE_BASE + 0xad,
      BYTE_BASE + 0xe6,
      BYTE_BASE + 0x96,
      BYTE_BASE + 0x87,
    ]);
    assert.equal(t.decode(ids), 'hello the 12345 中文');
    // added tokens
    assert.deepEqual(t.encode('<｜User｜>the<think>', { allowSpecial: true }), [266, byte('t'), 260, 268]);
    assert.deepEqual(t.encode('<｜place▁holder▁no▁0｜>', { allowSpecial: true }), [270]);
    assert.equal(t.decode([0, 266, 260, 1], { skipSpecial: true }), '<｜User｜>he'); // User is not special in DeepSeek's file
  });

  test("DeepSeek's pre-tokenizer pieces, checked by hand", () => {
    const pre = new PreTokenizer([...DEEPSEEK_PATTERNS]);
    // digits in threes first; CJK runs (一-龥, kana) next; then: one ASCII punctuation mark with the
    // ASCII word after it, letters with one optional leading non-letter, punctuation runs, spaces
    assert.deepEqual(pre.split('x.the 12345 中文かな, ok?\n\nend'), ['x', '.the', ' ', '123', '45', ' ', '中文かな', ',', ' ok', '?\n\n', 'end']);
  });

  test('merges in "a b" and [a, b] form load to the same tokenizer', () => {
    const a = Tokenizer.fromJSON(deepseekStyle({ withAnswerTags: true }));
    const b = Tokenizer.fromJSON(deepseekStyle({ withAnswerTags: true, mergeForm: 'array' }));
    for (const s of ['the 12345', 'hello 中文 world', ' the the']) assert.deepEqual(a.encode(s), b.encode(s));
    assert.deepEqual(a.toJSON(), b.toJSON());
  });

  test('save keeps the Split patterns and the post_processor, and reloads identically', () => {
    const a = Tokenizer.fromJSON(deepseekStyle({ withAnswerTags: true }));
    const json = a.toJSON() as { pre_tokenizer: { pretokenizers: { pattern?: { Regex: string } }[] }; post_processor: { type: string } };
    assert.deepEqual(
      json.pre_tokenizer.pretokenizers.slice(0, 3).map((p) => p.pattern!.Regex),
      [...DEEPSEEK_PATTERNS],
    );
    assert.equal(json.post_processor.type, 'TemplateProcessing');
    const b = Tokenizer.fromJSON(JSON.parse(JSON.stringify(json)));
    assert.deepEqual(b.toJSON(), json);
  });

  test('the same ids as tokenizers.js on random text (DeepSeek regexes through both translators)', () => {
    const json = deepseekStyle({ withAnswerTags: true });
    const ours = Tokenizer.fromJSON(json);
    const peer = new Peer(json, {});
    const pieces = fc.constantFrom(
      'the',
      ' the',
      '12345',
      '中文',
      'ひらがな',
      'カタカナ',
      '.the',
      "'s",
      '!!',
      '\r\n',
      '  ',
      '\t',
      'é',
      'e\u0301',
      '😀',
      '<think>',
      '٣',
    );
    fc.assert(
      fc.property(fc.array(fc.oneof(pieces, fc.string({ unit: 'grapheme', maxLength: 3 })), { maxLength: 15 }), (parts) => {
        const s = parts.join('');
        assert.deepEqual(ours.encode(s, { allowSpecial: true }), peer.encode(s, { add_special_tokens: false }).ids);
      }),
      { numRuns: 300 },
    );
  });
});

describe('unsupported features and broken files are named', () => {
  // biome-ignore lint/suspicious/noExplicitAny: the cases reach into tokenizer.json's nested fields
  type Json = Record<string, any>;
  const withChange = (change: (j: Json) => void): Record<string, unknown> => {
    const j = deepseekStyle({ withAnswerTags: true }) as Json;
    change(j);
    return j;
  };
  const cases: [string, (j: Json) => void, RegExp][] = [
    ['model type WordPiece', (j) => (j.model.type = 'WordPiece'), /model type "WordPiece" is not supported/],
    ['a normalizer', (j) => (j.normalizer = { type: 'NFC' }), /normalizer "NFC" is not supported/],
    ['byte fallback', (j) => (j.model.byte_fallback = true), /model\.byte_fallback = true is not supported/],
    ['BPE dropout', (j) => (j.model.dropout = 0.1), /model\.dropout = 0\.1/],
    ['a Metaspace pre-tokenizer', (j) => (j.pre_tokenizer.pretokenizers[0] = { type: 'Metaspace' }), /"Metaspace" is not supported/],
    ['Split "Removed"', (j) => (j.pre_tokenizer.pretokenizers[0].behavior = 'Removed'), /Split behavior "Removed" is not supported/],
    ['add_prefix_space', (j) => (j.pre_tokenizer.pretokenizers[3].add_prefix_space = true), /add_prefix_space = true is not supported/],
    ['a WordPiece decoder', (j) => (j.decoder = { type: 'WordPiece' }), /decoder type "WordPiece" is not supported/],
    ['lstrip on an added token', (j) => (j.added_tokens[3].lstrip = true), /"<｜User｜>"\) has lstrip = true/],
    ['truncation', (j) => (j.truncation = { max_length: 10 }), /truncation is set/],
    ['a merge of unknown tokens', (j) => j.model.merges.push('zz q'), /merge 7 \("zz q"\): its left token "zz" is not in model\.vocab/],
    ['a malformed merge', (j) => j.model.merges.push('a b c'), /model\.merges\[7\] = "a b c" is not of the form "a b"/],
    ['a regex backreference', (j) => (j.pre_tokenizer.pretokenizers[0].pattern.Regex = '(a)\\1'), /\\1.*no JavaScript equivalent/],
    ['an added token on a vocabulary id', (j) => (j.added_tokens[3].id = 100), /added token "<｜User｜>" has id 100, which the vocabulary gives to/],
    ['not an object', (j) => (j.model = 'BPE'), /"model" must be an object/],
  ];
  for (const [name, change, message] of cases) {
    test(name, () => {
      assert.throws(() => Tokenizer.fromJSON(withChange(change)), message);
    });
  }

  test('error classes', () => {
    assert.throws(() => Tokenizer.fromJSON(withChange((j) => (j.model.type = 'Unigram'))), TokenizerJsonError);
    assert.throws(() => Tokenizer.fromJSON(withChange((j) => (j.pre_tokenizer.pretokenizers[0].pattern.Regex = '\\K'))), RegexTranslationError);
    assert.throws(() => Tokenizer.fromJSON(null), /the top level must be an object, got null/);
  });

  test('a vocabulary without some byte fails when that byte is encoded, naming it', () => {
    const t = Tokenizer.fromJSON(withChange((j) => delete j.model.vocab[BYTE_TO_CHAR[0xbf]]));
    assert.throws(() => t.encode('ÿ'), /no token for byte 0xbf/); // ÿ is C3 BF
  });

  test('GPT-2 style: a lone ByteLevel pre-tokenizer with use_regex applies the GPT-2 pattern', () => {
    const t = Tokenizer.fromJSON(withChange((j) => (j.pre_tokenizer = { type: 'ByteLevel', add_prefix_space: false, use_regex: true })));
    // pieces "the", " 12345" (GPT-2 keeps digit runs whole): t he | Ġ 1 2 3 4 5 → Ġ 12 3 4 5 → Ġ 123 4 5 → Ġ 123 45
    assert.deepEqual(t.encode('the 12345'), [byte('t'), 260, byte(' '), 263, 264]);
  });
});
