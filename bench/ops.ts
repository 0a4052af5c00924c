/**
 * ops: the tensor engine against PyTorch (Debian's python3-torch) on this machine, interleaved in
 * one run:
 *   (a) fp32 matmul GFLOP/s at 512, 1024, 2048;
 *   (b) per-call overhead of a small op (add on 8 floats), in µs.
 * Both sides run the same libtorch build with the same intra-op thread count and the same
 * OPENBLAS_CORETYPE; the output states them. Ratios are medians of per-round ratios.
 *
 * The headline overhead ratio disposes each result right away, as PyTorch frees a dropped result;
 * the figures also give the same loop in tidy() blocks and left to the garbage collector.
 *
 * Options: --rounds N (default 7), --quick (fewer repetitions).
 */
import { Generator, randn, runtimeInfo, tidy, type Tensor } from '../src/core/index.ts';
import { Peer, median } from './peer.ts';

interface Setup {
  torch: string;
  threads: number;
  blas_core: string | null;
}

function timeMatmul(a: Tensor, b: Tensor, reps: number): number {
  a.matmul(b).dispose();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < reps; i++) a.matmul(b).dispose();
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  const n = a.shape[0];
  return (2 * n ** 3 * reps) / s / 1e9;
}

type Mode = 'dispose' | 'tidy' | 'gc';

function timeAdd(a: Tensor, b: Tensor, reps: number, mode: Mode): number {
  for (let i = 0; i < 1000; i++) a.add(b).dispose();
  const t0 = process.hrtime.bigint();
  if (mode === 'dispose') {
    for (let i = 0; i < reps; i++) a.add(b).dispose();
  } else if (mode === 'tidy') {
    for (let i = 0; i < reps; i += 100) {
      tidy(() => {
        for (let j = 0; j < 100; j++) a.add(b);
      });
    }
  } else {
    for (let i = 0; i < reps; i++) a.add(b);
  }
  return Number(process.hrtime.bigint() - t0) / 1e3 / reps;
}

const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 20));

export default async function ops(args: string[]): Promise<Record<string, unknown>> {
  const ri = args.indexOf('--rounds');
  const rounds = ri >= 0 ? Number(args[ri + 1]) : 7;
  const quick = args.includes('--quick');
  const info = runtimeInfo();
  const peer = new Peer('/usr/bin/python3', ['bench/peer_torch.py'], { ...process.env, PYTHONUNBUFFERED: '1' });
  const setup = await peer.request<Setup>({ cmd: 'setup', threads: info.threads });
  console.log(`tinyseek: libtorch ${info.torchVersion}, ${info.threads} threads, OpenBLAS core ${info.openblasCore} (${info.blasChoice.source})`);
  console.log(`pytorch:  torch ${setup.torch}, ${setup.threads} threads, OpenBLAS core ${setup.blas_core}`);
  if (setup.threads !== info.threads || setup.blas_core !== info.openblasCore) {
    throw new Error('the comparison would be unfair: thread counts or BLAS core types differ');
  }
  console.log(`OPENBLAS_CORETYPE=${process.env.OPENBLAS_CORETYPE ?? '(unset)'} on both sides; ${rounds} rounds, order alternating`);

  const sizes = [512, 1024, 2048];
  const repsFor = (n: number): number => Math.max(1, Math.round((quick ? 2e9 : 3.2e10) / (2 * n ** 3)));
  const gen = new Generator(0);
  const mats = new Map<number, [Tensor, Tensor]>(sizes.map((n) => [n, [randn([n, n], { generator: gen }), randn([n, n], { generator: gen })]]));
  const mmRatios = new Map<number, number[]>(sizes.map((n) => [n, []]));
  const mmOurs = new Map<number, number[]>(sizes.map((n) => [n, []]));
  const mmPeer = new Map<number, number[]>(sizes.map((n) => [n, []]));

  const addReps = quick ? 5000 : 20000;
  const a = randn([8]);
  const b = randn([8]);
  const modes: Mode[] = ['tidy', 'dispose', 'gc'];
  const addOurs = new Map<Mode, number[]>(modes.map((m) => [m, []]));
  const addPeer: number[] = [];
  const addRatios = new Map<Mode, number[]>(modes.map((m) => [m, []]));

  for (let r = 0; r < rounds; r++) {
    const oursFirst = r % 2 === 0;
    for (const n of sizes) {
      const [x, y] = mats.get(n)!;
      const reps = repsFor(n);
      let ours = 0;
      let theirs = 0;
      if (oursFirst) ours = timeMatmul(x, y, reps);
      theirs = (await peer.request<{ gflops: number }>({ cmd: 'matmul', n, reps })).gflops;
      if (!oursFirst) ours = timeMatmul(x, y, reps);
      mmOurs.get(n)!.push(ours);
      mmPeer.get(n)!.push(theirs);
      mmRatios.get(n)!.push(ours / theirs);
    }
    // The four small-op contestants run in a rotating order, several short bursts each.
    const ours = new Map<Mode, number[]>(modes.map((m) => [m, []]));
    const theirsBursts: number[] = [];
    const contestants: (Mode | 'pytorch')[] = ['pytorch', ...modes];
    for (let burst = 0; burst < 4; burst++) {
      const shift = (r + burst) % contestants.length;
      for (const c of [...contestants.slice(shift), ...contestants.slice(0, shift)]) {
        await settle();
        if (c === 'pytorch') theirsBursts.push((await peer.request<{ us: number }>({ cmd: 'add', numel: 8, reps: addReps })).us);
        else ours.get(c)!.push(timeAdd(a, b, addReps, c));
      }
    }
    const theirs = median(theirsBursts);
    addPeer.push(theirs);
    for (const m of modes) {
      const mine = median(ours.get(m)!);
      addOurs.get(m)!.push(mine);
      addRatios.get(m)!.push(mine / theirs);
    }
    console.log(
      `round ${r + 1}: matmul ${sizes.map((n) => `${n}: ${mmOurs.get(n)!.at(-1)!.toFixed(1)} vs ${mmPeer.get(n)!.at(-1)!.toFixed(1)}`).join(', ')} GFLOP/s; ` +
        `add ${modes.map((m) => `${m} ${addOurs.get(m)!.at(-1)!.toFixed(2)}`).join(' / ')} vs ${addPeer.at(-1)!.toFixed(2)} µs`,
    );
  }
  peer.close();

  const figures: Record<string, unknown> = {
    bench: 'ops',
    threads: info.threads,
    openblas_core: info.openblasCore,
    torch_version: info.torchVersion,
    rounds,
  };
  const sizeRatios: number[] = [];
  for (const n of sizes) {
    const ratio = median(mmRatios.get(n)!);
    sizeRatios.push(ratio);
    figures[`matmul_${n}_gflops`] = +median(mmOurs.get(n)!).toFixed(1);
    figures[`matmul_${n}_gflops_pytorch`] = +median(mmPeer.get(n)!).toFixed(1);
    figures[`matmul_${n}_vs_pytorch`] = +ratio.toFixed(3);
  }
  figures.matmul_speed_vs_pytorch = +Math.min(...sizeRatios).toFixed(3);
  for (const m of modes) {
    figures[`add_us_${m}`] = +median(addOurs.get(m)!).toFixed(3);
    figures[`add_${m}_vs_pytorch`] = +median(addRatios.get(m)!).toFixed(3);
  }
  figures.add_us_pytorch = +median(addPeer).toFixed(3);
  // Like for like: PyTorch frees each result as soon as it is dropped; so does `.dispose()`.
  figures.op_overhead_vs_pytorch = figures.add_dispose_vs_pytorch;
  figures.op_overhead_best_of_rounds_vs_pytorch = +(Math.min(...addOurs.get('dispose')!) / Math.min(...addPeer)).toFixed(3);
  console.log(
    `matmul (worst of the three sizes) ${figures.matmul_speed_vs_pytorch}x PyTorch; small-op overhead ${figures.op_overhead_vs_pytorch}x PyTorch ` +
      `(each result disposed; ${figures.add_tidy_vs_pytorch}x in tidy() blocks of 100, ${figures.add_gc_vs_pytorch}x left to the GC)`,
  );
  return figures;
}
