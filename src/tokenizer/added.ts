/**
 * Finding added (control) tokens in text: the leftmost occurrence, the longest one where several
 * start at the same place (Hugging Face's rule), so that text can be cut into "added token" and
 * "ordinary text" stretches before pre-tokenization.
 *
 * Knows token strings; nothing about ids or BPE.
 */

/** Escapes a literal for a 'u' regex (where `\-` outside a class is a syntax error). */
const escapeRegExp = (s: string): string => s.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&');

export class AddedTokenMatcher {
  private readonly re: RegExp | null;

  constructor(tokens: Iterable<string>) {
    const list = [...new Set(tokens)].filter((t) => t !== '').sort((a, b) => b.length - a.length || (a < b ? -1 : 1));
    this.re = list.length === 0 ? null : new RegExp(list.map(escapeRegExp).join('|'), 'gu');
  }

  /**
   * Calls `text(s)` for each stretch of ordinary text and `token(t)` for each added token, in
   * order; empty stretches are skipped.
   */
  split(input: string, text: (s: string) => void, token: (t: string) => void): void {
    const re = this.re;
    if (re === null) {
      if (input !== '') text(input);
      return;
    }
    re.lastIndex = 0;
    let last = 0;
    for (let m = re.exec(input); m !== null; m = re.exec(input)) {
      if (m.index > last) text(input.slice(last, m.index));
      token(m[0]);
      last = m.index + m[0].length;
    }
    if (last < input.length) text(last === 0 ? input : input.slice(last));
  }
}
