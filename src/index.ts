/**
 * tinyseek: the tensor engine (libtorch), nn building blocks, and checkpoint formats.
 */
export * from './core/index.ts';
export * as nn from './nn/index.ts';
export * from './io/safetensors.ts';
export { DeepSeekV3, type KVCache, type ForwardOptions, type LossOptions, disposeCache } from './model/transformer.ts';
export { parseConfig, loadPreset, readConfigFile, configToJson, PRESETS, type ModelConfig } from './model/config.ts';
export { countParameters, kvCacheFigures, tensorSpecs } from './model/params.ts';
export { saveCheckpoint, loadCheckpoint, loadWeightsInto, CheckpointError } from './model/checkpoint.ts';
export * from './tokenizer/index.ts';
export * as data from './data/index.ts';
export * as engine from './engine/index.ts';
export * as evaluation from './eval/index.ts';
