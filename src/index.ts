/**
 * tinyseek: the tensor engine (libtorch), nn building blocks, and checkpoint formats.
 */
export * from './core/index.ts';
export * as nn from './nn/index.ts';
export * from './io/safetensors.ts';
