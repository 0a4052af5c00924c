/**
 * The two ways to run a BatchDecoder (decoder.ts):
 *
 *   generate(model, prompts, opts)        synchronous, to the end; `onStep` sees every step;
 *   streamGenerate(model, prompts, opts)  an async iterator of steps (StepEvent) whose return value
 *                                         is the GenerateResult; it yields to the event loop between
 *                                         steps (a server keeps answering), stops with
 *                                         `signal.reason` when `signal` aborts, and frees the cache
 *                                         when the consumer stops early (break / return()).
 *
 * Rows of the result: prompt p's g-th completion is row p·G + g (G = groupSize), the layout of
 * src/data's RL prompt batches.
 *
 * This module knows token ids; not text.
 */
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { DeepSeekV3 } from '../model/transformer.ts';
import { BatchDecoder, type DecodeOptions, type GenerateResult, type StepEvent } from './decoder.ts';

export interface GenerateOptions extends DecodeOptions {
  /** Called after each step (the prefill's first ids are step 0). */
  onStep?: (e: StepEvent) => void;
}

export interface StreamOptions extends DecodeOptions {
  /** Aborting stops the generation at the next step boundary: the iterator throws signal.reason. */
  signal?: AbortSignal;
}

/** Generates completions of `prompts` (token ids) to the end. */
export function generate(model: DeepSeekV3, prompts: readonly ArrayLike<number>[], opts: GenerateOptions): GenerateResult {
  return new BatchDecoder(model, prompts, opts).run(opts.onStep);
}

/** Generates completions step by step; `for await (const step of it)`, the return value is the result. */
export async function* streamGenerate(
  model: DeepSeekV3,
  prompts: readonly ArrayLike<number>[],
  opts: StreamOptions,
): AsyncGenerator<StepEvent, GenerateResult, undefined> {
  const d = new BatchDecoder(model, prompts, opts);
  try {
    for (;;) {
      opts.signal?.throwIfAborted();
      const e = d.next();
      if (!e) break;
      yield e;
      await nextTurn(); // let I/O run between steps
    }
    opts.signal?.throwIfAborted();
    return d.result();
  } finally {
    d.dispose();
  }
}
