/**
 * The tensor engine's public surface.
 */
export { Tensor, type TensorMeta, type BackwardOptions, type NestedArray } from './tensor.ts';
export { type DType, DTYPES, isFloating, itemSize } from './dtype.ts';
export type { Device } from './device.ts';
export { TorchError, DisposedTensorError } from './errors.ts';
export { tidy, dispose, scopeDepth } from './scope.ts';
export { callOp, schemaOf, type Arg, type Value } from './dispatch.ts';
export { noGrad, enableGrad, isGradEnabled, inferenceMode, isInferenceMode, backward } from './autograd.ts';
export { Generator, manualSeed } from './random.ts';
export { runtimeInfo, setNumThreads, getNumThreads, cudaAvailable, memoryStats, type RuntimeInfo } from './runtime.ts';
export * from './ops/creation.ts';
export { cat, stack, split, chunk, where, index, indexPut, scatter, type ScatterReduce } from './ops/shape.ts';
export { maximum, minimum, lerp, addcmul, addcdiv, type RoundingMode } from './ops/math.ts';
export { sum, mean, logsumexp, type ValuesIndices, type Dims } from './ops/reduce.ts';
export {
  matmul,
  mm,
  bmm,
  einsum,
  linear,
  softmax,
  logSoftmax,
  crossEntropy,
  dropout,
  embedding,
  topk,
  sort,
  argsort,
  multinomial,
  bincount,
  oneHot,
  type CrossEntropyOptions,
  type Reduction,
} from './ops/nn.ts';
export * from './ops/foreach.ts';
export { fusedUsable, setFusedKernels, rmsNormFused, rotaryFused, moeSelect } from './ops/fused.ts';
export { ProcessGroup, GradReducer, DistError, distEnvFrom, distBackends, type DistEnv, type InitOptions, type ReduceOp, type Backend } from './dist.ts';
