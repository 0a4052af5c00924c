// Beyond one process, with real processes over libtorch's c10d (Gloo): the collectives, a failed
// rank named by the others, data-parallel pretraining that follows the one-process trajectory
// (plain and ZeRO-1), resume at another world size, a rank killed mid-run, and two "hosts" in
// network namespaces joined by a veth pair.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadSafetensors } from '../src/io/safetensors.ts';
import { loadCheckpoint } from '../src/model/checkpoint.ts';
import { latestCheckpoint } from '../src/run/checkpointing.ts';
import { readMetrics } from '../src/run/metrics.ts';

const root = new URL('..', import.meta.url).pathname;
const BIN = join(root, 'bin', 'tinyseek.js');
const WORKER = join(root, 'test', 'fixtures', 'dist-worker.ts');
const GRPO_STEP = join(root, 'test', 'fixtures', 'grpo-step.ts');
const REDUCER = join(root, 'test', 'fixtures', 'reducer-worker.ts');
// the tolerance of "the same trajectory": float32 sums over ranks add in another order
const LOSS_TOL = 1e-5;
const WEIGHT_TOL = 1e-4;

let runs: string;
let config: string;

interface Ran {
  code: number | null;
  out: string;
}

function started(args: string[], env: NodeJS.ProcessEnv = {}, cmd = process.execPath): { child: ChildProcess; done: Promise<Ran> } {
  const child = spawn(cmd, args, { env: { ...process.env, TINYSEEK_THREADS: '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout?.on('data', (d) => {
    out += d;
  });
  child.stderr?.on('data', (d) => {
    out += d;
  });
  const done = new Promise<Ran>((resolve) => child.on('exit', (code) => resolve({ code, out })));
  return { child, done };
}

const run = (args: string[], env: NodeJS.ProcessEnv = {}): Promise<Ran> => started(args, env).done;
const pretrainArgs = (name: string, steps: number, extra: string[] = []): string[] => [
  'pretrain',
  '--config',
  config,
  '--name',
  name,
  '--runs-dir',
  runs,
  '--steps',
  String(steps),
  ...extra,
];

function trainRecords(name: string): { step: number; loss: number; grad_norm: number }[] {
  return readMetrics(join(runs, name, 'metrics.jsonl'))
    .filter((r) => r.kind === 'train')
    .map((r) => ({ step: r.step as number, loss: r.loss as number, grad_norm: r.grad_norm as number }));
}

function maxWeightDiff(a: string, b: string, file = (n: string) => join(runs, n, 'final', 'model.safetensors')): number {
  const wa = loadSafetensors(file(a));
  const wb = loadSafetensors(file(b));
  assert.deepEqual(Object.keys(wa).sort(), Object.keys(wb).sort());
  let worst = 0;
  for (const k of Object.keys(wa)) worst = Math.max(worst, wa[k].sub(wb[k]).abs().max().item());
  return worst;
}

function assertSameLosses(a: string, b: string): void {
  const ra = trainRecords(a);
  const rb = trainRecords(b);
  assert.equal(ra.length, rb.length);
  ra.forEach((x, i) => {
    assert.equal(x.step, rb[i].step);
    assert.ok(Math.abs(x.loss - rb[i].loss) <= LOSS_TOL * Math.abs(x.loss), `step ${x.step}: loss ${x.loss} vs ${rb[i].loss}`);
    assert.ok(Math.abs(x.grad_norm - rb[i].grad_norm) <= 1e-4 * x.grad_norm, `step ${x.step}: grad norm ${x.grad_norm} vs ${rb[i].grad_norm}`);
  });
}

before(() => {
  runs = mkdtempSync(join(tmpdir(), 'tinyseek-dist-'));
  const tiny = JSON.parse(readFileSync(join(root, 'src', 'train', 'presets', 'pretrain-tiny.json'), 'utf8')) as Record<string, unknown>;
  config = join(runs, 'tiny-dp.json');
  // checkpoints every 2 steps (the fault test resumes from one); evaluation only at the end
  writeFileSync(config, JSON.stringify({ ...tiny, name: 'tiny-dp', runsDir: runs, checkpointEvery: 2, evalEvery: 1000, keepCheckpoints: 2 }));
});
after(() => rmSync(runs, { recursive: true, force: true }));

describe('c10d collectives over Gloo', () => {
  const ranks = (n: number, env: NodeJS.ProcessEnv, port: number): Promise<Ran[]> =>
    Promise.all(
      Array.from({ length: n }, (_, r) =>
        run(['--import', 'tsx', WORKER], { MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port), WORLD_SIZE: String(n), RANK: String(r), ...env }),
      ),
    );
  const port = (): number => 20000 + Math.floor(Math.random() * 20000);

  test('three ranks agree on all-reduce, broadcast, all-gather, reduce-scatter; a strided tensor is refused', async () => {
    const res = await ranks(3, {}, port());
    for (const r of res) assert.equal(r.code, 0, r.out);
    const outs = res.map((r) => JSON.parse(r.out.trim().split('\n').at(-1) as string) as Record<string, unknown>);
    outs.forEach((o, r) => {
      assert.deepEqual(o.sum, [6, 60]);
      assert.deepEqual(o.avg, [2]);
      assert.deepEqual(o.max, [2]);
      assert.deepEqual(o.broadcast, [42, 43]);
      assert.deepEqual(o.allGather, [
        [0, 0],
        [1, -1],
        [2, -2],
      ]);
      assert.deepEqual(o.reduceScatter, [r * 300 + 3, 3]);
      assert.match(o.contiguous as string, /not contiguous/);
    });
  });

  test('gradients summed in buckets during backward equal the sums after it; a gradient no rank has stays none', async () => {
    // buckets (96 bytes) in reverse order: [7, 6], [5, 4, 3], [2, 1, 0]; parameter 0 has no gradient
    // anywhere, 5 none on rank 1, 6 none in rank 2's armed backward (it keeps its first micro-batch's):
    // the armed backward cannot reach them, so they are ready from its start and every bucket
    // still starts during backward
    const worker = async (overlap: string) => {
      const p = port();
      const res = await Promise.all(
        [0, 1, 2].map((r) =>
          run(['--import', 'tsx', REDUCER], { MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(p), WORLD_SIZE: '3', RANK: String(r), DIST_OVERLAP: overlap }),
        ),
      );
      for (const r of res) assert.equal(r.code, 0, r.out);
      return res.map((r) => JSON.parse(r.out.trim().split('\n').at(-1) as string) as { extra: number; grads: (number[] | null)[]; overlap: number });
    };
    const expected = Array.from({ length: 8 }, (_, i) => (i === 0 ? null : new Array<number>(3 + i).fill(i === 5 ? 36 : i === 6 ? 42 : 9 * (i + 1))));
    const during = await worker('1');
    const after = await worker('0');
    during.forEach((o, r) => {
      assert.equal(o.extra, 6);
      assert.deepEqual(o.grads, expected);
      assert.equal(o.overlap, 1, `rank ${r}`);
      assert.deepEqual(after[r].grads, expected);
      assert.equal(after[r].overlap, 0);
    });
  });

  test('a rank that exits: the others fail at their next collective, naming it', async () => {
    const res = await ranks(3, { DIST_DIE: '2' }, port());
    assert.equal(res[2].code, 3);
    for (const r of res.slice(0, 2)) {
      assert.equal(r.code, 0, r.out);
      const o = JSON.parse(r.out.trim().split('\n').at(-1) as string) as { failure: { message: string; dist: boolean; ms: number } };
      assert.ok(o.failure.dist);
      assert.match(o.failure.message, /rank 2 stopped answering/);
      assert.ok(o.failure.ms < 20_000, `failed after ${o.failure.ms} ms, the timeout is 20 s`);
    }
  });

  test('a rendezvous that never completes fails after its timeout, naming where it waited', async () => {
    const p = port();
    const r = await run(['--import', 'tsx', WORKER], { MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(p), WORLD_SIZE: '2', RANK: '1', DIST_TIMEOUT_MS: '1500' });
    assert.notEqual(r.code, 0);
    assert.match(r.out, new RegExp(`joining the process group as rank 1 of 2 at 127\\.0\\.0\\.1:${p} failed`));
  });
});

describe('data-parallel pretraining (tinyseek launch)', () => {
  test('2 ranks at global batch 4 follow 1 process at batch 4: losses, gradient norms, weights; ZeRO-1 too', async () => {
    const one = await run([BIN, ...pretrainArgs('one', 6)]);
    assert.equal(one.code, 0, one.out);
    const two = await run([BIN, 'launch', '--nproc', '2', '--', ...pretrainArgs('two', 6)]);
    assert.equal(two.code, 0, two.out);
    assert.match(two.out, /data-parallel over 2 ranks \(2 rows each\)/);
    const zero = await run([BIN, 'launch', '--nproc', '2', '--zero1', '--', ...pretrainArgs('zero1', 6)]);
    assert.equal(zero.code, 0, zero.out);
    assert.match(zero.out, /ZeRO-1/);
    for (const name of ['two', 'zero1']) {
      assertSameLosses('one', name);
      const d = maxWeightDiff('one', name);
      assert.ok(d < WEIGHT_TOL, `${name}: weights differ by ${d} from one process`);
    }
    // only the lead writes: one metrics line per step
    assert.equal(trainRecords('two').length, 6);
  });

  test('a run paused at 2 ranks with ZeRO-1 resumes in 1 process, and ends where 1 process ends', async () => {
    const a = await run([BIN, 'launch', '--nproc', '2', '--zero1', '--', ...pretrainArgs('regrow', 6, ['--stop-after', '3'])]);
    assert.equal(a.code, 0, a.out);
    const b = await run([BIN, ...pretrainArgs('regrow', 6, ['--resume'])]);
    assert.equal(b.code, 0, b.out);
    assert.match(b.out, /resumed from .*step-000003/);
    const d = maxWeightDiff('one', 'regrow');
    assert.ok(d < WEIGHT_TOL, `weights differ by ${d}`);
  });

  test('a rank killed mid-run: the lead stops naming it, the checkpoints stay loadable, the run resumes with 2 ranks and with 1', async () => {
    const name = 'fault';
    const { child, done } = started([BIN, 'launch', '--nproc', '2', '--timeout', '20', '--grace', '25', '--', ...pretrainArgs(name, 400)]);
    const metrics = join(runs, name, 'metrics.jsonl');
    let out = '';
    child.stderr?.on('data', (d) => {
      out += d;
    });
    const t0 = Date.now();
    while (!(existsSync(metrics) && trainRecords(name).length >= 5)) {
      assert.ok(Date.now() - t0 < 60_000, `the run did not reach step 5: ${out}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const pid = Number(/rank 1 is pid (\d+)/.exec(out)?.[1]);
    assert.ok(pid > 0, out);
    process.kill(pid, 'SIGKILL');
    const killedAt = Date.now();
    const res = await done;
    assert.ok(Date.now() - killedAt < 20_000, 'the lead did not stop within the timeout');
    assert.notEqual(res.code, 0);
    assert.match(res.out, /rank 1 \(pid \d+\) was killed by SIGKILL/);
    assert.match(res.out, /on rank 0 of 2 failed: rank 1 stopped answering/);
    const latest = latestCheckpoint(join(runs, name));
    assert.ok(latest && latest.step >= 4, `latest checkpoint: ${JSON.stringify(latest)}`);
    loadCheckpoint(join(latest.dir, 'model')); // complete and loadable
    // resume the same checkpoint twice: with 2 ranks, and (from a copy) with 1 process
    cpSync(join(runs, name), join(runs, `${name}-1`), { recursive: true });
    const steps = latest.step + 2;
    const two = await run([BIN, 'launch', '--nproc', '2', '--', ...pretrainArgs(name, steps, ['--resume'])]);
    assert.equal(two.code, 0, two.out);
    const one = await run([BIN, ...pretrainArgs(`${name}-1`, steps, ['--resume'])]);
    assert.equal(one.code, 0, one.out);
    for (const r of [two, one]) assert.match(r.out, new RegExp(`resumed from .*step-${String(latest.step).padStart(6, '0')}`));
    const d = maxWeightDiff(name, `${name}-1`);
    assert.ok(d < WEIGHT_TOL, `the two resumes differ by ${d}`);
  });

  test('two hosts: one rank in each of two network namespaces joined by a veth pair', async (t) => {
    const tag = `ts${process.pid % 100000}`;
    const [nsA, nsB] = [`${tag}a`, `${tag}b`];
    const sh = (cmd: string): boolean => spawnSync('sh', ['-c', cmd], { stdio: 'ignore' }).status === 0;
    const made =
      sh(`ip netns add ${nsA} && ip netns add ${nsB}`) &&
      sh(`ip link add ${tag}va type veth peer name ${tag}vb`) &&
      sh(`ip link set ${tag}va netns ${nsA} && ip link set ${tag}vb netns ${nsB}`) &&
      sh(`ip -n ${nsA} addr add 10.231.7.1/24 dev ${tag}va && ip -n ${nsB} addr add 10.231.7.2/24 dev ${tag}vb`) &&
      sh(`ip -n ${nsA} link set ${tag}va up && ip -n ${nsB} link set ${tag}vb up && ip -n ${nsA} link set lo up && ip -n ${nsB} link set lo up`);
    try {
      const master = made ? '10.231.7.1:29651' : `127.0.0.1:${20000 + Math.floor(Math.random() * 20000)}`;
      if (!made) t.diagnostic('network namespaces are not available here (not root, or no ip): both nodes run on 127.0.0.1');
      const node = (rank: number, ns: string, dev: string): Promise<Ran> => {
        const args = [BIN, 'launch', '--nproc', '1', '--nnodes', '2', '--node-rank', String(rank), '--master', master, '--', ...pretrainArgs('hosts', 6)];
        return made ? started(['netns', 'exec', ns, process.execPath, ...args], { GLOO_SOCKET_IFNAME: dev }, 'ip').done : run(args);
      };
      const [a, b] = await Promise.all([node(0, nsA, `${tag}va`), node(1, nsB, `${tag}vb`)]);
      assert.equal(a.code, 0, a.out);
      assert.equal(b.code, 0, b.out);
      assertSameLosses('one', 'hosts');
      const d = maxWeightDiff('one', 'hosts');
      assert.ok(d < WEIGHT_TOL, `weights differ by ${d}`);
    } finally {
      if (made || existsSync(`/run/netns/${nsA}`)) sh(`ip netns del ${nsA}; ip netns del ${nsB}`);
    }
  });

  test('GRPO: a 2-rank update (μ = 2, KL to the reference) equals the 1-process update on the same rollout, for grpo and dapo losses', async () => {
    const base = join(runs, 'one', 'final');
    assert.ok(existsSync(base), 'the first pretraining test writes the base');
    const abs = (n: string): string => join(runs, n, 'model.safetensors');
    for (const variant of ['grpo', 'dapo']) {
      const one = await run(['--import', 'tsx', GRPO_STEP, base, join(runs, `grpo-${variant}-1`), variant]);
      assert.equal(one.code, 0, one.out);
      const p = 20000 + Math.floor(Math.random() * 20000);
      const ranks = await Promise.all(
        [0, 1].map((r) =>
          run(['--import', 'tsx', GRPO_STEP, base, join(runs, `grpo-${variant}-2`), variant], { MASTER_PORT: String(p), WORLD_SIZE: '2', RANK: String(r) }),
        ),
      );
      for (const r of ranks) assert.equal(r.code, 0, r.out);
      const a = JSON.parse(one.out.trim().split('\n').at(-1) as string) as { loss: number; gradNorms: number[]; tokens: number; rows: number };
      const b = JSON.parse(ranks[0].out.trim().split('\n').at(-1) as string) as typeof a;
      assert.equal(a.rows, 16);
      assert.equal(b.rows, 8, 'each rank updates on its half of the groups');
      assert.equal(b.tokens, a.tokens, 'the token count is the whole batch');
      assert.ok(Math.abs(a.loss - b.loss) <= 1e-4 * Math.abs(a.loss), `${variant}: loss ${a.loss} vs ${b.loss}`);
      a.gradNorms.forEach((g, i) => assert.ok(Math.abs(g - b.gradNorms[i]) <= 1e-4 * g, `${variant}: grad norm ${g} vs ${b.gradNorms[i]}`));
      const d = maxWeightDiff(`grpo-${variant}-1`, `grpo-${variant}-2`, abs);
      const moved = maxWeightDiff(`grpo-${variant}-1`, 'one', (n) => (n === 'one' ? join(base, 'model.safetensors') : abs(n)));
      assert.ok(moved > 1e-3, `the update moved the weights by only ${moved}`);
      assert.ok(d < 1e-5, `${variant}: the 2-rank weights differ by ${d} (the update moved them by ${moved})`);
    }
  });

  test('GRPO through tinyseek launch: 2 ranks sample their halves of the prompts and train together', async () => {
    const base = join(root, 'checkpoints', 'small-base'); // a policy that is not near uniform
    const r = await run([
      BIN,
      'launch',
      '--nproc',
      '2',
      '--',
      'rl',
      '--config',
      'rl-tiny',
      '--base',
      base,
      '--runs-dir',
      runs,
      '--name',
      'rl2',
      '--steps',
      '2',
    ]);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /data-parallel over 2 ranks \(2 prompts each\)/);
    const recs = readMetrics(join(runs, 'rl2', 'metrics.jsonl')).filter((x) => x.kind === 'rl');
    assert.equal(recs.length, 2);
    for (const x of recs) {
      assert.equal(x.groups_used, 4, "both ranks' groups count");
      assert.ok((x.gen_tokens as number) > 0);
      assert.equal(typeof x.grad_norm, 'number');
    }
    assert.ok(existsSync(join(runs, 'rl2', 'final', 'model.safetensors')));
  });

  test('distillation through tinyseek launch: 2 ranks sample their slices of every step, the lead writes the traces, SFT is data-parallel', async () => {
    const cfg = join(runs, 'distill2.json');
    writeFileSync(
      cfg,
      JSON.stringify({
        teacher: join(root, 'checkpoints', 'small-r1-zero'),
        student: join(root, 'checkpoints', 'small-base'),
        prompts: 6,
        samples: 2,
        chunk: 3, // 2 sampling steps, of 3 prompts: rank 0 samples 1 and rank 1 2 of each
        batchSize: 2,
        maxNewTokens: 96,
        evalProblems: 4,
        sft: { steps: 2, batchSize: 4, evalEvery: 1000, checkpointEvery: 1000 },
      }),
    );
    const r = await run([BIN, 'launch', '--nproc', '2', '--', 'distill', '--config', cfg, '--runs-dir', runs, '--name', 'distill2']);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /over 2 ranks/);
    const summary = JSON.parse(readFileSync(join(runs, 'distill2-traces', 'rejection.json'), 'utf8')) as { kept: number; candidates: number; steps: number };
    assert.equal(summary.candidates, 12, 'every prompt sampled twice, once over the ranks');
    assert.equal(summary.steps, 2);
    const lines = readFileSync(join(runs, 'distill2-traces', 'traces.jsonl'), 'utf8')
      .split('\n')
      .filter(Boolean);
    assert.equal(lines.length, summary.kept);
    const sampled = readMetrics(join(runs, 'distill2-traces', 'metrics.jsonl')).filter((x) => x.kind === 'distill-sample');
    assert.equal(sampled.length, 2, 'one metrics line per step, from the lead');
    const sftRecs = readMetrics(join(runs, 'distill2', 'metrics.jsonl')).filter((x) => x.kind === 'train');
    assert.ok(sftRecs.length > 0 && sftRecs.every((x) => x.dp_world === 2));
    const report = JSON.parse(readFileSync(join(runs, 'distill2', 'distill.json'), 'utf8')) as { student_pass1: number | null };
    assert.equal(typeof report.student_pass1, 'number');
  });
});
