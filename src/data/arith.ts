/**
 * A safe arithmetic evaluator for model answers: its own tokenizer and recursive-descent parser
 * for non-negative integer literals, + - * / and parentheses, evaluated in exact rational
 * arithmetic (BigInt). Never `eval` or `Function`; never throws on any input string.
 *
 * The language (every rule is a decision; docs/data.md lists them):
 *  - The whole string must match TinyZero's safe pattern with ASCII digits, /^[0-9+\-*\/().\s]+$/;
 *    anything else (letters, `^`, `e`, `_`, `,`, non-ASCII digits such as "٣" or "３") is
 *    'unsafe-chars'.
 *  - Literals are runs of ASCII digits. "0" is allowed, a multi-digit literal with a leading zero
 *    ("07") is a syntax error (as in Python 3). A decimal point is allowed by the safe pattern but
 *    is a syntax error here: Countdown answers combine whole numbers.
 *  - Binary + - (left-assoc) below * / (left-assoc). `**` and `//` are syntax errors (Python
 *    would accept them; we do not, so 9**9**9 cannot hang anything).
 *  - Unary minus and unary plus are allowed before any operand, as in Python: -3 + 5, 2 * -3,
 *    --3. Each unary sign and each parenthesis level counts toward the nesting depth.
 *  - Limits: at most `maxLength` characters (default 1000) and nesting depth `maxDepth`
 *    (default 32); beyond them the result is 'too-long' / 'too-deep'.
 *  - Division by zero anywhere gives 'division-by-zero' (a result, not an exception).
 *
 * It knows nothing about tasks or rewards: callers turn results into scores.
 */
import { type Rational, add, div, mul, neg, rat, sub } from './rational.ts';

export interface ArithLimits {
  /** Longest accepted input, in UTF-16 code units (whitespace included). */
  maxLength: number;
  /** Deepest nesting of parentheses plus unary signs. */
  maxDepth: number;
}

export const DEFAULT_ARITH_LIMITS: ArithLimits = { maxLength: 1000, maxDepth: 32 };

export type ArithErrorKind = 'empty' | 'too-long' | 'unsafe-chars' | 'syntax' | 'too-deep' | 'division-by-zero';

export type Expr =
  | { readonly kind: 'num'; readonly value: bigint; readonly text: string }
  | { readonly kind: 'neg' | 'pos'; readonly arg: Expr }
  | { readonly kind: '+' | '-' | '*' | '/'; readonly left: Expr; readonly right: Expr };

export type ParseResult = { ok: true; expr: Expr; literals: bigint[] } | { ok: false; error: ArithErrorKind; message: string };

export type EvalResult = { ok: true; value: Rational; literals: bigint[] } | { ok: false; error: ArithErrorKind; message: string; literals?: bigint[] };

/** TinyZero's allowed-character rule, with \d narrowed to ASCII digits. */
export const SAFE_EXPRESSION = /^[0-9+\-*/().\s]+$/;

type Tok = { t: 'num'; text: string } | { t: 'op'; op: '+' | '-' | '*' | '/' | '(' | ')' } | { t: 'end' };

class Fail {
  constructor(
    readonly error: ArithErrorKind,
    readonly message: string,
  ) {}
}

function tokenize(src: string): Tok[] | Fail {
  const out: Tok[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i];
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if (c >= '0' && c <= '9') {
      let j = i;
      while (j < src.length && src[j] >= '0' && src[j] <= '9') j++;
      const text = src.slice(i, j);
      if (text.length > 1 && text[0] === '0') return new Fail('syntax', `literal "${text}" has a leading zero`);
      if (j < src.length && src[j] === '.') return new Fail('syntax', `decimal literal at ${i}: only whole numbers are allowed`);
      out.push({ t: 'num', text });
      i = j;
      continue;
    }
    if (c === '*' && src[i + 1] === '*') return new Fail('syntax', `"**" at ${i}: exponentiation is not an allowed operator`);
    if (c === '/' && src[i + 1] === '/') return new Fail('syntax', `"//" at ${i}: floor division is not an allowed operator`);
    if (c === '+' || c === '-' || c === '*' || c === '/' || c === '(' || c === ')') {
      out.push({ t: 'op', op: c });
      i++;
      continue;
    }
    if (c === '.') return new Fail('syntax', `"." at ${i}: only whole numbers are allowed`);
    return new Fail('unsafe-chars', `character ${JSON.stringify(c)} at ${i} is not allowed`);
  }
  out.push({ t: 'end' });
  return out;
}

class Parser {
  private pos = 0;
  readonly literals: bigint[] = [];

  constructor(
    private readonly toks: Tok[],
    private readonly maxDepth: number,
  ) {}

  private peek(): Tok {
    return this.toks[this.pos];
  }

  private isOp(tok: Tok, ...ops: string[]): tok is { t: 'op'; op: '+' | '-' | '*' | '/' | '(' | ')' } {
    return tok.t === 'op' && ops.includes(tok.op);
  }

  parseAll(): Expr {
    const e = this.expr(0);
    const tok = this.peek();
    if (tok.t !== 'end') throw new Fail('syntax', `unexpected ${describe(tok)} after a complete expression`);
    return e;
  }

  private expr(depth: number): Expr {
    let left = this.term(depth);
    for (;;) {
      const tok = this.peek();
      if (!this.isOp(tok, '+', '-')) return left;
      this.pos++;
      const right = this.term(depth);
      left = { kind: tok.op as '+' | '-', left, right };
    }
  }

  private term(depth: number): Expr {
    let left = this.unary(depth);
    for (;;) {
      const tok = this.peek();
      if (!this.isOp(tok, '*', '/')) return left;
      this.pos++;
      const right = this.unary(depth);
      left = { kind: tok.op as '*' | '/', left, right };
    }
  }

  private unary(depth: number): Expr {
    const tok = this.peek();
    if (this.isOp(tok, '-', '+')) {
      if (depth + 1 > this.maxDepth) throw new Fail('too-deep', `nesting deeper than ${this.maxDepth}`);
      this.pos++;
      const arg = this.unary(depth + 1);
      return { kind: tok.op === '-' ? 'neg' : 'pos', arg };
    }
    return this.primary(depth);
  }

  private primary(depth: number): Expr {
    const tok = this.peek();
    if (tok.t === 'num') {
      this.pos++;
      const value = BigInt(tok.text);
      this.literals.push(value);
      return { kind: 'num', value, text: tok.text };
    }
    if (this.isOp(tok, '(')) {
      if (depth + 1 > this.maxDepth) throw new Fail('too-deep', `nesting deeper than ${this.maxDepth}`);
      this.pos++;
      const e = this.expr(depth + 1);
      if (!this.isOp(this.peek(), ')')) throw new Fail('syntax', `expected ")" but found ${describe(this.peek())}`);
      this.pos++;
      return e;
    }
    throw new Fail('syntax', `expected a number or "(" but found ${describe(tok)}`);
  }
}

function describe(tok: Tok): string {
  if (tok.t === 'end') return 'the end of the expression';
  if (tok.t === 'num') return `number ${tok.text}`;
  return `"${tok.op}"`;
}

/** Parses without evaluating. Never throws. */
export function parseArith(src: string, limits: ArithLimits = DEFAULT_ARITH_LIMITS): ParseResult {
  if (typeof src !== 'string') return { ok: false, error: 'syntax', message: 'not a string' };
  if (src.length > limits.maxLength) return { ok: false, error: 'too-long', message: `longer than ${limits.maxLength} characters` };
  if (src.trim() === '') return { ok: false, error: 'empty', message: 'empty expression' };
  if (!SAFE_EXPRESSION.test(src)) {
    const bad = [...src].find((c) => !SAFE_EXPRESSION.test(c) && !/\s/.test(c));
    return { ok: false, error: 'unsafe-chars', message: `character ${JSON.stringify(bad ?? '?')} is not allowed (only ASCII digits, + - * / ( ) and spaces)` };
  }
  const toks = tokenize(src);
  if (toks instanceof Fail) return { ok: false, error: toks.error, message: toks.message };
  const p = new Parser(toks, limits.maxDepth);
  try {
    const expr = p.parseAll();
    return { ok: true, expr, literals: p.literals };
  } catch (e) {
    if (e instanceof Fail) return { ok: false, error: e.error, message: e.message };
    // RangeError (stack) cannot happen within maxDepth, but an evaluator of model output must not throw.
    return { ok: false, error: 'too-deep', message: (e as Error).message };
  }
}

/** The exact value of a parsed expression, or null on division by zero. */
export function evaluate(e: Expr): Rational | null {
  switch (e.kind) {
    case 'num':
      return rat(e.value);
    case 'neg': {
      const a = evaluate(e.arg);
      return a === null ? null : neg(a);
    }
    case 'pos':
      return evaluate(e.arg);
    default: {
      const a = evaluate(e.left);
      if (a === null) return null;
      const b = evaluate(e.right);
      if (b === null) return null;
      if (e.kind === '+') return add(a, b);
      if (e.kind === '-') return sub(a, b);
      if (e.kind === '*') return mul(a, b);
      return div(a, b);
    }
  }
}

/** Parses and evaluates. Never throws. */
export function evalArith(src: string, limits: ArithLimits = DEFAULT_ARITH_LIMITS): EvalResult {
  const p = parseArith(src, limits);
  if (!p.ok) return p;
  const value = evaluate(p.expr);
  if (value === null) return { ok: false, error: 'division-by-zero', message: 'division by zero', literals: p.literals };
  return { ok: true, value, literals: p.literals };
}

/** Fully parenthesised rendering of an expression (for tests and debugging). */
export function showExpr(e: Expr): string {
  switch (e.kind) {
    case 'num':
      return e.text;
    case 'neg':
      return `(-${showExpr(e.arg)})`;
    case 'pos':
      return `(+${showExpr(e.arg)})`;
    default:
      return `(${showExpr(e.left)} ${e.kind} ${showExpr(e.right)})`;
  }
}
