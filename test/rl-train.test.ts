// GRPO end to end on a tiny model: a short run on an easy task (one-digit multiplication after a
// brief pretraining on direct solutions) raises the mean reward; a run stopped and resumed equals
// an uninterrupted one; the run's files (metrics, samples, plots, checkpoints, final model) are
// there and loadable; a resume with other settings is refused; the CLI rejects bad flags.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadCheckpoint } from '../src/model/checkpoint.ts';
import { type RlConfigInput, parseRlConfig } from '../src/rl/config.ts';
import { runR1Zero } from '../src/jobs/r1-zero.ts';
import { trainProblems, trainRl } from '../src/rl/trainer.ts';
import { measureCurriculum } from '../src/rl/curriculum.ts';
import { parseRewardWeights } from '../src/rl/rewards.ts';
import { Tokenizer } from '../src/tokenizer/index.ts';
import { TrainingDivergedError } from '../src/run/divergence.ts';
import { PretrainConfig, resolveConfig } from '../src/train/config.ts';
import { readMetrics } from '../src/run/metrics.ts';
import { runPipeline } from '../src/jobs/pipeline.ts';
import { pretrain } from '../src/train/pretrain.ts';

let runs: string;
let base: string;
const quiet = (): void => undefined;
const rl = (over: Partial<RlConfigInput> = {}) =>
  parseRlConfig({
    name: 'rl',
    runsDir: runs,
    seed: 1,
    base,
    task: 'multiplication',
    taskConfig: { maxDigitsA: 1, maxDigitsB: 1 },
    trainProblems: 30,
    steps: 10,
    promptsPerStep: 8,
    groupSize: 8,
    maxNewTokens: 40,
    loss: 'grpo',
    beta: 0,
    mu: 1,
    microBatch: 64,
    rewards: { task: 1, format: 0.5 },
    optim: { lr: 2e-3 },
    checkpointEvery: 100,
    sampleCount: 1,
    ...over,
  });
const rlRecords = (runDir: string) => readMetrics(join(runDir, 'metrics.jsonl')).filter((r) => r.kind === 'rl');
const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

before(async () => {
  runs = mkdtempSync(join(tmpdir(), 'tinyseek-rl-'));
  const pc = resolveConfig(
    PretrainConfig,
    'pretrain-tiny',
    {
      runsDir: runs,
      name: 'base',
      steps: 150,
      seqLen: 64,
      batchSize: 8,
      corpus: {
        tasks: { countdown: 0, multiplication: 1, wordproblems: 0 },
        factsShare: 0,
        plainPromptShare: 0,
        styles: { direct: 1, search: 0, slip: 0, selfCorrect: 0, wrongThing: 0, giveUp: 0 },
        multiplication: { maxDigitsA: 1, maxDigitsB: 1 },
      },
    },
    'test',
  );
  const p = await pretrain(pc, { log: quiet });
  base = p.finalDir!;
});
after(() => rmSync(runs, { recursive: true, force: true }));

describe('GRPO on a tiny model', () => {
  test('10 steps on one-digit multiplication raise the mean reward; the run leaves its files', async () => {
    const r = await trainRl(rl({ name: 'learn' }), { log: quiet });
    assert.equal(r.stoppedBy, 'done');
    const recs = rlRecords(r.runDir);
    assert.equal(recs.length, 10);
    const rewards = recs.map((x) => x.reward as number);
    const first = mean(rewards.slice(0, 3));
    const last = mean(rewards.slice(-3));
    assert.ok(last > first + 0.03, `mean reward ${first.toFixed(3)} (first 3 steps) → ${last.toFixed(3)} (last 3)`);
    for (const key of [
      'reward',
      'reward_std',
      'reward_by_fn',
      'accuracy',
      'completion_len_mean',
      'completion_len_max',
      'truncated_share',
      'self_check_share',
      'kl',
      'clip_ratio',
      'entropy',
      'zero_spread_share',
      'rollout_s',
      'update_s',
      'grad_norm',
      'expert_load',
    ]) {
      assert.ok(key in recs[0], key);
    }
    assert.ok((recs.at(-1)!.kl as number) > 0, 'the policy moved away from the base');
    assert.ok(existsSync(join(r.runDir, 'samples.jsonl')));
    assert.ok(readdirSync(join(r.runDir, 'plots')).includes('reward.svg'));
    const m = loadCheckpoint(r.finalDir!);
    assert.equal(m.config.vocab_size, loadCheckpoint(base).config.vocab_size);
  });

  // Tolerance: rewards and lengths exactly equal (same sampled tokens), loss and gradient norm 1e-5 relative.
  test('stopped after 2 steps and resumed to 4, the run equals an uninterrupted one', async () => {
    const whole = await trainRl(rl({ name: 'whole', steps: 4, mu: 2, beta: 0.04, checkpointEvery: 2 }), { log: quiet });
    const c = rl({ name: 'split', steps: 4, mu: 2, beta: 0.04, checkpointEvery: 2 });
    const first = await trainRl(c, { log: quiet, stopAfter: 2 });
    assert.equal(first.stoppedBy, 'paused');
    assert.equal(first.step, 2);
    const second = await trainRl(c, { log: quiet, resume: true });
    assert.equal(second.stoppedBy, 'done');
    const a = rlRecords(whole.runDir);
    const b = rlRecords(second.runDir);
    assert.equal(b.length, 4);
    for (let i = 0; i < 4; i++) {
      assert.equal(b[i].reward, a[i].reward, `reward at step ${i + 1}`);
      assert.equal(b[i].completion_len_mean, a[i].completion_len_mean, `length at step ${i + 1}`);
      for (const k of ['loss', 'grad_norm']) {
        const x = a[i][k] as number;
        const y = b[i][k] as number;
        assert.ok(Math.abs(x - y) <= 1e-5 * Math.max(1, Math.abs(x)), `${k} at step ${i + 1}: ${x} vs ${y}`);
      }
    }
  });

  test('dapo with dynamic sampling: only groups with reward spread are trained on, extra rounds drawn when needed', async () => {
    const r = await trainRl(rl({ name: 'dapo', steps: 3, loss: 'dapo', maxRolloutRounds: 3 }), { log: quiet });
    for (const rec of rlRecords(r.runDir)) {
      const used = rec.groups_used as number;
      const rounds = rec.rollout_rounds as number;
      assert.ok(used <= 8 && rounds >= 1 && rounds <= 3, `groups ${used}, rounds ${rounds}`);
      if (used < 8) assert.equal(rounds, 3, 'a short batch means every round was drawn');
      assert.ok(typeof rec.zero_spread_share === 'number');
    }
  });

  test('a curriculum keeps the problems inside the success band; a resume reads it back instead of sampling again', async () => {
    const band = { problems: 24, samples: 4, minRate: 0.25, maxRate: 0.75 };
    const cur = measureCurriculum(loadCheckpoint(base), Tokenizer.load(join(base, 'tokenizer.json')), trainProblems(rl()), band, {
      maxNewTokens: 40,
      temperature: 1,
      topP: 1,
      topK: 0,
      stopAtAnswer: true,
      seed: 3,
      weights: parseRewardWeights({ task: 1 }),
      lengthCache: 32,
      format: 'r1-zero',
    });
    assert.equal(cur.rates.length, 24);
    for (const r of cur.rates) assert.ok([0, 0.25, 0.5, 0.75, 1].includes(r), `a rate over 4 samples: ${r}`);
    assert.deepEqual(
      cur.kept,
      cur.rates.flatMap((r, i) => (r >= 0.25 && r <= 0.75 ? [i] : [])),
    );

    const c = rl({ name: 'curriculum', steps: 2, checkpointEvery: 1, curriculum: { problems: 24, samples: 4, minRate: 0, maxRate: 1 } });
    const first = await trainRl(c, { log: quiet, stopAfter: 1 });
    const file = join(first.runDir, 'curriculum.json');
    const written = JSON.parse(readFileSync(file, 'utf8'));
    assert.deepEqual(written.kept, [...Array(24).keys()], 'the band [0, 1] keeps every sampled problem');
    const mtime = statSync(file).mtimeMs;
    const lines: string[] = [];
    const second = await trainRl(c, { log: (l) => lines.push(l), resume: true });
    assert.equal(second.stoppedBy, 'done');
    assert.equal(statSync(file).mtimeMs, mtime, 'not sampled again');
    assert.ok(lines.some((l) => /^curriculum: kept 24 of 24 problems/.test(l)));

    await assert.rejects(
      trainRl(rl({ name: 'curriculum-short', curriculum: { problems: 4, samples: 2 } }), { log: quiet }),
      /only \d of 4 sampled problems lie in the success band \[0\.125, 0\.875\], fewer than promptsPerStep \(8\)/,
    );
  });

  test('a resume with other settings is refused, naming the field', async () => {
    const c = rl({ name: 'guard', steps: 2, checkpointEvery: 1 });
    await trainRl(c, { log: quiet, stopAfter: 1 });
    await assert.rejects(trainRl(rl({ name: 'guard', steps: 2, groupSize: 4 }), { log: quiet, resume: true }), /groupSize/);
    await assert.rejects(trainRl(c, { log: quiet }), /already holds a run/);
  });

  test('a learning rate that makes the policy uniform stops the run as diverged, though every number is finite', async () => {
    await assert.rejects(
      trainRl(rl({ name: 'runaway', steps: 4, optim: { lr: 1e6 }, checkpointEvery: 1 }), { log: quiet }),
      (e: unknown) => e instanceof TrainingDivergedError && /near uniform|not finite|is NaN|Infinity/.test(e.message),
    );
  });

  test('a missing base checkpoint is a clear error', async () => {
    await assert.rejects(trainRl(rl({ name: 'nobase', base: join(runs, 'nowhere') }), { log: quiet }), /has no config.json/);
  });
});

describe('the R1-Zero experiment and the main job', () => {
  test('r1-zero writes the before / after numbers and the report; a rerun reuses the runs and evaluations', async () => {
    const docs = join(runs, 'docs');
    const o = {
      tasks: ['multiplication' as const],
      base,
      steps: 2,
      evalProblems: 4,
      samples: 2,
      runsDir: runs,
      docsDir: docs,
      rlOverrides: {
        promptsPerStep: 2,
        groupSize: 2,
        maxNewTokens: 24,
        taskConfig: { minDigitsA: 1, maxDigitsA: 1, minDigitsB: 1, maxDigitsB: 1, promptFrame: 'tinyzero' },
        trainProblems: 20,
        checkpointEvery: 1,
        curriculum: null, // the job's mechanics; the curriculum has its own test above
      },
      log: quiet,
    };
    const r = await runR1Zero(o);
    const j = JSON.parse(readFileSync(join(docs, 'results', 'r1-zero.json'), 'utf8')) as Record<
      string,
      { base_pass1: number; rl_pass1: number; base: { sampled_pass1: number } }
    >;
    for (const k of ['base_pass1', 'rl_pass1'] as const) {
      assert.ok(j.multiplication[k] >= 0 && j.multiplication[k] <= 1, k);
    }
    assert.equal(j.multiplication.rl_pass1, r.multiplication.rl_pass1);
    assert.ok(typeof j.multiplication.base.sampled_pass1 === 'number');
    const md = readFileSync(join(docs, 'r1-zero.md'), 'utf8');
    assert.match(md, /\| multiplication \|/);
    assert.ok(existsSync(join(docs, 'results', 'r1-zero', 'multiplication-reward.svg')));
    const lines: string[] = [];
    await runR1Zero({ ...o, log: (s: string) => lines.push(s) });
    assert.ok(lines.some((l) => /RL already done/.test(l)));
    assert.equal(lines.filter((l) => /already done: .*eval-(base|rl)\.json/.test(l)).length, 2);
  });

  test('the main job starts from a shipped base model when there is one', async () => {
    const lines: string[] = [];
    const shipped = join(runs, 'shipped');
    await runPipeline({
      config: join(runs, 'base', 'config.json'),
      fromScratch: true,
      rl: false,
      shipBase: true,
      shippedBase: shipped,
      evalProblems: 2,
      passKSamples: 2,
      log: quiet,
    });
    assert.ok(existsSync(join(shipped, 'model.safetensors')) && existsSync(join(shipped, 'tokenizer.json')) && existsSync(join(shipped, 'pretraining.json')));
    const s = await runPipeline({ shippedBase: shipped, rl: false, log: (x: string) => lines.push(x) });
    assert.equal(s.model, shipped);
    assert.ok(lines.some((l) => /the shipped base model/.test(l)));
  });
});

describe('tinyseek rl CLI', () => {
  test('an unknown loss variant is rejected with the choices', () => {
    const r = spawnSync(process.execPath, ['bin/tinyseek.js', 'rl', '--loss', 'ppo'], { encoding: 'utf8' });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /grpo, bnpo, dr_grpo, dapo/);
  });
});
