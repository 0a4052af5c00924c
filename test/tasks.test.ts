// Task generators: prompts (exact template), reference solutions, determinism by seed, disjoint
// train / held-out splits, configuration validation, the Countdown solver.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  TASKS,
  TASK_NAMES,
  canonicalOf,
  countdown,
  countdownProblem,
  generateProblems,
  multiplication,
  parseTaskConfig,
  problemStream,
  promptOf,
  referenceAnswerOf,
  rewardOf,
  solveCountdown,
  splitOfProblem,
  wordSteps,
  type CountdownProblem,
  type Problem,
  type TaskName,
} from '../src/data/index.ts';

describe('prompts', () => {
  test("Countdown: TinyZero's base template, character for character", () => {
    const p = countdownProblem([44, 19, 35], 98);
    assert.equal(
      countdown.prompt(p),
      'A conversation between User and Assistant. The user asks a question, and the Assistant solves it. The assistant first thinks about the reasoning process in the mind and then provides the user with the answer.\n' +
        'User: Using the numbers [44, 19, 35], create an equation that equals 98. You can use basic arithmetic operations (+, -, *, /) and each number can only be used once. Show your work in <think> </think> tags. And return the final answer in <answer> </answer> tags, for example <answer> (1 + 2) / 3 </answer>.\n' +
        'Assistant: Let me solve this step by step.\n<think>',
    );
  });

  test('multiplication and word problems use the same frame', () => {
    const m = multiplication.prompt({ task: 'multiplication', a: 347, b: 28 });
    assert.ok(m.includes('\nUser: Give me the answer of the following equation: 347 * 28 = ? Show your work in <think> </think> tags.'));
    assert.ok(m.endsWith('\nAssistant: Let me solve this step by step.\n<think>'));
    const [w] = generateProblems('wordproblems', { seed: 0, split: 'train', n: 1 });
    assert.ok(promptOf(w).includes(`User: ${w.text} Show your work`));
    assert.match(w.text, /How many \w+ does \w+ have now\?$/);
  });
});

describe('generators', () => {
  for (const name of TASK_NAMES) {
    test(`${name}: deterministic by seed, prefix-stable, different across seeds`, () => {
      const a = generateProblems(name, { seed: 5, split: 'train', n: 50 });
      const b = generateProblems(name, { seed: 5, split: 'train', n: 50 });
      const c = generateProblems(name, { seed: 6, split: 'train', n: 50 });
      const longer = generateProblems(name, { seed: 5, split: 'train', n: 80 });
      assert.deepEqual(a, b);
      assert.deepEqual(longer.slice(0, 50), a);
      assert.notDeepEqual(a.map(canonicalOf), c.map(canonicalOf));
      assert.equal(new Set(a.map(canonicalOf)).size, 50, 'unique by default');
    });

    test(`${name}: every reference answer earns 1.0`, () => {
      for (const split of ['train', 'heldout'] as const) {
        for (const p of generateProblems(name, { seed: 1, split, n: 300 })) {
          const ref = referenceAnswerOf(p);
          assert.ok(ref !== null);
          assert.equal(rewardOf(`…</think>\n<answer>${ref}</answer>`, p), 1, `${canonicalOf(p)}: ${ref}`);
        }
      }
    });

    test(`${name}: train and held-out never overlap, whatever the seeds`, () => {
      const train = new Set<string>();
      for (const seed of [0, 1, 2, 'other']) for (const p of generateProblems(name, { seed, split: 'train', n: 1500 })) train.add(canonicalOf(p));
      let held = 0;
      for (const seed of [0, 3, 4, 'x']) {
        for (const p of generateProblems(name, { seed, split: 'heldout', n: 300 })) {
          held++;
          assert.equal(splitOfProblem(p), 'heldout');
          assert.ok(!train.has(canonicalOf(p)), `${canonicalOf(p)} is in both`);
        }
      }
      assert.equal(held, 1200);
      for (const k of train) assert.ok(!k.startsWith('heldout'));
    });
  }

  test('the split is a function of the problem: the same problem from any seed lands in the same split', () => {
    const seen = new Map<string, string>();
    for (const seed of [0, 1, 2, 3]) {
      for (const split of ['train', 'heldout'] as const) {
        for (const p of generateProblems('multiplication', { seed, split, n: split === 'train' ? 200 : 40, config: { maxDigitsA: 1, maxDigitsB: 2 } })) {
          const k = canonicalOf(p);
          assert.equal(seen.get(k) ?? split, split);
          seen.set(k, split);
        }
      }
    }
  });

  test('a × b and b × a are the same problem', () => {
    assert.equal(canonicalOf({ task: 'multiplication', a: 12, b: 345 }), canonicalOf({ task: 'multiplication', a: 345, b: 12 }));
    assert.equal(canonicalOf(countdownProblem([3, 1, 2], 6)), canonicalOf(countdownProblem([1, 2, 3], 6)));
  });

  test('Countdown defaults follow TinyZero: 3-4 numbers in 1..99, target 1..100, solvable', () => {
    const ps = generateProblems('countdown', { seed: 2, split: 'train', n: 500 });
    for (const p of ps) {
      assert.ok(p.nums.length >= 3 && p.nums.length <= 4);
      assert.ok(p.nums.every((n) => n >= 1 && n <= 99));
      assert.ok(p.target >= 1 && p.target <= 100);
      assert.ok(p.solution);
    }
    assert.ok(ps.some((p) => p.nums.length === 3) && ps.some((p) => p.nums.length === 4));
  });

  test('configurable ranges', () => {
    const ps = generateProblems('countdown', { seed: 0, split: 'train', n: 50, config: { minCount: 2, maxCount: 2, maxNumber: 20, maxTarget: 400 } });
    assert.ok(ps.every((p) => p.nums.length === 2 && p.nums.every((n) => n <= 20) && p.target <= 400));
    const ms = generateProblems('multiplication', { seed: 0, split: 'train', n: 50, config: { minDigitsA: 3, maxDigitsA: 3, minDigitsB: 2, maxDigitsB: 2 } });
    assert.ok(ms.every((p) => p.a >= 100 && p.a <= 999 && p.b >= 10 && p.b <= 99));
    const ws = generateProblems('wordproblems', { seed: 0, split: 'train', n: 50, config: { minOps: 4, maxOps: 4, maxValue: 200 } });
    for (const w of ws) {
      assert.equal(w.ops.length, 4);
      const steps = wordSteps(w);
      assert.equal(steps[steps.length - 1].result, w.answer);
      for (const s of steps) assert.ok(Number.isInteger(s.result) && s.result >= 0 && s.result <= 200, s.text);
    }
  });

  test('invalid configurations name the field', () => {
    assert.throws(() => parseTaskConfig('countdown', { minCount: 5, maxCount: 3 }), /minCount must be <= maxCount/);
    assert.throws(() => parseTaskConfig('multiplication', { maxDigitsA: 9 }), /multiplication\.maxDigitsA/);
    assert.throws(() => generateProblems('wordproblems', { seed: 0, split: 'train', n: 1, config: { minOps: 0 } }), /wordproblems\.minOps/);
  });

  test('an exhausted problem space is a clear error, not a hang', () => {
    // 1-digit × 1-digit has 45 distinct problems, about 4 of them held out.
    assert.throws(() => generateProblems('multiplication', { seed: 0, split: 'heldout', n: 30, config: { maxDigitsA: 1, maxDigitsB: 1 } }), /nearly exhausted/);
  });

  test('problemStream is endless and equals generateProblems', () => {
    const it = problemStream('countdown', { seed: 9, split: 'heldout' });
    const first = Array.from({ length: 10 }, () => it.next().value as CountdownProblem);
    assert.deepEqual(first, generateProblems('countdown', { seed: 9, split: 'heldout', n: 10 }));
  });
});

describe('Countdown solver', () => {
  test('finds solutions that score 1, reports none when there is none', () => {
    assert.equal(solveCountdown([1, 1], 5), null);
    const cases: [number[], number][] = [
      [[44, 19, 35], 98],
      [[2, 3, 4, 5], 1],
      [[3, 3, 8, 8], 24],
      [[1, 5, 5, 5], 24],
    ];
    for (const [nums, target] of cases) {
      const s = solveCountdown(nums, target);
      assert.ok(s, `${nums} → ${target}`);
      assert.equal(countdown.reward(`<answer>${s}</answer>`, countdownProblem(nums, target)), 1, s);
    }
    assert.throws(() => solveCountdown([1, 2, 3, 4, 5, 6], 7), /more than the 5/);
  });

  test('a user row without a solution gets one on demand', () => {
    const p: CountdownProblem = countdownProblem([8, 3, 3, 8], 24);
    const ref = countdown.referenceAnswer(p);
    assert.ok(ref);
    assert.equal(countdown.reward(`<answer>${ref}</answer>`, p), 1);
  });

  test('the registry covers every task', () => {
    const names: TaskName[] = [...TASK_NAMES];
    assert.deepEqual(Object.keys(TASKS).sort(), names.sort());
    const ps: Problem[] = names.map((n) => generateProblems(n, { seed: 0, split: 'train', n: 1 })[0]);
    for (const p of ps) assert.ok(promptOf(p).endsWith('<think>'));
  });
});
