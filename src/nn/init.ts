/**
 * Parameter initialisation, in place and without recording gradients. Each takes an optional
 * Generator so that a model's initial weights are reproducible from one seed.
 */
import { type Generator, type Tensor, noGrad } from '../core/index.ts';

export function normal_(t: Tensor, mean = 0, std = 1, generator?: Generator): Tensor {
  return noGrad(() => t.normal_(mean, std, generator));
}

export function uniform_(t: Tensor, low: number, high: number, generator?: Generator): Tensor {
  return noGrad(() => t.uniform_(low, high, generator));
}

export function zeros_(t: Tensor): Tensor {
  return noGrad(() => t.zero_());
}

export function ones_(t: Tensor): Tensor {
  return noGrad(() => t.fill_(1));
}

/** U(-1/√fan_in, 1/√fan_in): PyTorch's default for Linear weights and biases. */
export function fanInUniform_(t: Tensor, fanIn: number, generator?: Generator): Tensor {
  const bound = fanIn > 0 ? 1 / Math.sqrt(fanIn) : 0;
  return uniform_(t, -bound, bound, generator);
}
