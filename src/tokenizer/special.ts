/**
 * tinyseek's control tokens: DeepSeek-R1's (begin/end of sentence, pad, User, Assistant, think
 * tags) plus the `<answer>` tags of R1-Zero style prompts, their order in a trained vocabulary,
 * and which of them count as "special" (dropped by `decode(…, { skipSpecial: true })`).
 *
 * Knows only token strings; nothing about ids beyond resolving them through a lookup function.
 */

/** The default tokens, in the order a trained tinyseek vocabulary gives them ids 0, 1, 2, … */
export const SPECIAL_TOKENS = {
  bos: '<｜begin▁of▁sentence｜>',
  eos: '<｜end▁of▁sentence｜>',
  pad: '<｜▁pad▁｜>',
  user: '<｜User｜>',
  assistant: '<｜Assistant｜>',
  thinkOpen: '<think>',
  thinkClose: '</think>',
  answerOpen: '<answer>',
  answerClose: '</answer>',
} as const;

export type SpecialName = keyof typeof SPECIAL_TOKENS;

/** The ids of the default tokens in one tokenizer; -1 for one it lacks (see Tokenizer.fromJSON). */
export type SpecialIds = { readonly [K in SpecialName]: number };

export const SPECIAL_NAMES = Object.keys(SPECIAL_TOKENS) as SpecialName[];

/**
 * Control tokens that `decode(…, { skipSpecial: true })` drops. The think and answer tags are
 * markup the reader (and a reward function) must see, so they are added tokens but not special,
 * as DeepSeek's own tokenizer marks `<think>` and `</think>`.
 */
export const SKIPPED_WHEN_DECODING: ReadonlySet<string> = new Set([
  SPECIAL_TOKENS.bos,
  SPECIAL_TOKENS.eos,
  SPECIAL_TOKENS.pad,
  SPECIAL_TOKENS.user,
  SPECIAL_TOKENS.assistant,
]);

/**
 * Looks up every default token. Missing ones are an error naming them, unless `allowMissing`,
 * in which case their id is -1.
 */
export function resolveSpecialIds(lookup: (token: string) => number | undefined, allowMissing: boolean): SpecialIds {
  const ids = {} as Record<SpecialName, number>;
  const missing: string[] = [];
  for (const name of SPECIAL_NAMES) {
    const id = lookup(SPECIAL_TOKENS[name]);
    if (id === undefined) missing.push(SPECIAL_TOKENS[name]);
    ids[name] = id ?? -1;
  }
  if (missing.length > 0 && !allowMissing) {
    throw new Error(
      `the tokenizer lacks tinyseek's control token${missing.length > 1 ? 's' : ''} ${missing.join(' ')} ` +
        `(they must be in "added_tokens"); train one with \`tinyseek tokenizer train\`, add them, ` +
        `or load with { allowMissingSpecial: true } to get -1 for their ids`,
    );
  }
  return Object.freeze(ids);
}
