/**
 * Every tensor a model of a given config holds — HF name and shape — listed without allocating
 * anything, and the counts derived from that list: total parameters, parameters activated per
 * token, and KV-cache elements per token per layer. The model (model.ts) is built with exactly
 * these names and shapes (a test holds them together), and checkpoint loading checks against them.
 *
 * Counting rules (they reproduce DeepSeek's published figures):
 *   total      every stored tensor once; the MTP module's copies of the shared embedding and
 *              head are not unique, so they are not counted again.
 *   activated  what one token touches: all dense weights, the gate, the shared experts, the
 *              top-k routed experts of each MoE layer, and one row of the embedding table.
 */
import { type ModelConfig, isMoeLayer, kvHeads, qkHeadDim, vHeadDim } from './config.ts';

export interface TensorSpec {
  name: string;
  shape: number[];
  /** Which part of the model it belongs to, for the activated count. */
  role: 'embed' | 'head' | 'dense' | 'gate' | 'bias' | 'expert' | 'shared-copy';
  /** For role 'expert': the layer's experts per token over its expert count. */
  expertShare?: number;
}

function attentionSpecs(c: ModelConfig, p: string): TensorSpec[] {
  const D = c.hidden_size;
  const H = c.num_attention_heads;
  const d = (name: string, shape: number[]): TensorSpec => ({ name: `${p}.self_attn.${name}`, shape, role: 'dense' });
  if (c.attention_type === 'mla') {
    const qk = qkHeadDim(c);
    const out: TensorSpec[] = [];
    if (c.q_lora_rank) {
      out.push(d('q_a_proj.weight', [c.q_lora_rank, D]), d('q_a_layernorm.weight', [c.q_lora_rank]), d('q_b_proj.weight', [H * qk, c.q_lora_rank]));
    } else {
      out.push(d('q_proj.weight', [H * qk, D]));
    }
    const r = c.kv_lora_rank ?? 0;
    out.push(
      d('kv_a_proj_with_mqa.weight', [r + c.qk_rope_head_dim, D]),
      d('kv_a_layernorm.weight', [r]),
      d('kv_b_proj.weight', [H * (c.qk_nope_head_dim + c.v_head_dim), r]),
      d('o_proj.weight', [D, H * c.v_head_dim]),
    );
    return out;
  }
  const hd = qkHeadDim(c);
  const kv = kvHeads(c);
  const out = [d('q_proj.weight', [H * hd, D]), d('k_proj.weight', [kv * hd, D]), d('v_proj.weight', [kv * hd, D]), d('o_proj.weight', [D, H * hd])];
  if (c.attention_bias) out.push(d('q_proj.bias', [H * hd]), d('k_proj.bias', [kv * hd]), d('v_proj.bias', [kv * hd]));
  return out;
}

function mlpSpecs(p: string, D: number, I: number, role: 'dense' | 'expert', expertShare?: number): TensorSpec[] {
  return [
    { name: `${p}.gate_proj.weight`, shape: [I, D], role, expertShare },
    { name: `${p}.up_proj.weight`, shape: [I, D], role, expertShare },
    { name: `${p}.down_proj.weight`, shape: [D, I], role, expertShare },
  ];
}

function blockSpecs(c: ModelConfig, layer: number, p: string): TensorSpec[] {
  const D = c.hidden_size;
  const out: TensorSpec[] = [
    { name: `${p}.input_layernorm.weight`, shape: [D], role: 'dense' },
    ...attentionSpecs(c, p),
    { name: `${p}.post_attention_layernorm.weight`, shape: [D], role: 'dense' },
  ];
  if (!isMoeLayer(c, layer)) {
    out.push(...mlpSpecs(`${p}.mlp`, D, c.intermediate_size, 'dense'));
    return out;
  }
  const E = c.n_routed_experts ?? 0;
  const Im = c.moe_intermediate_size ?? 0;
  out.push({ name: `${p}.mlp.gate.weight`, shape: [E, D], role: 'gate' });
  if (c.topk_method === 'noaux_tc') out.push({ name: `${p}.mlp.gate.e_score_correction_bias`, shape: [E], role: 'bias' });
  const share = (c.num_experts_per_tok ?? 0) / E;
  for (let j = 0; j < E; j++) out.push(...mlpSpecs(`${p}.mlp.experts.${j}`, D, Im, 'expert', share));
  if (c.n_shared_experts) out.push(...mlpSpecs(`${p}.mlp.shared_experts`, D, Im * c.n_shared_experts, 'dense'));
  return out;
}

/** Every tensor of the model (and of its MTP modules when `mtp`), in checkpoint order. */
export function tensorSpecs(c: ModelConfig, o: { mtp?: boolean } = {}): TensorSpec[] {
  const V = c.vocab_size;
  const D = c.hidden_size;
  const L = c.num_hidden_layers;
  const out: TensorSpec[] = [{ name: 'model.embed_tokens.weight', shape: [V, D], role: 'embed' }];
  for (let i = 0; i < L; i++) out.push(...blockSpecs(c, i, `model.layers.${i}`));
  out.push({ name: 'model.norm.weight', shape: [D], role: 'dense' });
  if (!c.tie_word_embeddings) out.push({ name: 'lm_head.weight', shape: [V, D], role: 'head' });
  if (o.mtp ?? true) {
    for (let k = 0; k < c.num_nextn_predict_layers; k++) {
      const i = L + k;
      const p = `model.layers.${i}`;
      out.push(
        { name: `${p}.embed_tokens.weight`, shape: [V, D], role: 'shared-copy' },
        { name: `${p}.enorm.weight`, shape: [D], role: 'dense' },
        { name: `${p}.hnorm.weight`, shape: [D], role: 'dense' },
        { name: `${p}.eh_proj.weight`, shape: [D, 2 * D], role: 'dense' },
        ...blockSpecs(c, i, p),
        { name: `${p}.shared_head.norm.weight`, shape: [D], role: 'dense' },
        { name: `${p}.shared_head.head.weight`, shape: [V, D], role: 'shared-copy' },
      );
    }
  }
  return out;
}

export interface ParamCounts {
  /** Unique parameters of the main model (no MTP). */
  total: number;
  /** Parameters used per token by the main model. */
  activated: number;
  /** Unique parameters the MTP modules add (their embedding and head are the main model's). */
  mtp: number;
  totalWithMtp: number;
  activatedWithMtp: number;
  embedding: number;
  head: number;
}

const numel = (s: number[]): number => s.reduce((a, b) => a * b, 1);

function count(specs: TensorSpec[], c: ModelConfig): { total: number; activated: number } {
  let total = 0;
  let activated = 0;
  for (const t of specs) {
    if (t.role === 'shared-copy') continue;
    const n = numel(t.shape);
    total += n;
    if (t.role === 'embed') activated += c.hidden_size;
    else if (t.role === 'expert') activated += n * (t.expertShare ?? 0);
    else activated += n;
  }
  return { total, activated: Math.round(activated) };
}

export function countParameters(c: ModelConfig): ParamCounts {
  const main = count(tensorSpecs(c, { mtp: false }), c);
  const all = count(tensorSpecs(c, { mtp: true }), c);
  const V = c.vocab_size;
  const D = c.hidden_size;
  return {
    total: main.total,
    activated: main.activated,
    mtp: all.total - main.total,
    totalWithMtp: all.total,
    activatedWithMtp: all.activated,
    embedding: V * D,
    head: c.tie_word_embeddings ? 0 : V * D,
  };
}

export interface KvCacheFigures {
  /** Elements cached per token per layer by this model's attention (MLA: latent + rotary key). */
  perTokenPerLayer: number;
  /** What multi-head attention with the same heads and head widths would cache. */
  mhaEquivalent: number;
  /** perTokenPerLayer × layers. */
  perToken: number;
}

export function kvCacheFigures(c: ModelConfig): KvCacheFigures {
  const H = c.num_attention_heads;
  const mha = H * (qkHeadDim(c) + vHeadDim(c));
  const own = c.attention_type === 'mla' ? (c.kv_lora_rank ?? 0) + c.qk_rope_head_dim : kvHeads(c) * (qkHeadDim(c) + vHeadDim(c));
  return { perTokenPerLayer: own, mhaEquivalent: mha, perToken: own * c.num_hidden_layers };
}
