// GRPO's pieces against values worked out by hand: group advantages, the clipped policy loss under
// each aggregation variant (also split into micro-batches), its gradient, the clip counts, the k3
// KL estimator; the reward functions; the self-check detector; the config's variant defaults; and
// the update's log-probabilities against the sampler's.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { noGrad, tensor } from '../src/core/index.ts';
import { encodeProblemPrompt, generateProblems } from '../src/data/index.ts';
import { generate } from '../src/engine/index.ts';
import { loadPreset } from '../src/model/config.ts';
import { DeepSeekV3 } from '../src/model/transformer.ts';
import { parseRlConfig, resolveRlConfig } from '../src/rl/config.ts';
import { type LossNorm, groupAdvantages, klK3, policyLoss } from '../src/rl/grpo.ts';
import { completionLogprobs, sequenceBatch, sharedPromptBatch, sharedPromptLogprobs } from '../src/rl/logprobs.ts';
import { formatReward, languageReward, lengthReward, parseRewardWeights, scoreRewards } from '../src/rl/rewards.ts';
import { type Rollout, concatRollouts, selectGroups } from '../src/rl/rollout.ts';
import { detectSelfCheck } from '../src/rl/selfcheck.ts';
import { trainProblems } from '../src/rl/trainer.ts';

const close = (a: number, b: number, tol = 1e-6, what = ''): void => assert.ok(Math.abs(a - b) <= tol, `${what} ${a} vs ${b}`);

describe('group advantages', () => {
  test('(r − mean) / (std + ε) per group, std with n − 1', () => {
    const r = [1, 0, 0, 0.1, 0.1, 0.1, 0.1, 0.1];
    const a = groupAdvantages(r, 4, { scale: true, eps: 1e-4 });
    // group 0: mean 0.275; deviations 0.725, −0.275, −0.275, −0.175; Σd² = 0.7075; std = √(0.7075/3)
    const std = Math.sqrt(0.7075 / 3);
    close(a.groupMean[0], 0.275);
    close(a.groupStd[0], std);
    close(a.advantages[0], 0.725 / (std + 1e-4));
    close(a.advantages[3], -0.175 / (std + 1e-4));
    // group 1: all equal → zero spread, advantages 0
    assert.deepEqual(a.zeroSpread, [false, true]);
    for (let i = 4; i < 8; i++) assert.equal(a.advantages[i], 0);
  });

  test('without scaling (Dr. GRPO) the advantage is r − mean', () => {
    const a = groupAdvantages([1, 0], 2, { scale: false, eps: 1e-4 });
    assert.deepEqual([...a.advantages], [0.5, -0.5]);
  });

  test('bad layouts are errors', () => {
    assert.throws(() => groupAdvantages([1, 0, 1], 2, { scale: true, eps: 1e-4 }), /whole groups/);
    assert.throws(() => groupAdvantages([1, Number.NaN], 2, { scale: true, eps: 1e-4 }), /NaN/);
  });
});

describe('policy loss', () => {
  // Two completions; ratios ρ chosen by hand; the third token of row 0 is padding.
  const ratios = [
    [1.5, 0.5, 1.0],
    [1.1, 0.7, 1.3],
  ];
  const adv = [1, -1];
  const mask = [
    [1, 1, 0],
    [1, 1, 1],
  ];
  // per-token −min(ρA, clip(ρ, 0.8, 1.2)A):
  //   row 0 (A = 1):  ρ 1.5 → −1.2 (clipped high), ρ 0.5 → −0.5
  //   row 1 (A = −1): ρ 1.1 → 1.1, ρ 0.7 → 0.8 (clipped low), ρ 1.3 → 1.3
  // sums: row 0 −1.7 over 2 tokens, row 1 3.2 over 3 tokens
  const expected: Record<string, number> = {
    grpo: (-1.7 / 2 + 3.2 / 3) / 2,
    bnpo: 1.5 / 5,
    dr_grpo: 1.5 / (2 * 4),
    dapo: 1.5 / 5,
  };

  function run(variant: LossNorm['variant'], rows: number[], microBatches: number, beta = 0, withRef = false) {
    const old = rows.map(() => [0.3, -0.2, 0.1]);
    const logpData = rows.map((r, i) => ratios[r].map((x, t) => Math.log(x) + old[i][t]));
    const logp = tensor(logpData).requiresGrad_(true);
    const norm: LossNorm = { variant, sequences: 2, tokens: 5, microBatches, maxCompletionLength: 4 };
    const out = policyLoss(
      {
        logp,
        oldLogp: tensor(old),
        refLogp: withRef ? tensor(old) : null,
        advantages: tensor(rows.map((r) => adv[r])),
        mask: tensor(rows.map((r) => mask[r])),
      },
      { epsLow: 0.2, epsHigh: 0.2, beta, norm },
    );
    return { out, logp };
  }

  for (const variant of ['grpo', 'bnpo', 'dr_grpo', 'dapo'] as const) {
    test(`${variant}: the batch loss by hand`, () => {
      const { out } = run(variant, [0, 1], 1);
      close(out.loss.item(), expected[variant], 1e-6, variant);
      assert.equal(out.stats.tokens, 5);
      assert.equal(out.stats.clippedHigh, 1);
      assert.equal(out.stats.clippedLow, 1);
    });
  }

  test('split into micro-batches, the shares add up to the batch loss (bnpo normalises per micro-batch)', () => {
    for (const variant of ['grpo', 'dr_grpo', 'dapo'] as const) {
      const sum = run(variant, [0], 2).out.loss.item() + run(variant, [1], 2).out.loss.item();
      close(sum, expected[variant], 1e-6, variant);
    }
    const bnpo = run('bnpo', [0], 2).out.loss.item() + run('bnpo', [1], 2).out.loss.item();
    close(bnpo, (-1.7 / 2 + 3.2 / 3) / 2, 1e-6, 'bnpo split');
  });

  test('the gradient: −Âρ/N on unclipped tokens, 0 on clipped and masked ones (dapo)', () => {
    const { out, logp } = run('dapo', [0, 1], 1);
    out.loss.backward();
    const g = logp.grad!.tolist() as number[][];
    const want = [
      [0, -0.5 / 5, 0],
      [1.1 / 5, 0, 1.3 / 5],
    ];
    for (let r = 0; r < 2; r++) for (let t = 0; t < 3; t++) close(g[r][t], want[r][t], 1e-6, `grad[${r}][${t}]`);
  });

  test('asymmetric clipping: ε_high 0.6 lets ρ 1.5 through', () => {
    const logp = tensor([[Math.log(1.5)]]);
    const out = policyLoss(
      { logp, oldLogp: tensor([[0]]), refLogp: null, advantages: tensor([1]), mask: tensor([[1]]) },
      { epsLow: 0.2, epsHigh: 0.6, beta: 0, norm: { variant: 'dapo', sequences: 1, tokens: 1, microBatches: 1, maxCompletionLength: 1 } },
    );
    close(out.loss.item(), -1.5);
    assert.equal(out.stats.clippedHigh, 0);
  });

  test('β adds β·KL per token, aggregated like the rest', () => {
    const withKl = policyLoss(
      {
        logp: tensor([[Math.log(0.5)]]),
        oldLogp: tensor([[Math.log(0.5)]]),
        refLogp: tensor([[Math.log(0.25)]]),
        advantages: tensor([0]),
        mask: tensor([[1]]),
      },
      { epsLow: 0.2, epsHigh: 0.2, beta: 0.04, norm: { variant: 'dapo', sequences: 1, tokens: 1, microBatches: 1, maxCompletionLength: 1 } },
    );
    const kl = 0.5 - Math.log(0.5) - 1; // exp(d) − d − 1 with d = log 0.25 − log 0.5
    close(withKl.loss.item(), 0.04 * kl);
    close(withKl.stats.klSum!, kl);
  });
});

describe('k3 KL estimator', () => {
  test('exp(d) − d − 1: by hand, 0 at equality, never negative', () => {
    const v = klK3(tensor([Math.log(0.5), Math.log(0.2), -1]), tensor([Math.log(0.25), Math.log(0.2), -3])).toArray() as number[];
    close(v[0], 0.5 - Math.log(0.5) - 1);
    close(v[1], 0);
    close(v[2], Math.exp(-2) + 2 - 1);
    for (const x of v) assert.ok(x >= 0);
  });
});

describe('rewards', () => {
  const [p] = generateProblems('countdown', { seed: 0, split: 'train', n: 1 });
  const right = p.solution!;

  test('format: </think> then one answer; nothing else counts', () => {
    assert.equal(formatReward(` I try.\n</think>\n<answer>${right}</answer>`), 1);
    assert.equal(formatReward(`<think> I try. </think> <answer>1</answer>`), 1);
    assert.equal(formatReward(` I try. <answer>1</answer>`), 0, 'no </think>');
    assert.equal(formatReward(` I try. </think> more <answer>1</answer>`), 0, 'text between');
    assert.equal(formatReward(` a </think> b </think> <answer>1</answer>`), 0, 'two </think>');
    assert.equal(formatReward(` a </think> <answer>1</answer> and more`), 0, 'text after');
    assert.equal(formatReward(` a </think> <answer>1`), 0, 'unclosed');
  });

  test('length: DAPO overlong penalty', () => {
    const L = { maxNewTokens: 100, lengthCache: 20, truncated: false };
    assert.equal(lengthReward({ ...L, tokens: 80 }), 0);
    close(lengthReward({ ...L, tokens: 90 }), -0.5);
    close(lengthReward({ ...L, tokens: 100 }), -1);
    close(lengthReward({ ...L, tokens: 60, truncated: true }), -1);
  });

  test('language: share of Latin-script words in the reasoning', () => {
    assert.equal(languageReward('We add 3 and 4. <answer>7</answer>'), 1);
    close(languageReward('We 加 three 数 <answer>7</answer>'), 0.5);
    assert.equal(languageReward('3 + 4 = 7'), 1);
  });

  test('composition: weighted sum, every value reported', () => {
    const w = parseRewardWeights({ task: 1, format: 0.5 });
    const good = scoreRewards(` ok </think> <answer>${right}</answer>`, p, w, { tokens: 10, truncated: false, maxNewTokens: 64, lengthCache: 16 });
    assert.equal(good.values.task, 1);
    assert.equal(good.values.format, 1);
    assert.equal(good.total, 1.5);
    assert.ok(good.correct);
    const bad = scoreRewards(' no answer', p, w, { tokens: 10, truncated: true, maxNewTokens: 64, lengthCache: 16 });
    assert.equal(bad.total, 0);
    assert.equal(bad.values.length, -1);
    assert.throws(() => parseRewardWeights({ speed: 1 }), /unknown reward "speed"/);
    assert.throws(() => parseRewardWeights({ task: 0 }), /every reward weight is 0/);
  });
});

describe('self-check detector', () => {
  const yes: [string, 'checks' | 'revises'][] = [
    ['Try 3 * 4 + 2: 3 * 4 = 12, 12 + 2 = 14. 14 is not 15.', 'checks'],
    ['20 - 3 = 17, too small.', 'checks'],
    ['Let me check it the other way.', 'checks'],
    ['Check backwards: 17 - 5 = 12.', 'checks'],
    ['So 8 * 9 = 72. Let me verify: 72 / 9 = 8.', 'checks'],
    ['Wait, 3 * 8 = 24, not 25.', 'revises'],
    ['I made a mistake somewhere.', 'revises'],
    ['Actually the second step is off.', 'revises'],
    ['That is wrong, let me try again.', 'revises'],
  ];
  for (const [text, kind] of yes) {
    test(`counts: ${JSON.stringify(text)}`, () => {
      const d = detectSelfCheck(`${text}\n</think>\n<answer>1</answer>`);
      assert.ok(d[kind], kind);
      assert.ok(d.any);
    });
  }
  const no = ['3 * 8 = 24. 24 + 1 = 25.', 'The answer is 25.', '', 'Numbers: 3, 8, 1. Target: 25.'];
  for (const text of no) {
    test(`does not count: ${JSON.stringify(text)}`, () => assert.equal(detectSelfCheck(`${text} </think> <answer>25</answer>`).any, false));
  }
  test('words inside the answer do not count', () => {
    assert.equal(detectSelfCheck('24 + 1 = 25. </think> <answer>wait, check 25</answer>').any, false);
  });
});

describe('config', () => {
  const base = { name: 'x', seed: 0, base: 'b', task: 'countdown' as const, steps: 1, promptsPerStep: 1, groupSize: 2, maxNewTokens: 8, optim: { lr: 1e-3 } };
  test('the variant fills its own defaults; explicit values win', () => {
    const dapo = parseRlConfig({ ...base, loss: 'dapo' });
    assert.equal(dapo.epsHigh, 0.28);
    assert.equal(dapo.dynamicSampling, true);
    assert.equal(dapo.maskTruncated, true);
    const dr = parseRlConfig({ ...base, loss: 'dr_grpo' });
    assert.equal(dr.scaleRewards, false);
    assert.equal(dr.epsHigh, 0.2);
    assert.equal(parseRlConfig({ ...base, loss: 'dapo', epsHigh: 0.3, dynamicSampling: false }).dynamicSampling, false);
  });
  test('the shipped presets are valid', () => {
    for (const name of ['rl-countdown', 'rl-multiplication', 'rl-tiny']) {
      const c = resolveRlConfig(name);
      assert.equal(trainProblems(c).length, c.trainProblems, `${name}: the train split holds the problems it asks for`);
    }
  });
  test('bad fields are named', () => {
    assert.throws(() => parseRlConfig({ ...base, loss: 'ppo' as 'grpo' }), /loss/);
    assert.throws(() => parseRlConfig({ ...base, groupSize: 1 }), /groupSize/);
  });
});

describe('dynamic sampling bookkeeping', () => {
  const stats = {
    rows: 4,
    promptTokens: 10,
    generatedTokens: 20,
    steps: 5,
    compactions: 0,
    prefillMs: 1,
    decodeMs: 9,
    tokensPerSecond: 2000,
    decodeTokensPerSecond: 2000,
  };
  const fake = (tag: string): Rollout => ({
    groupSize: 2,
    prompts: [Int32Array.from([1]), Int32Array.from([2])],
    problems: generateProblems('multiplication', { seed: tag, split: 'train', n: 4 }),
    completions: [[1], [2], [3], [4]],
    texts: ['a', 'b', 'c', 'd'].map((x) => tag + x),
    rewards: [0, 0, 1, 0]
      .map((_r) =>
        scoreRewards('', generateProblems('countdown', { seed: 0, split: 'train', n: 1 })[0], parseRewardWeights({ task: 1 }), {
          tokens: 1,
          truncated: false,
          maxNewTokens: 8,
          lengthCache: 2,
        }),
      )
      .map((b, i) => ({ ...b, total: [0, 0, 1, 0][i] })),
    truncated: [false, true, false, false],
    entropy: [0.1, 0.2, 0.3, 0.4],
    selfCheck: [0, 1, 2, 3].map(() => ({ checks: false, revises: false, any: false })),
    stats,
  });
  test('selectGroups keeps whole groups in order; concatRollouts sums the statistics', () => {
    const a = fake('x');
    const g = selectGroups(a, [1]);
    assert.deepEqual(g.texts, ['xc', 'xd']);
    assert.deepEqual(g.completions, [[3], [4]]);
    assert.deepEqual([...g.prompts[0]], [2]);
    const both = concatRollouts([g, fake('y')]);
    assert.deepEqual(both.texts, ['xc', 'xd', 'ya', 'yb', 'yc', 'yd']);
    assert.equal(both.prompts.length, 3);
    assert.equal(both.stats.generatedTokens, 40);
    assert.equal(both.stats.tokensPerSecond, 40 / 0.02);
    const adv = groupAdvantages(
      both.rewards.map((r) => r.total),
      2,
      { scale: true, eps: 1e-4 },
    );
    assert.deepEqual(adv.zeroSpread, [false, true, false]);
  });
});

describe('update log-probabilities', () => {
  test("the update's forward gives the sampler's log-probabilities of the same completions", () => {
    const model = new DeepSeekV3({ ...loadPreset('tiny'), max_position_embeddings: 128 }, { seed: 3 });
    model.eval();
    const prompts = [Int32Array.from([5, 9, 12, 40, 7]), Int32Array.from([3, 4]), Int32Array.from([8, 8, 8, 8, 8, 8, 8])];
    const r = generate(model, prompts, { maxNewTokens: 12, groupSize: 2, temperature: 1, seed: 5, eosIds: [] });
    const rows = r.tokens.length;
    const sb = sequenceBatch(
      Array.from({ length: rows }, (_, i) => prompts[Math.floor(i / 2)]),
      r.tokens,
      0,
    );
    const lp = noGrad(() => completionLogprobs(model, sb).logp).tolist() as number[][];
    for (let i = 0; i < rows; i++) for (let t = 0; t < r.tokens[i].length; t++) close(lp[i][t], r.logprobs[i][t], 2e-4, `row ${i} token ${t}`);
    assert.equal(encodeProblemPrompt.length > 0, true);
  });

  // Tolerance 2e-5 (float32: the same products, summed over other key sets of −inf columns).
  test('each prompt computed once for its completions gives the per-row log-probabilities and gradients', () => {
    const model = new DeepSeekV3({ ...loadPreset('tiny'), max_position_embeddings: 128 }, { seed: 4 });
    model.eval();
    const prompts = [Int32Array.from([5, 9, 12, 40, 7]), Int32Array.from([3, 4]), Int32Array.from([8, 8, 8])];
    const completions = [[11, 12, 13], [14], [20, 21, 22, 23, 24], [30, 31], [40, 41, 42, 43], [50, 51, 52]];
    const groupOf = [0, 0, 1, 1, 2, 2];
    const keep = [true, true, true, false, true, true];
    const rowPrompts = groupOf.map((g) => prompts[g]);
    const perRow = (): { lp: number[][]; grad: number[] } => {
      const { logp } = completionLogprobs(model, sequenceBatch(rowPrompts, completions, 0, keep));
      logp
        .mul(sequenceBatch(rowPrompts, completions, 0, keep).mask)
        .sum()
        .backward();
      const g = model.headWeight().grad!.flatten().tolist() as number[];
      model.zeroGrad();
      return { lp: logp.detach().tolist() as number[][], grad: g };
    };
    const shared = (): { lp: number[][]; grad: number[] } => {
      const b = sharedPromptBatch(prompts, groupOf, completions, 0, keep);
      const { logp } = sharedPromptLogprobs(model, b);
      logp.mul(b.mask).sum().backward();
      const g = model.headWeight().grad!.flatten().tolist() as number[];
      model.zeroGrad();
      assert.deepEqual((b.mask.tolist() as number[][])[3], [0, 0, 0, 0, 0], 'a row left out has no tokens that count');
      assert.ok(b.tokens < rowPrompts.reduce((n, p, i) => n + p.length + completions[i].length - 1, 0), 'fewer tokens than one row per completion');
      return { lp: logp.detach().tolist() as number[][], grad: g };
    };
    const a = perRow();
    const b = shared();
    completions.forEach((c, i) => c.forEach((_, t) => close(b.lp[i][t], a.lp[i][t], 2e-5, `row ${i} token ${t}`)));
    let maxDiff = 0;
    a.grad.forEach((x, i) => (maxDiff = Math.max(maxDiff, Math.abs(x - b.grad[i]))));
    assert.ok(maxDiff < 2e-5, `head gradient differs by ${maxDiff}`);
  });
});
