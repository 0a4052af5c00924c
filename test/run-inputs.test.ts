// Bad input to the run layer and the CLI, as a careless or hostile user gives it: run names that
// leave the runs directory, checkpoints and run files that point elsewhere or do not parse,
// divergence that stays finite, NaN weights, resumes that change what may not change, and the
// CLI's flags that used to be accepted silently. Each gets a clear error naming the problem and the
// fix, and loses nothing.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { noGrad, tensor } from '../src/core/index.ts';
import { CheckpointError, loadCheckpoint, saveCheckpoint } from '../src/model/checkpoint.ts';
import { loadPreset } from '../src/model/config.ts';
import { DeepSeekV3 } from '../src/model/transformer.ts';
import { AdamW, weightDecayGroups } from '../src/nn/index.ts';
import { resolveRlConfig } from '../src/rl/config.ts';
import { parseRewardWeights } from '../src/rl/rewards.ts';
import { latestCheckpoint, readTrainerState, saveTrainingCheckpoint } from '../src/run/checkpointing.ts';
import { parseJsonStrict, readJsonObject } from '../src/run/config-file.ts';
import { TrainingDivergedError, lmRunaway, policyRunaway } from '../src/run/divergence.ts';
import { checkpointWriter, openRunDir, runDirOf } from '../src/run/run-dir.ts';
import { Tokenizer } from '../src/tokenizer/index.ts';
import { PretrainConfig, resolveConfig } from '../src/train/config.ts';
import { runTrainingLoop } from '../src/train/loop.ts';
import { pretrain } from '../src/train/pretrain.ts';

let root: string;
const quiet = (): void => undefined;
const CLI = join(import.meta.dirname, '..', 'bin', 'tinyseek.js');
const cli = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 60_000 });
const tinyModel = (): DeepSeekV3 => new DeepSeekV3({ ...loadPreset('tiny'), vocab_size: 300 }, { seed: 0 });
const tok = (): Tokenizer => Tokenizer.train(['the quick brown fox jumps over the lazy dog '.repeat(20)], { vocabSize: 300 });

before(() => {
  root = mkdtempSync(join(tmpdir(), 'tinyseek-inputs-'));
});
after(() => rmSync(root, { recursive: true, force: true }));

describe('run names and paths', () => {
  test('a name that is not one safe path segment is refused by every stage', () => {
    for (const name of ['..', '.', '.hidden', 'a/b', '../x', 'cache', 'r1-zero-report', '']) {
      assert.throws(() => resolveConfig(PretrainConfig, 'pretrain-tiny', { name, runsDir: root }, 'test'), /name/, `pretrain ${JSON.stringify(name)}`);
      assert.throws(() => resolveRlConfig('rl-countdown', { name, runsDir: root }), /name/, `rl ${JSON.stringify(name)}`);
      assert.throws(() => runDirOf({ runsDir: root, name }), /run name/, `runDirOf ${JSON.stringify(name)}`);
    }
    assert.equal(runDirOf({ runsDir: root, name: 'ok.run-1_a' }), join(root, 'ok.run-1_a'));
  });

  test('latest.json whose dir leaves its run is refused, not resumed', async () => {
    const run = join(root, 'escape');
    await saveTrainingCheckpoint(run, {
      model: tinyModel(),
      optimizer: new AdamW(weightDecayGroups(tinyModel(), 0), { lr: 1e-3 }),
      tokenizer: tok(),
      keep: 2,
      state: { kind: 'test', step: 1, tokensSeen: 0, elapsed: 0, data: null, rng: null, config: null },
    });
    writeFileSync(join(run, 'checkpoints', 'latest.json'), JSON.stringify({ step: 1, dir: '../../other/checkpoints/step-000001' }));
    assert.throws(() => latestCheckpoint(run), /must name a step checkpoint beside it/);
  });

  test('a runs directory that cannot hold runs is named, with the fix', () => {
    const file = join(root, 'a-file');
    writeFileSync(file, 'x');
    assert.throws(
      () => openRunDir({ runsDir: file, name: 'r', steps: 1 }, false, []),
      (e: Error) => e.message.includes(file) && /--runs-dir/.test(e.message),
    );
  });

  test('what an interrupted final save left behind is removed when the run opens', () => {
    const run = join(root, 'stale');
    mkdirSync(join(run, '.final.tmp-abc'), { recursive: true });
    openRunDir({ runsDir: root, name: 'stale', steps: 1 }, false, []);
    assert.deepEqual(
      readdirSync(run).filter((n) => n.startsWith('.final')),
      [],
    );
  });
});

describe('run files that do not parse', () => {
  test('malformed JSON, a key given twice and a non-object name the file and the place', () => {
    const f = join(root, 'bad.json');
    writeFileSync(f, '{"steps": 3,\n "steps": 4}');
    assert.throws(
      () => readJsonObject(f),
      (e: Error) => e.message.includes(f) && /"steps" appears twice/.test(e.message) && /line 2/.test(e.message),
    );
    writeFileSync(f, '{"steps": 3,');
    assert.throws(
      () => readJsonObject(f),
      (e: Error) => e.message.includes(f) && /not valid JSON/.test(e.message),
    );
    writeFileSync(f, '[1]');
    assert.throws(() => readJsonObject(f), /expected a JSON object/);
    assert.throws(() => parseJsonStrict('{"a": {"b": 1, "b": 2}}', 'x'), /"a.b" appears twice/);
    assert.throws(() => readJsonObject(join(root, 'nowhere.json')), /does not exist/);
  });

  test('a duplicated key in a training config file is refused', () => {
    const f = join(root, 'dup-config.json');
    writeFileSync(f, readFileSync(new URL('../src/train/presets/pretrain-tiny.json', import.meta.url), 'utf8').replace('{', '{"steps": 1,'));
    assert.throws(() => resolveConfig(PretrainConfig, f, {}, f), /"steps" appears twice/);
  });

  test('trainer.json with a wrong type or bad JSON names the file and the field', async () => {
    const run = join(root, 'state');
    const dir = await saveTrainingCheckpoint(run, {
      model: tinyModel(),
      optimizer: new AdamW(weightDecayGroups(tinyModel(), 0), { lr: 1e-3 }),
      tokenizer: tok(),
      keep: 2,
      state: { kind: 'test', step: 6, tokensSeen: 0, elapsed: 0, data: null, rng: null, config: null },
    });
    const file = join(dir, 'trainer.json');
    const good = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    writeFileSync(file, JSON.stringify({ ...good, step: '6' }));
    assert.throws(
      () => readTrainerState(dir),
      (e: Error) => e.message.includes(file) && /"step" must be a non-negative number \(found "6"\)/.test(e.message),
    );
    writeFileSync(file, '{"version": 1,');
    assert.throws(
      () => readTrainerState(dir),
      (e: Error) => e.message.includes(file) && /not valid JSON/.test(e.message),
    );
  });
});

describe('resume', () => {
  test('lr and the run-control settings may change on resume, a moved run resumes, the rest is refused by name', async () => {
    const c = resolveConfig(PretrainConfig, 'pretrain-tiny', { runsDir: root, name: 'res', steps: 4, checkpointEvery: 2 }, 'test');
    await pretrain(c, { log: quiet, stopAfter: 2 });
    const moved = join(root, 'moved');
    mkdirSync(moved);
    const { renameSync } = await import('node:fs');
    renameSync(join(root, 'res'), join(moved, 'res'));
    // a moved run, with a lower learning rate: accepted
    const again = resolveConfig(
      PretrainConfig,
      'pretrain-tiny',
      { runsDir: moved, name: 'res', steps: 4, checkpointEvery: 2, optim: { ...c.optim, lr: c.optim.lr / 2 } },
      'test',
    );
    const r = await pretrain(again, { log: quiet, resume: true });
    assert.equal(r.stoppedBy, 'done');
    // asked for no more steps than done: refused, config untouched
    const before = readFileSync(join(moved, 'res', 'config.json'), 'utf8');
    await assert.rejects(pretrain({ ...again, steps: 3 }, { log: quiet, resume: true }), /already at step 4, and 3 steps were asked for; pass --steps above 4/);
    assert.equal(readFileSync(join(moved, 'res', 'config.json'), 'utf8'), before);
    // another setting: refused by name
    await assert.rejects(pretrain({ ...again, steps: 6, seqLen: again.seqLen * 2 }, { log: quiet, resume: true }), /differs from the run's in seqLen/);
  });

  test('a malformed run config.json on resume names the file', async () => {
    const c = resolveConfig(PretrainConfig, 'pretrain-tiny', { runsDir: root, name: 'badcfg', steps: 4, checkpointEvery: 1 }, 'test');
    await pretrain(c, { log: quiet, stopAfter: 1 });
    const f = join(root, 'badcfg', 'config.json');
    writeFileSync(f, '{"name": "badcfg",');
    await assert.rejects(pretrain(c, { log: quiet, resume: true }), (e: Error) => e.message.includes(f) && /not valid JSON/.test(e.message));
  });
});

describe('divergence and damaged weights', () => {
  test('lmRunaway and policyRunaway: quiet on sane figures, named above their bounds', () => {
    assert.equal(lmRunaway(Math.log(300), 300), null);
    assert.match(lmRunaway(6e6, 300) ?? '', /above 2·ln\(V\)/);
    assert.equal(policyRunaway(0.06, 300), null);
    assert.match(policyRunaway(Math.log(300), 300) ?? '', /near uniform/);
  });

  test('a finite runaway stops the run and points latest.json back at the last good checkpoint', async () => {
    const model = tinyModel();
    const optimizer = new AdamW(weightDecayGroups(model, 0), { lr: 1e-3 });
    const t = tok();
    const run = join(root, 'runaway');
    const ids = tensor([[1, 2, 3, 4, 5, 6, 7, 8]], { dtype: 'int64' }).keep();
    await assert.rejects(
      runTrainingLoop({
        model,
        optimizer,
        schedule: (s) => (s < 3 ? 1e-3 : 1e3), // steps 1–3 sane; step 4 blows the weights up
        startStep: 0,
        steps: 8,
        gradAccum: 1,
        clipNorm: 1e9,
        mtpWeight: 0,
        nextBatch: () => ({ inputs: ids, targets: ids, tokens: 8 }),
        biasGamma: () => 0,
        evalEvery: 100,
        evaluate: async () => ({}),
        checkpointEvery: 1,
        save: (step, extra) =>
          saveTrainingCheckpoint(run, {
            model,
            optimizer,
            tokenizer: t,
            keep: 5,
            state: { kind: 'test', step, ...extra, data: null, rng: null, config: null },
          }),
        repoint: (dir) => {
          const name = dir.split('/').at(-1);
          writeFileSync(join(run, 'checkpoints', 'latest.json'), JSON.stringify({ step: Number(name?.slice(5)), dir: name }));
        },
        sink: { record: () => undefined, progress: () => undefined, log: () => undefined },
      }),
      (e: unknown) => e instanceof TrainingDivergedError && e.step === 5 && /run away/.test(e.message) && /step-000003/.test(e.message),
    );
    assert.equal(latestCheckpoint(run)?.step, 3, 'latest.json points at the last good checkpoint');
  });

  test('a checkpoint with a NaN weight is refused at load, naming the tensor', async () => {
    const model = tinyModel();
    const name = 'model.norm.weight';
    const w = model.stateDict().get(name)!;
    noGrad(() => w.fill_(Number.NaN));
    const dir = join(root, 'nan-ckpt');
    await saveCheckpoint(dir, model);
    assert.throws(
      () => loadCheckpoint(dir),
      (e: unknown) => e instanceof CheckpointError && e.message.includes(name) && /non-finite/.test(e.message),
    );
  });

  test('a failed checkpoint write names the run and the last complete checkpoint', async () => {
    const model = tinyModel();
    const optimizer = new AdamW(weightDecayGroups(model, 0), { lr: 1e-3 });
    const run = join(root, 'full');
    const real = tok();
    let full = false;
    // a tokenizer whose save meets a full disk once `full` is set (the write a checkpoint does first)
    const tokenizer = Object.assign(Object.create(real) as Tokenizer, {
      save(file: string) {
        if (full) throw Object.assign(new Error(`ENOSPC: no space left on device, write '${file}'`), { code: 'ENOSPC' });
        real.save(file);
      },
    });
    const save = checkpointWriter(run, { model, optimizer, tokenizer, keep: 1, kind: 'test', config: null, data: () => null, flush: () => undefined });
    await save(1, { tokensSeen: 0, elapsed: 0 });
    full = true;
    await assert.rejects(
      save(2, { tokensSeen: 0, elapsed: 0 }),
      (e: Error) => e.message.includes(run) && /the disk is full/.test(e.message) && /step-000001 \(step 1\)/.test(e.message) && /--resume/.test(e.message),
    );
    assert.deepEqual(
      readdirSync(join(run, 'checkpoints')).filter((n) => n.includes('tmp')),
      [],
      'no half-written checkpoint is left',
    );
    assert.equal(latestCheckpoint(run)?.step, 1);
  });
});

describe('rewards and CLI flags', () => {
  test('a negative reward weight is refused', () => {
    assert.throws(() => parseRewardWeights({ task: -1 }), /must be finite and ≥ 0/);
    assert.throws(() => resolveRlConfig('rl-countdown', { name: 'r', runsDir: root, rewards: { task: -1 } }), /≥ 0/);
    const r = cli('rl', '--rewards', 'task=-1', '--name', 'neg', '--runs-dir', root);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /reward weights must be ≥ 0/);
  });

  test('an unknown command is named, with the commands there are', () => {
    const r = cli('pretrian');
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /unknown command 'pretrian' \(did you mean pretrain\?\)/);
  });

  test('eval: a missing checkpoint directory, --task-file with another task, an unknown --task-config key', () => {
    let r = cli('eval', '--checkpoint', join(root, 'nowhere'));
    assert.match(r.stderr, /checkpoint directory .*nowhere does not exist/);
    const rows = join(root, 'rows.jsonl');
    writeFileSync(rows, '{"nums": [1, 2, 3], "target": 6}\n{"nums": "x"}\n');
    r = cli('eval', '--checkpoint', 'checkpoints/small-base', '--task-file', rows, '--task', 'multiplication');
    assert.match(r.stderr, /--task-file holds Countdown rows/);
    r = cli('eval', '--checkpoint', 'checkpoints/small-base', '--task-config', '{"maxNumbr": 20}', '--n', '1');
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /maxNumbr/);
    r = cli('eval', '--checkpoint', 'checkpoints/small-base', '--task-file', rows, '--n', '2', '--max-new-tokens', '8');
    assert.match(r.stderr, /--skip-bad-rows/);
    r = cli('eval', '--checkpoint', 'checkpoints/small-base', '--task-file', rows, '--n', '2', '--skip-bad-rows', '--max-new-tokens', '8', '--json');
    assert.equal(r.status, 0, r.stderr);
    assert.match((JSON.parse(r.stdout) as { source: string }).source, /1 bad rows skipped/);
  });
});

test('the shipped base checkpoint still loads (finiteness check included)', () => {
  assert.ok(existsSync('checkpoints/small-base/config.json'));
  loadCheckpoint('checkpoints/small-base');
});
