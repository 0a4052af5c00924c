/**
 * Process groups and collectives on tensors, over libtorch's c10d (native/src/dist.cc): a TCPStore
 * rendezvous at MASTER_ADDR:MASTER_PORT, Gloo for CPU tensors, NCCL for CUDA tensors when the addon
 * is built against a CUDA libtorch. Every collective returns a Promise that settles when its c10d
 * Work completes, so the event loop keeps running while ranks wait on each other.
 *
 * The environment variables are torchrun's: MASTER_ADDR, MASTER_PORT, WORLD_SIZE, RANK, LOCAL_RANK.
 * A collective that fails (a peer killed, a timeout) rejects with a DistError that names the ranks
 * that stopped answering.
 *
 * It knows tensors and ranks; it does not know models, gradients or optimizers (see run/dp.ts).
 */
import { native } from './native.ts';
import type { Tensor } from './tensor.ts';

export type ReduceOp = 'sum' | 'avg' | 'max' | 'min' | 'product';
export type Backend = 'gloo' | 'nccl';

/** A collective or rendezvous that failed; `message` names the ranks that stopped answering. */
export class DistError extends Error {
  override readonly name = 'DistError';
  readonly code = 'ERR_DIST';
}

export interface DistEnv {
  masterAddr: string;
  masterPort: number;
  worldSize: number;
  rank: number;
  localRank: number;
}

function intVar(env: NodeJS.ProcessEnv, name: string, min: number): number {
  const raw = env[name];
  const n = Number(raw);
  if (raw === undefined || raw === '' || !Number.isInteger(n) || n < min) {
    throw new DistError(`${name}=${raw ?? '(unset)'} is not an integer ≥ ${min}: set it as torchrun does (or start the ranks with tinyseek launch)`);
  }
  return n;
}

/** The rendezvous from torchrun's environment variables; null when WORLD_SIZE is not set. */
export function distEnvFrom(env: NodeJS.ProcessEnv = process.env): DistEnv | null {
  if (env.WORLD_SIZE === undefined || env.WORLD_SIZE === '') return null;
  const worldSize = intVar(env, 'WORLD_SIZE', 1);
  const rank = intVar(env, 'RANK', 0);
  if (rank >= worldSize) throw new DistError(`RANK=${rank} is not below WORLD_SIZE=${worldSize}`);
  const masterPort = intVar(env, 'MASTER_PORT', 1);
  if (masterPort > 65535) throw new DistError(`MASTER_PORT=${masterPort} is not a TCP port (1–65535)`);
  const localRank = env.LOCAL_RANK === undefined || env.LOCAL_RANK === '' ? rank : intVar(env, 'LOCAL_RANK', 0);
  return { masterAddr: env.MASTER_ADDR || '127.0.0.1', masterPort, worldSize, rank, localRank };
}

export interface InitOptions extends DistEnv {
  backend?: Backend;
  /** How long a rendezvous or collective may wait for a peer before failing (default 300 s). */
  timeoutMs?: number;
}

function contiguous(t: Tensor): boolean {
  const shape = t.shape;
  const strides = t.strides();
  let expect = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    if (shape[d] !== 1 && strides[d] !== expect) return false;
    expect *= shape[d];
  }
  return true;
}

function handles(ts: Tensor[], what: string): number[] {
  return ts.map((t, i) => {
    if (t.isDisposed) throw new DistError(`${what}: tensor ${i} is disposed`);
    if (!contiguous(t)) throw new DistError(`${what}: tensor ${i} is not contiguous (call .contiguous() first)`);
    return t._h;
  });
}

async function settled<T>(p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (e) {
    throw e instanceof Error ? new DistError(e.message) : e;
  }
}

/** One rank's membership of a group of `worldSize` processes. */
export class ProcessGroup {
  private destroyed = false;

  private constructor(
    private readonly id: number,
    readonly rank: number,
    readonly worldSize: number,
    readonly backend: Backend,
    readonly timeoutMs: number,
  ) {}

  /** Joins the group: waits until every rank has reached the rendezvous (or the timeout). */
  static async init(o: InitOptions): Promise<ProcessGroup> {
    const backend = o.backend ?? 'gloo';
    const built = native.distBackends();
    if (!built.includes(backend)) {
      throw new DistError(
        `the ${backend} backend is not built into this addon (it has ${built.join(', ')}): NCCL needs a CUDA libtorch with NCCL headers (TINYSEEK_LIBTORCH, then npm run build:native)`,
      );
    }
    const timeoutMs = o.timeoutMs ?? 300_000;
    const id = await settled(native.distInit(o.masterAddr, o.masterPort, o.worldSize, o.rank, timeoutMs, backend));
    return new ProcessGroup(id, o.rank, o.worldSize, backend, timeoutMs);
  }

  private live(what: string): number {
    if (this.destroyed) throw new DistError(`${what}: the process group was destroyed`);
    return this.id;
  }

  /** In place: every rank's `tensor` becomes the reduction over ranks. */
  async allReduce(tensor: Tensor, op: ReduceOp = 'sum', timeoutMs = 0): Promise<void> {
    const h = handles([tensor], 'all-reduce');
    // Gloo has no AVG: a sum divided by the world size (the same figure)
    const nativeOp = op === 'avg' && this.backend === 'gloo' ? 'sum' : op;
    await settled(native.distCollective(this.live('all-reduce'), 'allreduce', h, nativeOp, timeoutMs));
    if (op === 'avg' && this.backend === 'gloo') tensor.div_(this.worldSize);
  }

  /** In place: every rank's `tensor` becomes rank `root`'s. */
  async broadcast(tensor: Tensor, root = 0, timeoutMs = 0): Promise<void> {
    if (!(Number.isInteger(root) && root >= 0 && root < this.worldSize))
      throw new DistError(`broadcast: root ${root} is not a rank of this group of ${this.worldSize}`);
    await settled(native.distCollective(this.live('broadcast'), 'broadcast', handles([tensor], 'broadcast'), root, timeoutMs));
  }

  /** outputs[r] ← rank r's `input` (outputs: worldSize tensors of input's shape and dtype). */
  async allGather(outputs: Tensor[], input: Tensor, timeoutMs = 0): Promise<void> {
    if (outputs.length !== this.worldSize) throw new DistError(`all-gather: ${outputs.length} outputs for a group of ${this.worldSize}`);
    const [hi] = handles([input], 'all-gather');
    await settled(native.distCollective(this.live('all-gather'), 'allgather', handles(outputs, 'all-gather'), hi, timeoutMs));
  }

  /**
   * output ← the reduction over ranks of their inputs[this rank]. Gloo in libtorch 1.13 has no
   * reduce-scatter, so each input is all-reduced in turn and this rank keeps its own: the same
   * result with worldSize× the traffic of a true reduce-scatter (NCCL's would be native).
   */
  async reduceScatter(output: Tensor, inputs: Tensor[], op: ReduceOp = 'sum', timeoutMs = 0): Promise<void> {
    if (inputs.length !== this.worldSize) throw new DistError(`reduce-scatter: ${inputs.length} inputs for a group of ${this.worldSize}`);
    for (let r = 0; r < this.worldSize; r++) {
      const buf = inputs[r].clone();
      try {
        await this.allReduce(buf, op, timeoutMs);
        if (r === this.rank) output.copy_(buf);
      } finally {
        buf.dispose();
      }
    }
  }

  /** Waits until every rank has called barrier(). */
  async barrier(timeoutMs = 0): Promise<void> {
    await settled(native.distCollective(this.live('barrier'), 'barrier', null, null, timeoutMs));
  }

  /**
   * A reducer that sums the gradients of `params` over the ranks while backward runs (see
   * GradReducer). Every rank must create it with the same parameters in the same order.
   */
  gradReducer(params: Tensor[], o: { bucketBytes?: number; firstBucketBytes?: number } = {}): GradReducer {
    const bucketBytes = o.bucketBytes ?? 25 * 1024 * 1024;
    const firstBucketBytes = o.firstBucketBytes ?? Math.min(bucketBytes, 1024 * 1024);
    for (const [i, p] of params.entries()) if (p.isDisposed) throw new DistError(`gradient reducer: parameter ${i} is disposed`);
    const id = native.distReducerCreate(
      this.live('gradient reducer'),
      params.map((p) => p._h),
      bucketBytes,
      firstBucketBytes,
    );
    return new GradReducer(id, params);
  }

  /** Leaves the group: stops the heartbeat and closes the connections. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    native.distDestroy(this.id);
  }
}

/**
 * Gradient all-reduce overlapped with backward, as DDP's Reducer does it: the parameters are split
 * into buckets in reverse order (≤ 1 MiB for the first, then ≤ bucketBytes), a hook on each
 * parameter's gradient accumulator counts it ready, and each complete bucket's sum starts on the
 * process group's threads while backward goes on. Buckets start in the same order on every rank.
 *
 *   arm()      before the backward whose gradients are summed (the last micro-batch of a step)
 *   finish()   after it: starts the buckets that did not fill, waits, and writes the sums into
 *              the gradients; resolves to the number of buckets that started during backward and
 *              the parameters that had no gradient on this rank (they got zeros)
 *
 * When an armed backward starts, the parameters it cannot reach (an expert no token chose) are
 * ready at once, as DDP's find_unused_parameters does, so they do not hold back later buckets.
 */
export class GradReducer {
  private destroyed = false;
  /** Parameter indices per bucket, in the order they are all-reduced. */
  readonly buckets: number[][];

  /** @internal */
  constructor(
    private readonly id: number,
    readonly params: Tensor[],
  ) {
    this.buckets = native.distReducerBuckets(id);
  }

  private live(what: string): number {
    if (this.destroyed) throw new DistError(`gradient reducer ${what}: it was destroyed`);
    return this.id;
  }

  arm(): void {
    native.distReducerArm(this.live('arm'));
  }

  finish(): Promise<{ started: number; filled: number[] }> {
    return settled(native.distReducerFinish(this.live('finish')));
  }

  /** Removes the hooks. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    native.distReducerDestroy(this.id);
  }
}

/** The backends this addon was built with ('gloo', and 'nccl' with a CUDA libtorch). */
export function distBackends(): string[] {
  return native.distBackends();
}
