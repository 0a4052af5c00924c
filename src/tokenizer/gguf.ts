/**
 * A tokenizer as GGUF metadata, the way llama.cpp's `gpt2` (byte-level BPE) tokenizer reads it
 * (llama-vocab.cpp): `tokenizer.ggml.model` "gpt2", `tokenizer.ggml.pre` naming the pre-tokenizer,
 * the byte-level token strings by id, each token's type (1 normal, 3 control, 4 user-defined),
 * the merges as "left right" strings in rank order, and the special ids.
 *
 * llama.cpp does not read the pre-tokenizer's patterns from the file; it knows a fixed list by
 * name. So the export names the one whose patterns equal ours, checked against llama.cpp's own
 * tokenization by the tests, and refuses a tokenizer whose patterns match none of them.
 *
 * It knows the Tokenizer's API and the metadata keys; not files or models.
 */
import type { GgufValue } from '../io/gguf.ts';
import { CL100K_PATTERN, DIGIT_PATTERN } from './pretokenize.ts';
import type { Tokenizer } from './tokenizer.ts';

/** llama.cpp token types (llama_token_type). */
const NORMAL = 1;
const CONTROL = 3;
const USER_DEFINED = 4;

/**
 * Pre-tokenizers by llama.cpp name, as the patterns a tinyseek tokenizer.json holds. "qwen2":
 * every digit its own piece, then cl100k's split — llama.cpp's qwen2 expression is the same
 * expression with `\p{N}` in place of `\p{N}{1,3}`, which after the digit split changes nothing.
 */
const KNOWN_PRE: readonly { name: string; patterns: readonly string[] }[] = [{ name: 'qwen2', patterns: [DIGIT_PATTERN, CL100K_PATTERN] }];

/** The llama.cpp pre-tokenizer name whose splits equal this tokenizer's. */
export function llamaCppPreTokenizer(tok: Tokenizer): string {
  const same = (a: readonly string[], b: readonly string[]): boolean => a.length === b.length && a.every((x, i) => x === b[i]);
  const hit = KNOWN_PRE.find((k) => same(k.patterns, tok.patterns));
  if (!hit)
    throw new Error(
      `the tokenizer's pre-tokenizer (${tok.patterns.map((p) => JSON.stringify(p)).join(', ')}) matches none that llama.cpp knows by name (${KNOWN_PRE.map((k) => k.name).join(', ')}); ` +
        'train the tokenizer with split digits (tinyseek tokenizer train --split-digits), which llama.cpp reads as "qwen2"',
    );
  return hit.name;
}

/** The tokenizer.ggml.* metadata of a tokenizer. */
export function ggufTokenizerMetadata(tok: Tokenizer): [string, GgufValue][] {
  const tokens: string[] = [];
  const types: number[] = [];
  for (let id = 0; id < tok.vocabSize; id++) {
    const t = tok.idToToken(id);
    if (t === undefined) {
      tokens.push(`[PAD${id}]`);
      types.push(5); // unused
      continue;
    }
    tokens.push(t);
    types.push(tok.isAdded(id) ? (tok.isSpecial(id) ? CONTROL : USER_DEFINED) : NORMAL);
  }
  const sp = tok.special;
  const out: [string, GgufValue][] = [
    ['tokenizer.ggml.model', { type: 'string', value: 'gpt2' }],
    ['tokenizer.ggml.pre', { type: 'string', value: llamaCppPreTokenizer(tok) }],
    ['tokenizer.ggml.tokens', { type: 'array', itemType: 'string', value: tokens }],
    ['tokenizer.ggml.token_type', { type: 'array', itemType: 'i32', value: types }],
    ['tokenizer.ggml.merges', { type: 'array', itemType: 'string', value: tok.merges.map(([a, b]) => `${a} ${b}`) }],
  ];
  if (sp.bos >= 0) out.push(['tokenizer.ggml.bos_token_id', { type: 'u32', value: sp.bos }]);
  if (sp.eos >= 0) out.push(['tokenizer.ggml.eos_token_id', { type: 'u32', value: sp.eos }]);
  if (sp.pad >= 0) out.push(['tokenizer.ggml.padding_token_id', { type: 'u32', value: sp.pad }]);
  out.push(['tokenizer.ggml.add_bos_token', { type: 'bool', value: sp.bos >= 0 }], ['tokenizer.ggml.add_eos_token', { type: 'bool', value: false }]);
  return out;
}
