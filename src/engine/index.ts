/**
 * tinyseek's generation engine: batched sampling from a DeepSeekV3 model with its KV cache —
 * left-padded prompts of different lengths, group sharing (one prefill per prompt for G
 * completions), logits processors and a seeded sampler, stop criteria, per-token logprobs of the
 * temperature-1 model distribution, synchronous and streaming interfaces. The public surface only.
 *
 * The engine knows token ids, never text: tokenizing and decoding belong to the caller.
 */
export { generate, streamGenerate, type GenerateOptions, type StreamOptions } from './generate.ts';
export { BatchDecoder, type DecodeOptions, type GenerateResult, type GenerateStats, type StepEvent, type TokenEvent } from './decoder.ts';
export { Sampler, type SamplingOptions, type SampleOutput, type SampleExtras } from './sampler.ts';
export { type LogitsProcessor, type ProcessorState, temperature, topK, topP, topKTopP, repetitionPenalty, applyProcessors } from './processors.ts';
export { StopCriteria, type StopOptions, type FinishReason, type StopMatch, type Finish } from './stopping.ts';
export { leftPad, layoutTensors, type PromptLayout, type LayoutTensors } from './layout.ts';
export { selectCacheRows, takeCacheRows, repeatIndex } from './cache.ts';
export { acquireGenerator, releaseGenerator } from './generators.ts';
