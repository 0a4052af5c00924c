// `tinyseek data …` commands (registered on a fresh program, as src/cli/main.ts does).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { Command } from 'commander';
import { registerDataCommands } from '../src/cli/data.ts';
import { generateProblems, referenceAnswerOf } from '../src/data/index.ts';

const dir = mkdtempSync(join(tmpdir(), 'tinyseek-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));

async function run(...args: string[]): Promise<{ out: string; code: number | undefined }> {
  const program = new Command().exitOverride().configureOutput({ writeErr: () => {} });
  registerDataCommands(program);
  const lines: string[] = [];
  const log = console.log;
  const before = process.exitCode;
  process.exitCode = undefined;
  console.log = (...a: unknown[]) => void lines.push(a.join(' '));
  try {
    await program.parseAsync(['node', 'tinyseek', ...args]);
  } finally {
    console.log = log;
  }
  const code = process.exitCode as number | undefined;
  process.exitCode = before;
  return { out: lines.join('\n'), code };
}

describe('tinyseek data', () => {
  test('countdown --n 3 prints prompts with their reference answers', async () => {
    const { out } = await run('data', 'countdown', '--n', '3');
    assert.equal(out.match(/A conversation between User and Assistant/g)?.length, 3);
    for (const p of generateProblems('countdown', { seed: 0, split: 'train', n: 3 }))
      assert.ok(out.includes(`reference answer: <answer>${referenceAnswerOf(p)}</answer>`));
  });

  test('--split heldout --seed, other tasks, --json', async () => {
    const { out } = await run('data', 'multiplication', '--n', '2', '--split', 'heldout', '--seed', '4', '--json');
    const rows = out.split('\n').map((l) => JSON.parse(l) as { split: string; reference: string; prompt: string });
    assert.equal(rows.length, 2);
    assert.ok(rows.every((r) => r.split === 'heldout' && r.prompt.endsWith('<think>')));
    const w = await run('data', 'wordproblems', '--n', '1');
    assert.match(w.out, /How many \w+ does \w+ have now\?/);
    await assert.rejects(run('data', 'countdown', '--split', 'test'), /'train' or 'heldout'/);
  });

  test('corpus --n 5 prints documents; --accuracy measures', async () => {
    const { out } = await run('data', 'corpus', '--n', '5', '--accuracy', '300');
    assert.equal(out.match(/── document \d+/g)?.length, 5);
    assert.match(out, /corpus accuracy over the first 300 documents \(seed 0\): \d+\.\d% of \d+ worked problems/);
  });

  test('check FILE reports bad rows and sets the exit code', async () => {
    const path = join(dir, 'rows.jsonl');
    writeFileSync(path, '{"target": 98, "nums": [44, 19, 35]}\n{"target": 5, "nums": "1 2"}\n{"target": 7, "nums": [1, 1]}\n');
    const { out, code } = await run('data', 'check', path, '--solve');
    assert.match(out, /3 rows read, 2 valid Countdown problems, 1 bad/);
    assert.match(out, /line 2, field "nums": expected a list of integers/);
    assert.match(out, /1 valid problems have no solution \(lines 3\)/);
    assert.equal(code, 1);
    const good = join(dir, 'good.jsonl');
    writeFileSync(good, '{"target": 98, "nums": [44, 19, 35]}\n');
    assert.equal((await run('data', 'check', good)).code, undefined);
    await assert.rejects(run('data', 'check', path, '--stop'), /line 2, field "nums"/);
  });
});
