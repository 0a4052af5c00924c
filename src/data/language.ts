/**
 * How readable a text is, for R1's language-consistency reward and for rejection sampling's
 * readability filter. DeepSeek-R1 (§2.3.2) rewards "the proportion of target language words in the
 * CoT"; the tasks here are in English, so the target is the Latin script.
 *
 * It knows text; not tasks or tokens.
 */

const WORD = /[\p{L}][\p{L}\p{M}'-]*/gu;
const LATIN = /^[\p{Script=Latin}\p{M}'-]+$/u;
/** Whether a code point is one no readable reasoning holds: U+FFFD (bytes that were not UTF-8), or a control character other than tab and newline. */
const garbledCode = (c: number): boolean => c === 0xfffd || (c < 0x20 && c !== 0x09 && c !== 0x0a) || (c >= 0x7f && c <= 0x9f);

/** The share of a text's words (runs of letters) written in the Latin script; 1 when it has none. */
export function latinWordShare(text: string): number {
  const words = text.match(WORD) ?? [];
  if (words.length === 0) return 1;
  let latin = 0;
  for (const w of words) if (LATIN.test(w)) latin++;
  return latin / words.length;
}

/** Whether a text holds undecodable bytes or control characters. */
export function isGarbled(text: string): boolean {
  for (const ch of text) if (garbledCode(ch.codePointAt(0) ?? 0)) return true;
  return false;
}
