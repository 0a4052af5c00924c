/**
 * Neural-network building blocks on the tensor engine.
 */
export { Module, ModuleList, StateDictError, type LoadResult } from './module.ts';
export { Linear, Embedding, RMSNorm, Dropout, rmsNorm, type LayerOptions } from './layers.ts';
export * as init from './init.ts';
export { AdamW, weightDecayGroups, type AdamWOptions, type AdamWState, type ParamGroup, type ParamGroupSpec } from './optim/adamw.ts';
export { clipGradNorm } from './optim/clip.ts';
export { warmupCosine, warmupStableDecay, constant, applyLr, type Schedule, type WarmupCosineOptions, type WsdOptions } from './optim/schedule.ts';
