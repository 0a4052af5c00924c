/**
 * A streaming line reader for JSONL files: reads the file in chunks (never whole), decodes UTF-8
 * across chunk boundaries, strips a leading byte-order mark and a trailing "\r", and yields each
 * line with its 1-based line number. Blank lines are yielded too (callers skip them, and line
 * numbers stay those an editor shows).
 *
 * It knows nothing about JSON schemas; parseJsonLines turns lines into values or per-line errors.
 */
import { createReadStream } from 'node:fs';
import { StringDecoder } from 'node:string_decoder';

export interface Line {
  /** 1-based, as editors count. */
  readonly lineNo: number;
  readonly text: string;
}

export interface ReadLinesOptions {
  /** A line longer than this many characters is an error (protects memory from a file with no newlines). Default 64 Mi. */
  maxLineLength?: number;
  /** Read chunk size in bytes. Default 1 MiB. */
  chunkBytes?: number;
}

export async function* readLines(path: string, o: ReadLinesOptions = {}): AsyncGenerator<Line> {
  const maxLen = o.maxLineLength ?? 64 * 1024 * 1024;
  const stream = createReadStream(path, { highWaterMark: o.chunkBytes ?? 1024 * 1024 });
  const decoder = new StringDecoder('utf8');
  let carry = '';
  let lineNo = 0;
  let first = true;
  const finish = (s: string): string => (s.endsWith('\r') ? s.slice(0, -1) : s);
  try {
    for await (const chunk of stream) {
      let text = carry + decoder.write(chunk as Buffer);
      if (first) {
        if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
        first = false;
      }
      let start = 0;
      for (;;) {
        const nl = text.indexOf('\n', start);
        if (nl < 0) break;
        lineNo++;
        yield { lineNo, text: finish(text.slice(start, nl)) };
        start = nl + 1;
      }
      carry = text.slice(start);
      if (carry.length > maxLen)
        throw new Error(`${path}: line ${lineNo + 1} is longer than ${maxLen} characters; is this a JSONL file (one JSON value per line)?`);
    }
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ENOENT') throw new Error(`${path}: no such file; check the path`);
    if (err.code === 'EISDIR') throw new Error(`${path}: is a directory; give a .jsonl file`);
    throw e;
  }
  const rest = carry + decoder.end();
  if (rest.length > 0) {
    lineNo++;
    yield { lineNo, text: finish(rest) };
  }
}

export type JsonLine =
  | { readonly row: number; readonly ok: true; readonly value: unknown }
  | { readonly row: number; readonly ok: false; readonly error: string };

/** Parses each non-blank line as JSON; a line that does not parse becomes an error entry with its line number. */
export async function* parseJsonLines(path: string, o: ReadLinesOptions = {}): AsyncGenerator<JsonLine> {
  for await (const { lineNo, text } of readLines(path, o)) {
    if (text.trim() === '') continue;
    try {
      yield { row: lineNo, ok: true, value: JSON.parse(text) as unknown };
    } catch (e) {
      const shown = text.length > 80 ? `${text.slice(0, 80)}…` : text;
      yield { row: lineNo, ok: false, error: `not valid JSON (${(e as Error).message}): ${shown}` };
    }
  }
}
