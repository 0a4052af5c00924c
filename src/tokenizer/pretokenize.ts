/**
 * Pre-tokenization: cutting text into the pieces ("words") that BPE merges never cross, by a
 * sequence of isolating regex splits, as Hugging Face's `Split(behavior: "Isolated")` does: every
 * match is a piece, and so is every stretch of text between matches. With several patterns (as
 * DeepSeek's tokenizer has: digits, then CJK runs, then words/punctuation/whitespace), each is
 * applied to every piece the previous one produced.
 *
 * Knows the default pattern (GPT-4's cl100k) and how to run patterns fast; knows nothing about
 * bytes, vocabularies or merges.
 */
import { onigurumaToJs } from './regex.ts';

/**
 * GPT-4's cl100k pattern as tiktoken writes it (Oniguruma/Rust syntax). This is the string saved
 * in tokenizer.json, so that Hugging Face's Rust and JS tokenizers read the same splits.
 */
export const CL100K_PATTERN = "'(?i:[sdmt]|ll|ve|re)|[^\\r\\n\\p{L}\\p{N}]?+\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]++[\\r\\n]*|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+";

/**
 * The same pattern written for JavaScript by hand (JS has no possessive quantifiers and, in
 * Node 20, no inline `(?i:…)`). It matches exactly what CL100K_PATTERN matches:
 *
 * - `'(?i:[sdmt]|ll|ve|re)` → the contractions with each letter's case variants spelled out,
 *   plus 'ſ' (U+017F), which Unicode case folding (Oniguruma's and Rust's) matches for 's'.
 * - `[^\r\n\p{L}\p{N}]?+\p{L}+` → `…?\p{L}+`: when the optional character is taken it is not a
 *   letter, so giving it back could only make `\p{L}+` start on a non-letter and fail; the
 *   backtracking that possessiveness forbids can never lead to a match, so it changes nothing.
 * - ` ?[^\s\p{L}\p{N}]++[\r\n]*` → `…+[\r\n]*`: what follows the run, `[\r\n]*`, matches the
 *   empty string, so the greedy run is never given back either.
 * - `\s` → `\p{White_Space}` and `\S` → `\P{White_Space}`: Oniguruma's \s is the Unicode
 *   White_Space property; JS's \s adds U+FEFF and lacks U+0085.
 * A property test checks this hand form against the mechanical translation in regex.ts.
 */
export const CL100K_JS =
  "'(?:[sSſ]|[dD]|[mM]|[tT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\p{White_Space}\\p{L}\\p{N}]+[\\r\\n]*|\\p{White_Space}*[\\r\\n]|\\p{White_Space}+(?!\\P{White_Space})|\\p{White_Space}+";

/** One digit: as a first split, it makes every digit its own piece. */
export const DIGIT_PATTERN = '\\p{N}';

/** GPT-2's pattern, which Hugging Face's ByteLevel pre-tokenizer applies when use_regex is true. */
export const GPT2_PATTERN = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/** DeepSeek-V3/R1's three Split patterns, in their order. */
export const DEEPSEEK_PATTERNS: readonly string[] = [
  '\\p{N}{1,3}',
  '[一-龥\u3040-ゟ゠-ヿ]+',
  '[!"#$%&\'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+',
];

/** One isolating split: the Oniguruma source (kept for saving) and its compiled JS form. */
class IsolatingSplit {
  /** Sticky: tested at a position, no match array allocated. */
  private readonly sticky: RegExp;
  /** Global: finds the next match when the sticky one fails (a gap between matches). */
  private readonly global: RegExp;

  constructor(
    readonly pattern: string,
    jsSource: string,
  ) {
    this.sticky = new RegExp(jsSource, 'uy');
    this.global = new RegExp(jsSource, 'gu');
  }

  /** Calls `piece` for every match and every gap of `text`, in order. */
  forEach(text: string, piece: (s: string) => void): void {
    const sticky = this.sticky;
    let pos = 0;
    const n = text.length;
    while (pos < n) {
      sticky.lastIndex = pos;
      if (sticky.test(text) && sticky.lastIndex > pos) {
        piece(text.slice(pos, sticky.lastIndex));
        pos = sticky.lastIndex;
        continue;
      }
      // No (non-empty) match here: the text up to the next non-empty match is a gap piece.
      const g = this.global;
      g.lastIndex = pos;
      let start = n;
      let end = n;
      for (let m = g.exec(text); m !== null; m = g.exec(text)) {
        if (m[0].length > 0) {
          start = m.index;
          end = start + m[0].length;
          break;
        }
        g.lastIndex = m.index + (text.codePointAt(m.index)! > 0xffff ? 2 : 1);
      }
      if (start > pos) piece(text.slice(pos, start));
      if (end > start) piece(text.slice(start, end));
      pos = end;
    }
  }
}

/** A sequence of isolating splits; the pieces of the last one go to BPE. */
export class PreTokenizer {
  private readonly splits: IsolatingSplit[];

  /**
   * @param patterns Oniguruma patterns as in tokenizer.json, applied in order.
   * Throws RegexTranslationError naming a construct it cannot translate.
   */
  constructor(readonly patterns: readonly string[]) {
    this.splits = patterns.map((p) => new IsolatingSplit(p, p === CL100K_PATTERN ? CL100K_JS : onigurumaToJs(p)));
  }

  static cl100k(): PreTokenizer {
    return new PreTokenizer([CL100K_PATTERN]);
  }

  /** Calls `piece` for each piece of `text`, in order; pieces are never empty. */
  forEachPiece(text: string, piece: (s: string) => void): void {
    this.run(0, text, piece);
  }

  /** The pieces of `text`, as an array. */
  split(text: string): string[] {
    const out: string[] = [];
    this.run(0, text, (s) => out.push(s));
    return out;
  }

  private run(level: number, text: string, piece: (s: string) => void): void {
    if (level === this.splits.length - 1) {
      this.splits[level].forEach(text, piece);
    } else if (level >= this.splits.length) {
      if (text.length > 0) piece(text);
    } else {
      this.splits[level].forEach(text, (s) => this.run(level + 1, s, piece));
    }
  }
}
