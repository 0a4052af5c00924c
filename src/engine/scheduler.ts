/**
 * The serving engine: continuous batching over a paged KV cache with a prefix cache, as nano-vllm's
 * and vLLM's `add_request` / `step` loops. Requests (token ids and their own settings) join and
 * leave at any step; each step
 *
 *   1. admits waiting requests in arrival order while the batch and the pool have room, first
 *      matching the longest cached prefix of full blocks (in memory, else on disk);
 *   2. runs one forward for every request that needs one token (decoding, or a prompt whose every
 *      block but its last token was cached), left-padded over the pool (kv-pool.ts);
 *   3. runs one chunk of at most `prefillChunk` prompt tokens of the oldest request still in its
 *      prefill, so a long prompt never stalls the others' decoding for more than a chunk;
 *   4. samples each finished row with its own sampler (row-sampler.ts), checks its stops, and
 *      registers every block that became full in the prefix cache.
 * When a step needs a block and none is free, the most recently admitted request is preempted: its
 * blocks go back (the full ones stay cached), and it waits at the head of the queue to be
 * recomputed from its prompt and the tokens it already generated — its output does not change.
 *
 * The prefix cache's traps: only a prefix identical from token 0 (in the same namespace) hits;
 * a prompt that is entirely cached still computes its last token, for its logits — its key is
 * already in the cached block, so that write goes to the scratch slot and the shared block is
 * never written; a freed block keeps its hash until it is reused (block-manager.ts).
 *
 * It knows token ids, the model's forward, blocks and samplers; not text, HTTP or accounts.
 */
import { type Device, type Tensor, inferenceMode, tensor, tidy } from '../core/index.ts';
import type { DeepSeekV3 } from '../model/transformer.ts';
import { BlockManager, blockHash, rootHash } from './block-manager.ts';
import { DiskCache } from './disk-cache.ts';
import { KVPool } from './kv-pool.ts';
import { type RowChoice, type RowSampling, SpeculativeSampler } from './row-sampler.ts';
import { type Finish, StopCriteria } from './stopping.ts';

/** Restricts which ids a request may sample next (JSON mode); told each id that was sampled. */
export interface TokenConstraint {
  allowed(id: number): boolean;
  advance(id: number): void;
  /** Whether the output is complete (the request then stops with 'stop'). */
  readonly complete: boolean;
}

export interface EngineRequest {
  id: string;
  prompt: readonly number[];
  maxTokens: number;
  sampling: RowSampling;
  /** Seed of the request's random stream (default: derived from its id). */
  seed?: number;
  /** Ids that end the request (default: the model's eos). */
  eosIds?: readonly number[];
  stopSequences?: readonly (readonly number[])[];
  /** Prefix-cache namespace: only requests of the same namespace share cached blocks. */
  namespace: string;
  constraint?: TokenConstraint;
}

export type EngineFinish = 'stop' | 'length' | 'abort' | 'insufficient_system_resource';

export interface EngineEvent {
  id: string;
  /** New tokens since the last event. */
  tokens: RowChoice[];
  /** Set on the request's last event. */
  finish: EngineFinish | null;
  /** Prompt ids served from the prefix cache (set on the first event). */
  cachedTokens?: number;
  promptTokens?: number;
  /** Why the request ended early (insufficient_system_resource). */
  message?: string;
}

export interface EngineOptions {
  /** Positions per KV block and prefix-cache unit (DeepSeek: 64). */
  blockSize?: number;
  /** KV blocks in the pool (memory budget), scratch included. */
  numBlocks?: number;
  /** Most requests decoding at once. */
  maxBatch?: number;
  /** Most prompt tokens computed per step for one request. */
  prefillChunk?: number;
  /** Names the model in the prefix cache's hashes (e.g. a checkpoint fingerprint). */
  cacheSalt?: string;
  /** Keep full blocks on disk under this folder, within diskBudgetBytes. */
  diskDir?: string;
  diskBudgetBytes?: number;
  /** Cache full blocks at all (default true). */
  prefixCaching?: boolean;
  /**
   * Speculative decoding with the model's first MTP module (default: on when the model has one):
   * each decoding step verifies the module's draft of the next-but-one token and keeps it when the
   * main model agrees (exactly the main model's distribution either way). Not for constrained rows.
   */
  speculative?: boolean;
}

interface Seq {
  readonly req: EngineRequest;
  readonly promptLength: number;
  /** Prompt then generated ids. */
  readonly tokens: number[];
  readonly sampler: SpeculativeSampler;
  /** The MTP module's proposal for the token after the pending one, with the distribution it was drawn from. */
  draft: { token: number; q: Float64Array } | null;
  readonly stop: StopCriteria;
  table: number[];
  /** Positions whose keys are in the pool. */
  computed: number;
  /** Positions held by shared cached blocks (never written). */
  shared: number;
  /** Hash of each full block of the table so far (chained). */
  hashes: string[];
  generated: number[];
  /** Not yet reported. */
  outbox: RowChoice[];
  cachedTokens: number;
  reported: boolean;
  admitted: number;
}

export interface EngineStats {
  running: number;
  waiting: number;
  blocksInUse: number;
  blocksTotal: number;
  blocksCached: number;
  diskBlocks: number;
  promptTokens: number;
  cachedPromptTokens: number;
  generatedTokens: number;
  preemptions: number;
  steps: number;
  /** Drafts the MTP module proposed and the main model verified, and how many it kept. */
  draftsProposed: number;
  draftsAccepted: number;
}

export class Engine {
  readonly blockSize: number;
  readonly maxBatch: number;
  readonly prefillChunk: number;
  private readonly model: DeepSeekV3;
  private readonly pool: KVPool;
  private readonly blocks: BlockManager;
  private readonly disk: DiskCache | null;
  private readonly salt: string;
  private readonly caching: boolean;
  private readonly maxPositions: number;
  private readonly eos: number[];
  private readonly waiting: Seq[] = [];
  private readonly running: Seq[] = [];
  private readonly finished: EngineEvent[] = [];
  private admissions = 0;
  private readonly totals = { promptTokens: 0, cachedPromptTokens: 0, generatedTokens: 0, preemptions: 0, steps: 0, draftsProposed: 0, draftsAccepted: 0 };
  /** Speculative decoding is on (the model has an MTP module and it was not turned off). */
  readonly speculative: boolean;

  constructor(model: DeepSeekV3, o: EngineOptions = {}) {
    this.model = model;
    this.blockSize = o.blockSize ?? 64;
    this.maxBatch = o.maxBatch ?? 16;
    this.prefillChunk = o.prefillChunk ?? 256;
    if (!Number.isInteger(this.maxBatch) || this.maxBatch < 1) throw new RangeError(`maxBatch must be a positive integer, got ${this.maxBatch}`);
    if (!Number.isInteger(this.prefillChunk) || this.prefillChunk < 1)
      throw new RangeError(`prefillChunk must be a positive integer, got ${this.prefillChunk}`);
    this.maxPositions = model.config.max_position_embeddings;
    const numBlocks = o.numBlocks ?? 1 + this.maxBatch * Math.ceil(this.maxPositions / this.blockSize);
    this.pool = new KVPool(model, { numBlocks, blockSize: this.blockSize });
    this.blocks = new BlockManager(numBlocks, this.blockSize);
    this.speculative = (o.speculative ?? true) && this.pool.mtpLayer !== null;
    // a cache written without speculation holds no MTP keys: it is another cache
    this.salt = `${o.cacheSalt ?? ''};${this.pool.layout()};${this.speculative ? 'mtp' : ''}`;
    this.caching = o.prefixCaching ?? true;
    this.disk = this.caching && o.diskDir ? new DiskCache(o.diskDir, this.salt, o.diskBudgetBytes ?? 1 << 30) : null;
    const e = model.config.eos_token_id;
    this.eos = e === null || e === undefined ? [] : Array.isArray(e) ? e : [e];
  }

  /** Requests admitted and not finished, and those waiting. */
  get stats(): EngineStats {
    return {
      running: this.running.length,
      waiting: this.waiting.length,
      blocksInUse: this.blocks.inUse,
      blocksTotal: this.blocks.numBlocks - 1,
      blocksCached: this.blocks.cached,
      diskBlocks: this.disk?.size ?? 0,
      ...this.totals,
    };
  }

  /** Whether a step has anything to do. */
  get busy(): boolean {
    return this.running.length > 0 || this.waiting.length > 0 || this.finished.length > 0;
  }

  /** Queues a request. Throws RangeError when it can never run (too long for the model or the pool). */
  add(req: EngineRequest): void {
    const V = this.model.config.vocab_size;
    if (req.prompt.length === 0) throw new RangeError('the prompt is empty; it needs at least one id');
    for (const id of req.prompt) if (!Number.isInteger(id) || id < 0 || id >= V) throw new RangeError(`prompt id ${id} is outside the vocabulary [0, ${V})`);
    if (!Number.isInteger(req.maxTokens) || req.maxTokens < 1) throw new RangeError(`maxTokens must be a positive integer, got ${req.maxTokens}`);
    const total = req.prompt.length + req.maxTokens;
    if (total > this.maxPositions)
      throw new RangeError(
        `the prompt (${req.prompt.length} tokens) plus max_tokens (${req.maxTokens}) is ${total} positions; the model has ${this.maxPositions}`,
      );
    const need = Math.ceil(total / this.blockSize);
    if (need > this.blocks.numBlocks - 1)
      throw new RangeError(
        `the request needs ${need} KV blocks of ${this.blockSize}; the pool has ${this.blocks.numBlocks - 1}: lower max_tokens or raise the pool size`,
      );
    const eos = req.eosIds ? [...req.eosIds] : this.eos;
    this.waiting.push({
      req,
      promptLength: req.prompt.length,
      tokens: [...req.prompt],
      sampler: new SpeculativeSampler(req.sampling, req.seed ?? req.id),
      draft: null,
      stop: new StopCriteria({ eosIds: eos, stopSequences: req.stopSequences, maxNewTokens: req.maxTokens }),
      table: [],
      computed: 0,
      shared: 0,
      hashes: [],
      generated: [],
      outbox: [],
      cachedTokens: 0,
      reported: false,
      admitted: -1,
    });
  }

  /** Ends a request now (its blocks go back); its last event says 'abort'. A no-op for unknown ids. */
  abort(id: string): void {
    const w = this.waiting.findIndex((s) => s.req.id === id);
    if (w >= 0) {
      const [s] = this.waiting.splice(w, 1);
      this.release(s);
      this.finished.push(this.event(s, 'abort'));
      return;
    }
    const r = this.running.findIndex((s) => s.req.id === id);
    if (r >= 0) this.finish(r, 'abort');
  }

  /** One scheduling step; returns the events of every request that produced tokens or ended. */
  step(): EngineEvent[] {
    this.totals.steps++;
    this.admit();
    const single = this.running.filter((s) => s.tokens.length - s.computed === 1);
    const prefill = this.running.find((s) => s.tokens.length - s.computed > 1) ?? null;
    const wasTraining = this.model.training;
    if (wasTraining) this.model.eval();
    try {
      if (prefill) this.runPrefill(prefill);
      const width = this.speculative ? 2 : 1;
      // a later row's reservation may preempt an earlier one: keep only the rows still running
      const decoding = single.filter((s) => this.running.includes(s) && this.reserve(s, width)).filter((s) => this.running.includes(s));
      if (decoding.length) {
        if (this.speculative) this.runSpeculative(decoding);
        else this.runSingles(decoding);
      }
    } finally {
      if (wasTraining) this.model.train(true);
    }
    const out = this.finished.splice(0);
    for (const s of this.running) if (s.outbox.length) out.push(this.event(s, null));
    return out;
  }

  /** Writes every cached block to the disk cache (it is also written as blocks fill). */
  flush(): number {
    if (!this.disk) return 0;
    let n = 0;
    for (const { hash, block } of this.blocks.entries()) {
      if (this.disk.has(hash)) continue;
      this.disk.save(hash, this.blocks.idsOf(block)!, this.pool.readBlock(block));
      n++;
    }
    return n;
  }

  dispose(): void {
    this.pool.dispose();
  }

  private event(s: Seq, finish: EngineFinish | null, message?: string): EngineEvent {
    const e: EngineEvent = { id: s.req.id, tokens: s.outbox.splice(0), finish };
    if (!s.reported) {
      e.cachedTokens = s.cachedTokens;
      e.promptTokens = s.promptLength;
      s.reported = true;
    }
    if (message) e.message = message;
    return e;
  }

  private admit(): void {
    while (this.waiting.length && this.running.length < this.maxBatch) {
      const s = this.waiting[0];
      const first = s.admitted < 0;
      if (s.computed === 0) this.matchPrefix(s);
      // the rest of the sequence's blocks now, so that its prefill cannot run out halfway
      const need = Math.ceil(s.tokens.length / this.blockSize) - s.table.length;
      if (need > this.blocks.available && this.running.length > 0) {
        // wait for blocks to come back, holding none meanwhile: a waiting request must never starve a running one
        this.release(s);
        return;
      }
      if (!this.grow(s, need)) {
        this.release(s);
        return;
      }
      this.waiting.shift();
      s.admitted = this.admissions++;
      if (first) {
        this.totals.promptTokens += s.promptLength;
        this.totals.cachedPromptTokens += s.cachedTokens;
      }
      this.running.push(s);
    }
  }

  /** Holds the longest run of cached full blocks of the sequence's ids, leaving at least its last id to compute. */
  private matchPrefix(s: Seq): void {
    if (!this.caching) return;
    const bs = this.blockSize;
    const full = Math.floor(s.tokens.length / bs);
    let parent = rootHash(s.req.namespace, this.salt);
    let j = 0;
    for (; j < full; j++) {
      const ids = s.tokens.slice(j * bs, (j + 1) * bs);
      const hash = blockHash(parent, ids);
      let b = this.blocks.lookup(hash, ids);
      if (b === null && this.disk?.has(hash)) b = this.fromDisk(hash, ids);
      if (b === null) break;
      s.table.push(b);
      s.hashes.push(hash);
      parent = hash;
    }
    s.shared = j * bs;
    s.computed = Math.min(s.shared, s.tokens.length - 1);
    if (s.admitted < 0) s.cachedTokens = Math.min(s.shared, s.promptLength);
  }

  private fromDisk(hash: string, ids: readonly number[]): number | null {
    const d = this.disk!.load(hash);
    if (!d || d.ids.length !== ids.length || d.ids.some((v, i) => v !== ids[i])) return null;
    const b = this.blocks.allocate();
    if (b === null) return null;
    try {
      this.pool.writeBlock(b, d.buffers);
    } catch {
      this.blocks.release(b);
      return null;
    }
    this.blocks.register(b, hash, ids);
    return b;
  }

  /** Adds `n` blocks to the sequence's table; false (nothing added) when the pool cannot give them. */
  private grow(s: Seq, n: number): boolean {
    const got: number[] = [];
    for (let i = 0; i < n; i++) {
      const b = this.blocks.allocate();
      if (b === null) {
        for (const x of got) this.blocks.release(x);
        return false;
      }
      got.push(b);
    }
    s.table.push(...got);
    return true;
  }

  /** Makes room for `n` more positions of a running sequence, preempting newer ones if needed; false if it was itself ended. */
  private reserve(s: Seq, n: number): boolean {
    const need = Math.ceil((s.computed + n) / this.blockSize) - s.table.length;
    if (need <= 0) return true;
    while (!this.grow(s, need)) {
      const victim = this.running.filter((x) => x !== s).sort((a, b) => b.admitted - a.admitted)[0];
      if (!victim) {
        this.finish(this.running.indexOf(s), 'insufficient_system_resource', 'the KV cache has no room left for this request; retry later or lower max_tokens');
        return false;
      }
      this.preempt(victim);
    }
    return true;
  }

  private preempt(s: Seq): void {
    this.running.splice(this.running.indexOf(s), 1);
    this.release(s);
    this.waiting.unshift(s);
    this.totals.preemptions++;
  }

  /** Gives back every block of the sequence and resets its progress (the tokens stay). */
  private release(s: Seq): void {
    for (const b of s.table) this.blocks.release(b);
    s.table = [];
    s.hashes = [];
    s.computed = 0;
    s.shared = 0;
    s.draft = null;
  }

  private finish(index: number, reason: EngineFinish, message?: string): void {
    const [s] = this.running.splice(index, 1);
    this.release(s);
    this.finished.push(this.event(s, reason, message));
  }

  /** The slot each new position writes: the scratch slot 0 for positions of shared cached blocks. */
  private slotsFor(s: Seq, from: number, n: number): number[] {
    const out: number[] = [];
    for (let p = from; p < from + n; p++) out.push(p < s.shared ? 0 : this.pool.slot(s.table, p));
    return out;
  }

  private runPrefill(s: Seq): void {
    if (this.speculative) {
      this.runPrefillMtp(s);
      return;
    }
    const n = Math.min(s.tokens.length - s.computed, this.prefillChunk);
    const start = s.computed;
    const ends = start + n === s.tokens.length;
    const logits = inferenceMode(() =>
      tidy(() => {
        const cache = this.pool.gather([s.table], [start], start, n);
        const ids = tensor(Int32Array.from(s.tokens.slice(start, start + n)), { shape: [1, n], dtype: 'int64', device: this.pool.device }); // (1, n)
        const out = this.model.forward(ids, { startPos: start, cache, mla: 'absorbed' });
        this.pool.scatter(cache, start, this.slotsFor(s, start, n));
        return ends
          ? (out.logits
              .narrow(1, n - 1, 1)
              .reshape([-1])
              .float()
              .toTypedArray() as Float32Array)
          : null; // (V)
      }),
    );
    s.computed += n;
    this.registerFull(s);
    if (logits) this.sampleRow(s, logits);
  }

  private runSingles(rows: Seq[]): void {
    const B = rows.length;
    const width = Math.max(...rows.map((s) => s.computed));
    const V = this.model.config.vocab_size;
    const all = inferenceMode(() =>
      tidy(() => {
        const device = this.pool.device;
        const cache = this.pool.gather(
          rows.map((s) => s.table),
          rows.map((s) => s.computed),
          width,
          1,
        );
        const ids = tensor(Int32Array.from(rows.map((s) => s.tokens[s.computed])), { shape: [B, 1], dtype: 'int64', device }); // (B, 1)
        const positions = tensor(Int32Array.from(rows.map((s) => s.computed)), { shape: [B, 1], dtype: 'int64', device }); // (B, 1)
        const keyPadding = keyPaddingOf(rows, width, 1, device); // (B, width + 1) or undefined
        const out = this.model.forward(ids, { startPos: width, cache, mla: 'absorbed', positions, ...(keyPadding ? { keyPadding } : {}) });
        this.pool.scatter(
          cache,
          width,
          rows.flatMap((s) => this.slotsFor(s, s.computed, 1)),
        );
        return out.logits.reshape([B, V]).float().toTypedArray() as Float32Array; // (B·V)
      }),
    );
    rows.forEach((s, r) => {
      s.computed += 1;
      this.registerFull(s);
      this.sampleRow(s, all.subarray(r * V, (r + 1) * V));
    });
  }

  /** Registers (and writes to disk) each block of the sequence that is now full. */
  private registerFull(s: Seq): void {
    if (!this.caching) return;
    const bs = this.blockSize;
    while (s.hashes.length < Math.floor(s.computed / bs)) {
      const j = s.hashes.length;
      const parent = j === 0 ? rootHash(s.req.namespace, this.salt) : s.hashes[j - 1];
      const ids = s.tokens.slice(j * bs, (j + 1) * bs);
      const hash = blockHash(parent, ids);
      s.hashes.push(hash);
      if (this.blocks.register(s.table[j], hash, ids) && this.disk && !this.disk.has(hash)) this.disk.save(hash, ids, this.pool.readBlock(s.table[j]));
    }
  }

  /**
   * A prefill chunk with the MTP module: its keys at the chunk's positions i need t_{i+1}, known for
   * every position but the last of the sequence — whose next token is sampled first; the module's
   * logits there give the first draft.
   */
  private runPrefillMtp(s: Seq): void {
    const n = Math.min(s.tokens.length - s.computed, this.prefillChunk);
    const start = s.computed;
    const ends = start + n === s.tokens.length;
    const mtpLayer = this.pool.mtpLayer!;
    let finish: Finish | null = null;
    inferenceMode(() =>
      tidy(() => {
        const device = this.pool.device;
        const cache = this.pool.gather([s.table], [start], start, n);
        const ids = tensor(Int32Array.from(s.tokens.slice(start, start + n)), { shape: [1, n], dtype: 'int64', device }); // (1, n)
        const out = this.model.forward(ids, { startPos: start, cache, mla: 'absorbed' });
        if (ends) {
          const logits = out.logits
            .narrow(1, n - 1, 1)
            .reshape([-1])
            .float()
            .toTypedArray() as Float32Array; // (V)
          finish = this.emit(s, s.sampler.choose(logits, this.allowedOf(s)));
        }
        const next = tensor(Int32Array.from(s.tokens.slice(start + 1, start + n + 1)), { shape: [1, n], dtype: 'int64', device }); // (1, n)
        const q = this.model.mtpStep(out.hidden, next, { startPos: start, cache: cache.layers[mtpLayer] }); // (1, n, V)
        if (ends && !finish && !s.req.constraint)
          this.propose(
            s,
            q
              .narrow(1, n - 1, 1)
              .reshape([-1])
              .float()
              .toTypedArray() as Float32Array,
          );
        this.pool.scatter(cache, start, this.slotsFor(s, start, n));
      }),
    );
    s.computed += n;
    this.registerFull(s);
    if (finish) this.finish(this.running.indexOf(s), (finish as Finish).reason);
  }

  /** Draws the MTP module's draft for a row from its logits. */
  private propose(s: Seq, logits: Float32Array): void {
    const q = s.sampler.distribution(logits);
    s.draft = { token: s.sampler.drawFrom(q), q };
  }

  /**
   * One speculative decoding step for rows that each have one pending token x at position c and a
   * draft d: the main model reads [x, d] at c and c + 1. The target's token at c + 1 is verified
   * against d (speculative sampling); if d stands, the logits at c + 1 give one more token, free. The
   * MTP module then reads (h_c, t_{c+1}) and, when d stood, (h_{c+1}, t_{c+2}), and drafts again. A
   * rejected d's keys (column c + 1) go to the scratch slot. Rows without a draft (constrained ones)
   * feed x twice and keep one token.
   */
  private runSpeculative(rows: Seq[]): void {
    const B = rows.length;
    const width = Math.max(...rows.map((s) => s.computed));
    const V = this.model.config.vocab_size;
    const mtpLayer = this.pool.mtpLayer!;
    const kept: number[] = new Array(B).fill(1);
    const finishes: (Finish | null)[] = new Array(B).fill(null);
    inferenceMode(() =>
      tidy(() => {
        const device = this.pool.device;
        const cache = this.pool.gather(
          rows.map((s) => s.table),
          rows.map((s) => s.computed),
          width,
          2,
        );
        const pending = rows.map((s) => s.tokens[s.computed]);
        const ids = tensor(Int32Array.from(rows.flatMap((s, r) => [pending[r], s.draft?.token ?? pending[r]])), { shape: [B, 2], dtype: 'int64', device }); // (B, 2)
        const positions = tensor(Int32Array.from(rows.flatMap((s) => [s.computed, s.computed + 1])), { shape: [B, 2], dtype: 'int64', device }); // (B, 2)
        const keyPadding = keyPaddingOf(rows, width, 2, device); // (B, width + 2) or undefined
        const out = this.model.forward(ids, { startPos: width, cache, mla: 'absorbed', positions, ...(keyPadding ? { keyPadding } : {}) });
        const all = out.logits.float().toTypedArray() as Float32Array; // (B·2·V)
        const next = new Int32Array(B * 2);
        rows.forEach((s, r) => {
          const at0 = all.subarray(r * 2 * V, (r * 2 + 1) * V);
          const at1 = all.subarray((r * 2 + 1) * V, (r * 2 + 2) * V);
          let first: RowChoice;
          let accepted = false;
          if (s.draft) {
            const v = s.sampler.verify(s.sampler.distribution(at0), s.draft.token, s.draft.q);
            accepted = v.accepted;
            first = s.sampler.describe(at0, v.token);
            this.totals.draftsProposed++;
            if (accepted) this.totals.draftsAccepted++;
          } else first = s.sampler.choose(at0, this.allowedOf(s));
          s.draft = null;
          finishes[r] = this.emit(s, first);
          next[r * 2] = first.token;
          next[r * 2 + 1] = first.token;
          if (accepted && !finishes[r]) {
            const second = s.sampler.choose(at1);
            finishes[r] = this.emit(s, second);
            next[r * 2 + 1] = second.token;
            kept[r] = 2;
          }
        });
        const q = this.model.mtpStep(out.hidden, tensor(next, { shape: [B, 2], dtype: 'int64', device }), {
          startPos: width,
          cache: cache.layers[mtpLayer],
          positions,
          ...(keyPadding ? { keyPadding } : {}),
        }); // (B, 2, V)
        const qAll = q.float().toTypedArray() as Float32Array; // (B·2·V)
        rows.forEach((s, r) => {
          if (finishes[r] || s.req.constraint) return;
          const at = (r * 2 + kept[r] - 1) * V;
          this.propose(s, qAll.subarray(at, at + V));
        });
        this.pool.scatter(
          cache,
          width,
          rows.flatMap((s, r) => [this.slotsFor(s, s.computed, 1)[0], kept[r] === 2 ? this.slotsFor(s, s.computed + 1, 1)[0] : 0]),
        );
      }),
    );
    rows.forEach((s, r) => {
      s.computed += kept[r];
      this.registerFull(s);
    });
    rows.forEach((s, r) => {
      const f = finishes[r];
      if (f) this.finish(this.running.indexOf(s), f.reason);
    });
  }

  private allowedOf(s: Seq): ((id: number) => boolean) | undefined {
    const c = s.req.constraint;
    return c ? (id) => c.allowed(id) : undefined;
  }

  /** Appends a chosen token to a row and reports whether the row is now finished (the caller ends it). */
  private emit(s: Seq, choice: RowChoice): Finish | null {
    const c = s.req.constraint;
    s.sampler.observe(choice.token);
    c?.advance(choice.token);
    s.tokens.push(choice.token);
    s.generated.push(choice.token);
    s.outbox.push(choice);
    this.totals.generatedTokens++;
    return c?.complete ? { reason: 'stop', match: null } : s.stop.check(s.generated);
  }

  private sampleRow(s: Seq, logits: Float32Array): void {
    const c = s.req.constraint;
    const choice = s.sampler.choose(logits, c ? (id) => c.allowed(id) : undefined);
    s.sampler.observe(choice.token);
    c?.advance(choice.token);
    s.tokens.push(choice.token);
    s.generated.push(choice.token);
    s.outbox.push(choice);
    this.totals.generatedTokens++;
    const f = c?.complete ? { reason: 'stop' as const } : s.stop.check(s.generated);
    if (f) this.finish(this.running.indexOf(s), f.reason);
  }
}

/** The key padding of rows right-aligned to `width` cached columns plus `extra` new ones (true on pads), or undefined when no row is padded. */
function keyPaddingOf(rows: readonly { computed: number }[], width: number, extra: number, device: Device): Tensor | undefined {
  if (rows.every((s) => s.computed === width)) return undefined;
  const cols = width + extra;
  const pad = new Uint8Array(rows.length * cols);
  rows.forEach((s, r) => pad.fill(1, r * cols, r * cols + width - s.computed));
  return tensor(pad, { shape: [rows.length, cols], dtype: 'bool', device }); // (B, cols)
}
