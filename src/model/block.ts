/**
 * One decoder layer: x + attn(norm(x)), then + ffn(norm(·)), where ffn is a dense SwiGLU MLP in the
 * leading `first_k_dense_replace` layers and DeepSeekMoE after. HF names: input_layernorm,
 * self_attn, post_attention_layernorm, mlp.
 */
import type { Generator, Tensor } from '../core/index.ts';
import { Module, RMSNorm } from '../nn/index.ts';
import { type AttentionContext, MHA, MLA } from './attention.ts';
import { type ModelConfig, isMoeLayer } from './config.ts';
import { Mlp, MoE } from './moe.ts';

export interface BlockOutput {
  out: Tensor;
  auxLoss: Tensor | null;
}

export class DecoderLayer extends Module {
  readonly index: number;
  readonly input_layernorm: RMSNorm;
  readonly self_attn: MLA | MHA;
  readonly post_attention_layernorm: RMSNorm;
  readonly mlp: Mlp | MoE;

  constructor(c: ModelConfig, index: number, o: { generator?: Generator } = {}) {
    super();
    this.index = index;
    this.input_layernorm = this.registerModule('input_layernorm', new RMSNorm(c.hidden_size, { eps: c.rms_norm_eps }));
    this.self_attn = this.registerModule('self_attn', c.attention_type === 'mla' ? new MLA(c, o) : new MHA(c, o));
    this.post_attention_layernorm = this.registerModule('post_attention_layernorm', new RMSNorm(c.hidden_size, { eps: c.rms_norm_eps }));
    this.mlp = this.registerModule('mlp', isMoeLayer(c, index) ? new MoE(c, o) : new Mlp(c.hidden_size, c.intermediate_size, c.initializer_range, o));
  }

  /** x (B, S, D) → (B, S, D) */
  forward(x: Tensor, ctx: AttentionContext): BlockOutput {
    const h = x.add(this.self_attn.forward(this.input_layernorm.forward(x), ctx)); // (B, S, D)
    const normed = this.post_attention_layernorm.forward(h);
    if (this.mlp instanceof MoE) {
      const r = this.mlp.forward(normed);
      return { out: h.add(r.out), auxLoss: r.auxLoss };
    }
    return { out: h.add(this.mlp.forward(normed)), auxLoss: null };
  }
}
