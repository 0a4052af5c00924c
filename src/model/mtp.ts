/**
 * Multi-token prediction (DeepSeek-V3 §2.2). Module k predicts token t_{i+k+1} from the previous
 * depth's hidden state h_i and the embedding of token t_{i+k}:
 *     h' = eh_proj([enorm(Emb(t_{i+k})); hnorm(h_i)])  →  one decoder layer  →  shared_head.norm
 *     →  the main model's output head.
 * The embedding comes first in the concatenation, as the engines that run DeepSeek's released
 * weights do (the report's formula lists them the other way round); depth 1 takes the main model's
 * hidden state after its final norm. The embedding table and the head are the main model's.
 *
 * HF layout: the module sits at model.layers.{num_hidden_layers + k - 1} with the decoder layer's
 * own names plus enorm, hnorm, eh_proj and shared_head.norm.
 */
import { type Generator, type Tensor, cat } from '../core/index.ts';
import { Linear, Module, RMSNorm } from '../nn/index.ts';
import type { AttentionContext } from './attention.ts';
import { DecoderLayer, type BlockOutput } from './block.ts';
import type { ModelConfig } from './config.ts';

class SharedHead extends Module {
  readonly norm: RMSNorm;
  constructor(dim: number, eps: number) {
    super();
    this.norm = this.registerModule('norm', new RMSNorm(dim, { eps }));
  }
}

export class MtpLayer extends DecoderLayer {
  readonly enorm: RMSNorm;
  readonly hnorm: RMSNorm;
  readonly eh_proj: Linear;
  readonly shared_head: SharedHead;

  constructor(c: ModelConfig, index: number, o: { generator?: Generator } = {}) {
    super(c, index, o);
    const D = c.hidden_size;
    this.enorm = this.registerModule('enorm', new RMSNorm(D, { eps: c.rms_norm_eps }));
    this.hnorm = this.registerModule('hnorm', new RMSNorm(D, { eps: c.rms_norm_eps }));
    this.eh_proj = this.registerModule('eh_proj', new Linear(2 * D, D, { bias: false, initStd: c.initializer_range, generator: o.generator }));
    this.shared_head = this.registerModule('shared_head', new SharedHead(D, c.rms_norm_eps));
  }

  /**
   * hidden (B, S', D): previous depth at positions i; embedded (B, S', D): Emb(t_{i+k}).
   * Returns the module's hidden state (B, S', D) before shared_head.norm.
   */
  predict(hidden: Tensor, embedded: Tensor, ctx: AttentionContext): BlockOutput {
    const x = this.eh_proj.forward(cat([this.enorm.forward(embedded), this.hnorm.forward(hidden)], -1)); // (B, S', D)
    return this.forward(x, ctx);
  }
}
