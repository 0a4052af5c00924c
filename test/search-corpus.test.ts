// The corpus for a model trained from scratch: systematic Countdown search traces (every equation
// true, a check line, early stops that answer the closest value), multiplication scratchpads,
// drills of the traces' own equations, the compact prompt frame, document packing and its
// context probe.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import {
  CorpusConfig,
  IGNORE_INDEX,
  assertTrainOnly,
  contextCoverage,
  countdownProblem,
  generateCorpus,
  generateProblems,
  packDocuments,
  packedBatch,
  promptOf,
  referenceCompletion,
  scoreCompletion,
} from '../src/data/index.ts';
import { Rng } from '../src/data/rng.ts';
import { traceFormatOf } from '../src/run/trace-format.ts';
import { countdownSearchTrace, lineText, searchLines } from '../src/data/corpus/countdown-search.ts';
import { traceEquations } from '../src/data/corpus/drills.ts';
import { multiplicationLines } from '../src/data/corpus/multiplication-steps.ts';

const EQ = /(?<![\d+\-*/])(\d+)([+\-*/])(\d+)=(\d+)/g;
const apply = (a: number, op: string, b: number): number => (op === '+' ? a + b : op === '-' ? a - b : op === '*' ? a * b : a / b);

/** The equations of a text that are false, except one corrected at once ("…=130. Wait, …=120"). */
function falseEquations(text: string): string[] {
  const bad: string[] = [];
  for (const m of text.matchAll(EQ)) {
    if (apply(Number(m[1]), m[2], Number(m[3])) === Number(m[4])) continue;
    const next = text.slice(m.index + m[0].length, m.index + m[0].length + 8);
    if (next.startsWith('. Wait, ')) continue;
    bad.push(m[0]);
  }
  return bad;
}

const SEARCH = CorpusConfig.parse({
  kind: 'search',
  tasks: { countdown: 0.7, multiplication: 0.3, wordproblems: 0 },
  countdown: { minCount: 3, maxCount: 3, maxNumber: 20, promptFrame: 'compact' },
  multiplication: { minDigitsA: 2, maxDigitsA: 2, minDigitsB: 2, maxDigitsB: 2, promptFrame: 'compact' },
});
const cdConfig = { minCount: 3, maxCount: 3, maxNumber: 20 };

describe('Countdown search traces', () => {
  test('the full search finds every 3-number problem, every equation true, and its answer earns 1.0', () => {
    const problems = generateProblems('countdown', { seed: 3, split: 'train', n: 300, config: cdConfig });
    let solved = 0;
    for (const p of problems) {
      const c = referenceCompletion(p)!;
      assert.deepEqual(falseEquations(c), [], c);
      if (scoreCompletion(c, p).reward === 1) solved++;
    }
    assert.equal(solved, 300, `${solved} of 300 solved`);
  });

  test('the search order: pairs in position order, each a block of + * − ÷ lines under a header; a line stops at the hit', () => {
    const lines = [...searchLines([3, 7, 12], 33)];
    assert.equal(lines.length, 12);
    assert.deepEqual(
      lines.slice(0, 5).map((l) => lineText(l)),
      ['3+7=10. 10+12=22.', '3*7=21. 21+12=33.', '7-3=4. 4+12=16.', '7/3 no.', '3+12=15. 15+7=22.'],
    );
    assert.deepEqual(
      lines.map((l) => l.header).filter((h) => h !== null),
      ['3, 7 (12):', '3, 12 (7):', '7, 12 (3):'],
    );
    assert.equal(lines[1].hit?.result, 33);
    assert.equal(lines[0].finals.length, 1, '10*12 is not written: it cannot give 33');
  });

  test('a found trace ends with a check line; an early stop answers the closest value it wrote', () => {
    const p = countdownProblem([3, 7, 12], 33, '3 * 7 + 12');
    const found = countdownSearchTrace(new Rng(1), p, { stopFirst: 0, stopLater: 0, slipShare: 0 });
    assert.match(found.lines.at(-1)!, /^Check: 3\*7=21, 21\+12=33\. Uses 3, 7, 12, each once\.$/);
    assert.equal(found.answer, '3 * 7 + 12');
    const stopped = countdownSearchTrace(new Rng(1), p, { stopFirst: 1, stopLater: 1, slipShare: 0 });
    assert.deepEqual(stopped.lines, ['3, 7 (12):', '3+7=10. 10+12=22.', 'No exact answer yet. Closest: 3+7+12=22.']);
    assert.equal(stopped.answer, '3 + 7 + 12');
  });

  test('compareTarget restates the target in each header and compares with it in the check line', () => {
    const p = countdownProblem([3, 7, 12], 33, '3 * 7 + 12');
    const found = countdownSearchTrace(new Rng(1), p, { stopFirst: 0, stopLater: 0, slipShare: 0, compareTarget: true });
    assert.deepEqual(found.lines, [
      '3, 7 (12) to 33:',
      '3+7=10. 10+12=22.',
      '3*7=21. 21+12=33.',
      '33 reached.',
      'Check: 3*7=21, 21+12=33. 33 is the target. Uses 3, 7, 12, each once.',
    ]);
    assert.match(referenceCompletion(p, { compareTarget: true })!, /^\n3, 7 \(12\) to 33:\n/);
    assert.match(referenceCompletion(p, { compareTarget: false })!, /^\n3, 7 \(12\):\n/);
  });

  test('inlineHit marks the hit right after the equation that gives the target; the reference follows the format asked for', () => {
    const p = countdownProblem([3, 7, 12], 33, '3 * 7 + 12');
    const found = countdownSearchTrace(new Rng(1), p, { stopFirst: 0, stopLater: 0, slipShare: 0, inlineHit: true });
    assert.deepEqual(found.lines, ['3, 7 (12):', '3+7=10. 10+12=22.', '3*7=21. 21+12=33 reached.', 'Check: 3*7=21, 21+12=33. Uses 3, 7, 12, each once.']);
    assert.equal(found.answer, '3 * 7 + 12');
    assert.equal(referenceCompletion(p, { inlineHit: true, compareTarget: false }), `\n${found.lines.join('\n')}\n</think>\n<answer>3 * 7 + 12</answer>`);
    const first = referenceCompletion(p, { inlineHit: false, compareTarget: false })!;
    assert.match(first, /\n3\*7=21\. 21\+12=33\.\n33 reached\.\n/, 'the first format: the claim on a line of its own');
    assert.match(referenceCompletion(p)!, /^\n3, 7 \(12\) to 33:\n3\+7=10\. 10\+12=22\.\n3\*7=21\. 21\+12=33 reached\.\nCheck: /, 'the corpus default: both');
  });

  test('the probes read the trace format a checkpoint learned from its records', () => {
    const root = join(import.meta.dirname, '..', 'checkpoints');
    const shipped = { compareTarget: true, inlineHit: true };
    assert.deepEqual(traceFormatOf(join(root, 'small-base')), shipped, 'from its pretraining.json (preset pretrain-small)');
    assert.deepEqual(traceFormatOf(join(root, 'small-r1-zero')), shipped, 'through r1-zero.json to its base');
    assert.deepEqual(traceFormatOf(join(root, 'nowhere')), shipped, 'no record: the corpus default');
  });

  test('a premature claim is always caught by its check line, and the search goes on to the same answer', () => {
    const problems = generateProblems('countdown', { seed: 6, split: 'train', n: 200, config: cdConfig });
    let caught = 0;
    for (const [i, p] of problems.entries()) {
      const knobs = { stopFirst: 0, stopLater: 0, slipShare: 0, compareTarget: true };
      const t = countdownSearchTrace(new Rng(i), p, { ...knobs, claimShare: 1 });
      const text = t.lines.join('\n');
      assert.deepEqual(falseEquations(text), [], text);
      for (const [k, line] of t.lines.entries()) {
        if (line !== `${p.target} reached.`) continue;
        const check = t.lines[k + 1];
        const last = [...check.matchAll(EQ)].at(-1)!;
        if (Number(last[4]) === p.target) assert.match(check, / is the target\. /);
        else {
          assert.equal(check.endsWith(`${last[4]} is not ${p.target}.`), true, check);
          caught++;
        }
      }
      assert.equal(t.answer, countdownSearchTrace(new Rng(i), p, knobs).answer);
    }
    assert.ok(caught > 40, `${caught} caught claims`);
  });

  test('a slip is always corrected on the spot and never changes the search', () => {
    const problems = generateProblems('countdown', { seed: 5, split: 'train', n: 200, config: cdConfig });
    let slips = 0;
    for (const [i, p] of problems.entries()) {
      const t = countdownSearchTrace(new Rng(i), p, { stopFirst: 0, stopLater: 0, slipShare: 1 });
      const text = t.lines.join('\n');
      assert.deepEqual(falseEquations(text), [], text);
      if (text.includes('Wait, ')) slips++;
      const clean = countdownSearchTrace(new Rng(i), p, { stopFirst: 0, stopLater: 0, slipShare: 0 });
      assert.equal(t.answer, clean.answer);
    }
    assert.ok(slips > 50, `${slips} traces with a slip`);
  });
});

describe('multiplication scratchpads and drills', () => {
  test('every scratchpad step is true and the product is right', () => {
    for (let a = 10; a < 100; a += 7) {
      for (let b = 1; b < 100; b += 11) {
        const { lines, product } = multiplicationLines(a, b);
        assert.equal(product, a * b);
        assert.deepEqual(falseEquations(lines.join('\n')), [], lines.join('\n'));
      }
    }
    assert.deepEqual(multiplicationLines(47, 86).lines, [
      '47*86 = 47*80 + 47*6.',
      '47*6: 40*6=240, 7*6=42, 240+42=282.',
      '47*8: 40*8=320, 7*8=56, 320+56=376, so 47*80=3760.',
      '282+3760=4042.',
      'So 47*86=4042.',
    ]);
  });

  test("drills are the traces' own equations, and leave out the product being asked", () => {
    const eqs = traceEquations({ task: 'multiplication', a: 47, b: 86 });
    assert.ok(eqs.includes('7*6=42') && eqs.includes('282+3760=4042'));
    assert.ok(!eqs.includes('47*86=4042'));
  });
});

describe("the 'search' corpus", () => {
  const docs = generateCorpus(400, SEARCH);

  test('no false equation stands anywhere, no held-out problem or product appears, prompts are compact', () => {
    assertTrainOnly(docs, SEARCH);
    for (const d of docs) assert.deepEqual(falseEquations(d.text), [], d.text);
    const tasks = docs.filter((d) => d.kind === 'task');
    assert.ok(tasks.length > 250 && docs.length - tasks.length > 40, `${tasks.length} task documents`);
    for (const d of tasks) {
      assert.ok(d.prompt.startsWith('User: ') && d.prompt.endsWith('Assistant: <think>'), d.prompt);
      assert.equal(d.prompt, promptOf(d.problem!));
    }
  });

  test('Countdown documents end right about half the time; multiplication ones always', () => {
    const cd = docs.filter((d) => d.task === 'countdown');
    const right = cd.filter((d) => scoreCompletion(d.completion, d.problem!).reward === 1).length / cd.length;
    assert.ok(right > 0.45 && right < 0.75, `${(right * 100).toFixed(1)}% right`);
    for (const d of docs.filter((x) => x.task === 'multiplication')) assert.equal(scoreCompletion(d.completion, d.problem!).reward, 1);
  });

  test("the compact frame is a generator setting: task-file problems keep TinyZero's prompt", () => {
    const p = generateProblems('countdown', { seed: 0, split: 'heldout', n: 1, config: { ...cdConfig, promptFrame: 'compact' } })[0];
    assert.equal(p.promptFrame, 'compact');
    assert.equal(
      promptOf(p),
      `User: Using the numbers [${p.nums.join(', ')}], create an equation that equals ${p.target}. Think in <think> </think>, answer in <answer> </answer>.\nAssistant: <think>`,
    );
    assert.match(promptOf(countdownProblem(p.nums, p.target)), /^A conversation between User and Assistant\./);
  });
});

describe('document packing', () => {
  const A = [0, 5, 6, 7, 1];
  const B = [0, 8, 9, 1];
  const C = [0, 3, 3, 3, 3, 3, 1];

  test('rows hold whole documents, pads are ignored targets, and every target sees its document start', () => {
    const p = packDocuments([A, B, C], { seqLen: 9, bos: 0, eos: 1, layout: 'documents', pad: 2 });
    assert.equal(p.numSequences, 2);
    assert.deepEqual([...p.stream.slice(0, 10)], [...A, ...B, 2]);
    assert.deepEqual([...p.stream.slice(10, 20)], [...C, 2, 2, 2]);
    const b = packedBatch(p, [1]);
    assert.deepEqual([...b.targets], [3, 3, 3, 3, 3, 1, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX]);
    assert.equal(contextCoverage(p).share, 1);
  });

  test('stream windows cut documents from their start; the context probe counts it', () => {
    const p = packDocuments([A, B, C, A, B, C], { seqLen: 4, bos: 0, eos: 1 });
    const c = contextCoverage(p);
    assert.ok(c.share < 1 && c.share > 0, `${c.share}`);
    assert.equal(c.targets, p.numSequences * 4);
  });

  test("a document longer than a row is cut and counted; the 'documents' layout needs a pad id", () => {
    const p = packDocuments([C], { seqLen: 4, bos: 0, eos: 1, layout: 'documents', pad: 2 });
    assert.equal(p.truncatedDocuments, 1);
    assert.throws(() => packDocuments([A], { seqLen: 4, bos: 0, eos: 1, layout: 'documents' }), /needs the pad id/);
  });
});
