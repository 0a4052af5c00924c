/**
 * Ids → text, in one go or token by token. A token is a run of bytes, and one character's UTF-8
 * bytes can be split over several tokens: the one-shot decoder turns an incomplete or invalid
 * sequence into U+FFFD (it never throws on bytes), and the streaming decoder holds back an
 * incomplete sequence at the end until the bytes that complete it arrive, so that the pieces it
 * returns always concatenate to what the one-shot decoder gives for all the ids.
 *
 * Knows bytes per id (through a lookup) and UTF-8; nothing about vocabularies or merges.
 */
import { TextDecoder } from 'node:util';

/** The bytes of an id, or undefined when no token has that id. */
export type BytesOf = (id: number) => Uint8Array | undefined;

export interface StreamDecoder {
  /** Adds one id; returns the text that is now complete (possibly ''). */
  push(id: number): string;
  /** Ends the stream: returns what is held back (an incomplete character becomes U+FFFD) and resets. */
  flush(): string;
}

export class UnknownTokenError extends Error {
  constructor(id: unknown, position: number | null, vocabSize: number) {
    super(
      `cannot decode ${typeof id === 'number' ? `id ${id}` : JSON.stringify(id)}${position === null ? '' : ` at position ${position}`}: ` +
        `no token has it (this tokenizer's ids are 0..${vocabSize - 1}); were these ids made with another tokenizer?`,
    );
    this.name = 'UnknownTokenError';
  }
}

/** ignoreBOM: a leading U+FEFF is text and must survive the round trip. */
const newTextDecoder = (): TextDecoder => new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });

export function decodeIds(ids: readonly number[], bytesOf: BytesOf, skip: (id: number) => boolean, vocabSize: number): string {
  const parts: Uint8Array[] = [];
  let total = 0;
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    const b = bytesOf(id);
    if (b === undefined) throw new UnknownTokenError(id, i, vocabSize);
    if (skip(id)) continue;
    parts.push(b);
    total += b.length;
  }
  const buf = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    buf.set(p, at);
    at += p.length;
  }
  return newTextDecoder().decode(buf);
}

export function createStreamDecoder(bytesOf: BytesOf, skip: (id: number) => boolean, vocabSize: number): StreamDecoder {
  let decoder = newTextDecoder();
  return {
    push(id: number): string {
      const b = bytesOf(id);
      if (b === undefined) throw new UnknownTokenError(id, null, vocabSize);
      if (skip(id)) return '';
      return decoder.decode(b, { stream: true });
    },
    flush(): string {
      const rest = decoder.decode();
      decoder = newTextDecoder();
      return rest;
    },
  };
}
