// Reward rules of the three tasks (docs/data.md), one hand-written case per rule,
// the hostile answers, which <answer> counts, and fuzzing: any string gives 0, 0.1 or 1, never throws.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { countdown, countdownProblem, extractAnswer, multiplication, wordproblems, REWARDS, type Reward, type WordProblem } from '../src/data/index.ts';

const cd = countdownProblem([44, 19, 35], 98, '44 + 19 + 35');
const cdScore = (completion: string) => countdown.score(completion, cd);
const cdr = (completion: string): Reward => countdown.reward(completion, cd);
const ans = (a: string): string => `I think.</think>\n<answer>${a}</answer>`;

describe('countdown reward', () => {
  test('0 without a complete <answer>…</answer>', () => {
    assert.equal(cdr(''), 0);
    assert.equal(cdr('44 + 19 + 35'), 0);
    assert.equal(cdr('<answer>44 + 19 + 35'), 0, 'unclosed');
    assert.equal(cdr('44 + 19 + 35</answer>'), 0, 'no opening tag');
    assert.equal(cdr('</answer>44 + 19 + 35<answer>'), 0, 'tags in the wrong order');
    assert.equal(cdr('<Answer>44 + 19 + 35</Answer>'), 0, 'tags are case-sensitive');
    assert.equal(cdr('<answer >44 + 19 + 35</answer >'), 0, 'tags are exact');
    assert.equal(cdScore('x').reason, 'no-answer');
  });

  test('1.0 when it evaluates to the target using each number exactly once', () => {
    assert.equal(cdr(ans('44 + 19 + 35')), 1);
    assert.equal(cdr(ans('(35 + 19) + 44')), 1, 'any order');
    assert.equal(cdr(ans('  44+19+35 \n')), 1, 'whitespace is trimmed and allowed inside');
    assert.equal(cdr(ans('44 - -19 + 35')), 1, 'unary minus allowed');
    assert.equal(countdown.reward(ans('(1 + 2) / 3'), countdownProblem([1, 2, 3], 1)), 1);
    assert.equal(countdown.reward(ans('7 / 3 * 3'), countdownProblem([7, 3, 3], 7)), 1, 'exact rationals: (7/3)*3 = 7');
    assert.equal(countdown.reward(ans('1 / 3 + 1 / 3 + 1 / 3'), countdownProblem([1, 3, 1, 3, 1, 3], 1)), 1);
    assert.equal(cdScore(ans('44 + 19 + 35')).reason, 'correct');
  });

  test('the 1e-5 tolerance is decided exactly', () => {
    // 100000/99999 − 1 = 1.00001e-5 ≥ 1e-5 → wrong; 200001/200000 − 1 = 5e-6 < 1e-5 → right.
    assert.equal(countdown.reward(ans('100000 / 99999'), countdownProblem([100000, 99999], 1)), 0.1);
    assert.equal(countdown.reward(ans('200001 / 200000'), countdownProblem([200001, 200000], 1)), 1);
  });

  test('0.1 for a well-formed answer with the wrong value', () => {
    assert.equal(cdr(ans('44 + 19 - 35')), 0.1);
    assert.equal(cdScore(ans('44 * 19 + 35')).reason, 'wrong-value');
  });

  test('0.1 for the wrong multiset of numbers (all numbers, each exactly once)', () => {
    assert.equal(cdScore(ans('44 + 19 + 35 + 0')).reason, 'wrong-numbers', 'an extra number');
    assert.equal(cdr(ans('44 + 54')), 0.1, 'reaches 98 without 19 and 35');
    assert.equal(cdr(ans('44 + 44 + 10')), 0.1, 'reuses a number');
    assert.equal(cdr(ans('98')), 0.1, 'the target itself');
    assert.equal(cdr(ans('44 + 19 + 35 + 35 - 35')), 0.1, 'right value, a number twice');
    assert.equal(cdScore(ans('98')).reason, 'wrong-numbers');
  });

  test('0.1 for an answer that is not a safe arithmetic expression', () => {
    for (const [a, reason] of [
      ['44 + 19 + 35 = 98', 'unsafe-chars'],
      ['44 + 19 + 35.', 'syntax'],
      ['44.0 + 19 + 35', 'syntax'],
      ['044 + 19 + 35', 'syntax'],
      ['44 + 19 + 35)', 'syntax'],
      ['(44 + 19 + 35', 'syntax'],
      ['44 19 35', 'syntax'],
      ['44 ** 1 + 19 + 35', 'syntax'],
      ['44 // 1 + 19 + 35', 'syntax'],
      ['44 + 19 + 35 × 1', 'unsafe-chars'],
      ['', 'empty'],
      ['   ', 'empty'],
    ] as const) {
      const s = cdScore(ans(a));
      assert.equal(s.reward, 0.1, `${JSON.stringify(a)} → ${s.reward}`);
      assert.equal(s.reason, reason, `${JSON.stringify(a)}: ${s.reason}`);
    }
  });

  test('division by zero is 0.1, not an exception', () => {
    const p = countdownProblem([5, 0, 3], 8);
    assert.deepEqual(countdown.score(ans('5 / 0 + 3'), p), { reward: 0.1, reason: 'division-by-zero', answer: '5 / 0 + 3' });
    assert.equal(countdown.reward(ans('3 / (5 - 5)'), countdownProblem([3, 5, 5], 1)), 0.1);
  });

  test('limits: longer than 1000 characters or nested deeper than 32 is 0.1', () => {
    const long = `44 + 19 + 35${' '.repeat(1000)}`;
    assert.equal(cdScore(ans(`44 +${' '.repeat(1000)}19 + 35`)).reason, 'too-long');
    assert.equal(cdr(ans(long.trimEnd())), 1, 'the limit applies to the trimmed answer');
    const deep = `${'('.repeat(40)}44${')'.repeat(40)} + 19 + 35`;
    assert.equal(cdScore(ans(deep)).reason, 'too-deep');
    assert.equal(cdr(ans(`${'('.repeat(30)}44${')'.repeat(30)} + 19 + 35`)), 1, 'depth 30 is fine');
    assert.equal(cdScore(ans(`${'-'.repeat(40)}44 + 19 + 35`)).reason, 'too-deep', 'unary signs count toward depth');
  });
});

describe('which answer counts', () => {
  test('the last complete pair', () => {
    assert.equal(cdr('<answer>1 + 2</answer> no, wait <answer>44 + 19 + 35</answer>'), 1);
    assert.equal(cdr('<answer>44 + 19 + 35</answer> no, wait <answer>1 + 2</answer>'), 0.1);
    assert.equal(cdr('<answer>44 + 19 + 35</answer> and then <answer>oops'), 1, 'a trailing unclosed tag leaves the pair');
    assert.equal(cdr('<answer>44 + 19 + 35</answer>\nmore text after the answer'), 1, 'text after the answer is ignored');
    assert.equal(cdr('<answer>\n44 + 19\n+ 35\n</answer>'), 1, 'an answer may span lines');
  });

  test('nested and stray tags: a pair opens at the nearest <answer>', () => {
    assert.deepEqual(extractAnswer('<answer><answer>3</answer></answer>'), { found: true, content: '3', start: 16, end: 17 });
    assert.equal(cdr('<answer><answer>44 + 19 + 35</answer></answer>'), 1);
    assert.equal(cdr('<answer>44 + 19 + 35</answer></answer>'), 1, 'a stray closing tag after the pair is ignored');
    assert.equal(cdr('I might say <answer> 1 + 2 … no. <answer>44 + 19 + 35</answer>'), 1, 'a stray unclosed tag does not swallow the answer');
    assert.equal(cdr('</answer></answer>'), 0, 'closing tags alone are no answer');
    assert.equal(cdr('<answer>44 + 19 + 35</answer> x </answer>'), 1);
  });

  test('empty answer is well-formed but wrong', () => {
    assert.deepEqual(extractAnswer('<answer></answer>'), { found: true, content: '', start: 8, end: 8 });
    assert.equal(cdr('<answer></answer>'), 0.1);
    assert.equal(multiplication.reward('<answer></answer>', { task: 'multiplication', a: 2, b: 3 }), 0);
  });
});

describe('hostile answers never throw and get the rule score', () => {
  const hostile: [string, Reward][] = [
    ['process.exit()', 0.1],
    ['require("child_process").execSync("rm -rf /")', 0.1],
    ['(44).constructor.constructor("return process")()', 0.1],
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a hostile answer written as a template literal
    ['`${44 + 19 + 35}`', 0.1],
    ['44 + 19 + 35; process.exit(1)', 0.1],
    ['globalThis', 0.1],
    ['__proto__', 0.1],
    ['٤٤ + ١٩ + ٣٥', 0.1], // Arabic-Indic digits: not ASCII → not a safe expression
    ['４４ + １９ + ３５', 0.1], // full-width digits
    ['44 + 19 + 35\u0000', 0.1],
    ['10^400', 0.1],
    ['1e400', 0.1],
    ['Infinity', 0.1],
    ['NaN', 0.1],
    [`1${'0'.repeat(400)} - 1${'0'.repeat(400)} + 98`, 0.1], // huge literals: exact, wrong numbers
    ['9**9**9', 0.1],
    ['x'.repeat(1_000_000), 0.1],
  ];
  for (const [a, r] of hostile) {
    test(JSON.stringify(a.length > 60 ? `${a.slice(0, 60)}…` : a), () => assert.equal(cdr(ans(a)), r));
  }

  test('a huge value never equals the target (exact arithmetic, no Infinity)', () => {
    const big = `1${'0'.repeat(400)}`;
    const p = countdownProblem([Number.MAX_SAFE_INTEGER, 1], 1);
    assert.equal(countdown.score(ans(`${Number.MAX_SAFE_INTEGER} * 1`), p).reason, 'wrong-value');
    assert.equal(countdown.score(ans(`${big} / ${big}`), countdownProblem([1, 1], 1)).reason, 'wrong-numbers');
  });

  test('an extremely long completion is scored in linear time', () => {
    const noise = 'wait, let me check <answer> again '.repeat(50_000);
    const t0 = Date.now();
    assert.equal(cdr(`${noise}<answer>44 + 19 + 35</answer>`), 1);
    assert.equal(cdr(`${noise}`), 0);
    assert.ok(Date.now() - t0 < 2000, `took ${Date.now() - t0} ms`);
  });
});

describe('multiplication reward', () => {
  const p = { task: 'multiplication', a: 347, b: 28 } as const; // 9716
  const r = (a: string): Reward => multiplication.reward(ans(a), p);
  test('1.0 exact, 0.1 a parseable wrong integer, 0 otherwise', () => {
    assert.equal(r('9716'), 1);
    assert.equal(r(' 9716 '), 1);
    assert.equal(r('+9716'), 1);
    assert.equal(r('09716'), 1, 'leading zeros: same value');
    assert.equal(r('9715'), 0.1);
    assert.equal(r('-9716'), 0.1);
    assert.equal(r(`9716${'0'.repeat(500)}`), 0.1, 'huge integers are exact, never Infinity');
    assert.equal(r('9,716'), 0);
    assert.equal(r('9 716'), 0);
    assert.equal(r('9716.0'), 0);
    assert.equal(r('347 * 28'), 0);
    assert.equal(r('9.716e3'), 0);
    assert.equal(r('٩٧١٦'), 0, 'Arabic-Indic digits are not an integer');
    assert.equal(r('９７１６'), 0, 'full-width digits are not an integer');
    assert.equal(r('−9716'), 0, 'a Unicode minus is not a sign');
    assert.equal(r(''), 0);
    assert.equal(multiplication.reward('9716', p), 0, 'no tags');
    assert.equal(multiplication.reward('<answer>1</answer><answer>9716</answer>', p), 1, 'the last answer counts');
    assert.equal(multiplication.score(ans('x'), p).reason, 'not-an-integer');
  });
});

describe('word problem reward', () => {
  const p: WordProblem = {
    task: 'wordproblems',
    text: 'Ava has 3 apples. Ava finds 4 more apples. How many apples does Ava have now?',
    start: 3,
    ops: [{ kind: 'add', k: 4 }],
    answer: 7,
  };
  test('same 0 / 0.1 / 1.0 integer rule', () => {
    assert.equal(wordproblems.reward(ans('7'), p), 1);
    assert.equal(wordproblems.reward(ans('8'), p), 0.1);
    assert.equal(wordproblems.reward(ans('7 apples'), p), 0);
    assert.equal(wordproblems.reward('7', p), 0);
  });
});

describe('fuzzing', () => {
  const pieces = [
    '<answer>',
    '</answer>',
    '<think>',
    '</think>',
    '44',
    '19',
    '35',
    '98',
    '0',
    '(',
    ')',
    '+',
    '-',
    '*',
    '/',
    ' ',
    '\n',
    '.',
    '٣',
    '３',
    'e',
    '=',
    '**',
    '9'.repeat(30),
  ];
  const structured = fc.array(fc.constantFrom(...pieces), { maxLength: 60 }).map((a) => a.join(''));
  const anyString = fc.oneof(fc.string({ unit: 'grapheme', maxLength: 300 }), fc.string({ unit: 'binary', maxLength: 300 }), structured);
  const mult = { task: 'multiplication', a: 12, b: 34 } as const;
  const wp: WordProblem = { task: 'wordproblems', text: 'x', start: 1, ops: [], answer: 408 };

  test('random strings never throw and always give 0, 0.1 or 1', () => {
    fc.assert(
      fc.property(anyString, (s) => {
        for (const r of [cdr(s), multiplication.reward(s, mult), wordproblems.reward(s, wp)]) assert.ok(REWARDS.includes(r), `reward ${r}`);
      }),
      { numRuns: 3000 },
    );
  });

  test('the right answer placed last earns 1 whatever precedes it', () => {
    fc.assert(
      fc.property(anyString, (s) => {
        assert.equal(cdr(`${s}<answer>44 + 19 + 35</answer>`), 1);
        assert.equal(multiplication.reward(`${s}<answer>408</answer>`, mult), 1);
      }),
      { numRuns: 1000 },
    );
  });

  test('an answer inside tags of random content is scored, never 0', () => {
    fc.assert(
      fc.property(
        fc.string({ maxLength: 200 }).filter((s) => !s.includes('</answer>')),
        (s) => {
          assert.ok(cdr(`<answer>${s}</answer>`) >= 0.1);
        },
      ),
      { numRuns: 1000 },
    );
  });
});
