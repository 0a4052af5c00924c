/**
 * `tinyseek launch --nproc N [--nnodes M --node-rank R --master host:port] -- <stage> …`: starts N
 * ranks of a tinyseek command on this node, as torchrun does — each a child process with
 * MASTER_ADDR, MASTER_PORT, WORLD_SIZE, RANK and LOCAL_RANK set, and TINYSEEK_THREADS to its share
 * of the cores. Rank 0's output passes through; the others' lines are prefixed with their rank.
 * Ctrl-C reaches every rank (each finishes its step and the lead checkpoints). When a rank fails,
 * the others stop on their own (their next collective names it); any still running after the
 * grace period are killed. The exit code is the first failing rank's.
 *
 * It knows processes and environment variables; the stage itself joins the group (run/dp.ts).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { type Command, InvalidArgumentError } from 'commander';

/** The stages that join a process group when WORLD_SIZE is set. */
const DIST_STAGES = ['pretrain', 'sft', 'rl', 'distill'];

function intArg(min: number): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`expected an integer ≥ ${min}`);
    return n;
  };
}

function parseMaster(v: string): { host: string; port: number } {
  const m = /^(.+):(\d+)$/.exec(v);
  const port = m ? Number(m[2]) : Number.NaN;
  if (!m || !(port >= 1 && port <= 65535)) throw new InvalidArgumentError('expected host:port, e.g. 10.0.0.1:29500');
  return { host: m[1], port };
}

/** A TCP port free on this machine now (for a single-node run without --master). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export interface LaunchOptions {
  nproc: number;
  nnodes: number;
  nodeRank: number;
  master?: { host: string; port: number };
  threads?: number;
  zero1?: boolean;
  /** false: all-reduce the gradients after backward instead of during it (TINYSEEK_DIST_OVERLAP=0). */
  overlap?: boolean;
  /** Seconds a rank waits for a peer (TINYSEEK_DIST_TIMEOUT). */
  timeout?: number;
  /** Seconds the others get to stop by themselves after a rank failed. */
  grace: number;
}

/** Starts the ranks and resolves with the exit code of the run. */
export async function launch(args: string[], o: LaunchOptions): Promise<number> {
  if (!args.length) throw new InvalidArgumentError('name the command to run after --, e.g. tinyseek launch --nproc 2 -- pretrain --steps 100');
  if (!DIST_STAGES.includes(args[0])) throw new InvalidArgumentError(`${args[0]} does not run data-parallel; launch one of ${DIST_STAGES.join(', ')}`);
  if (o.nodeRank >= o.nnodes) throw new InvalidArgumentError(`--node-rank ${o.nodeRank} is not below --nnodes ${o.nnodes}`);
  if (o.nnodes > 1 && !o.master) throw new InvalidArgumentError('a run over several nodes needs --master host:port (node 0 hosts the rendezvous there)');
  const master = o.master ?? { host: '127.0.0.1', port: await freePort() };
  const world = o.nproc * o.nnodes;
  const threads = o.threads ?? Math.max(1, Math.floor(os.availableParallelism() / o.nproc));
  const bin = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'tinyseek.js');
  console.error(
    `launch: ${world} ranks (${o.nproc} here, node ${o.nodeRank} of ${o.nnodes}), rendezvous ${master.host}:${master.port}, ${threads} thread(s) each${o.zero1 ? ', ZeRO-1' : ''}`,
  );

  const children: ChildProcess[] = [];
  const codes: (number | null)[] = new Array(o.nproc).fill(null);
  let firstFailure: { rank: number; code: number } | null = null;
  let killer: NodeJS.Timeout | null = null;
  const done = new Promise<void>((resolve) => {
    let left = o.nproc;
    for (let local = 0; local < o.nproc; local++) {
      const rank = o.nodeRank * o.nproc + local;
      const env: NodeJS.ProcessEnv = {
        ...process.env,
        MASTER_ADDR: master.host,
        MASTER_PORT: String(master.port),
        WORLD_SIZE: String(world),
        RANK: String(rank),
        LOCAL_RANK: String(local),
        TINYSEEK_THREADS: String(threads),
        ...(o.zero1 ? { TINYSEEK_ZERO1: '1' } : {}),
        ...(o.overlap === false ? { TINYSEEK_DIST_OVERLAP: '0' } : {}),
        ...(o.timeout ? { TINYSEEK_DIST_TIMEOUT: String(o.timeout) } : {}),
      };
      const child = spawn(process.execPath, [bin, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      children.push(child);
      console.error(`launch: rank ${rank} is pid ${child.pid}`);
      const prefix = rank === 0 ? '' : `[rank ${rank}] `;
      for (const [stream, out] of [
        [child.stdout, process.stdout],
        [child.stderr, process.stderr],
      ] as const) {
        if (!stream) continue;
        readline.createInterface({ input: stream }).on('line', (line) => out.write(`${prefix}${line}\n`));
      }
      child.on('exit', (code, signal) => {
        const c = code ?? (signal ? 128 + (os.constants.signals[signal] ?? 0) : 1);
        codes[local] = c;
        if (c !== 0 && !firstFailure) {
          firstFailure = { rank, code: c };
          console.error(
            `launch: rank ${rank} (pid ${child.pid}) ${signal ? `was killed by ${signal}` : `exited with code ${c}`}; the other ranks stop within ${o.grace} s`,
          );
          killer = setTimeout(() => {
            for (const ch of children) if (ch.exitCode === null && ch.signalCode === null) ch.kill('SIGKILL');
          }, o.grace * 1000);
        }
        if (--left === 0) resolve();
      });
    }
  });
  const forward = (sig: NodeJS.Signals) => () => {
    for (const ch of children) if (ch.exitCode === null) ch.kill(sig);
  };
  const onInt = forward('SIGINT');
  const onTerm = forward('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  try {
    await done;
  } finally {
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
    if (killer) clearTimeout(killer);
  }
  const failed = firstFailure as { rank: number; code: number } | null;
  return failed ? failed.code : 0;
}

export function registerLaunchCommand(program: Command): void {
  program
    .command('launch')
    .description('run a training stage data-parallel over N processes (and M nodes), as torchrun does: tinyseek launch --nproc 2 -- pretrain …')
    .option('--nproc <n>', 'ranks on this node', intArg(1), 2)
    .option('--nnodes <n>', 'nodes in the run', intArg(1), 1)
    .option('--node-rank <n>', "this node's index (0 hosts the rendezvous)", intArg(0), 0)
    .option('--master <host:port>', 'the rendezvous address (default: 127.0.0.1 and a free port, single node only)', parseMaster)
    .option('--threads <n>', 'intra-op threads per rank (default: the cores divided by --nproc)', intArg(1))
    .option('--zero1', 'shard the AdamW moments across the ranks (ZeRO-1)')
    .option('--no-overlap', 'all-reduce the gradients after backward instead of in buckets during it')
    .option('--timeout <s>', 'seconds a rank waits for a peer before failing (default 300)', intArg(1))
    .option('--grace <s>', 'seconds the other ranks get to stop after one failed, before they are killed', intArg(1), 30)
    .argument('<command...>', 'the stage and its flags, after --')
    .allowUnknownOption()
    .action(async (command: string[], f: LaunchOptions) => {
      process.exitCode = await launch(command, f);
    });
}
