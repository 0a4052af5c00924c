/**
 * BatchDecoder: one batched generation with the model's KV cache, advanced one step at a time.
 *
 *   next() #0   prefill: the P distinct prompts, left-padded (layout.ts), go through the model
 *               once, filling the cache; with groupSize G the cache, the pad mask and the last
 *               logits are expanded to the P·G rows (row p·G + g is completion g of prompt p), so a
 *               prompt is prefilled once for its whole group; then every row samples its first id;
 *   next() #k   one decoding step: the id each row sampled last goes through the model at column
 *               L + k − 1 (position column − padLeft[row]), the next ids are sampled.
 * After each step one small tensor — the sampled ids with their logprobs (and entropies) — is read
 * back, and the stop criteria run in JavaScript. Rows that finished keep being fed (their inputs
 * and outputs are ignored) until the share of finished rows in the batch reaches `compact`; then
 * the batch is compacted (cache rows, pad mask, state) to the rows still running. The generation
 * ends when every row has finished; the cache is freed then (or by dispose()).
 *
 * Each step runs in inference mode inside tidy(); a model in training mode is switched to eval mode
 * for the step (no balance loss, no expert-load accounting) and back with train(true) (so a model
 * whose submodules mixed modes comes back all in training mode). Only the cache and a few
 * (B)-sized state tensors outlive a step.
 *
 * This module knows token ids, the model's forward and its cache; not text or tasks.
 */
import { type Device, type Generator, type Tensor, inferenceMode, stack, tensor, tidy, where, zeros } from '../core/index.ts';
import type { MlaImpl } from '../model/attention.ts';
import { type DeepSeekV3, type KVCache, disposeCache } from '../model/transformer.ts';
import { repeatIndex, takeCacheRows } from './cache.ts';
import { acquireGenerator, releaseGenerator } from './generators.ts';
import { type PromptLayout, layoutTensors, leftPad } from './layout.ts';
import { Sampler, type SamplingOptions, validateSampling } from './sampler.ts';
import { type Finish, type FinishReason, StopCriteria, type StopMatch } from './stopping.ts';

export interface DecodeOptions extends SamplingOptions {
  /** Most ids generated per row. */
  maxNewTokens: number;
  /** Ids that end a row. Default: the model config's eos_token_id ([] for none). */
  eosIds?: readonly number[];
  /** Id sequences that end a row (e.g. [[8]] for `</answer>` in tinyseek tokenizers). */
  stopSequences?: readonly (readonly number[])[];
  /** Completions per prompt (GRPO's G); each prompt is prefilled once. Default 1. */
  groupSize?: number;
  /** Seeds a generator on the model's device, taken from a pool (ignored when `generator` is given). */
  seed?: number | bigint;
  /** Random stream for sampling. Default: a fresh one from `seed`, else libtorch's global one. */
  generator?: Generator;
  /** Id written in pad columns (masked, so any valid id; default the first eos id, else 0). */
  padId?: number;
  /** MLA cache form (default 'absorbed': latent + rotary key). Ignored by MHA/GQA models. */
  mla?: MlaImpl;
  /** Also return log q(x) of the distribution actually sampled from. */
  samplingLogprobs?: boolean;
  /** Also return the entropy of the temperature-1 model distribution at each step. */
  entropy?: boolean;
  /**
   * Compact the batch when this share of its rows has finished (default 0.5; false: never). Each
   * compaction copies the cache once.
   */
  compact?: number | false;
}

/** One row's new id at one step. */
export interface TokenEvent {
  /** Row index in the result (prompt p, sample g: p·G + g). */
  row: number;
  token: number;
  /** log π(token) under the temperature-1 model distribution (see sampler.ts). */
  logprob: number;
  samplingLogprob?: number;
  entropy?: number;
  /** Set when this id finished the row. */
  finish: Finish | null;
}

export interface StepEvent {
  /** Index of the new ids in their completions (0: the first generated id). */
  step: number;
  /** The rows still running at this step, each with its new id. */
  tokens: TokenEvent[];
}

export interface GenerateStats {
  /** Completions (P·G). */
  rows: number;
  /** Real prompt ids prefilled (each distinct prompt once). */
  promptTokens: number;
  /** Ids generated over all rows (finished rows' ignored steps not counted). */
  generatedTokens: number;
  /** Decoding steps after the prefill. */
  steps: number;
  /** Compactions of the batch. */
  compactions: number;
  prefillMs: number;
  decodeMs: number;
  /** generatedTokens / (prefill + decode time). */
  tokensPerSecond: number;
  /** (generatedTokens − rows) / decode time: the ids the decoding steps produced, per second. */
  decodeTokensPerSecond: number;
}

export interface GenerateResult {
  /** Per row, the generated ids, the stop id(s) included. */
  tokens: number[][];
  /** Per row, log π of each generated id under the temperature-1 model distribution. */
  logprobs: number[][];
  /** Per row, log q of each id under the distribution it was drawn from (when asked). */
  samplingLogprobs?: number[][];
  /** Per row, the entropy of the temperature-1 model distribution at each step (when asked). */
  entropies?: number[][];
  finishReason: FinishReason[];
  /** Which stop criterion ended each row (null for 'length'). */
  stoppedBy: (StopMatch | null)[];
  /** Per row, the length of its prompt. */
  promptLengths: number[];
  stats: GenerateStats;
}

function eosOf(model: DeepSeekV3): number[] {
  const e = model.config.eos_token_id;
  return e === null || e === undefined ? [] : Array.isArray(e) ? e : [e];
}

export class BatchDecoder {
  readonly rows: number;
  readonly groupSize: number;
  private readonly model: DeepSeekV3;
  private readonly sampler: Sampler;
  private readonly stop: StopCriteria;
  private readonly layout: PromptLayout;
  private readonly o: DecodeOptions;
  private readonly device: Device;
  private readonly compactAt: number;
  private readonly maxLen: number;
  // state that outlives a step (kept tensors, freed when replaced or at the end)
  private cache: KVCache | null = null;
  private keyPadding: Tensor | null = null; // (B, maxLen) bool
  private negPadLeft: Tensor | null = null; // (B, 1) int64
  private seen: Tensor | null = null; // (B, V) bool
  private last: Tensor | null = null; // (B) int64: each row's newest id
  /** Batch index → result row, for the rows in the current batch. */
  private batchRows: number[] = [];
  private column = 0;
  private step = 0;
  private finishedRows = 0;
  private disposed = false;
  /** The pooled generator of a seeded decoder, returned at the end. */
  private ownGenerator: Generator | null;
  private readonly out: { tokens: number[][]; logprobs: number[][]; sampling: number[][] | null; entropy: number[][] | null; finish: (Finish | null)[] };
  private readonly timing = { prefillMs: 0, decodeMs: 0, steps: 0, compactions: 0, generated: 0 };

  constructor(model: DeepSeekV3, prompts: readonly ArrayLike<number>[], o: DecodeOptions) {
    const c = model.config;
    this.model = model;
    this.o = o;
    this.groupSize = o.groupSize ?? 1;
    if (!Number.isInteger(this.groupSize) || this.groupSize < 1) throw new RangeError(`groupSize must be a positive integer, got ${this.groupSize}`);
    const eos = o.eosIds ? [...o.eosIds] : eosOf(model);
    this.stop = new StopCriteria({ eosIds: eos, stopSequences: o.stopSequences, maxNewTokens: o.maxNewTokens });
    const padId = o.padId ?? eos[0] ?? 0;
    if (!Number.isInteger(padId) || padId < 0 || padId >= c.vocab_size)
      throw new RangeError(`padId ${padId} is not an id of the model's vocabulary [0, ${c.vocab_size})`);
    this.layout = leftPad(prompts, padId, c.vocab_size);
    this.maxLen = this.layout.width + o.maxNewTokens;
    if (this.maxLen > c.max_position_embeddings) {
      throw new RangeError(
        `the longest prompt (${this.layout.width} ids) plus maxNewTokens (${o.maxNewTokens}) needs ${this.maxLen} positions; the model has max_position_embeddings ${c.max_position_embeddings}`,
      );
    }
    const compact = o.compact ?? 0.5;
    if (compact !== false && !(compact > 0 && compact <= 1)) throw new RangeError(`compact must be a share in (0, 1] or false, got ${compact}`);
    this.compactAt = compact === false ? Number.POSITIVE_INFINITY : compact;
    this.device = model.headWeight().device;
    validateSampling(o); // before a generator is taken from the pool
    this.ownGenerator = !o.generator && o.seed !== undefined ? acquireGenerator(o.seed, this.device) : null;
    this.sampler = new Sampler(o, o.generator ?? this.ownGenerator ?? undefined);
    this.rows = this.layout.rows * this.groupSize;
    const perRow = (): number[][] => Array.from({ length: this.rows }, () => []);
    this.out = {
      tokens: perRow(),
      logprobs: perRow(),
      sampling: o.samplingLogprobs ? perRow() : null,
      entropy: o.entropy ? perRow() : null,
      finish: new Array<Finish | null>(this.rows).fill(null),
    };
  }

  /** Whether every row has finished (or the decoder was disposed). */
  get done(): boolean {
    return this.disposed || this.finishedRows === this.rows;
  }

  /** Runs the prefill (first call) or one decoding step; null once every row has finished. */
  next(): StepEvent | null {
    if (this.done) return null;
    const t0 = performance.now();
    const first = this.cache === null;
    let event: StepEvent;
    try {
      event = this.inStep(() => (first ? this.prefill() : this.decode()));
    } catch (e) {
      this.dispose();
      throw e;
    }
    const ms = performance.now() - t0;
    if (first) this.timing.prefillMs += ms;
    else {
      this.timing.decodeMs += ms;
      this.timing.steps++;
    }
    if (this.done) this.dispose();
    return event;
  }

  /** Runs to the end (calling onStep after each step) and returns the result. */
  run(onStep?: (e: StepEvent) => void): GenerateResult {
    try {
      for (let e = this.next(); e; e = this.next()) onStep?.(e);
    } finally {
      this.dispose();
    }
    return this.result();
  }

  /** The completions; every row must have finished. */
  result(): GenerateResult {
    if (this.finishedRows !== this.rows) throw new Error(`generation is not finished: ${this.rows - this.finishedRows} of ${this.rows} rows are still running`);
    const { prefillMs, decodeMs, steps, compactions, generated } = this.timing;
    const promptTokens = this.layout.lengths.reduce((a, b) => a + b, 0);
    const promptLengths = Array.from({ length: this.rows }, (_, r) => this.layout.lengths[Math.floor(r / this.groupSize)]);
    const finish = this.out.finish as Finish[];
    return {
      tokens: this.out.tokens,
      logprobs: this.out.logprobs,
      ...(this.out.sampling ? { samplingLogprobs: this.out.sampling } : {}),
      ...(this.out.entropy ? { entropies: this.out.entropy } : {}),
      finishReason: finish.map((f) => f.reason),
      stoppedBy: finish.map((f) => f.match),
      promptLengths,
      stats: {
        rows: this.rows,
        promptTokens,
        generatedTokens: generated,
        steps,
        compactions,
        prefillMs,
        decodeMs,
        tokensPerSecond: generated / Math.max((prefillMs + decodeMs) / 1000, 1e-9),
        decodeTokensPerSecond: (generated - this.rows) / Math.max(decodeMs / 1000, 1e-9),
      },
    };
  }

  /** Frees the cache and state tensors (safe to call twice). Unfinished rows stay unfinished. */
  dispose(): void {
    if (this.cache) disposeCache(this.cache);
    for (const t of [this.keyPadding, this.negPadLeft, this.seen, this.last]) t?.dispose();
    this.cache = this.keyPadding = this.negPadLeft = this.seen = this.last = null;
    if (this.ownGenerator) releaseGenerator(this.ownGenerator);
    this.ownGenerator = null;
    this.disposed = true;
  }

  // ---- steps ------------------------------------------------------------------------------------

  private inStep<T>(fn: () => T): T {
    const wasTraining = this.model.training;
    if (wasTraining) this.model.eval();
    try {
      return inferenceMode(() => tidy(fn));
    } finally {
      if (wasTraining) this.model.train(true);
    }
  }

  /** Keeps `next` as the new value of a state slot, freeing the old one. */
  private static swap(old: Tensor | null, next: Tensor | null): Tensor | null {
    if (old && old !== next) old.dispose();
    return next ? next.keep() : null;
  }

  private prefill(): StepEvent {
    const P = this.layout.rows;
    const L = this.layout.width;
    const V = this.model.config.vocab_size;
    const t = layoutTensors(this.layout, this.maxLen, this.device);
    let cache = this.model.createCache(P, this.maxLen, this.o.mla ?? 'absorbed');
    this.cache = cache; // freed by dispose() if the forward throws
    const out = this.model.forward(t.ids, { cache, startPos: 0, positions: t.positions ?? undefined, keyPadding: t.keyPadding ?? undefined, logits: 'last' });
    let logits = out.logits.select(1, 0); // (P, V)
    let seen: Tensor | null = null;
    if (this.sampler.needsSeen) {
      // pads must not count as seen: their columns take the row's last (real) id instead
      const ids = t.keyPadding ? where(t.keyPadding.narrow(1, 0, L), t.ids.narrow(1, L - 1, 1), t.ids) : t.ids; // (P, L)
      seen = zeros([P, V], { dtype: 'bool', device: this.device }).scatter(1, ids, 1); // (P, V)
    }
    let keyPadding = t.keyPadding;
    let negPadLeft = t.negPadLeft;
    if (this.groupSize > 1) {
      const idx = repeatIndex(P, this.groupSize, logits); // (P·G)
      cache = takeCacheRows(cache, idx);
      this.cache = cache;
      logits = logits.indexSelect(0, idx); // (P·G, V)
      keyPadding = keyPadding?.indexSelect(0, idx) ?? null; // (P·G, maxLen)
      negPadLeft = negPadLeft?.indexSelect(0, idx) ?? null; // (P·G, 1)
      seen = seen?.indexSelect(0, idx) ?? null; // (P·G, V)
    }
    this.keyPadding = BatchDecoder.swap(this.keyPadding, keyPadding);
    this.negPadLeft = BatchDecoder.swap(this.negPadLeft, negPadLeft);
    this.batchRows = Array.from({ length: this.rows }, (_, r) => r);
    this.column = L;
    return this.sampleAndRecord(logits, seen);
  }

  private decode(): StepEvent {
    const B = this.batchRows.length;
    const col = this.column;
    const positions = this.negPadLeft ? this.negPadLeft.add(col) : undefined; // (B, 1) column − padLeft
    const out = this.model.forward(this.last!.view([B, 1]), { cache: this.cache, startPos: col, positions, keyPadding: this.keyPadding ?? undefined });
    this.column = col + 1;
    return this.sampleAndRecord(out.logits.select(1, 0), this.seen); // logits (B, V)
  }

  /** Samples each row's next id from logits (B, V), reads the ids back, applies the stop rules. */
  private sampleAndRecord(logits: Tensor, seen: Tensor | null): StepEvent {
    const s = this.sampler.sample(logits, { seen }, { samplingLogprobs: this.o.samplingLogprobs, entropy: this.o.entropy });
    const cols = [s.ids.to('float64'), s.logprobs.to('float64')]; // ids < 2^53: exact in float64
    if (s.samplingLogprobs) cols.push(s.samplingLogprobs.to('float64'));
    if (s.entropy) cols.push(s.entropy.to('float64'));
    const host = stack(cols).toTypedArray() as Float64Array; // (k, B): the step's one readback
    const B = this.batchRows.length;
    this.last = BatchDecoder.swap(this.last, s.ids);
    this.seen = BatchDecoder.swap(this.seen, seen ? seen.scatter(1, s.ids.unsqueeze(1), 1) : null);

    const step = this.step++;
    const tokens: TokenEvent[] = [];
    const running: number[] = []; // batch indices still running after this step
    for (let b = 0; b < B; b++) {
      const row = this.batchRows[b];
      if (this.out.finish[row]) continue; // finished earlier, not compacted away yet
      const token = host[b];
      const ev: TokenEvent = { row, token, logprob: host[B + b], finish: null };
      this.out.tokens[row].push(token);
      this.out.logprobs[row].push(ev.logprob);
      let k = 2;
      if (this.out.sampling) {
        ev.samplingLogprob = host[k++ * B + b];
        this.out.sampling[row].push(ev.samplingLogprob);
      }
      if (this.out.entropy) {
        ev.entropy = host[k++ * B + b];
        this.out.entropy[row].push(ev.entropy);
      }
      this.timing.generated++;
      const f = this.stop.check(this.out.tokens[row]);
      if (f) {
        ev.finish = f;
        this.out.finish[row] = f;
        this.finishedRows++;
      } else running.push(b);
      tokens.push(ev);
    }
    if (running.length > 0 && running.length < B && (B - running.length) / B >= this.compactAt) this.compactTo(running);
    return { step, tokens };
  }

  /** Keeps only batch rows `keep` in the cache and the state. */
  private compactTo(keep: number[]): void {
    const idx = tensor(Int32Array.from(keep), { dtype: 'int64', device: this.device }); // (B')
    this.cache = takeCacheRows(this.cache!, idx);
    this.keyPadding = BatchDecoder.swap(this.keyPadding, this.keyPadding?.indexSelect(0, idx) ?? null);
    this.negPadLeft = BatchDecoder.swap(this.negPadLeft, this.negPadLeft?.indexSelect(0, idx) ?? null);
    this.seen = BatchDecoder.swap(this.seen, this.seen?.indexSelect(0, idx) ?? null);
    this.last = BatchDecoder.swap(this.last, this.last!.indexSelect(0, idx));
    this.batchRows = keep.map((b) => this.batchRows[b]);
    this.timing.compactions++;
  }
}
