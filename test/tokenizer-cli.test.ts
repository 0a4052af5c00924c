import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Command } from 'commander';
import { readTrainingTexts, registerTokenizerCommands } from '../src/cli/tokenizer.ts';
import { Tokenizer } from '../src/tokenizer/index.ts';

let dir = '';
before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tinyseek-tokenizer-cli-'));
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

const file = (name: string, content: string): string => {
  const p = path.join(dir, name);
  fs.writeFileSync(p, content);
  return p;
};

/** Runs `tinyseek tokenizer …` in-process and returns what it printed. */
async function run(...args: string[]): Promise<string> {
  const program = new Command().exitOverride();
  registerTokenizerCommands(program);
  const lines: string[] = [];
  const log = console.log;
  console.log = (...a: unknown[]) => void lines.push(a.join(' '));
  try {
    await program.parseAsync(['node', 'tinyseek', 'tokenizer', ...args]);
  } finally {
    console.log = log;
  }
  return lines.join('\n');
}

describe('tinyseek tokenizer', () => {
  test('training texts: JSONL "text" fields (blank lines skipped) and whole text files', () => {
    const a = file('a.jsonl', '{"text": "one"}\n\n{"text": "two", "id": 3}\n');
    const b = file('b.txt', 'whole\nfile\n');
    assert.deepEqual([...readTrainingTexts([a, b])], ['one', 'two', 'whole\nfile\n']);
  });

  test('bad JSONL rows and missing files are errors naming file and line', () => {
    const bad = file('bad.jsonl', '{"text": "ok"}\n{"txt": 1}\n');
    assert.throws(() => [...readTrainingTexts([bad])], /bad\.jsonl:2: expected an object with a string "text" field, got \{"txt": 1\}/);
    const broken = file('broken.jsonl', '{"text": "ok"}\n\n{oops\n');
    assert.throws(() => [...readTrainingTexts([broken])], /broken\.jsonl:3: not valid JSON/);
    assert.throws(() => [...readTrainingTexts([path.join(dir, 'none.txt')])], /input file not found: .*none\.txt/);
  });

  test('train writes a loadable tokenizer.json; encode prints ids and tokens', async () => {
    const corpus = file('corpus.jsonl', Array.from({ length: 100 }, (_, i) => JSON.stringify({ text: `the model thinks ${i} times` })).join('\n'));
    const out = path.join(dir, 'out', 'tokenizer.json');
    const said = await run('train', '--input', corpus, '--vocab-size', '280', '--out', out);
    assert.match(said, /trained 280 tokens on 100 texts/);
    const tok = Tokenizer.load(out);
    const printed = JSON.parse(await run('encode', '--tokenizer', out, '--json', '--allow-special', '<think>the model'));
    assert.deepEqual(printed.ids, tok.encode('<think>the model', { allowSpecial: true }));
    assert.equal(printed.tokens[0], '<think>');
    assert.match(await run('encode', '--tokenizer', out, 'é'), /<0xC3>|"é"/);
  });
});
