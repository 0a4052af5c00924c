/**
 * The server's handle on the engine worker: starts the thread, sends requests and aborts, and hands
 * each request's events to its caller as an async iterator. A request whose caller stops listening
 * (the HTTP client went away) is aborted in the engine at once, which frees its batch slot and its
 * KV blocks.
 *
 * It knows the protocol and threads; not HTTP or text.
 */
import { Worker } from 'node:worker_threads';
import type { EngineEvent, EngineStats } from '../engine/scheduler.ts';
import type { FromWorker, ModelInfo, ToWorker, WireRequest, WorkerInit } from './worker-protocol.ts';

interface Pending {
  push: (e: EngineEvent | Error) => void;
}

export class EngineClient {
  private readonly worker: Worker;
  private readonly pending = new Map<string, Pending>();
  private stopWaiters: (() => void)[] = [];
  private flushWaiters: ((n: number) => void)[] = [];
  info: ModelInfo | null = null;
  stats: EngineStats | null = null;
  /** Recent decoding throughput (tokens/s over the last steps). */
  tokensPerSecond = 0;
  private failure: Error | null = null;
  readonly ready: Promise<ModelInfo>;

  constructor(init: WorkerInit) {
    this.worker = new Worker(new URL('./worker-boot.mjs', import.meta.url), { workerData: init });
    this.ready = new Promise((resolve, reject) => {
      this.worker.on('message', (m: FromWorker) => {
        if (m.type === 'ready') {
          this.info = m.info;
          this.stats = m.stats;
          resolve(m.info);
        } else if (m.type === 'fatal') {
          this.fail(new Error(m.message));
          reject(this.failure);
        } else this.onMessage(m);
      });
      this.worker.on('error', (e) => {
        this.fail(e);
        reject(e);
      });
      this.worker.on('exit', (code) => {
        if (code !== 0 && !this.failure) this.fail(new Error(`the engine worker exited with code ${code}`));
        for (const w of this.stopWaiters.splice(0)) w();
      });
    });
  }

  get failed(): Error | null {
    return this.failure;
  }

  private fail(e: Error): void {
    this.failure = e;
    for (const p of this.pending.values()) p.push(e);
    this.pending.clear();
  }

  private onMessage(m: FromWorker): void {
    if (m.type === 'events') {
      this.stats = m.stats;
      if (m.stepMs > 0 && m.tokens > 0) this.tokensPerSecond = 0.8 * this.tokensPerSecond + 0.2 * ((m.tokens * 1000) / m.stepMs);
      for (const e of m.events) {
        const p = this.pending.get(e.id);
        if (!p) continue;
        if (e.finish) this.pending.delete(e.id);
        p.push(e);
      }
    } else if (m.type === 'rejected') {
      const p = this.pending.get(m.id);
      this.pending.delete(m.id);
      p?.push(new RangeError(m.message));
    } else if (m.type === 'flushed') for (const w of this.flushWaiters.splice(0)) w(m.blocks);
    else if (m.type === 'stopped') {
      for (const w of this.stopWaiters.splice(0)) w();
    }
  }

  private send(m: ToWorker): void {
    this.worker.postMessage(m);
  }

  /** Runs a request; its events in order, the last one with `finish`. Ending the iteration early aborts it. */
  async *run(req: WireRequest): AsyncGenerator<EngineEvent> {
    if (this.failure) throw this.failure;
    const queue: (EngineEvent | Error)[] = [];
    let wake: (() => void) | null = null;
    this.pending.set(req.id, {
      push: (e) => {
        queue.push(e);
        wake?.();
      },
    });
    this.send({ type: 'add', req });
    let finished = false;
    try {
      while (true) {
        while (queue.length === 0) await new Promise<void>((r) => (wake = r));
        wake = null;
        const e = queue.shift()!;
        if (e instanceof Error) {
          finished = true;
          throw e;
        }
        if (e.finish) finished = true;
        yield e;
        if (finished) return;
      }
    } finally {
      if (!finished) {
        this.pending.delete(req.id);
        this.send({ type: 'abort', id: req.id });
      }
    }
  }

  flush(): Promise<number> {
    return new Promise((resolve) => {
      this.flushWaiters.push(resolve);
      this.send({ type: 'flush' });
    });
  }

  /** Flushes the cache to disk, frees the engine and ends the thread. */
  async stop(): Promise<void> {
    if (!this.failure) {
      await new Promise<void>((resolve) => {
        this.stopWaiters.push(resolve);
        this.send({ type: 'stop' });
      });
    }
    await this.worker.terminate();
  }
}
