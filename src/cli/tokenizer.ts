/**
 * `tinyseek tokenizer …`: train a byte-level BPE tokenizer on text/JSONL files, and encode or
 * decode with a tokenizer.json. Validates options and input files at this edge, then calls
 * src/tokenizer; knows nothing of how BPE works.
 */
import { readFileSync } from 'node:fs';
import { TextDecoder } from 'node:util';
import { type Command, InvalidArgumentError } from 'commander';
import { Tokenizer } from '../tokenizer/index.ts';

function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('expected a positive integer');
  return n;
}

function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(code === 'ENOENT' ? `input file not found: ${file}` : `cannot read ${file}: ${(e as Error).message}`);
  }
}

const isJsonl = (file: string): boolean => /\.(jsonl|ndjson)$/i.test(file);

/**
 * The training texts of the input files, one file at a time: a .jsonl/.ndjson file gives the
 * `text` field of each line (blank lines skipped; a bad row is an error naming file and line),
 * any other file its whole content.
 */
export function* readTrainingTexts(files: readonly string[]): Generator<string> {
  for (const file of files) {
    const content = readText(file);
    if (!isJsonl(file)) {
      yield content;
      continue;
    }
    const lines = content.split('\n');
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i].trim();
      if (line === '') continue;
      let row: unknown;
      try {
        row = JSON.parse(line);
      } catch (e) {
        throw new Error(`${file}:${i + 1}: not valid JSON (${(e as Error).message})`);
      }
      const text = typeof row === 'object' && row !== null ? (row as Record<string, unknown>).text : undefined;
      if (typeof text !== 'string') {
        throw new Error(`${file}:${i + 1}: expected an object with a string "text" field, got ${line.length > 80 ? `${line.slice(0, 80)}…` : line}`);
      }
      yield text;
    }
  }
}

const strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** How a token reads: its text when its bytes are whole UTF-8 characters, else its bytes in hex. */
export function describeToken(tokenizer: Tokenizer, id: number): string {
  const bytes = tokenizer.idToBytes(id);
  if (bytes === undefined) return '(unknown id)';
  if (tokenizer.isAdded(id)) return tokenizer.idToToken(id)!;
  try {
    return JSON.stringify(strict.decode(bytes));
  } catch {
    return `<${Array.from(bytes, (b) => `0x${b.toString(16).toUpperCase().padStart(2, '0')}`).join(' ')}>`;
  }
}

export function registerTokenizerCommands(program: Command): void {
  const tokenizer = program.command('tokenizer').description('train a byte-level BPE tokenizer, or encode/decode with one');

  tokenizer
    .command('train')
    .description('train a tokenizer on text files (whole files) and JSONL files (their "text" fields); write tokenizer.json')
    .requiredOption('--input <files...>', 'input files: .jsonl/.ndjson (one {"text": …} per line) or plain text')
    .requiredOption('--vocab-size <n>', 'total ids: 9 control tokens + 256 bytes + merges', positiveInt)
    .requiredOption('--out <file>', 'where to write tokenizer.json')
    .option('--special-tokens <list>', 'extra special tokens, comma-separated, after the 9 control tokens')
    .option('--min-frequency <n>', 'do not merge pairs seen fewer times', positiveInt, 2)
    .action((o: { input: string[]; vocabSize: number; out: string; specialTokens?: string; minFrequency: number }) => {
      const t0 = performance.now();
      let bytes = 0;
      let texts = 0;
      const counted = (function* () {
        for (const t of readTrainingTexts(o.input)) {
          bytes += Buffer.byteLength(t);
          texts++;
          yield t;
        }
      })();
      const specialTokens = o.specialTokens ? o.specialTokens.split(',').filter((s) => s !== '') : undefined;
      const tok = Tokenizer.train(counted, { vocabSize: o.vocabSize, specialTokens, minFrequency: o.minFrequency });
      tok.save(o.out);
      const s = (performance.now() - t0) / 1000;
      const reached = tok.vocabSize < o.vocabSize ? ` (asked for ${o.vocabSize}: no pair left occurring ${o.minFrequency}+ times)` : '';
      console.log(`trained ${tok.vocabSize} tokens${reached} on ${texts} texts, ${(bytes / 1e6).toFixed(2)} MB, in ${s.toFixed(1)} s → ${o.out}`);
    });

  tokenizer
    .command('encode')
    .description('print the ids and tokens of a text')
    .requiredOption('--tokenizer <file>', 'a tokenizer.json')
    .option('--allow-special', 'turn control-token strings such as <think> into their ids')
    .option('--json', 'print one JSON object {ids, tokens}')
    .argument('<text>', 'the text to encode')
    .action((text: string, o: { tokenizer: string; allowSpecial?: boolean; json?: boolean }) => {
      const tok = Tokenizer.load(o.tokenizer, { allowMissingSpecial: true });
      const ids = tok.encode(text, { allowSpecial: o.allowSpecial ?? false });
      const tokens = ids.map((id) => describeToken(tok, id));
      if (o.json) {
        console.log(JSON.stringify({ ids, tokens }));
        return;
      }
      const width = Math.max(2, ...ids.map((id) => String(id).length));
      console.log(`${ids.length} tokens, ${Buffer.byteLength(text)} bytes`);
      ids.forEach((id, i) => console.log(`${String(id).padStart(width)}  ${tokens[i]}`));
      console.log(`ids: ${JSON.stringify(ids)}`);
    });

  tokenizer
    .command('decode')
    .description('print the text of ids')
    .requiredOption('--tokenizer <file>', 'a tokenizer.json')
    .option('--skip-special', 'leave out BOS, EOS, pad, User and Assistant tokens')
    .argument('<ids...>', 'token ids (separated by spaces or commas)')
    .action((args: string[], o: { tokenizer: string; skipSpecial?: boolean }) => {
      const ids = args
        .flatMap((a) => a.split(/[,\s[\]]+/))
        .filter((a) => a !== '')
        .map((a) => {
          const n = Number(a);
          if (!Number.isInteger(n) || n < 0) throw new Error(`not a token id: ${JSON.stringify(a)}`);
          return n;
        });
      const tok = Tokenizer.load(o.tokenizer, { allowMissingSpecial: true });
      process.stdout.write(`${tok.decode(ids, { skipSpecial: o.skipSpecial ?? false })}\n`);
    });
}
