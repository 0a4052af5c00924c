// The stop probe reads the model at exactly the decision points of each reference trace (the line
// after a missed search line), with figures in [0, 1]; how searches end is classified from the
// text; `tinyseek eval --probes` prints all three on a real checkpoint.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { CorpusConfig, generateCorpus, generateProblems, referenceCompletion } from '../src/data/index.ts';
import { STOP_LINE, searchOutcome, searchOutcomes, stopProbe } from '../src/eval/index.ts';
import { loadPreset, parseConfig } from '../src/model/config.ts';
import { DeepSeekV3 } from '../src/model/transformer.ts';
import { Tokenizer } from '../src/tokenizer/index.ts';

const config = CorpusConfig.parse({
  kind: 'search',
  tasks: { countdown: 1, multiplication: 0, wordproblems: 0 },
  countdown: { minCount: 3, maxCount: 3, maxNumber: 20, promptFrame: 'compact' },
});
let tok: Tokenizer;
let model: DeepSeekV3;

before(() => {
  tok = Tokenizer.train(
    generateCorpus(200, config).map((d) => d.text),
    { vocabSize: 400, splitDigits: true },
  );
  model = new DeepSeekV3(parseConfig({ ...loadPreset('tiny'), vocab_size: tok.vocabSize, max_position_embeddings: 512 }), { seed: 1 });
});

describe('stop probe', () => {
  test('one decision per missed search line that another line follows, the first apart', () => {
    const problems = generateProblems('countdown', { seed: 0, split: 'heldout', n: 8, config: config.countdown });
    const s = stopProbe(model, tok, problems, { batchSize: 3 });
    let first = 0;
    let later = 0;
    for (const p of problems) {
      const lines = referenceCompletion(p)!.split('\n');
      let k = 0;
      for (let i = 0; i < lines.length - 1; i++) {
        const search =
          lines[i] !== '' &&
          !/^\d+, \d+ \(\d+\)(?: to \d+)?:$/.test(lines[i]) &&
          !/^(\d+ reached\.|Check: |No exact)/.test(lines[i]) &&
          !/ reached\.$/.test(lines[i]); // a hit, inline
        if (search && !/^\d+ reached\.$/.test(lines[i + 1]) && !lines[i + 1].startsWith('</think>')) {
          if (k === 0) first++;
          else later++;
          k++;
        }
      }
    }
    assert.equal(s.problems, 8);
    assert.equal(s.first.decisions, first);
    assert.equal(s.later.decisions, later);
    for (const f of [s.first, s.later]) {
      assert.ok(f.meanStop >= 0 && f.meanStop <= 1 && f.greedyStops >= 0 && f.greedyStops <= 1);
    }
  });

  test('searches end right, stopped, with a false claim, or otherwise', () => {
    assert.equal(searchOutcome('… 9 reached.', true), 'right');
    assert.equal(searchOutcome(`3+7=10.\n${STOP_LINE} Closest: 3+7=10.`, false), 'stopped');
    assert.equal(searchOutcome('2+11=13. 13-12=1.\n2 reached.', false), 'false_claim');
    assert.equal(searchOutcome('2+11=13. 13-', false), 'other');
    const caught = '2+11=13. 13+18=31.\n9 reached.\nCheck: 2+11=13, 13+18=31. 31 is not 9.\n2+18=20. 20-11=';
    assert.equal(searchOutcome(caught, false), 'other', 'a claim its check line caught is no false claim');
    assert.equal(searchOutcome(`${caught}9.\n8 reached.`, false), 'false_claim', 'the last claim counts');
    const o = searchOutcomes([
      { completion: 'x', reward: 1 },
      { completion: STOP_LINE, reward: 0 },
      { completion: '4 reached.', reward: 0.1 },
      { completion: '', reward: 0 },
    ]);
    assert.deepEqual(o, { right: 0.25, stopped: 0.25, false_claim: 0.25, other: 0.25 });
  });

  test('tinyseek eval --probes prints the three on the shipped base model', () => {
    const cli = join(import.meta.dirname, '..', 'bin', 'tinyseek.js');
    const r = spawnSync(
      process.execPath,
      [
        cli,
        'eval',
        '--checkpoint',
        'checkpoints/small-base',
        '--task-config',
        '{"maxCount":3,"maxNumber":20,"promptFrame":"compact"}',
        '--n',
        '4',
        '--probes',
        '--json',
      ],
      { encoding: 'utf8', timeout: 120_000 },
    );
    assert.equal(r.status, 0, r.stderr);
    const j = JSON.parse(r.stdout) as { probes: { arith: { problems: number }; stop: { problems: number }; outcomes: Record<string, number> } };
    assert.equal(j.probes.arith.problems, 4);
    assert.equal(j.probes.stop.problems, 4);
    assert.ok(Math.abs(Object.values(j.probes.outcomes).reduce((a, b) => a + b, 0) - 1) < 1e-9);
  });
});
