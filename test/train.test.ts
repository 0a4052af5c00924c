// Pretraining and SFT: the loss goes down, a resumed run equals an uninterrupted one, a SIGKILL
// never leaves an unloadable checkpoint, a NaN stops the run and keeps the last good checkpoint,
// and SFT learns only from assistant tokens.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { scalar, tensor } from '../src/core/index.ts';
import { IGNORE_INDEX, SftLoader, encodeSftExample } from '../src/data/index.ts';
import { loadCheckpoint } from '../src/model/checkpoint.ts';
import { loadPreset } from '../src/model/config.ts';
import { DeepSeekV3, type LossOutput } from '../src/model/transformer.ts';
import { AdamW, constant, weightDecayGroups } from '../src/nn/index.ts';
import { Tokenizer } from '../src/tokenizer/index.ts';
import { latestCheckpoint, restoreTrainingCheckpoint, saveTrainingCheckpoint } from '../src/run/checkpointing.ts';
import { PretrainConfig, SftConfig, resolveConfig } from '../src/train/config.ts';
import { type LoopSink, type MetricRecord, TrainingDivergedError, runTrainingLoop } from '../src/train/loop.ts';
import { readMetrics } from '../src/run/metrics.ts';
import { pretrain } from '../src/train/pretrain.ts';
import { sft } from '../src/train/sft.ts';
import { runAblation } from '../src/jobs/ablations.ts';

let runs: string;
const quiet = (): void => undefined;
const tiny = (over: Record<string, unknown> = {}): PretrainConfig => resolveConfig(PretrainConfig, 'pretrain-tiny', { runsDir: runs, ...over }, 'test');
const losses = (runDir: string): number[] =>
  readMetrics(join(runDir, 'metrics.jsonl'))
    .filter((r) => r.kind === 'train')
    .map((r) => r.loss as number);

before(() => {
  runs = mkdtempSync(join(tmpdir(), 'tinyseek-train-'));
  const tinyPreset = JSON.parse(readFileSync(new URL('../src/train/presets/pretrain-tiny.json', import.meta.url), 'utf8')) as Record<string, unknown>;
  writeFileSync(join(runs, 'tiny-base.json'), JSON.stringify({ ...tinyPreset, runsDir: runs }));
});
after(() => rmSync(runs, { recursive: true, force: true }));

describe('pretraining', () => {
  test('a few steps on the tiny preset lower the loss and write metrics, checkpoints and a final model', async () => {
    const r = await pretrain(tiny({ name: 'straight', steps: 12 }), { log: quiet });
    assert.equal(r.stoppedBy, 'done');
    const l = losses(r.runDir);
    assert.equal(l.length, 12);
    assert.ok(l.at(-1)! < l[0] - 0.5, `loss ${l[0]} → ${l.at(-1)}`);
    assert.ok(typeof r.lastEval?.val_loss === 'number' && typeof r.lastEval?.val_bpb === 'number');
    assert.ok(existsSync(join(r.finalDir!, 'tokenizer.json')));
    const m = loadCheckpoint(r.finalDir!);
    assert.equal(m.config.vocab_size, Tokenizer.load(join(r.finalDir!, 'tokenizer.json')).vocabSize);
    const rec = readMetrics(join(r.runDir, 'metrics.jsonl')).find((x) => x.kind === 'train')!;
    for (const key of ['loss', 'lr', 'grad_norm', 'tokens_per_s', 'mtp_loss', 'expert_load_max_over_mean']) assert.ok(key in rec, key);
  });

  // Tolerance: 1e-6 relative per step (in practice the curves are bit-identical).
  test('stop after 6 steps, resume to 12: the loss curve equals the uninterrupted run', async () => {
    const c = tiny({ name: 'whole', steps: 12, checkpointEvery: 4 });
    const whole = await pretrain(c, { log: quiet });
    const split = tiny({ name: 'split', steps: 12, checkpointEvery: 4 });
    const first = await pretrain(split, { stopAfter: 6, log: quiet });
    assert.equal(first.stoppedBy, 'paused');
    const second = await pretrain(split, { resume: true, log: quiet });
    assert.equal(second.stoppedBy, 'done');
    const a = losses(whole.runDir);
    const b = losses(second.runDir);
    assert.equal(b.length, 12, 'the resumed metrics file reads as one run');
    a.forEach((x, i) => assert.ok(Math.abs(x - b[i]) <= 1e-6 * Math.abs(x), `step ${i + 1}: ${x} vs ${b[i]}`));
  });

  test('resume refuses a changed config and a run without checkpoints', async () => {
    const c = tiny({ name: 'strict', steps: 4, checkpointEvery: 2 });
    await pretrain(c, { stopAfter: 2, log: quiet });
    await assert.rejects(
      pretrain(tiny({ name: 'strict', steps: 4, checkpointEvery: 2, seqLen: 32 }), { resume: true, log: quiet }),
      /config differs .* seqLen/,
    );
    await assert.rejects(pretrain(c, { log: quiet }), /already holds a run .* --resume/);
    await assert.rejects(pretrain(tiny({ name: 'nothing-here' }), { resume: true, log: quiet }), /no checkpoint to resume from/);
  });

  test('SIGKILL at any moment leaves a checkpoint that loads, and --resume finishes the run', async () => {
    const cfg = join(runs, 'kill.json');
    writeFileSync(
      cfg,
      JSON.stringify({
        ...JSON.parse(readFileSync(new URL('../src/train/presets/pretrain-tiny.json', import.meta.url), 'utf8')),
        runsDir: runs,
        name: 'killed',
        steps: 40,
        checkpointEvery: 1,
      }),
    );
    const bin = new URL('../bin/tinyseek.js', import.meta.url).pathname;
    const runDir = join(runs, 'killed');
    for (const delayMs of [150, 400, 650]) {
      const child = spawn(
        process.execPath,
        [bin, 'pretrain', '--config', cfg, ...(existsSync(join(runDir, 'checkpoints', 'latest.json')) ? ['--resume'] : [])],
        { stdio: 'ignore' },
      );
      // Wait for the first checkpoint of this invocation, then kill at a point inside a later save.
      const start = Date.now();
      while (!existsSync(join(runDir, 'checkpoints', 'latest.json')) && Date.now() - start < 60_000) await new Promise((r) => setTimeout(r, 20));
      await new Promise((r) => setTimeout(r, delayMs));
      child.kill('SIGKILL');
      await new Promise((r) => child.on('exit', r));
      const latest = latestCheckpoint(runDir);
      assert.ok(latest, 'a checkpoint exists');
      const model = new DeepSeekV3(loadCheckpoint(join(latest.dir, 'model')).config, { seed: 0 });
      const state = restoreTrainingCheckpoint(latest.dir, model, new AdamW(weightDecayGroups(model, 0.1)));
      assert.equal(state.step, latest.step);
    }
    const r = await pretrain(resolveConfig(PretrainConfig, cfg, {}, cfg), { resume: true, log: quiet });
    assert.equal(r.stoppedBy, 'done');
    assert.equal(losses(runDir).length, 40, 'every step is in the metrics exactly once');
  });
});

describe('ablations', () => {
  test('the MTP ablation trains both variants on the same data and reports acceptance only where MTP exists', async () => {
    const docs = join(runs, 'docs');
    const results = await runAblation('mtp', { base: join(runs, 'tiny-base.json'), steps: 4, runsDir: runs, docsDir: docs, log: quiet });
    assert.deepEqual(
      results.map((r) => r.name),
      ['mtp', 'no_mtp'],
    );
    assert.ok(results[0].mtpAcceptance !== null && results[0].mtpAcceptance >= 0 && results[0].mtpAcceptance <= 1);
    assert.equal(results[1].mtpAcceptance, null);
    assert.ok(results[0].parameters > results[1].parameters);
    const report = readFileSync(join(docs, 'ablations', 'mtp.md'), 'utf8');
    assert.match(report, /\| MTP depth 1, λ = 0.3 \|/);
    assert.ok(existsSync(join(docs, 'ablations', 'mtp-val-loss.svg')));
  });
});

describe('divergence', () => {
  test('a NaN loss stops the run before the optimizer step and names the last good checkpoint', async () => {
    const model = new DeepSeekV3(loadPreset('tiny'), { seed: 3 });
    const optimizer = new AdamW(weightDecayGroups(model, 0.1), { lr: 1e-3 });
    const tok = Tokenizer.train(['the quick brown fox jumps over the lazy dog '.repeat(20)], { vocabSize: 300 });
    const runDir = join(runs, 'nan');
    const records: MetricRecord[] = [];
    const sink: LoopSink = { record: (r) => records.push(r), progress: () => undefined, log: () => undefined };
    const ids = tensor([[1, 2, 3, 4, 5, 6, 7, 8]], { dtype: 'int64' }).keep();
    let calls = 0;
    const lossAt = (m: DeepSeekV3): LossOutput => {
      calls++;
      const out = m.loss(ids, ids);
      return calls === 3 ? { ...out, loss: out.loss.mul(scalar(Number.NaN)) } : out;
    };
    let before: number[] = [];
    await assert.rejects(
      runTrainingLoop({
        model,
        optimizer,
        schedule: constant(1e-3),
        startStep: 0,
        steps: 5,
        gradAccum: 1,
        clipNorm: 1,
        mtpWeight: 0.3,
        nextBatch: () => ({ inputs: ids, targets: ids, tokens: 8 }),
        loss: (m) => {
          if (calls === 2) before = m.model.embed_tokens.weight.toArray();
          return lossAt(m);
        },
        biasGamma: () => 0.001,
        evalEvery: 100,
        evaluate: async () => ({}),
        checkpointEvery: 1,
        save: (step, extra) =>
          saveTrainingCheckpoint(runDir, {
            model,
            optimizer,
            tokenizer: tok,
            keep: 2,
            state: { kind: 'test', step, ...extra, data: null, rng: null, config: null },
          }),
        sink,
      }),
      (e: unknown) => e instanceof TrainingDivergedError && e.step === 3 && /the loss is NaN/.test(e.message) && /step-000002/.test(e.message),
    );
    assert.deepEqual(model.model.embed_tokens.weight.toArray(), before, 'the bad step did not touch the weights');
    assert.equal(latestCheckpoint(runDir)?.step, 2, 'the last good checkpoint stays');
    assert.equal(records.filter((r) => r.kind === 'train').length, 2);
  });
});

describe('SFT', () => {
  test('targets are ignored everywhere but on assistant tokens', () => {
    const tok = Tokenizer.train(['User asks. Assistant answers with <think> and <answer> tags. '.repeat(50)], { vocabSize: 320 });
    const conv = [
      { role: 'user' as const, content: 'What is 2 + 3?' },
      { role: 'assistant' as const, content: '<answer>5</answer>', reasoning_content: '2 + 3 = 5' },
    ];
    const ex = encodeSftExample(tok, conv);
    const loader = new SftLoader(tok, [conv], { batchSize: 1, seed: 0, pad: tok.special.pad, maxLen: 128 });
    const b = loader.next();
    for (let t = 0; t < b.shape[1]; t++) {
      const learn = t + 1 < ex.mask.length && ex.mask[t + 1] === 1;
      assert.equal(b.targets[t] !== IGNORE_INDEX, learn, `position ${t}`);
      if (learn) assert.equal(b.targets[t], ex.ids[t + 1]);
    }
    const assistant = ex.ids.indexOf(tok.special.assistant);
    assert.ok(
      ex.mask.slice(0, assistant + 1).every((m) => m === 0),
      'nothing up to <｜Assistant｜> is learned',
    );
    assert.equal(ex.mask.at(-1), 1, 'the closing end-of-sentence is learned');
  });

  test('fine-tuning a pretrained tiny model lowers the loss on assistant tokens', async () => {
    const base = await pretrain(tiny({ name: 'sft-base', steps: 10 }), { log: quiet });
    const c = resolveConfig(
      SftConfig,
      'sft-small',
      {
        runsDir: runs,
        name: 'sft-tiny',
        from: base.finalDir,
        examples: 60,
        steps: 16,
        batchSize: 4,
        seqLen: 256,
        evalEvery: 8,
        checkpointEvery: 8,
        optim: { warmupSteps: 2, lr: 0.003 },
      },
      'test',
    );
    const r = await sft(c, { log: quiet });
    const evals = readMetrics(join(r.runDir, 'metrics.jsonl')).filter((x) => x.kind === 'eval');
    assert.equal(evals.length, 2);
    assert.ok(evals.every((e) => Number.isFinite(e.val_loss as number) && (e.val_tokens as number) > 0));
    const l = losses(r.runDir);
    const avg = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
    assert.ok(avg(l.slice(-4)) < avg(l.slice(0, 4)) - 0.3, `SFT loss ${avg(l.slice(0, 4))} → ${avg(l.slice(-4))}`);
    assert.ok(existsSync(join(r.finalDir!, 'config.json')));
  });
});
