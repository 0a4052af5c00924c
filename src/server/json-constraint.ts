/**
 * JSON mode: a token constraint under which the reply's content can only be a JSON value. After an
 * optional free part (a reasoning model's thinking, up to and including `opener`, e.g. "</think>\n\n"),
 * each candidate token is allowed only when its text keeps the output a prefix of some valid JSON
 * text (RFC 8259), checked by a character-level pushdown recogniser; the reply ends as soon as the
 * value is complete. The constraint knows the request's token budget: when the tokens left are
 * barely enough to finish — the opener not yet written, or the shortest completion of the JSON so far
 * (closing the string, the containers) — only tokens that bring the end nearer are allowed, so the
 * content parses whenever max_tokens leaves room for the opener and a value at all.
 *
 * It knows characters and token texts; not tensors or the model.
 */
import type { TokenConstraint } from '../engine/scheduler.ts';

type Mode = 'value' | 'afterValue' | 'key' | 'colon' | 'string' | 'escape' | 'unicode' | 'number' | 'literal' | 'keyOrEnd' | 'valueOrEnd' | 'done';

interface State {
  mode: Mode;
  /** Open containers: '{' or '['. */
  stack: string[];
  /** In a string: whether it is an object key. */
  isKey: boolean;
  /** Literal being matched and how far. */
  literal: string;
  at: number;
  /** Number text so far. */
  num: string;
  hex: number;
}

const NUMBER = /^-?(0|[1-9]\d*)?(\.\d*)?([eE][+-]?\d*)?$/;
const COMPLETE_NUMBER = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?$/;
const WS = new Set([' ', '\t', '\n', '\r']);

const clone = (s: State): State => ({ ...s, stack: [...s.stack] });

/** The shortest text that completes the JSON from this state. */
function completion(s: State): string {
  const closers = (stack: readonly string[]): string =>
    [...stack]
      .reverse()
      .map((c) => (c === '{' ? '}' : ']'))
      .join('');
  switch (s.mode) {
    case 'done':
      return '';
    case 'value':
      return `0${closers(s.stack)}`;
    case 'valueOrEnd':
    case 'keyOrEnd':
    case 'afterValue':
      return closers(s.stack);
    case 'key':
      return `"":0${closers(s.stack)}`;
    case 'colon':
      return `:0${closers(s.stack)}`;
    case 'string':
      return `"${s.isKey ? ':0' : ''}${closers(s.stack)}`;
    case 'escape':
      return `n"${s.isKey ? ':0' : ''}${closers(s.stack)}`;
    case 'unicode':
      return `${'0'.repeat(4 - s.hex)}"${s.isKey ? ':0' : ''}${closers(s.stack)}`;
    case 'number':
      return `${COMPLETE_NUMBER.test(s.num) ? (s.stack.length ? '' : ' ') : '0'}${closers(s.stack)}`;
    case 'literal':
      return s.literal.slice(s.at) + closers(s.stack);
  }
}

function closeValue(s: State): void {
  s.mode = s.stack.length ? 'afterValue' : 'done';
}

/** Feeds one character; false when the text can no longer be valid JSON. */
function feed(s: State, c: string): boolean {
  switch (s.mode) {
    case 'done':
      return WS.has(c);
    case 'value':
    case 'valueOrEnd':
      if (WS.has(c)) return true;
      if (c === ']' && s.mode === 'valueOrEnd') {
        s.stack.pop();
        closeValue(s);
        return true;
      }
      if (c === '{') {
        s.stack.push('{');
        s.mode = 'keyOrEnd';
        return true;
      }
      if (c === '[') {
        s.stack.push('[');
        s.mode = 'valueOrEnd';
        return true;
      }
      if (c === '"') {
        s.mode = 'string';
        s.isKey = false;
        return true;
      }
      if (c === '-' || (c >= '0' && c <= '9')) {
        s.mode = 'number';
        s.num = c;
        return true;
      }
      for (const lit of ['true', 'false', 'null']) {
        if (lit[0] === c) {
          s.mode = 'literal';
          s.literal = lit;
          s.at = 1;
          return true;
        }
      }
      return false;
    case 'keyOrEnd':
    case 'key':
      if (WS.has(c)) return true;
      if (c === '}' && s.mode === 'keyOrEnd') {
        s.stack.pop();
        closeValue(s);
        return true;
      }
      if (c === '"') {
        s.mode = 'string';
        s.isKey = true;
        return true;
      }
      return false;
    case 'colon':
      if (WS.has(c)) return true;
      if (c === ':') {
        s.mode = 'value';
        return true;
      }
      return false;
    case 'string':
      if (c === '"') {
        if (s.isKey) s.mode = 'colon';
        else closeValue(s);
        return true;
      }
      if (c === '\\') {
        s.mode = 'escape';
        return true;
      }
      return c >= ' ';
    case 'escape':
      if (c === 'u') {
        s.mode = 'unicode';
        s.hex = 0;
        return true;
      }
      if ('"\\/bfnrt'.includes(c)) {
        s.mode = 'string';
        return true;
      }
      return false;
    case 'unicode':
      if (!/[0-9a-fA-F]/.test(c)) return false;
      if (++s.hex === 4) s.mode = 'string';
      return true;
    case 'number':
      if (NUMBER.test(s.num + c)) {
        s.num += c;
        return true;
      }
      if (!COMPLETE_NUMBER.test(s.num)) return false;
      closeValue(s);
      return feed(s, c);
    case 'literal':
      if (s.literal[s.at] !== c) return false;
      if (++s.at === s.literal.length) closeValue(s);
      return true;
    case 'afterValue': {
      if (WS.has(c)) return true;
      const top = s.stack[s.stack.length - 1];
      if (c === ',') {
        s.mode = top === '{' ? 'key' : 'value';
        return true;
      }
      if ((c === '}' && top === '{') || (c === ']' && top === '[')) {
        s.stack.pop();
        closeValue(s);
        return true;
      }
      return false;
    }
  }
}

export class JsonConstraint implements TokenConstraint {
  private state: State = { mode: 'value', stack: [], isKey: false, literal: '', at: 0, num: '', hex: 0 };
  private free: boolean;
  private freeText = '';
  private started = false;

  /**
   * `texts[id]` is each token's text; `blocked` holds the ids that may never appear in the JSON
   * (control tokens); `opener` ends the free part ('' for none).
   */
  constructor(
    private readonly texts: readonly string[],
    private readonly blocked: ReadonlySet<number>,
    private readonly opener: string,
    /** Tokens the request may still generate. */
    private left: number,
  ) {
    this.free = opener !== '';
  }

  get complete(): boolean {
    return !this.free && this.state.mode === 'done';
  }

  allowed(id: number): boolean {
    const t = this.texts[id];
    if (this.free) {
      // near the end of the budget: only the rest of the opener
      const rest = this.opener.slice(this.openerDone());
      if (this.left > rest.length + 4) return true;
      return t !== undefined && t !== '' && rest.startsWith(t);
    }
    if (t === undefined || t === '' || this.blocked.has(id)) return false;
    // no leading whitespace before the value: the reply starts with it
    if (!this.started && WS.has(t[0])) return false;
    const s = clone(this.state);
    for (const c of t) if (!feed(s, c)) return false;
    const need = completion(this.state).length;
    if (this.left <= need + 2) return completion(s).length < need;
    return true;
  }

  /** How much of the opener the free text already ends with. */
  private openerDone(): number {
    for (let k = Math.min(this.opener.length - 1, this.freeText.length); k > 0; k--) if (this.freeText.endsWith(this.opener.slice(0, k))) return k;
    return 0;
  }

  advance(id: number): void {
    this.left--;
    const t = this.texts[id] ?? '';
    if (this.free) {
      this.freeText += t;
      const i = this.freeText.indexOf(this.opener);
      if (i < 0) return;
      this.free = false;
      const rest = this.freeText.slice(i + this.opener.length).trimStart();
      for (const c of rest) feed(this.state, c);
      if (rest) this.started = true;
      return;
    }
    for (const c of t) feed(this.state, c);
    this.started = true;
  }
}

/** Whether `text` is a complete JSON text as far as the recogniser is concerned (for tests). */
export function recognisesJson(text: string): boolean {
  const s: State = { mode: 'value', stack: [], isKey: false, literal: '', at: 0, num: '', hex: 0 };
  for (const c of text) if (!feed(s, c)) return false;
  if (s.mode === 'number' && COMPLETE_NUMBER.test(s.num) && s.stack.length === 0) return true;
  return s.mode === 'done';
}
