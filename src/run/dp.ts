/**
 * Data parallelism over a c10d process group, for every training stage: each rank trains on its
 * rows of the global batch, gradients are summed across ranks in buckets, and every rank takes the
 * same optimizer step, so N ranks at global batch B follow the same trajectory as one process at B.
 *
 *   shard(batch)       this rank's rows of a global (B, T) batch, its target count and the global one
 *                      (losses are weighted by local/global targets, so the sum over ranks is the
 *                      one-process mean over the whole batch)
 *   armGradients       before the backward of a step's last micro-batch: the gradients are
 *                      all-reduced in buckets while that backward runs (core GradReducer: buckets
 *                      of ≤ bucketBytes in reverse parameter order, the order backward finishes
 *                      them, each started as soon as it is complete)
 *   syncGradients      after it: waits for the buckets (starting those that did not fill; zeros
 *                      for a gradient this rank has not got), then one small all-reduce of which
 *                      parameters have a gradient on any rank plus the step's figures (losses,
 *                      targets, expert load). With overlap off: the small all-reduce, then the
 *                      buckets, all after backward
 *   step(optimizer)    ZeRO-1 (as DeepSeek's HAI-LLM trains): the parameters are split between the
 *                      ranks by size, each rank keeps AdamW moments only for its own and steps only
 *                      those, then each rank's parameters are broadcast from it; without ZeRO-1 every
 *                      rank steps everything
 *   fullOptimizerState before a checkpoint: every rank receives the other ranks' moments, so the
 *                      checkpoint holds no rank-local state and resumes at any world size;
 *                      shardOptimizerState drops them again
 *
 * A parameter that no rank gave a gradient keeps none (as in one process, AdamW skips it). Rank 0
 * is the lead: it writes checkpoints, logs and plots. It knows tensors, parameters and AdamW; not
 * losses, data or models' layers.
 */
import { type GradReducer, ProcessGroup, type Tensor, cat, distEnvFrom, itemSize, noGrad, tensor, zeros, zerosLike } from '../core/index.ts';
import type { AdamW, Module } from '../nn/index.ts';
import { latestCheckpoint } from './checkpointing.ts';
import type { MetricRecord } from './metrics.ts';
import type { OpenedRun } from './run-dir.ts';
import type { RunSink } from './run-sink.ts';

export interface DataParallelOptions {
  /** Shard AdamW's moments across the ranks (ZeRO-1). */
  zero1?: boolean;
  /** Largest gradient bucket, in bytes (DDP's default: 25 MiB). */
  bucketBytes?: number;
  /** How long ranks wait for the lead's evaluation or checkpoint (default 30 minutes). */
  leadTimeoutMs?: number;
  /** All-reduce gradient buckets during the last backward of a step (default true). */
  overlap?: boolean;
}

export interface Shard {
  /** (B/N, T) this rank's rows */
  inputs: Tensor;
  /** (B/N, T) */
  targets: Tensor;
  /** Targets of this rank's rows that count. */
  tokens: number;
  /** Targets of the whole batch that count. */
  globalTokens: number;
}

export class DataParallel {
  readonly zero1: boolean;
  private readonly bucketBytes: number;
  readonly leadTimeoutMs: number;
  readonly overlap: boolean;
  private owners: Map<Tensor, number> | null = null;
  private reducer: GradReducer | null = null;
  private armed = false;
  /** Bytes this rank sent into collectives in the last syncGradients() and step() (the payloads). */
  lastBytes = 0;
  /** Share of the gradient buckets of the last syncGradients() that started during backward. */
  lastOverlap = 0;

  constructor(
    readonly group: ProcessGroup,
    o: DataParallelOptions = {},
  ) {
    this.zero1 = o.zero1 ?? false;
    this.bucketBytes = o.bucketBytes ?? 25 * 1024 * 1024;
    this.leadTimeoutMs = o.leadTimeoutMs ?? 30 * 60_000;
    this.overlap = o.overlap ?? true;
  }

  get rank(): number {
    return this.group.rank;
  }
  get worldSize(): number {
    return this.group.worldSize;
  }
  /** Rank 0: the one that writes. */
  get lead(): boolean {
    return this.group.rank === 0;
  }

  /** This rank's rows of a global batch; the batch size must divide by the world size. */
  shard(inputs: Tensor, targets: Tensor, globalTokens: number): Shard {
    const B = inputs.shape[0];
    const N = this.worldSize;
    if (B % N !== 0) throw new RangeError(`the global batch of ${B} rows does not split over ${N} ranks: choose a batch size divisible by ${N}`);
    const b = B / N;
    const mine = targets.narrow(0, this.rank * b, b); // (b, T)
    const tokens = mine.ne(-100).sum().item();
    return { inputs: inputs.narrow(0, this.rank * b, b), targets: mine, tokens, globalTokens };
  }

  /** Makes every rank's parameters and buffers rank 0's. */
  async broadcastModule(m: Module): Promise<void> {
    const all = [...m.parameters(), ...[...m.namedBuffers()].map(([, b]) => b)];
    await this.broadcastFlat(all, 0);
  }

  /** Sums `values` over the ranks. */
  async sum(values: number[]): Promise<number[]> {
    const t = tensor(values, { dtype: 'float64' });
    try {
      await this.group.allReduce(t, 'sum');
      return t.toArray() as number[];
    } finally {
      t.dispose();
    }
  }

  /** Every rank's `values` (each rank passes the same number), in rank order. */
  async gather(values: number[]): Promise<number[][]> {
    const k = values.length;
    const slots = new Array<number>(k * this.worldSize).fill(0);
    for (let i = 0; i < k; i++) slots[this.rank * k + i] = values[i];
    const all = await this.sum(slots);
    return Array.from({ length: this.worldSize }, (_, r) => all.slice(r * k, (r + 1) * k));
  }

  /** Every rank's `text`, in rank order (UTF-8 bytes over one all-gather). */
  async gatherStrings(text: string): Promise<string[]> {
    const bytes = Buffer.from(text, 'utf8');
    const lengths = (await this.gather([bytes.length])).map((l) => l[0]);
    const width = Math.max(1, ...lengths);
    const padded = new Uint8Array(width);
    padded.set(bytes);
    const input = tensor(padded); // (width) uint8
    const outputs = Array.from({ length: this.worldSize }, () => zeros([width], { dtype: 'uint8' }));
    try {
      await this.group.allGather(outputs, input);
      return outputs.map((o, r) => Buffer.from(o.toBytes()).subarray(0, lengths[r]).toString('utf8'));
    } finally {
      input.dispose();
      for (const o of outputs) o.dispose();
    }
  }

  /** Whether any rank says yes (a stop request reaches every rank at the same step). */
  async any(flag: boolean): Promise<boolean> {
    return (await this.sum([flag ? 1 : 0]))[0] > 0;
  }

  /** Waits for the lead (its evaluation or checkpoint) with the long timeout. */
  barrier(): Promise<void> {
    return this.group.barrier(this.leadTimeoutMs);
  }

  private reducerFor(params: Tensor[]): GradReducer {
    const r = this.reducer;
    if (r && r.params.length === params.length && r.params.every((p, i) => p === params[i])) return r;
    r?.destroy();
    this.reducer = this.group.gradReducer(params, { bucketBytes: this.bucketBytes });
    return this.reducer;
  }

  /**
   * Call before the backward of a step's last micro-batch (on every rank, with the parameters
   * syncGradients will get): its gradients are summed in buckets while it runs. A no-op with
   * overlap off.
   */
  armGradients(params: Tensor[]): void {
    if (!this.overlap) return;
    this.reducerFor(params).arm();
    this.armed = true;
  }

  /** Removes the gradient hooks (the group stays). */
  close(): void {
    this.reducer?.destroy();
    this.reducer = null;
    this.armed = false;
  }

  /**
   * Sums the gradients of `params` over the ranks, and `extras` with them; returns the summed
   * extras. A parameter with a gradient on some rank gets one on every rank (zeros where it had
   * none); a parameter no rank gave a gradient keeps none.
   */
  async syncGradients(params: Tensor[], extras: number[]): Promise<number[]> {
    if (this.overlap) return this.syncOverlapped(params, extras);
    const P = params.length;
    const head = await this.sum([...params.map((p) => (p.grad ? 1 : 0)), ...extras]);
    const used = params.filter((_, i) => head[i] > 0);
    const grads = noGrad(() =>
      used.map((p) => {
        let g = p.grad;
        if (!g) {
          g = zerosLike(p);
          p.grad = g;
        }
        return g;
      }),
    );
    const buckets = this.buckets(grads.reverse());
    const flats = noGrad(() => buckets.map((b) => cat(b.map((g) => g.reshape([-1])))));
    this.lastBytes = flats.reduce((a, f) => a + f.numel() * itemSize(f.dtype), head.length * 8);
    this.lastOverlap = 0;
    try {
      await Promise.all(flats.map((f) => this.group.allReduce(f, 'sum')));
      noGrad(() => {
        buckets.forEach((b, i) => {
          let off = 0;
          for (const g of b) {
            const n = g.numel();
            g.copy_(flats[i].narrow(0, off, n).view(g.shape));
            off += n;
          }
        });
      });
    } finally {
      for (const f of flats) f.dispose();
    }
    return head.slice(P);
  }

  /** The buckets (already started during backward when armed), then the flags and extras. */
  private async syncOverlapped(params: Tensor[], extras: number[]): Promise<number[]> {
    const reducer = this.reducerFor(params);
    if (!this.armed) reducer.arm(); // no backward since (a rank with no rows): every bucket starts now
    this.armed = false;
    const P = params.length;
    const { started, filled } = await reducer.finish();
    const missing = new Set(filled);
    const had = params.map((_, i) => (missing.has(i) ? 0 : 1));
    const head = await this.sum([...had, ...extras]);
    params.forEach((p, i) => {
      if (head[i] === 0) p.grad = null; // zeros from the buckets, on every rank: none, as in one process
    });
    this.lastBytes = params.reduce((a, p) => a + p.numel() * itemSize(p.dtype), head.length * 8);
    this.lastOverlap = reducer.buckets.length ? started / reducer.buckets.length : 0;
    return head.slice(P);
  }

  /** Consecutive tensors of one dtype, up to bucketBytes each. */
  private buckets(ts: Tensor[]): Tensor[][] {
    const out: Tensor[][] = [];
    let cur: Tensor[] = [];
    let bytes = 0;
    for (const t of ts) {
      const b = t.numel() * itemSize(t.dtype);
      if (cur.length && (bytes + b > this.bucketBytes || cur[0].dtype !== t.dtype)) {
        out.push(cur);
        cur = [];
        bytes = 0;
      }
      cur.push(t);
      bytes += b;
    }
    if (cur.length) out.push(cur);
    return out;
  }

  /** ZeRO-1's owner of each parameter: largest first, each to the rank with the fewest elements so far. */
  ownerOf(optimizer: AdamW): Map<Tensor, number> {
    if (this.owners) return this.owners;
    const params = optimizer.groups.flatMap((g) => g.params);
    const load = new Array<number>(this.worldSize).fill(0);
    const order = params.map((p, i) => ({ p, i, n: p.numel() })).sort((a, b) => b.n - a.n || a.i - b.i);
    const owners = new Map<Tensor, number>();
    for (const { p, n } of order) {
      let r = 0;
      for (let k = 1; k < load.length; k++) if (load[k] < load[r]) r = k;
      owners.set(p, r);
      load[r] += n;
    }
    this.owners = owners;
    return owners;
  }

  /** The optimizer step on summed gradients: every rank steps all (or, with ZeRO-1, its own shard). */
  async step(optimizer: AdamW): Promise<void> {
    if (!this.zero1) {
      optimizer.step();
      return;
    }
    const owners = this.ownerOf(optimizer);
    const params = optimizer.groups.flatMap((g) => g.params);
    for (const p of params) if (owners.get(p) !== this.rank) p.grad = null;
    optimizer.step();
    for (let r = 0; r < this.worldSize; r++) {
      await this.broadcastFlat(
        params.filter((p) => owners.get(p) === r),
        r,
      );
    }
  }

  /** ZeRO-1: gives every rank the full AdamW state (before a checkpoint); a no-op otherwise. */
  async fullOptimizerState(optimizer: AdamW): Promise<void> {
    if (!this.zero1) return;
    const owners = this.ownerOf(optimizer);
    const st = optimizer.stateDict();
    const params = optimizer.groups.flatMap((g) => g.params);
    const steps = await this.sum(params.map((p, i) => (owners.get(p) === this.rank ? st.steps[i] : 0)));
    for (let r = 0; r < this.worldSize; r++) {
      const idx = params.map((_, i) => i).filter((i) => owners.get(params[i]) === r && steps[i] > 0);
      if (!idx.length) continue;
      const mine = r === this.rank;
      const m = idx.map((i) => (mine ? (st.expAvg[i] as Tensor) : zerosLike(params[i])));
      const v = idx.map((i) => (mine ? (st.expAvgSq[i] as Tensor) : zerosLike(params[i])));
      await this.broadcastFlat([...m, ...v], r);
      if (!mine) {
        idx.forEach((i, k) => {
          optimizer.setParamState(params[i], steps[i], m[k], v[k]);
          m[k].dispose();
          v[k].dispose();
        });
      }
    }
  }

  /** ZeRO-1: drops the moments of the parameters other ranks own; a no-op otherwise. */
  shardOptimizerState(optimizer: AdamW): void {
    if (!this.zero1) return;
    const owners = this.ownerOf(optimizer);
    optimizer.retain((p) => owners.get(p) === this.rank);
  }

  /** Broadcasts `ts` from rank `root`, flattened by dtype into one message each. */
  private async broadcastFlat(ts: Tensor[], root: number): Promise<void> {
    for (const bucket of this.buckets(ts)) {
      this.lastBytes += bucket.reduce((a, t) => a + t.numel() * itemSize(t.dtype), 0);
      const flat = noGrad(() =>
        this.rank === root ? cat(bucket.map((t) => t.detach().reshape([-1]))) : zeros([bucket.reduce((a, t) => a + t.numel(), 0)], { dtype: bucket[0].dtype }),
      );
      try {
        await this.group.broadcast(flat, root);
        if (this.rank !== root) {
          noGrad(() => {
            let off = 0;
            for (const t of bucket) {
              const n = t.numel();
              t.copy_(flat.narrow(0, off, n).view(t.shape));
              off += n;
            }
          });
        }
      } finally {
        flat.dispose();
      }
    }
  }
}

/** A sink that records nothing: the ranks other than the lead train silently. */
export function silentSink(): RunSink {
  return {
    record() {},
    progress() {},
    log() {},
    sample() {},
    async plot() {},
    lastEval: () => null,
    flush() {},
    close() {},
  };
}

/**
 * The run directory under data parallelism: the lead checks and writes it (openRunDir) while the
 * others wait, then they read the checkpoint to resume from. A lead that fails here stops, and
 * the others then fail naming it.
 */
export async function openRunDirOnLead(dp: DataParallel, open: () => OpenedRun, runDir: string, resume: boolean | undefined): Promise<OpenedRun> {
  if (dp.lead) {
    const r = open();
    await dp.barrier();
    return r;
  }
  await dp.barrier();
  return { runDir, latest: resume ? latestCheckpoint(runDir) : null };
}

/** Runs `f` on the lead first (it may write a cache), then on the others. */
export async function leadFirst<T>(dp: DataParallel | null | undefined, f: () => T): Promise<T> {
  if (!dp) return f();
  if (dp.lead) {
    const r = f();
    await dp.barrier();
    return r;
  }
  await dp.barrier();
  return f();
}

type SaveFn = (step: number, counters: { tokensSeen: number; elapsed: number }) => Promise<string>;

/**
 * The lead's evaluation and checkpoint, with every rank waiting for it: the full optimizer state is
 * gathered first (ZeRO-1), the lead writes, the shard is dropped again.
 */
export function onLead(
  dp: DataParallel,
  optimizer: AdamW,
  o: { save: SaveFn; evaluate: (step: number) => Promise<MetricRecord>; repoint: (dir: string) => void },
): { save: SaveFn; evaluate: (step: number) => Promise<MetricRecord>; repoint: (dir: string) => void } {
  return {
    async save(step, counters) {
      await dp.fullOptimizerState(optimizer);
      const dir = dp.lead ? await o.save(step, counters) : '';
      dp.shardOptimizerState(optimizer);
      await dp.barrier();
      return dir;
    },
    async evaluate(step) {
      const r = dp.lead ? await o.evaluate(step) : {};
      await dp.barrier();
      return r;
    },
    repoint: (dir) => (dp.lead ? o.repoint(dir) : undefined),
  };
}

/**
 * The group this process belongs to, from torchrun's environment variables (tinyseek launch sets
 * them), or null when WORLD_SIZE is unset. TINYSEEK_ZERO1=1 shards the optimizer state;
 * TINYSEEK_DIST_OVERLAP=0 all-reduces the gradients after backward instead of during it;
 * TINYSEEK_DIST_TIMEOUT (seconds, default 300) bounds how long a rank waits for a peer.
 */
export async function dataParallelFromEnv(env: NodeJS.ProcessEnv = process.env): Promise<DataParallel | null> {
  const de = distEnvFrom(env);
  if (!de) return null;
  const t = env.TINYSEEK_DIST_TIMEOUT;
  const seconds = t === undefined || t === '' ? 300 : Number(t);
  if (!(seconds > 0)) throw new RangeError(`TINYSEEK_DIST_TIMEOUT=${t} is not a positive number of seconds`);
  const backend = env.TINYSEEK_DIST_BACKEND === 'nccl' ? 'nccl' : 'gloo';
  const group = await ProcessGroup.init({ ...de, backend, timeoutMs: seconds * 1000 });
  return new DataParallel(group, { zero1: env.TINYSEEK_ZERO1 === '1', overlap: env.TINYSEEK_DIST_OVERLAP !== '0' });
}
