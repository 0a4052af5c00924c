// Evaluation: the pass@k estimator on hand cases, majority voting, the figures from hand-scored
// samples, evaluate() on a tiny model (generated problems and a task file), and `tinyseek eval`
// on a tiny checkpoint written here.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Command } from 'commander';
import { registerEvalCommands } from '../src/cli/eval.ts';
import { generateCorpus, generateProblems } from '../src/data/index.ts';
import { type EvalReport, type SampleOutcome, copyProbe, defaultKs, evaluate, majorityVote, passAtK, restatement, tally } from '../src/eval/index.ts';
import { saveCheckpoint } from '../src/model/checkpoint.ts';
import { loadPreset, parseConfig } from '../src/model/config.ts';
import { DeepSeekV3 } from '../src/model/transformer.ts';
import { Tokenizer } from '../src/tokenizer/index.ts';

const close = (a: number, b: number, what = ''): void => assert.ok(Math.abs(a - b) < 1e-12, `${what}: ${a} ≠ ${b}`);

function binom(n: number, k: number): number {
  let r = 1;
  for (let i = 1; i <= k; i++) r = (r * (n - k + i)) / i;
  return r;
}

describe('pass@k (Chen et al. 2021)', () => {
  test('hand cases', () => {
    close(passAtK(5, 0, 1), 0, 'none correct');
    close(passAtK(5, 5, 3), 1, 'all correct');
    close(passAtK(5, 2, 1), 0.4, 'pass@1 = c/n');
    close(passAtK(5, 2, 2), 1 - 3 / 10, '1 − C(3,2)/C(5,2)');
    close(passAtK(10, 3, 5), 1 - 21 / 252, '1 − C(7,5)/C(10,5)');
    close(passAtK(4, 2, 3), 1, 'n − c < k');
    close(passAtK(4, 1, 4), 1, 'k = n with one correct');
  });

  test('equals 1 − C(n−c, k)/C(n, k) everywhere on small n', () => {
    for (let n = 1; n <= 12; n++)
      for (let c = 0; c <= n; c++)
        for (let k = 1; k <= n; k++) close(passAtK(n, c, k), n - c < k ? 1 : 1 - binom(n - c, k) / binom(n, k), `n ${n} c ${c} k ${k}`);
  });

  test('bad arguments and the default ks', () => {
    assert.throws(() => passAtK(4, 5, 1), /c must be an integer in \[0, n = 4\]/);
    assert.throws(() => passAtK(4, 1, 5), /k must be an integer in \[1, n = 4\]/);
    assert.deepEqual(defaultKs(1), [1]);
    assert.deepEqual(defaultKs(4), [1, 2, 4]);
    assert.deepEqual(defaultKs(10), [1, 2, 4, 8, 10]);
  });
});

describe('majority vote and figures', () => {
  test('the most frequent answer wins (whitespace ignored); ties go to the first; no answer does not vote', () => {
    assert.deepEqual(majorityVote(['3', ' 4', '4 ', null, '3', '4']), { answer: ' 4', votes: 3, sample: 1 });
    assert.deepEqual(majorityVote(['44 + 19', '44+19', null, '7']), { answer: '44 + 19', votes: 2, sample: 0 });
    assert.deepEqual(majorityVote(['1', '2']), { answer: '1', votes: 1, sample: 0 });
    assert.deepEqual(majorityVote([null, null]), { answer: null, votes: 0, sample: -1 });
  });

  test('tally on hand-scored samples', () => {
    const s = (reward: number, answer: string | null, tokens = 10, truncated = false): SampleOutcome => ({
      reward,
      answer,
      tokens,
      truncated,
      reason: reward === 1 ? 'correct' : answer === null ? 'no-answer' : 'wrong-value',
    });
    const f = tally(
      [
        [s(1, '6'), s(0.1, '5'), s(0.1, '5'), s(0, null, 20, true)], // 1 of 4 right; majority '5' wrong
        [s(1, '2 + 2'), s(1, '2+2'), s(0.1, '3'), s(0.1, '1')], // 2 of 4; majority right
        [s(0, null, 30, true), s(0, null, 30, true), s(0, null), s(0, null)], // none
      ],
      [1, 2, 4],
    );
    close(f.pass1, (1 / 4 + 2 / 4 + 0) / 3, 'pass@1');
    close(f.passAtK['2'], (passAtK(4, 1, 2) + passAtK(4, 2, 2) + 0) / 3, 'pass@2');
    close(f.passAtK['4'], 2 / 3, 'pass@4');
    close(f.majority, 1 / 3, 'majority');
    close(f.meanReward, (1 + 0.1 + 0.1 + 1 + 1 + 0.1 + 0.1) / 12, 'reward');
    close(f.meanCompletionTokens, (10 * 3 + 20 + 10 * 4 + 30 * 2 + 10 * 2) / 12, 'length');
    close(f.truncatedShare, 3 / 12, 'truncated');
    close(f.wellFormedShare, 7 / 12, 'well-formed');
    assert.deepEqual(f.reasons, { correct: 3 / 12, 'wrong-value': 4 / 12, 'no-answer': 5 / 12 });
  });
});

// ---- with a model ----------------------------------------------------------------------------------

let dir = '';
let tok: Tokenizer;
let model: DeepSeekV3;

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'tinyseek-eval-'));
  tok = Tokenizer.train(
    generateCorpus(300, { seed: 2 }).map((d) => d.text),
    { vocabSize: 512 },
  );
  const config = parseConfig({ ...loadPreset('tiny'), vocab_size: 512, max_position_embeddings: 512 });
  model = new DeepSeekV3(config, { seed: 3 }).eval();
});
after(() => rmSync(dir, { recursive: true, force: true }));

function wellFormedReport(r: EvalReport, problems: number, samples: number, maxNewTokens: number): void {
  assert.equal(r.problems, problems);
  assert.equal(r.samples, samples);
  for (const v of [r.pass1, r.majority, r.meanReward, r.truncatedShare, r.wellFormedShare, ...Object.values(r.passAtK)]) assert.ok(v >= 0 && v <= 1, String(v));
  assert.ok(r.meanCompletionTokens >= 1 && r.meanCompletionTokens <= maxNewTokens);
  close(
    Object.values(r.reasons).reduce((a, b) => a + (b ?? 0), 0),
    1,
    'reasons sum to 1',
  );
  assert.ok(r.pass1 <= r.passAtK[String(samples)] + 1e-12 && r.majority <= r.passAtK[String(samples)] + 1e-12);
  assert.ok(r.tokensPerSecond > 0 && r.generatedTokens > 0);
  assert.deepEqual(JSON.parse(JSON.stringify(r)), r, 'JSON-serialisable');
}

describe('evaluate()', () => {
  test('sampled: well-formed figures; the same seed gives the same report', async () => {
    const o = { task: 'countdown', n: 3, samples: 2, temperature: 1, topP: 0.95, maxNewTokens: 12, seed: 4, batchSize: 2 } as const;
    const r = await evaluate(model, tok, o);
    wellFormedReport(r, 3, 2, 12);
    assert.deepEqual(Object.keys(r.passAtK), ['1', '2']);
    assert.equal(r.source, 'generated:heldout');
    assert.equal(r.examples.length, 3);
    assert.ok(r.examples.every((e) => e.problem.task === 'countdown' && typeof e.completion === 'string'));
    const again = await evaluate(model, tok, o);
    assert.deepEqual({ ...again, seconds: 0, tokensPerSecond: 0 }, { ...r, seconds: 0, tokensPerSecond: 0 });
  });

  test('greedy (temperature 0) on another task; more samples than one is an error', async () => {
    const r = await evaluate(model, tok, { task: 'multiplication', n: 2, maxNewTokens: 8 });
    wellFormedReport(r, 2, 1, 8);
    assert.equal(r.task, 'multiplication');
    await assert.rejects(evaluate(model, tok, { n: 2, samples: 2, temperature: 0 }), /greedy decoding \(temperature 0\) gives 2 identical samples/);
  });

  test('a Countdown task file in TinyZero schema', async () => {
    const file = join(dir, 'tasks.jsonl');
    writeFileSync(file, ['{"target": 98, "nums": [44, 19, 35]}', '{"target": 24, "nums": [3, 3, 8]}', '{"target": 10, "nums": [2, 5]}'].join('\n'));
    const r = await evaluate(model, tok, { taskFile: file, n: 2, maxNewTokens: 6 });
    wellFormedReport(r, 2, 1, 6);
    assert.equal(r.source, file);
    assert.deepEqual(r.examples[0].problem, { task: 'countdown', nums: [44, 19, 35], target: 98, solution: null });
  });

  test('a tokenizer larger than the model is a clear error', async () => {
    const small = new DeepSeekV3(loadPreset('tiny'), { seed: 0 });
    await assert.rejects(evaluate(small, tok, { n: 1 }), /the tokenizer has 512 ids but the model's vocabulary only 256/);
    await assert.rejects(
      evaluate(model, tok, { problems: generateProblems('countdown', { seed: 0, split: 'heldout', n: 1 }), n: 1, samples: 2, temperature: 1, ks: [3] }),
      /pass@3 needs 1 ≤ k ≤ samples \(2\)/,
    );
  });
});

describe('tinyseek eval', () => {
  async function run(...args: string[]): Promise<string> {
    const program = new Command().exitOverride().configureOutput({ writeErr: () => {} });
    registerEvalCommands(program);
    const lines: string[] = [];
    const log = console.log;
    const write = process.stderr.write;
    console.log = (...a: unknown[]) => void lines.push(a.join(' '));
    process.stderr.write = (() => true) as typeof process.stderr.write;
    try {
      await program.parseAsync(['node', 'tinyseek', ...args]);
    } finally {
      console.log = log;
      process.stderr.write = write;
    }
    return lines.join('\n');
  }

  test('runs on a checkpoint written here (--json and text)', async () => {
    const ckpt = join(dir, 'ckpt');
    await saveCheckpoint(ckpt, model);
    tok.save(join(ckpt, 'tokenizer.json'));
    const out = await run(
      'eval',
      '--checkpoint',
      ckpt,
      '--task',
      'countdown',
      '--n',
      '3',
      '--samples',
      '2',
      '--temperature',
      '0.6',
      '--max-new-tokens',
      '8',
      '--json',
    );
    const r = JSON.parse(out) as EvalReport;
    wellFormedReport(r, 3, 2, 8);
    assert.equal(r.temperature, 0.6);
    const text = await run('eval', '--checkpoint', ckpt, '--tokenizer', join(ckpt, 'tokenizer.json'), '--n', '2', '--max-new-tokens', '4', '--examples', '1');
    assert.match(text, /countdown · generated:heldout · 2 problems × 1 sample · greedy · ≤ 4 new tokens · seed 0/);
    assert.match(text, /pass@1 +\d+\.\d%/);
    assert.match(text, /majority vote +\d+\.\d%/);
    assert.match(text, /── example 1: reward /);
    await assert.rejects(
      run('eval', '--checkpoint', join(dir, 'nowhere'), '--n', '1'),
      /checkpoint directory .*nowhere does not exist; pass a directory with config.json/,
    );
    await assert.rejects(run('eval', '--checkpoint', ckpt, '--task', 'chess'), /expected one of countdown, multiplication, wordproblems/);
  });
});

describe('copy probe', () => {
  test('counts the digits of the restated numbers; the measure is a share', () => {
    const cd = generateProblems('countdown', { seed: 0, split: 'heldout', n: 3 });
    const mu = generateProblems('multiplication', { seed: 0, split: 'heldout', n: 2 });
    assert.equal(restatement(mu[0]), `\nWe need ${mu[0].a} * ${mu[0].b}.`);
    const r = copyProbe(model, tok, [...cd, ...mu]);
    assert.equal(r.problems, 5);
    const digitsOf = (s: string): number => tok.encode(s).filter((id) => /^[0-9]+$/.test(tok.decode([id]))).length;
    assert.equal(
      r.digits,
      [...cd, ...mu].reduce((a, p) => a + digitsOf(restatement(p)!), 0),
    );
    assert.ok(r.digitAccuracy >= 0 && r.digitAccuracy <= 1 && r.exactShare >= 0 && r.exactShare <= 1);
    assert.throws(() => copyProbe(model, tok, generateProblems('wordproblems', { seed: 0, split: 'heldout', n: 1 })), /no problem of a task with numbers/);
  });
});
