/**
 * Basic layers: Linear, Embedding, RMSNorm, Dropout. Weights follow PyTorch's layouts
 * (Linear weight is (out, in)) so that checkpoints map one to one.
 */
import {
  type DType,
  type Device,
  type Generator,
  type Tensor,
  dropout,
  embedding,
  empty,
  fusedUsable,
  linear,
  ones,
  rmsNormFused,
  tidy,
} from '../core/index.ts';
import { fanInUniform_, normal_ } from './init.ts';
import { Module } from './module.ts';

export interface LayerOptions {
  dtype?: DType;
  device?: Device;
  generator?: Generator;
}

export class Linear extends Module {
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly weight: Tensor; // (out, in)
  readonly bias: Tensor | null; // (out)

  constructor(inFeatures: number, outFeatures: number, o: LayerOptions & { bias?: boolean; initStd?: number } = {}) {
    super();
    if (!Number.isInteger(inFeatures) || inFeatures <= 0 || !Number.isInteger(outFeatures) || outFeatures <= 0) {
      throw new RangeError(`Linear(${inFeatures}, ${outFeatures}): features must be positive integers`);
    }
    this.inFeatures = inFeatures;
    this.outFeatures = outFeatures;
    const w = empty([outFeatures, inFeatures], { dtype: o.dtype, device: o.device });
    if (o.initStd !== undefined) normal_(w, 0, o.initStd, o.generator);
    else fanInUniform_(w, inFeatures, o.generator);
    this.weight = this.registerParameter('weight', w);
    if (o.bias ?? true) {
      const b = empty([outFeatures], { dtype: o.dtype, device: o.device });
      if (o.initStd !== undefined) b.zero_();
      else fanInUniform_(b, inFeatures, o.generator);
      this.bias = this.registerParameter('bias', b);
    } else {
      this.bias = null;
    }
  }

  /** (…, in) → (…, out) */
  forward(x: Tensor): Tensor {
    return linear(x, this.weight, this.bias);
  }
}

export class Embedding extends Module {
  readonly numEmbeddings: number;
  readonly embeddingDim: number;
  readonly weight: Tensor; // (num, dim)

  constructor(numEmbeddings: number, embeddingDim: number, o: LayerOptions & { initStd?: number } = {}) {
    super();
    if (!Number.isInteger(numEmbeddings) || numEmbeddings <= 0 || !Number.isInteger(embeddingDim) || embeddingDim <= 0) {
      throw new RangeError(`Embedding(${numEmbeddings}, ${embeddingDim}): sizes must be positive integers`);
    }
    this.numEmbeddings = numEmbeddings;
    this.embeddingDim = embeddingDim;
    const w = empty([numEmbeddings, embeddingDim], { dtype: o.dtype, device: o.device });
    normal_(w, 0, o.initStd ?? 1, o.generator);
    this.weight = this.registerParameter('weight', w);
  }

  /** int64 ids of any shape (…) → (…, dim) */
  forward(ids: Tensor): Tensor {
    return embedding(this.weight, ids);
  }
}

/** Root-mean-square normalisation: x / √(mean(x²) + eps) · weight, computed in float32. */
export class RMSNorm extends Module {
  readonly dim: number;
  readonly eps: number;
  readonly weight: Tensor; // (dim)

  constructor(dim: number, o: { eps?: number; dtype?: DType; device?: Device } = {}) {
    super();
    this.dim = dim;
    this.eps = o.eps ?? 1e-6;
    this.weight = this.registerParameter('weight', ones([dim], { dtype: o.dtype, device: o.device }));
  }

  /** (…, dim) → (…, dim) */
  forward(x: Tensor): Tensor {
    return rmsNorm(x, this.weight, this.eps);
  }
}

/** Functional RMSNorm over the last dimension. */
export function rmsNorm(x: Tensor, weight: Tensor, eps: number): Tensor {
  if (fusedUsable(x, weight)) return rmsNormFused(x, weight, eps); // inference: one kernel instead of six calls
  return tidy(() => {
    const dtype = x.dtype;
    const xf = dtype === 'float32' || dtype === 'float64' ? x : x.float(); // (…, dim)
    const inv = xf.square().mean(-1, true).add(eps).rsqrt(); // (…, 1)
    const y = xf.mul(inv); // (…, dim)
    return (y.dtype === dtype ? y : y.to(dtype)).mul(weight);
  });
}

export class Dropout extends Module {
  readonly p: number;
  readonly generator: Generator | undefined;

  constructor(p: number, generator?: Generator) {
    super();
    if (!(p >= 0 && p < 1)) throw new RangeError(`Dropout probability must be in [0, 1), got ${p}`);
    this.p = p;
    this.generator = generator;
  }

  forward(x: Tensor): Tensor {
    return dropout(x, this.p, this.training, this.generator);
  }
}
