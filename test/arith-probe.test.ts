// The arithmetic probe: it scores exactly the equations of each problem's reference trace, at the
// digits of their results; a model trained on those traces' own arithmetic scores higher than an
// untrained one; a tokenizer that does not split digits is refused with the fix.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { CorpusConfig, generateCorpus, generateProblems, referenceCompletion } from '../src/data/index.ts';
import { arithProbe, formatArithProbe } from '../src/eval/index.ts';
import { loadPreset, parseConfig } from '../src/model/config.ts';
import { DeepSeekV3 } from '../src/model/transformer.ts';
import { Tokenizer } from '../src/tokenizer/index.ts';

const config = CorpusConfig.parse({
  kind: 'search',
  tasks: { countdown: 1, multiplication: 1, wordproblems: 0 },
  countdown: { minCount: 3, maxCount: 3, maxNumber: 20, promptFrame: 'compact' },
  multiplication: { minDigitsA: 2, maxDigitsA: 2, minDigitsB: 2, maxDigitsB: 2, promptFrame: 'compact' },
});
let tok: Tokenizer;
let model: DeepSeekV3;

before(() => {
  tok = Tokenizer.train(
    generateCorpus(300, config).map((d) => d.text),
    { vocabSize: 400, splitDigits: true },
  );
  model = new DeepSeekV3(parseConfig({ ...loadPreset('tiny'), vocab_size: tok.vocabSize, max_position_embeddings: 512 }), { seed: 1 });
});

describe('arithmetic probe', () => {
  test('counts every equation of the reference traces, per operation, with figures in [0, 1]', () => {
    const problems = [
      ...generateProblems('countdown', { seed: 0, split: 'heldout', n: 6, config: config.countdown }),
      ...generateProblems('multiplication', { seed: 0, split: 'heldout', n: 4, config: config.multiplication }),
    ];
    const a = arithProbe(model, tok, problems, { batchSize: 4 });
    // every one-operation equation of the references, the check lines' included ("3*7-4=17" is not one)
    const expected = problems.reduce((n, p) => n + [...referenceCompletion(p)!.matchAll(/(?<![\d+\-*/])\d+[+\-*/]\d+=\d+/g)].length, 0);
    assert.equal(a.problems, 10);
    assert.equal(a.overall.equations, expected);
    assert.equal(
      a.overall.equations,
      Object.values(a.byOp).reduce((n, f) => n + f.equations, 0),
    );
    for (const f of [a.overall, ...Object.values(a.byOp)]) assert.ok(f.whole >= 0 && f.whole <= 1 && f.digits >= 0 && f.digits <= 1);
    assert.ok(a.byOp['*'].equations > 0 && a.byOp['+'].equations > 0);
    assert.ok(a.overall.whole < 0.5, 'an untrained model gets few results right');
    assert.match(formatArithProbe(a), /results right \(\+ /);
  });

  test('a tokenizer that groups digits is refused, naming the fix', () => {
    const grouped = Tokenizer.train(
      generateCorpus(100, config).map((d) => d.text),
      { vocabSize: 400, splitDigits: false },
    );
    const m = new DeepSeekV3(parseConfig({ ...loadPreset('tiny'), vocab_size: grouped.vocabSize, max_position_embeddings: 512 }), { seed: 1 });
    const p = generateProblems('countdown', { seed: 0, split: 'heldout', n: 1, config: config.countdown });
    assert.throws(() => arithProbe(m, grouped, p), /one token per digit.*splitDigits/);
  });
});
