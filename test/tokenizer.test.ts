import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';
import { SPECIAL_TOKENS, Tokenizer, UnknownTokenError, PreTokenizer, CL100K_PATTERN } from '../src/tokenizer/index.ts';
import { BYTE_TO_CHAR, utf8, utf8Into } from '../src/tokenizer/bytes.ts';
import { onigurumaToJs } from '../src/tokenizer/regex.ts';
import { countWords, trainBpe } from '../src/tokenizer/train.ts';

/** A deterministic mixed corpus: prose, numbers, code-ish lines, CJK, emoji, odd whitespace. */
function corpus(docs: number, seed = 1): string[] {
  let s = seed;
  // biome-ignore lint/suspicious/noAssignInExpressions: a one-line linear congruential generator
  const r = (): number => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 4294967296;
  const words = ['the', 'model', 'thinks', 'about', 'an', 'answer', 'and', 'then', 'it', 'writes', 'The', 'A', 'number', "don't", "it's", 'of', 'tokens'];
  const extra = ['12 + 7 = 19', '3.14159', '你好世界', '日本語', '😀', '👍🏽', 'e\u0301', '\t', '\r\n', '    ', '(x) => x * 2;', '<b>', '"quoted"'];
  const syllables = ['ka', 'lo', 'mi', 'ten', 'ra', 'sho', 'vu', 'er', 'in', 'qua', 'ble', 'st'];
  const made = (): string => Array.from({ length: 1 + Math.floor(r() * 4) }, () => syllables[Math.floor(r() * syllables.length)]).join('');
  const out: string[] = [];
  for (let d = 0; d < docs; d++) {
    let t = '';
    const n = 20 + Math.floor(r() * 80);
    for (let i = 0; i < n; i++) {
      const x = r();
      t += x < 0.1 ? extra[Math.floor(r() * extra.length)] : x < 0.4 ? made() : words[Math.floor(r() * words.length)];
      t += r() < 0.1 ? '.\n' : ' ';
    }
    out.push(t);
  }
  return out;
}

const texts = corpus(400);
let tok: Tokenizer;
let dir = '';
before(() => {
  tok = Tokenizer.train(texts, { vocabSize: 600 });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tinyseek-tokenizer-'));
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Reference BPE for one piece: merge the lowest-rank pair (leftmost on ties) until none applies. */
function naiveBpe(tokens: string[], ranks: Map<string, number>): string[] {
  const w = [...tokens];
  for (;;) {
    let best = Infinity;
    let at = -1;
    for (let i = 0; i + 1 < w.length; i++) {
      const r = ranks.get(`${w[i]} ${w[i + 1]}`);
      if (r !== undefined && r < best) {
        best = r;
        at = i;
      }
    }
    if (at < 0) return w;
    w.splice(at, 2, w[at] + w[at + 1]);
  }
}

interface BpeJson {
  model: { vocab: Record<string, number>; merges: [string, string][] };
  added_tokens: { id: number; content: string; special: boolean }[];
}

describe('byte-level basics', () => {
  test("GPT-2's byte map: printable bytes are themselves, space is Ġ, newline Ċ", () => {
    assert.equal(BYTE_TO_CHAR[0x41], 'A');
    assert.equal(BYTE_TO_CHAR[0x20], 'Ġ');
    assert.equal(BYTE_TO_CHAR[0x0a], 'Ċ');
    assert.equal(BYTE_TO_CHAR[0xad], 'Ń');
    assert.equal(new Set(BYTE_TO_CHAR).size, 256);
  });

  test('the hand UTF-8 encoder agrees with TextEncoder, lone surrogates included', () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.oneof(fc.string({ unit: 'binary', maxLength: 1 }), fc.constantFrom('\ud800', '\udfff', '\ud83d')) }), (s) => {
        const buf = new Uint8Array(s.length * 3);
        const n = utf8Into(s, buf);
        assert.deepEqual(buf.slice(0, n), utf8(s));
      }),
      { numRuns: 300 },
    );
  });
});

describe('pre-tokenization', () => {
  test("the hand-written JS form of cl100k matches the mechanical translation of tiktoken's pattern", () => {
    const hand = PreTokenizer.cl100k();
    const mechanical = new PreTokenizer([`(?:${CL100K_PATTERN})`]); // not the same string, so it is translated
    const pieces = fc.constantFrom(
      "'s",
      "'S",
      "'ll",
      "'ſ",
      ' ',
      '  ',
      '\n',
      '\r\n',
      '\t',
      '\u0085',
      '\ufeff',
      '\u00a0',
      'a',
      'Z',
      'é',
      '中',
      '1',
      '١',
      '!',
      '?!',
      '😀',
      'e\u0301',
    );
    fc.assert(
      fc.property(fc.array(pieces, { maxLength: 30 }), fc.string({ unit: 'binary' }), (ps, extra) => {
        const text = ps.join('') + extra;
        assert.deepEqual(hand.split(text), mechanical.split(text));
      }),
      { numRuns: 500 },
    );
  });

  test("GPT-4's pieces: contractions, letters with one leading non-letter, numbers in threes, whitespace", () => {
    const pre = PreTokenizer.cl100k();
    assert.deepEqual(pre.split("Hello world, it's 12345 DON'T  go!\n\n  ok"), [
      'Hello',
      ' world',
      ',',
      ' it',
      "'s",
      ' ',
      '123',
      '45',
      ' DON',
      "'T",
      ' ',
      ' go',
      '!\n\n',
      ' ',
      ' ok',
    ]);
    // U+0085 is White_Space (JS's \s misses it); U+FEFF is not (JS's \s has it).
    assert.deepEqual(pre.split('a\u0085\u0085b'), ['a', '\u0085', '\u0085b']);
    assert.deepEqual(pre.split('a\ufeff\ufeffb'), ['a', '\ufeff\ufeff', 'b']);
  });

  test('Oniguruma translation: possessive and atomic forms never backtrack; (?i:) folds ASCII; unsupported constructs are named', () => {
    const re = (p: string): RegExp => new RegExp(`^(?:${onigurumaToJs(p)})$`, 'u');
    assert.equal(re('a++a').test('aaa'), false); // possessive: the run keeps every a
    assert.equal(re('a+a').test('aaa'), true);
    assert.equal(re('(?>a+)a').test('aaa'), false);
    assert.equal(re('(?i:ab)c').test('ABc'), true);
    assert.equal(re('(?i:ab)c').test('ABC'), false);
    assert.equal(re('(?i:[a-c])').test('B'), true);
    assert.equal(re('\\p{Han}+').test('中文'), true);
    assert.equal(re('x{,2}').test('xx'), true);
    assert.equal(re('.').test('\n'), false);
    assert.throws(() => onigurumaToJs('(a)\\1'), /\\1.*no JavaScript equivalent/);
    assert.throws(() => onigurumaToJs('[a-z&&[^aeiou]]'), /nested character classes|intersection/);
    assert.throws(() => onigurumaToJs('(?i)abc'), /group syntax/);
  });
});

describe('training', () => {
  test('known merges on a small corpus, checked by hand', () => {
    // "aaabdaaabac" is one piece. Pair counts: aa 4, ab 2, others 1 → merge a+a. The word becomes
    // [aa a b d aa a b a c]: (aa,a) 2 and (a,b) 2 tie; (a,b) has the smaller left id (97 < 256) → a+b.
    // Then [aa ab d aa ab a c]: (aa,ab) 2 → aaab. Every pair left occurs once (< minFrequency 2).
    const t = Tokenizer.train(['aaabdaaabac'], { vocabSize: 1000 });
    const json = t.toJSON() as BpeJson;
    assert.deepEqual(json.model.merges, [
      ['a', 'a'],
      ['a', 'b'],
      ['aa', 'ab'],
    ]);
    assert.equal(t.vocabSize, 9 + 256 + 3);
    assert.equal(t.tokenToId('aa'), 265);
    assert.equal(t.tokenToId('ab'), 266);
    assert.equal(t.tokenToId('aaab'), 267);
    assert.deepEqual(t.encode('aaabdaaabac'), [267, 9 + 0x64, 267, 9 + 0x61, 9 + 0x63]);
    // With minFrequency 1 the count-1 pairs are merged too, smallest (left, right) first: (a, c).
    const all = Tokenizer.train(['aaabdaaabac'], { vocabSize: 9 + 256 + 4, minFrequency: 1 }).toJSON() as BpeJson;
    assert.deepEqual(all.model.merges[3], ['a', 'c']);
  });

  test('layout: control tokens at 0-8 in order, then extra specials, then the 256 bytes in byte order', () => {
    const t = Tokenizer.train(['hello hello'], { vocabSize: 300, specialTokens: ['<tool>', '<think>'] });
    assert.deepEqual(t.special, { bos: 0, eos: 1, pad: 2, user: 3, assistant: 4, thinkOpen: 5, thinkClose: 6, answerOpen: 7, answerClose: 8 });
    assert.equal(t.idToToken(0), '<｜begin▁of▁sentence｜>');
    assert.equal(t.tokenToId('<tool>'), 9);
    assert.equal(t.tokenToId('\u0100'), 10); // byte 0
    assert.equal(t.tokenToId('A'), 10 + 0x41);
    const json = t.toJSON() as BpeJson;
    assert.deepEqual(
      json.added_tokens.map((a) => [a.id, a.content, a.special]),
      [
        [0, SPECIAL_TOKENS.bos, true],
        [1, SPECIAL_TOKENS.eos, true],
        [2, SPECIAL_TOKENS.pad, true],
        [3, SPECIAL_TOKENS.user, true],
        [4, SPECIAL_TOKENS.assistant, true],
        [5, '<think>', false],
        [6, '</think>', false],
        [7, '<answer>', false],
        [8, '</answer>', false],
        [9, '<tool>', true],
      ],
    );
  });

  test('deterministic: the same corpus gives the same tokenizer', () => {
    const again = Tokenizer.train(texts, { vocabSize: 600 });
    assert.deepEqual(again.toJSON(), tok.toJSON());
    assert.equal(tok.vocabSize, 600);
  });

  test('incremental pair counts give the same merges as recounting the whole corpus every step', () => {
    const pre = PreTokenizer.cl100k();
    fc.assert(
      fc.property(fc.array(fc.string({ unit: fc.constantFrom('a', 'b', 'c', ' ', 'ab', 'é', '\n') }), { minLength: 1, maxLength: 20 }), (docs) => {
        const counts = countWords(docs, pre);
        const fast = trainBpe(counts, { tokens: 256 + 30, minFrequency: 1 });
        // The reference: recount every pair every step; max count, ties to the smallest (left, right).
        const words = [...counts].map(([w, c]) => ({ syms: Array.from(utf8(w)), c }));
        const tokens = fast.tokens.slice(0, 256);
        const ids = new Map(tokens.map((t, i) => [t, i]));
        const merges: [number, number, number][] = [];
        while (tokens.length < 256 + 30) {
          const pc = new Map<string, number>();
          for (const w of words)
            for (let i = 0; i + 1 < w.syms.length; i++) pc.set(`${w.syms[i]},${w.syms[i + 1]}`, (pc.get(`${w.syms[i]},${w.syms[i + 1]}`) ?? 0) + w.c);
          let best: [number, number] | null = null;
          let bestCount = 0;
          for (const [k, n] of pc) {
            const [a, b] = k.split(',').map(Number);
            if (n > bestCount || (n === bestCount && best !== null && (a < best[0] || (a === best[0] && b < best[1])))) {
              best = [a, b];
              bestCount = n;
            }
          }
          if (best === null) break;
          const text = tokens[best[0]] + tokens[best[1]];
          let c = ids.get(text);
          if (c === undefined) {
            c = tokens.length;
            tokens.push(text);
            ids.set(text, c);
          }
          merges.push([best[0], best[1], c]);
          for (const w of words) {
            const out: number[] = [];
            for (let i = 0; i < w.syms.length; i++) {
              if (i + 1 < w.syms.length && w.syms[i] === best[0] && w.syms[i + 1] === best[1]) {
                out.push(c);
                i++;
              } else out.push(w.syms[i]);
            }
            w.syms = out;
          }
        }
        assert.deepEqual(
          fast.merges.map((m) => [m.left, m.right, m.merged]),
          merges,
        );
      }),
      { numRuns: 150 },
    );
  });

  test('a 4096-token vocabulary from ~3 MB of text in seconds', () => {
    const big = corpus(9000, 7);
    const mb = big.reduce((n, t) => n + Buffer.byteLength(t), 0) / 1e6;
    const t0 = performance.now();
    const t = Tokenizer.train(big, { vocabSize: 4096 });
    const s = (performance.now() - t0) / 1000;
    assert.ok(mb > 2.5, `corpus is ${mb} MB`);
    assert.equal(t.vocabSize, 4096);
    assert.ok(s < 20, `training took ${s.toFixed(1)} s`);
  });

  test('control-token strings in the corpus are cut out, not learned from; no learned token takes a special string', () => {
    // 'Ġhi' as a special token has the very string the byte-level token of " hi" would have.
    const t = Tokenizer.train(
      Array.from({ length: 50 }, () => '<think>FOOD</think><answer>FOOD</answer> hi hi'),
      {
        vocabSize: 400,
        specialTokens: ['Ġhi', '<|end-of-text|>'],
      },
    );
    const json = t.toJSON() as BpeJson;
    const learned = Object.keys(json.model.vocab).filter((k) => json.model.vocab[k] >= 11 + 256);
    assert.ok(learned.includes('FOOD'), `learned: ${learned.join(' ')}`);
    assert.ok(
      learned.every((k) => !/[<>]/.test(k)),
      `learned: ${learned.join(' ')}`,
    );
    assert.ok(!learned.includes('Ġhi'));
    assert.ok(!t.encode(' hi hi').includes(9));
    assert.equal(t.decode(t.encode(' hi hi')), ' hi hi');
    assert.deepEqual(t.encode('Ġhi<|end-of-text|>', { allowSpecial: true }), [9, 10]);
    assert.equal(t.decode(t.encode('FOOD<|end-of-text|>')), 'FOOD<|end-of-text|>');
  });

  test('errors: a vocabulary too small for the specials and bytes; non-string texts', () => {
    assert.throws(() => Tokenizer.train(['x'], { vocabSize: 100 }), /vocabSize 100 is too small: .* at least 265/);
    assert.throws(() => Tokenizer.train([42 as unknown as string], { vocabSize: 300 }), /must be strings/);
  });
});

describe('encoding and decoding', () => {
  const pieces = fc.constantFrom(
    '😀',
    '👨‍👩‍👧',
    '中文',
    'e\u0301',
    '\r\n',
    '\t',
    '      ',
    '\u3000',
    '\ufeff',
    '<think>',
    '<｜User｜>',
    "'s",
    '123456',
    ' the',
  );
  const text = fc.oneof(
    fc.string({ unit: 'binary', maxLength: 60 }),
    fc.string({ unit: 'grapheme', maxLength: 40 }),
    fc.array(fc.oneof(pieces, fc.string({ unit: 'binary', maxLength: 4 })), { maxLength: 20 }).map((a) => a.join('')),
  );

  test('exact round trip for any valid UTF-8 text (property)', () => {
    fc.assert(
      fc.property(text, (s) => {
        assert.equal(tok.decode(tok.encode(s)), s);
        assert.equal(tok.decode(tok.encode(s, { allowSpecial: true })), s);
      }),
      { numRuns: 400 },
    );
  });

  test('round trip of emoji, CJK, combining marks, CRLF, tabs, long whitespace, a leading BOM', () => {
    for (const s of [
      '👍🏽 🇯🇵 family 👨‍👩‍👧',
      '中文和日本語のテキスト',
      'cafe\u0301 n\u0303',
      'a\r\nb\r\n\r\n',
      '\t\tindented\t',
      `${' '.repeat(5000)}x${'\n'.repeat(300)}`,
      '\ufeffBOM first',
    ]) {
      assert.equal(tok.decode(tok.encode(s)), s);
    }
  });

  test('lone surrogates are not valid UTF-8: they come back as U+FFFD', () => {
    assert.equal(tok.decode(tok.encode('a\ud800b')), 'a\ufffdb');
  });

  test('merges are applied by rank, leftmost first, on short and very long pieces alike (property vs a reference)', () => {
    const json = tok.toJSON() as BpeJson;
    const ranks = new Map(json.model.merges.map(([a, b], i) => [`${a} ${b}`, i]));
    const vocab = json.model.vocab;
    const letters = fc.string({ unit: fc.constantFrom('t', 'h', 'e', 'a', 'n', 's', 'o', 'w', 'r', 'i'), minLength: 1, maxLength: 400 });
    fc.assert(
      fc.property(letters, (word) => {
        const expected = naiveBpe(Array.from(word), ranks).map((t) => vocab[t]);
        assert.deepEqual(tok.encode(word), expected);
      }),
      { numRuns: 300 },
    );
  });

  test('common words become single tokens and the text compresses', () => {
    const ids = tok.encode(texts[0]);
    assert.ok(Buffer.byteLength(texts[0]) / ids.length > 2.5, `${Buffer.byteLength(texts[0]) / ids.length} bytes per token`);
    assert.equal(tok.encode(' the').length, 1);
  });

  test('special tokens: plain text by default, single ids with allowSpecial', () => {
    const s = '<｜User｜>hi<think>x</think><answer>5</answer>';
    const plain = tok.encode(s);
    for (const id of Object.values(tok.special)) assert.ok(!plain.includes(id), 'no control id in default encoding');
    assert.equal(tok.decode(plain), s);
    const allowed = tok.encode(s, { allowSpecial: true });
    assert.equal(allowed[0], tok.special.user);
    assert.deepEqual(allowed.slice(-3), [tok.special.answerOpen, ...tok.encode('5'), tok.special.answerClose].slice(-3));
    assert.ok(allowed.includes(tok.special.thinkOpen) && allowed.includes(tok.special.thinkClose));
    assert.equal(tok.decode(allowed), s);
    // longest match wins, and text between tokens is encoded on its own
    assert.deepEqual(tok.encode('<think></think>', { allowSpecial: true }), [tok.special.thinkOpen, tok.special.thinkClose]);
  });

  test('decode with skipSpecial drops BOS/EOS/pad/User/Assistant, keeps think and answer tags', () => {
    const { bos, user, assistant, thinkOpen, thinkClose, eos, pad } = tok.special;
    const ids = [bos, user, ...tok.encode('hi'), assistant, thinkOpen, ...tok.encode('r'), thinkClose, ...tok.encode('a'), eos, pad];
    assert.equal(tok.decode(ids), '<｜begin▁of▁sentence｜><｜User｜>hi<｜Assistant｜><think>r</think>a<｜end▁of▁sentence｜><｜▁pad▁｜>');
    assert.equal(tok.decode(ids, { skipSpecial: true }), 'hi<think>r</think>a');
  });

  test('tokenToId / idToToken / idToBytes', () => {
    assert.equal(tok.idToToken(tok.tokenToId('Ġthe')!), 'Ġthe');
    assert.equal(tok.tokenToId('<think>'), 5);
    assert.equal(tok.idToToken(999999), undefined);
    assert.deepEqual(tok.idToBytes(tok.tokenToId('Ġthe')!), utf8(' the'));
  });

  test('decoding an unknown id is an error naming it; a prefix cut inside a character is not', () => {
    assert.throws(
      () => tok.decode([1, 99999]),
      (e: Error) => e instanceof UnknownTokenError && /id 99999 at position 1/.test(e.message) && /0\.\.599/.test(e.message),
    );
    assert.throws(() => tok.decode([-1]), UnknownTokenError);
    const ids = tok.encode('𝄞');
    assert.equal(ids.length, 4); // four bytes, no merge for them in this vocabulary
    assert.equal(tok.decode(ids.slice(0, 2)), '\ufffd');
  });

  test('streaming decoder: holds back split multi-byte characters, flushes incomplete ones as U+FFFD', () => {
    const d = tok.createDecoder();
    const out = tok.encode('a😀中').map((id) => d.push(id));
    assert.deepEqual(
      out.filter((s) => s !== ''),
      ['a', '😀', '中'],
    );
    assert.equal(d.flush(), '');
    const ids = tok.encode('𝄞');
    assert.equal(d.push(ids[0]) + d.push(ids[1]), '');
    assert.equal(d.flush(), '\ufffd');
    assert.equal(d.push(tok.encode('b')[0]), 'b'); // usable after flush
    assert.throws(() => d.push(123456), UnknownTokenError);
  });

  test('streaming decoder output concatenates to decode() (property)', () => {
    fc.assert(
      fc.property(text, (s) => {
        const d = tok.createDecoder();
        const ids = tok.encode(s, { allowSpecial: true });
        assert.equal(ids.map((id) => d.push(id)).join('') + d.flush(), tok.decode(ids));
      }),
      { numRuns: 200 },
    );
  });
});

describe('save and load', () => {
  test('save → load gives identical encodings and an identical file', () => {
    const file = path.join(dir, 'nested', 'tokenizer.json');
    tok.save(file);
    assert.deepEqual(fs.readdirSync(path.dirname(file)), ['tokenizer.json']); // no temporary left behind
    const back = Tokenizer.load(file);
    assert.deepEqual(back.toJSON(), tok.toJSON());
    assert.deepEqual(back.special, tok.special);
    for (const t of [...texts.slice(0, 50), '<think>x</think>', '😀 中文']) {
      assert.deepEqual(back.encode(t), tok.encode(t));
      assert.deepEqual(back.encode(t, { allowSpecial: true }), tok.encode(t, { allowSpecial: true }));
    }
  });

  test('the saved file is a Hugging Face tokenizer.json: tokenizers.js reads it and gives the same ids', async () => {
    const { Tokenizer: Peer } = await import('@huggingface/tokenizers');
    const peer = new Peer(tok.toJSON(), {});
    const sample = fc.sample(fc.string({ unit: 'grapheme', maxLength: 40 }), { numRuns: 200, seed: 42 });
    for (const t of [...texts.slice(0, 30), ...sample, '<｜User｜>hi<think>\nok\n</think>\n\n42<｜end▁of▁sentence｜>']) {
      assert.deepEqual(tok.encode(t, { allowSpecial: true }), peer.encode(t, { add_special_tokens: false }).ids, JSON.stringify(t));
    }
  });

  test('a missing file and corrupt JSON are clear errors', () => {
    assert.throws(() => Tokenizer.load(path.join(dir, 'nope.json')), /tokenizer file not found: .*nope\.json/);
    const bad = path.join(dir, 'bad.json');
    fs.writeFileSync(bad, '{"model": {');
    assert.throws(() => Tokenizer.load(bad), /bad\.json is not valid JSON/);
  });
});
