// The base-model corpus: determinism, train-only problems (and no held-out products stated),
// the mix knobs, true arithmetic where the writer is not slipping, and the answer accuracy band.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  assertTrainOnly,
  canonicalOf,
  corpusAccuracy,
  corpusDocument,
  corpusDocuments,
  generateCorpus,
  generateProblems,
  parseCorpusConfig,
  splitOf,
  splitOfProblem,
  type CorpusDocument,
} from '../src/data/index.ts';

const N = 3000;
const docs = generateCorpus(N, { seed: 0 });

/** Every "a op b = c" with whole numbers in the text, and whether it is true. */
function facts(text: string): { s: string; ok: boolean }[] {
  const out: { s: string; ok: boolean }[] = [];
  for (const m of text.matchAll(/(?<![\d.])(?<![+\-*/] )(\d+) ([+\-*/]) (\d+) = (\d+)(?=[.,\n]|$)/g)) {
    const [a, b, c] = [Number(m[1]), Number(m[3]), Number(m[4])];
    const v = m[2] === '+' ? a + b : m[2] === '-' ? a - b : m[2] === '*' ? a * b : a / b;
    out.push({ s: m[0], ok: v === c });
  }
  return out;
}

describe('corpus', () => {
  test('document i is a pure function of (config, i)', () => {
    const c = parseCorpusConfig({ seed: 0 });
    assert.deepEqual(corpusDocument(c, 1234), docs[1234]);
    const it = corpusDocuments({ seed: 0 }, 100);
    assert.deepEqual([it.next().value, it.next().value], docs.slice(100, 102));
    assert.deepEqual(generateCorpus(50, { seed: 0 }), docs.slice(0, 50));
    assert.notDeepEqual(
      generateCorpus(20, { seed: 1 }).map((d) => d.text),
      docs.slice(0, 20).map((d) => d.text),
    );
  });

  test('only train problems, and no document states a held-out product', () => {
    assertTrainOnly(docs, { seed: 0 });
    let tasks = 0;
    for (const d of docs) {
      if (!d.problem) continue;
      tasks++;
      assert.equal(splitOfProblem(d.problem), 'train', canonicalOf(d.problem));
      for (const m of d.text.matchAll(/(\d+) \* (\d+) =/g)) {
        const [a, b] = [Number(m[1]), Number(m[2])];
        const inRange = a >= 1 && b >= 1 && String(a).length <= 3 && String(b).length <= 3;
        if (inRange) assert.equal(splitOf(`multiplication|${Math.min(a, b)}x${Math.max(a, b)}`), 'train', `document ${d.index}: ${m[0]}`);
      }
    }
    assert.ok(tasks > N * 0.7);
  });

  test('assertTrainOnly catches a held-out problem and a held-out product', () => {
    const [h] = generateProblems('countdown', { seed: 0, split: 'heldout', n: 1 });
    const bad: CorpusDocument = { ...docs.find((d) => d.problem)!, index: -1, problem: h };
    assert.throws(() => assertTrainOnly([bad]), /uses the held-out problem countdown\|/);
    const [m] = generateProblems('multiplication', { seed: 0, split: 'heldout', n: 1 });
    const leak: CorpusDocument = { ...docs[0], index: -2, problem: null, text: `${m.a} * ${m.b} = ${m.a * m.b}` };
    assert.throws(() => assertTrainOnly([leak]), /states the held-out product/);
  });

  test('the writer computes right except where a slip is the point', () => {
    let checked = 0;
    for (const d of docs) {
      if (d.kind === 'facts' || d.style === 'direct') {
        for (const f of facts(d.completion.split('</think>')[0])) {
          checked++;
          assert.ok(f.ok, `document ${d.index} (${d.kind} ${d.style ?? ''}): ${f.s}`);
        }
      }
    }
    assert.ok(checked > 1000, `${checked}`);
  });

  test('mixed quality: right and wrong answers, searches, caught slips, give-ups, facts', () => {
    const text = (pred: (d: CorpusDocument) => boolean) => docs.filter(pred).length / N;
    assert.ok(text((d) => d.kind === 'facts') > 0.1);
    assert.ok(text((d) => /\bWait, /.test(d.completion)) > 0.08, 'self-corrections');
    assert.ok(text((d) => /not \d+\.|too (big|small|high|low)|Check|check/.test(d.completion)) > 0.3, 'verification');
    assert.ok(text((d) => d.kind === 'task' && !d.completion.includes('<answer>')) > 0.05, 'no answer');
    assert.ok(text((d) => d.prompt.startsWith('Question: ')) > 0.1, 'plain Q/A framing');
    assert.ok(text((d) => d.prompt.startsWith('A conversation between User and Assistant.')) > 0.5, 'the R1-Zero prompt');
  });

  test('answer accuracy is within the stated band (docs/data.md): 30%–45% overall', () => {
    const a = corpusAccuracy(docs);
    assert.ok(a.overall.accuracy > 0.3 && a.overall.accuracy < 0.45, `overall ${a.overall.accuracy}`);
    for (const [t, r] of Object.entries(a.byTask)) assert.ok(r.accuracy > 0.2 && r.accuracy < 0.55, `${t}: ${r.accuracy}`);
    assert.equal(a.byStyle.direct.accuracy, 1);
    assert.ok(a.byStyle.slip.accuracy < 0.1, `slip ${a.byStyle.slip.accuracy}`);
    assert.ok(a.byStyle.wrongThing.accuracy < 0.05);
    assert.ok(a.byStyle.giveUp.accuracy < 0.1);
    assert.ok(a.byStyle.search.accuracy > 0.3 && a.byStyle.search.accuracy < 0.6, `search ${a.byStyle.search.accuracy}`);
    assert.equal(a.overall.documents + a.factsDocuments, N);
  });

  test('the knobs move the mix', () => {
    const only = generateCorpus(300, { seed: 0, factsShare: 0, tasks: { countdown: 1, multiplication: 0, wordproblems: 0 } });
    assert.ok(only.every((d) => d.task === 'countdown'));
    const right = corpusAccuracy(
      generateCorpus(300, { seed: 0, factsShare: 0, styles: { direct: 0, search: 1, slip: 0, selfCorrect: 0, wrongThing: 0, giveUp: 0 }, findProb: 1 }),
    );
    assert.equal(right.overall.accuracy, 1);
    const wrong = corpusAccuracy(
      generateCorpus(300, { seed: 0, factsShare: 0, styles: { direct: 0, search: 0, slip: 1, selfCorrect: 0, wrongThing: 0, giveUp: 0 } }),
    );
    assert.ok(wrong.overall.accuracy < 0.1);
    assert.ok(generateCorpus(100, { seed: 0, factsShare: 1 }).every((d) => d.kind === 'facts'));
  });

  test('invalid configurations name the field', () => {
    assert.throws(() => parseCorpusConfig({ factShare: 0.2 }), /factShare|Unrecognized/);
    assert.throws(() => parseCorpusConfig({ findProb: 2 }), /findProb/);
    assert.throws(() => parseCorpusConfig({ styles: { direct: -1 } }), /styles\.direct/);
    assert.throws(() => parseCorpusConfig({ styles: { direct: 0, search: 0, slip: 0, selfCorrect: 0, wrongThing: 0, giveUp: 0 } }), /style weight/);
    assert.throws(() => parseCorpusConfig({ countdown: { minCount: 5, maxCount: 3 } }), /minCount/);
    assert.equal(parseCorpusConfig({}).countdown.maxNumber, 99, 'nested task configs take their defaults');
  });
});
