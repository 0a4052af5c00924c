/**
 * The sampler: one decoding step's choice of the next token of every row, from the model's raw
 * logits (B, V), entirely on the tensor side.
 *
 *   temperature 0   greedy: argmax of the processed logits (only the repetition penalty applies;
 *                   ties go to the lowest id);
 *   temperature > 0 repetition penalty → temperature → top-k → top-p (fused when both are set:
 *                   processors.ts topKTopP), then one multinomial draw per
 *                   row from softmax(processed), from the given Generator (or libtorch's global one).
 *
 * What it returns for the sampled token x of each row:
 *   logprob          log π(x) = log_softmax(raw logits)[x]: the model's own distribution at
 *                    temperature 1 with no processor — π_θ(x | prefix) as GRPO's ratio and KL
 *                    need it, whatever temperature / top-k / top-p drew x;
 *   samplingLogprob  (optional) log q(x), q = softmax(processed logits): the distribution x was
 *                    actually drawn from (0 under greedy decoding, where q is a point mass);
 *   entropy          (optional) H(π) = −Σ π log π of the same temperature-1 model distribution.
 * All are computed in the logits' dtype, at least float32.
 *
 * This module knows logits, processors and random draws; not the model, the cache or stopping.
 */
import type { Generator, Tensor } from '../core/index.ts';
import { type LogitsProcessor, type ProcessorState, applyProcessors, repetitionPenalty, temperature, topK, topKTopP, topP } from './processors.ts';

export interface SamplingOptions {
  /** 0: greedy. Default 1. */
  temperature?: number;
  /** Keep the k most likely tokens; 0 (default) keeps all. */
  topK?: number;
  /** Nucleus mass in (0, 1]; 1 (default) keeps all. */
  topP?: number;
  /** CTRL's repetition penalty (> 0); 1 (default) is off. Values > 1 discourage repeats. */
  repetitionPenalty?: number;
}

export interface SampleOutput {
  /** (B) int64 sampled ids. */
  ids: Tensor;
  /** (B) log π(x) under the raw temperature-1 distribution. */
  logprobs: Tensor;
  /** (B) log q(x) under the distribution sampled from, when asked. */
  samplingLogprobs: Tensor | null;
  /** (B) entropy of the raw temperature-1 distribution, when asked. */
  entropy: Tensor | null;
}

export interface SampleExtras {
  samplingLogprobs?: boolean;
  entropy?: boolean;
}

/** Validated sampling settings with their processors. */
/** Throws a RangeError naming the first sampling setting out of range. */
export function validateSampling(o: SamplingOptions): void {
  const temperature = o.temperature ?? 1;
  const topK = o.topK ?? 0;
  const topP = o.topP ?? 1;
  if (!(temperature >= 0) || !Number.isFinite(temperature)) throw new RangeError(`temperature must be a finite number ≥ 0 (0: greedy), got ${temperature}`);
  if (!Number.isInteger(topK) || topK < 0) throw new RangeError(`topK must be an integer ≥ 0 (0: off), got ${topK}`);
  if (!(topP > 0 && topP <= 1)) throw new RangeError(`topP must be in (0, 1] (1: off), got ${topP}`);
  const penalty = o.repetitionPenalty ?? 1;
  if (!(penalty > 0) || !Number.isFinite(penalty)) throw new RangeError(`repetitionPenalty must be a positive finite number (1: off), got ${penalty}`);
}

export class Sampler {
  readonly temperature: number;
  readonly topK: number;
  readonly topP: number;
  readonly repetitionPenalty: number;
  private readonly processors: LogitsProcessor[];
  private readonly generator: Generator | undefined;

  constructor(o: SamplingOptions = {}, generator?: Generator) {
    this.temperature = o.temperature ?? 1;
    this.topK = o.topK ?? 0;
    this.topP = o.topP ?? 1;
    this.repetitionPenalty = o.repetitionPenalty ?? 1;
    validateSampling(o);
    this.processors = [];
    if (this.repetitionPenalty !== 1) this.processors.push(repetitionPenalty(this.repetitionPenalty));
    if (this.temperature > 0) {
      if (this.temperature !== 1) this.processors.push(temperature(this.temperature));
      if (this.topK > 0 && this.topP < 1) this.processors.push(topKTopP(this.topK, this.topP));
      else if (this.topK > 0) this.processors.push(topK(this.topK));
      else if (this.topP < 1) this.processors.push(topP(this.topP));
    }
    this.generator = generator;
  }

  get greedy(): boolean {
    return this.temperature === 0;
  }

  /** Whether the sampler needs the per-row `seen` matrix (repetition penalty). */
  get needsSeen(): boolean {
    return this.repetitionPenalty !== 1;
  }

  /** The processed logits (B, V) that sampling draws from (greedy: the argmax of these). */
  process(logits: Tensor, state: ProcessorState): Tensor {
    return applyProcessors(logits, this.processors, state);
  }

  /** Chooses one token per row from raw logits (B, V). */
  sample(logits: Tensor, state: ProcessorState = { seen: null }, extras: SampleExtras = {}): SampleOutput {
    const half = logits.dtype === 'bfloat16' || logits.dtype === 'float16';
    const raw = half ? logits.float() : logits; // (B, V) at least float32
    const logp = raw.logSoftmax(-1); // (B, V) log π, temperature 1
    const processed = this.process(raw, state); // (B, V)
    let ids: Tensor; // (B, 1)
    let sampling: Tensor | null = null;
    if (this.greedy) {
      ids = processed.argmax(-1, true);
      if (extras.samplingLogprobs) sampling = ids.squeeze(1).to(raw.dtype).mul(0); // (B) log 1 = 0
    } else {
      const logq = processed.logSoftmax(-1); // (B, V)
      ids = logq.exp().multinomial(1, false, this.generator);
      if (extras.samplingLogprobs) sampling = logq.gather(1, ids).squeeze(1); // (B)
    }
    const entropy = extras.entropy ? logp.exp().mul(logp).sum(-1).neg() : null; // (B)
    return { ids: ids.squeeze(1), logprobs: logp.gather(1, ids).squeeze(1), samplingLogprobs: sampling, entropy };
  }
}
