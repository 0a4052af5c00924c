/**
 * Oniguruma → JavaScript regular expressions, for the Split patterns of Hugging Face
 * tokenizer.json files (the Rust `tokenizers` library compiles them with Oniguruma, Ruby syntax).
 *
 * What it translates, keeping Oniguruma's meaning exactly:
 *   - possessive quantifiers (`?+`, `*+`, `++`, `{n,m}+`) and atomic groups `(?>…)`, which JS
 *     lacks, as `(?=(?<g>X))\k<g>`: the lookahead matches X once, greedily, and never backtracks
 *     into it, which is what atomicity means;
 *   - `(?i:…)` (JS 20 has no inline modifiers) by spelling out each ASCII letter's case variants,
 *     including the two non-ASCII characters Unicode case-folds onto ASCII letters (ſ → s, K → k);
 *   - `\s`/`\S` as White_Space (JS's `\s` adds U+FEFF and misses U+0085), `\d` as Nd, `\w` and
 *     `\b` as Unicode word characters, `.` as "not \n", `^`/`$` as line anchors, `\A` `\z` `\Z`,
 *     `\h`, `\x{…}`, `\p{Han}`-style script names.
 * Anything else Oniguruma-only (backreferences, `\K`, `\R`, `\X`, `\G`, inline flags, class
 * intersections, …) is refused with an error naming the construct, never silently approximated.
 *
 * Knows nothing about tokenizers; it only turns one pattern string into one RegExp.
 */

export class RegexTranslationError extends Error {
  constructor(pattern: string, problem: string) {
    super(`cannot use the regex ${JSON.stringify(pattern)}: ${problem}`);
    this.name = 'RegexTranslationError';
  }
}

const WORD_CHARS = '\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}';
const WORD = `[${WORD_CHARS}]`;
const BOUNDARY = `(?:(?<!${WORD})(?=${WORD})|(?<=${WORD})(?!${WORD}))`;
const NON_BOUNDARY = `(?:(?<!${WORD})(?!${WORD})|(?<=${WORD})(?=${WORD}))`;

/** Escapes outside a character class. */
const ESCAPES: Record<string, string> = {
  s: '\\p{White_Space}',
  S: '\\P{White_Space}',
  d: '\\p{Nd}',
  D: '\\P{Nd}',
  w: WORD,
  W: `[^${WORD_CHARS}]`,
  h: '[0-9A-Fa-f]',
  H: '[^0-9A-Fa-f]',
  b: BOUNDARY,
  B: NON_BOUNDARY,
  A: '(?<![\\s\\S])',
  z: '(?![\\s\\S])',
  Z: '(?=\\n?(?![\\s\\S]))',
  n: '\\n',
  r: '\\r',
  t: '\\t',
  f: '\\f',
  v: '\\v',
  a: '\\x07',
  e: '\\x1B',
};

/** Escapes inside a character class (only those expressible as class members). */
const CLASS_ESCAPES: Record<string, string> = {
  s: '\\p{White_Space}',
  S: '\\P{White_Space}',
  d: '\\p{Nd}',
  D: '\\P{Nd}',
  w: WORD_CHARS,
  h: '0-9A-Fa-f',
  n: '\\n',
  r: '\\r',
  t: '\\t',
  f: '\\f',
  v: '\\v',
  a: '\\x07',
  e: '\\x1B',
};

const JS_SYNTAX = '^$\\.*+?()[]{}|/';

/** Case variants of one ASCII letter under Unicode simple case folding. */
function foldVariants(ch: string): string {
  const lo = ch.toLowerCase();
  const up = ch.toUpperCase();
  return lo + up + (lo === 's' ? 'ſ' : lo === 'k' ? 'K' : '');
}

const isAsciiLetter = (c: string): boolean => (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');

/** A literal character as JS regex source (outside a class). */
function literal(ch: string): string {
  if (ch === '\n') return '\\n';
  if (ch === '\r') return '\\r';
  if (ch === '\t') return '\\t';
  return JS_SYNTAX.includes(ch) ? `\\${ch}` : ch;
}

/** A literal character as source inside a class. */
function classLiteral(ch: string): string {
  if (ch === '\n') return '\\n';
  if (ch === '\r') return '\\r';
  if (ch === '\t') return '\\t';
  return ch === '\\' || ch === ']' || ch === '-' || ch === '^' || ch === '[' ? `\\${ch}` : ch;
}

function propertyEscape(pattern: string, negated: boolean, name: string): string {
  let neg = negated;
  let n = name;
  if (n.startsWith('^')) {
    neg = !neg;
    n = n.slice(1);
  }
  for (const candidate of [n, `Script=${n}`]) {
    try {
      new RegExp(`\\p{${candidate}}`, 'u');
      return `\\${neg ? 'P' : 'p'}{${candidate}}`;
    } catch {
      // try the next spelling
    }
  }
  throw new RegexTranslationError(pattern, `unknown Unicode property \\p{${name}}`);
}

/** Reads a `\x{…}`, `\xHH`, `\uHHHH` escape at src[i] === '\\'; returns [source, length] or null. */
function codePointEscape(src: string, i: number): [string, number] | null {
  const m = /^\\(?:x\{([0-9A-Fa-f]{1,8})\}|x([0-9A-Fa-f]{2})|u([0-9A-Fa-f]{4}))/.exec(src.slice(i, i + 14));
  if (!m) return null;
  const hex = m[1] ?? m[2] ?? m[3];
  return [`\\u{${hex}}`, m[0].length];
}

interface Group {
  outStart: number;
  fold: boolean;
  atomicName: string | null;
}

/** Translates an Oniguruma pattern to JS regex source, to be compiled with the 'u' flag. */
export function onigurumaToJs(pattern: string): string {
  let out = '';
  let atomStart = -1; // where the last quantifiable atom starts in `out`
  let afterQuantifier = false;
  let fold = false;
  let groupCounter = 0;
  const groups: Group[] = [];
  const fail = (problem: string): never => {
    throw new RegexTranslationError(pattern, problem);
  };
  const emitAtom = (s: string): void => {
    atomStart = out.length;
    out += s;
    afterQuantifier = false;
  };
  /** Wraps the last atom and its quantifier so that it never backtracks (atomic). */
  const makeAtomic = (): void => {
    if (atomStart < 0) fail('a possessive quantifier with nothing to apply to');
    const name = `tsAtomic${groupCounter++}`;
    out = `${out.slice(0, atomStart)}(?=(?<${name}>${out.slice(atomStart)}))\\k<${name}>`;
  };

  let i = 0;
  while (i < pattern.length) {
    const cp = pattern.codePointAt(i)!;
    const ch = String.fromCodePoint(cp);
    switch (ch) {
      case '\\': {
        const cpe = codePointEscape(pattern, i);
        if (cpe) {
          const code = Number.parseInt(cpe[0].slice(3, -1), 16);
          const c = String.fromCodePoint(code);
          emitAtom(fold && isAsciiLetter(c) ? `[${foldVariants(c)}]` : cpe[0]);
          i += cpe[1];
          break;
        }
        const next = pattern[i + 1];
        if (next === undefined) fail('it ends with a lone backslash');
        if (next === 'p' || next === 'P') {
          const m = /^\\[pP]\{([^}]*)\}/.exec(pattern.slice(i));
          if (!m) fail(`\\${next} without {…} at index ${i}`);
          emitAtom(propertyEscape(pattern, next === 'P', m![1]));
          i += m![0].length;
          break;
        }
        if (ESCAPES[next] !== undefined) {
          emitAtom(ESCAPES[next]);
        } else if (/[A-Za-z0-9]/.test(next)) {
          fail(`the escape \\${next} (index ${i}) has no JavaScript equivalent here`);
        } else {
          emitAtom(literal(next));
        }
        i += 2;
        break;
      }
      case '[': {
        const [src, end] = translateClass(pattern, i, fold);
        emitAtom(src);
        i = end;
        break;
      }
      case '(': {
        const rest = pattern.slice(i);
        let prefix: string;
        let outPrefix: string;
        let groupFold: boolean = fold;
        let atomicName: string | null = null;
        if (rest.startsWith('(?i:')) {
          prefix = '(?i:';
          outPrefix = '(?:';
          groupFold = true;
        } else if (rest.startsWith('(?-i:')) {
          prefix = '(?-i:';
          outPrefix = '(?:';
          groupFold = false;
        } else if (rest.startsWith('(?>')) {
          prefix = '(?>';
          atomicName = `tsAtomic${groupCounter++}`;
          outPrefix = `(?=(?<${atomicName}>`;
        } else {
          const m = /^\((?:\?(?:<[=!]|<[A-Za-z_][A-Za-z0-9_]*>|[:=!]))?/.exec(rest)!;
          if (rest.startsWith('(?') && m[0] === '(') fail(`the group syntax ${rest.slice(0, 4)}… (index ${i}) is not supported`);
          prefix = m[0];
          outPrefix = m[0];
        }
        groups.push({ outStart: out.length, fold, atomicName });
        fold = groupFold;
        out += outPrefix;
        atomStart = -1;
        afterQuantifier = false;
        i += prefix.length;
        break;
      }
      case ')': {
        const g = groups.pop();
        if (!g) fail(`unbalanced ')' at index ${i}`);
        out += g!.atomicName ? `))\\k<${g!.atomicName}>` : ')';
        fold = g!.fold;
        atomStart = g!.outStart;
        afterQuantifier = false;
        i++;
        break;
      }
      case '|':
        out += '|';
        atomStart = -1;
        afterQuantifier = false;
        i++;
        break;
      case '?':
      case '*':
      case '+': {
        if (afterQuantifier) {
          if (ch === '+') makeAtomic();
          else if (ch === '?')
            out += '?'; // lazy
          else fail(`'**' at index ${i}`);
          afterQuantifier = false;
          atomStart = -1;
        } else {
          if (atomStart < 0) fail(`the quantifier '${ch}' at index ${i} follows nothing`);
          out += ch;
          afterQuantifier = true;
        }
        i++;
        break;
      }
      case '{': {
        const m = /^\{(\d*)(,(\d*))?\}/.exec(pattern.slice(i));
        if (m && atomStart >= 0 && (m[1] !== '' || (m[3] ?? '') !== '')) {
          out += `{${m[1] === '' ? '0' : m[1]}${m[2] ?? ''}}`;
          afterQuantifier = true;
          i += m[0].length;
        } else {
          emitAtom('\\{');
          i++;
        }
        break;
      }
      case '}':
        emitAtom('\\}');
        i++;
        break;
      case ']':
        emitAtom('\\]');
        i++;
        break;
      case '.':
        emitAtom('[^\\n]');
        i++;
        break;
      case '^':
        emitAtom('(?<![^\\n])');
        i++;
        break;
      case '$':
        emitAtom('(?![^\\n])');
        i++;
        break;
      default:
        emitAtom(fold && isAsciiLetter(ch) ? `[${foldVariants(ch)}]` : literal(ch));
        i += ch.length;
    }
  }
  if (groups.length > 0) fail('an unclosed group');
  try {
    new RegExp(out, 'u');
  } catch (e) {
    fail(`its JavaScript form ${JSON.stringify(out)} does not compile (${(e as Error).message})`);
  }
  return out;
}

/** Translates the class starting at pattern[start] === '['; returns [source, index after it]. */
function translateClass(pattern: string, start: number, fold: boolean): [string, number] {
  const fail = (problem: string): never => {
    throw new RegexTranslationError(pattern, problem);
  };
  let i = start + 1;
  let out = '[';
  if (pattern[i] === '^') {
    out += '^';
    i++;
  }
  let first = true;
  /** The last single character added (for ranges), or null after a set such as \p{L}. */
  let lastChar: string | null = null;
  const addChar = (c: string): void => {
    out += classLiteral(c);
    lastChar = c;
  };
  while (i < pattern.length) {
    const cp = pattern.codePointAt(i)!;
    const ch = String.fromCodePoint(cp);
    if (ch === ']' && !first) {
      if (fold) out = foldClass(out);
      return [`${out}]`, i + 1];
    }
    first = false;
    if (ch === '[') fail(`nested character classes (index ${i}) are not supported`);
    if (ch === '&' && pattern[i + 1] === '&') fail(`class intersection '&&' (index ${i}) is not supported`);
    if (ch === '-' && lastChar !== null && pattern[i + 1] !== ']' && pattern[i + 1] !== undefined) {
      // a range lastChar-next
      let hi: string;
      let len: number;
      if (pattern[i + 1] === '\\') {
        const cpe = codePointEscape(pattern, i + 1);
        if (cpe) {
          hi = String.fromCodePoint(Number.parseInt(cpe[0].slice(3, -1), 16));
          len = 1 + cpe[1];
        } else {
          const e = pattern[i + 2];
          if (e === undefined || /[A-Za-z0-9]/.test(e)) fail(`a range ending in \\${e ?? ''} (index ${i})`);
          hi = e!;
          len = 3;
        }
      } else {
        hi = String.fromCodePoint(pattern.codePointAt(i + 1)!);
        len = 1 + hi.length;
      }
      out += `-${classLiteral(hi!)}`;
      lastChar = null;
      i += len!;
      continue;
    }
    if (ch === '\\') {
      const cpe = codePointEscape(pattern, i);
      if (cpe) {
        addChar(String.fromCodePoint(Number.parseInt(cpe[0].slice(3, -1), 16)));
        i += cpe[1];
        continue;
      }
      const next = pattern[i + 1];
      if (next === undefined) fail('a class ends with a lone backslash');
      if (next === 'p' || next === 'P') {
        const m = /^\\[pP]\{([^}]*)\}/.exec(pattern.slice(i));
        if (!m) fail(`\\${next} without {…} at index ${i}`);
        out += propertyEscape(pattern, next === 'P', m![1]);
        lastChar = null;
        i += m![0].length;
        continue;
      }
      if (CLASS_ESCAPES[next] !== undefined) {
        const e = CLASS_ESCAPES[next];
        out += e;
        lastChar = e === '\\n' ? '\n' : e === '\\r' ? '\r' : e === '\\t' ? '\t' : null;
      } else if (/[A-Za-z0-9]/.test(next)) {
        fail(`the escape \\${next} inside a class (index ${i}) has no JavaScript equivalent`);
      } else {
        addChar(next);
      }
      i += 2;
      continue;
    }
    addChar(ch);
    i += ch.length;
  }
  return fail(`an unterminated character class starting at index ${start}`);
}

/** Adds the case variants of every ASCII letter and letter range in a class body. */
function foldClass(src: string): string {
  // src is '[' or '[^' followed by the translated body; scan for bare letters and a-z style ranges.
  const head = src.startsWith('[^') ? '[^' : '[';
  const body = src.slice(head.length);
  let extra = '';
  for (let i = 0; i < body.length; i++) {
    const c = body[i];
    if (c === '\\') {
      // skip escapes (including \p{…} and \u{…})
      if (body[i + 1] === 'p' || body[i + 1] === 'P' || body[i + 1] === 'u') i = body.indexOf('}', i);
      else i++;
      continue;
    }
    if (body[i + 1] === '-' && i + 2 < body.length && isAsciiLetter(c) && isAsciiLetter(body[i + 2])) {
      const lo = c;
      const hi = body[i + 2];
      if (lo >= 'a' === hi >= 'a') {
        const other = lo >= 'a' ? `${lo.toUpperCase()}-${hi.toUpperCase()}` : `${lo.toLowerCase()}-${hi.toLowerCase()}`;
        const l = lo.toLowerCase();
        const h = hi.toLowerCase();
        extra += other + (l <= 's' && 's' <= h ? 'ſ' : '') + (l <= 'k' && 'k' <= h ? 'K' : '');
      }
      i += 2;
      continue;
    }
    if (isAsciiLetter(c)) extra += foldVariants(c);
  }
  return head + body + extra;
}
