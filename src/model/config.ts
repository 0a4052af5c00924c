/**
 * Model configuration: a Hugging Face style `config.json` with DeepSeek-V3's keys (snake_case, as
 * DeepSeek ships them), validated once with zod. Unknown keys (auto_map, quantization_config, …)
 * are kept, so a config read from a real checkpoint is written back unchanged.
 *
 * tinyseek adds two keys for its baselines: `attention_type` ('mla', or 'mha' / 'gqa' with
 * `head_dim` and `num_key_value_heads`) and nothing else; a plain DeepSeek config is always MLA.
 *
 * This module knows shapes and hyper-parameters, not tensors.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';

const posInt = z.number().int().positive();
const nonNegInt = z.number().int().nonnegative();

export const RopeScaling = z
  .object({
    type: z.literal('yarn').describe('only YaRN is implemented (as DeepSeek-V2/V3 use)'),
    factor: z.number().positive().describe('context extension factor s'),
    original_max_position_embeddings: posInt.describe('context length the model was pretrained at'),
    beta_fast: z.number().positive().default(32).describe('YaRN: rotations per context above which a dimension is left unscaled'),
    beta_slow: z.number().positive().default(1).describe('YaRN: rotations per context below which a dimension is fully interpolated'),
    mscale: z.number().default(1).describe('scales cos/sin by mscale(s, mscale) / mscale(s, mscale_all_dim)'),
    mscale_all_dim: z.number().default(0).describe('softmax scale is multiplied by mscale(s, mscale_all_dim)²'),
  })
  .passthrough();

export const ModelConfigSchema = z
  .object({
    architectures: z.array(z.string()).optional().describe('Hugging Face model classes (kept as read; not used)'),
    model_type: z.string().default('deepseek_v3').describe('Hugging Face model type (kept as read; not used)'),
    // sizes
    vocab_size: posInt.describe('token vocabulary size: rows of the embedding and of the output head'),
    hidden_size: posInt.describe('model width d: the residual stream'),
    intermediate_size: posInt.describe('width of the dense SwiGLU MLP (leading layers, gpt baseline)'),
    num_hidden_layers: posInt.describe('transformer blocks'),
    num_attention_heads: posInt.describe('attention heads (query heads for gqa)'),
    num_key_value_heads: posInt.optional().describe('GQA groups for attention_type gqa; ignored by MLA'),
    // attention
    attention_type: z
      .enum(['mla', 'mha', 'gqa'])
      .default('mla')
      .describe("tinyseek's key: 'mla' (multi-head latent attention, every DeepSeek config), or the 'mha' / 'gqa' baselines"),
    head_dim: posInt.optional().describe('head width for mha/gqa (default hidden_size / heads)'),
    q_lora_rank: z
      .preprocess((v) => (v === 0 ? null : v), posInt.nullable())
      .default(null)
      .describe("query low-rank width (wq_a → norm → wq_b); null or 0 (the official inference code's convention): a single wq"),
    kv_lora_rank: posInt.nullable().default(null).describe('compressed KV latent width (MLA)'),
    qk_nope_head_dim: nonNegInt.default(0).describe('MLA: per-head query/key width without rotary position (from the latent)'),
    qk_rope_head_dim: nonNegInt.default(0).describe('MLA: per-head query width with rotary position; the rotary key is this wide and shared by all heads'),
    v_head_dim: nonNegInt.default(0).describe('MLA: per-head value width (from the latent)'),
    attention_bias: z.boolean().default(false).describe('bias terms on the attention projections (false in every DeepSeek config)'),
    attention_dropout: z
      .number()
      .min(0)
      .max(1)
      .default(0)
      .refine((p) => p === 0, { message: 'dropout on the attention weights is not implemented: only 0 is accepted (every DeepSeek config has 0.0)' })
      .describe('dropout on the attention weights: must be 0 (as every DeepSeek config)'),
    // moe
    n_routed_experts: posInt.nullable().default(null).describe('null: every layer is dense'),
    n_shared_experts: nonNegInt.nullable().default(null).describe('shared experts every token passes through, beside the routed ones'),
    num_experts_per_tok: posInt.nullable().default(null).describe('routed experts per token (top-k)'),
    moe_intermediate_size: posInt.optional().describe("width of each expert's SwiGLU MLP"),
    moe_layer_freq: posInt.default(1).describe('after the dense layers, every this-many-th layer is MoE'),
    first_k_dense_replace: nonNegInt.default(0).describe('leading layers with a dense MLP'),
    routed_scaling_factor: z.number().positive().default(1).describe("multiplies the routed experts' weights (V3: 2.5)"),
    scoring_func: z.enum(['softmax', 'sigmoid']).default('softmax').describe('router affinity: softmax over experts (V2), or a sigmoid per expert (V3)'),
    topk_method: z
      .enum(['greedy', 'group_limited_greedy', 'noaux_tc'])
      .default('greedy')
      .describe(
        "expert choice: top-k of the scores; top-k within the best topk_group groups (V2); or V3's aux-loss-free choice on scores plus the balancing bias",
      ),
    n_group: posInt.nullable().default(1).describe('groups the routed experts are split into for group-limited routing (1: no groups)'),
    topk_group: posInt.nullable().default(1).describe('groups a token may draw its experts from'),
    norm_topk_prob: z
      .boolean()
      .default(false)
      .describe("renormalise the chosen experts' weights to sum to 1 (Hugging Face's rule, for softmax and sigmoid alike)"),
    aux_loss_alpha: z.number().min(0).default(0).describe('sequence-wise balance loss weight α (0: off)'),
    seq_aux: z.boolean().default(true).describe('the balance loss per sequence (true, V2/V3) or over the whole batch'),
    // mtp
    num_nextn_predict_layers: nonNegInt.default(0).describe('multi-token prediction modules (V3: 1); 0: none'),
    // positions and norms
    max_position_embeddings: posInt.describe('longest sequence the rotary tables cover'),
    rope_theta: z.number().positive().default(10000).describe('rotary base frequency'),
    rope_scaling: RopeScaling.nullable().default(null).describe('YaRN context extension, or null'),
    rms_norm_eps: z.number().positive().default(1e-6).describe('ε of every RMSNorm'),
    hidden_act: z.literal('silu').default('silu').describe("MLP activation: SwiGLU's silu only"),
    initializer_range: z.number().positive().default(0.02).describe('std of the normal initialisation of weights'),
    tie_word_embeddings: z.boolean().default(false).describe('share the embedding matrix with the output head'),
    bos_token_id: z.number().int().nullable().optional().describe('beginning-of-sequence token id (kept as read)'),
    eos_token_id: z
      .union([z.number().int(), z.array(z.number().int())])
      .nullable()
      .optional()
      .describe('end-of-sequence token id(s) (kept as read)'),
    torch_dtype: z.string().optional().describe('dtype the weights were saved in (informational)'),
  })
  .passthrough()
  .superRefine((c, ctx) => {
    const bad = (path: string, message: string): void => {
      ctx.addIssue({ code: 'custom', path: [path], message });
    };
    if (c.attention_type === 'mla') {
      if (!c.kv_lora_rank) bad('kv_lora_rank', 'MLA needs kv_lora_rank');
      if (c.qk_rope_head_dim <= 0 || c.qk_rope_head_dim % 2) bad('qk_rope_head_dim', 'MLA needs a positive, even rotary head width');
      if (c.qk_nope_head_dim <= 0) bad('qk_nope_head_dim', 'MLA needs qk_nope_head_dim');
      if (c.v_head_dim <= 0) bad('v_head_dim', 'MLA needs v_head_dim');
    } else {
      const hd = c.head_dim ?? c.hidden_size / c.num_attention_heads;
      if (!Number.isInteger(hd) || hd % 2) bad('head_dim', `head width ${hd} must be an even integer (set head_dim)`);
      const kv = c.num_key_value_heads ?? c.num_attention_heads;
      if (c.attention_type === 'mha' && kv !== c.num_attention_heads) bad('num_key_value_heads', 'mha needs as many KV heads as heads (use gqa)');
      if (c.num_attention_heads % kv) bad('num_key_value_heads', `${c.num_attention_heads} heads do not split into ${kv} KV groups`);
    }
    if (c.n_routed_experts) {
      const e = c.n_routed_experts;
      if (!c.num_experts_per_tok) bad('num_experts_per_tok', 'an MoE model needs num_experts_per_tok');
      else if (c.num_experts_per_tok > e) bad('num_experts_per_tok', `cannot pick ${c.num_experts_per_tok} of ${e} experts`);
      if (!c.moe_intermediate_size) bad('moe_intermediate_size', 'an MoE model needs moe_intermediate_size');
      const g = c.n_group ?? 1;
      const tg = c.topk_group ?? 1;
      if (e % g) bad('n_group', `${e} experts do not split into ${g} groups`);
      if (tg > g) bad('topk_group', `cannot keep ${tg} of ${g} groups`);
      if (c.num_experts_per_tok && c.num_experts_per_tok > tg * (e / g)) {
        bad('topk_group', `${tg} groups of ${e / g} experts cannot supply ${c.num_experts_per_tok} experts per token`);
      }
      if (c.topk_method === 'noaux_tc' && g > 1 && e / g < 2) bad('n_group', 'bias routing scores a group by its top-2 experts: groups need at least 2');
      if (c.first_k_dense_replace > c.num_hidden_layers) bad('first_k_dense_replace', 'more dense layers than layers');
    }
    if (c.rope_scaling && c.rope_scaling.original_max_position_embeddings > c.max_position_embeddings) {
      bad('rope_scaling', 'original_max_position_embeddings exceeds max_position_embeddings');
    }
  });

export type ModelConfig = z.output<typeof ModelConfigSchema>;
export type ModelConfigInput = z.input<typeof ModelConfigSchema>;

export class ConfigError extends Error {
  constructor(source: string, issues: { path: PropertyKey[]; message: string }[]) {
    super(`invalid model config (${source}):\n${issues.map((i) => `  ${i.path.map(String).join('.') || '(root)'}: ${i.message}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** Validates a parsed config.json object; throws a ConfigError naming each bad field and why. */
export function parseConfig(raw: unknown, source = 'config'): ModelConfig {
  const r = ModelConfigSchema.safeParse(raw);
  if (!r.success) throw new ConfigError(source, r.error.issues);
  return r.data;
}

export const PRESETS = ['tiny', 'small', 'gpt', 'v2-lite', 'v2', 'v3'] as const;
export type PresetName = (typeof PRESETS)[number];

const presetDir = join(dirname(fileURLToPath(import.meta.url)), 'presets');

export function loadPreset(name: string): ModelConfig {
  if (!(PRESETS as readonly string[]).includes(name)) throw new Error(`unknown preset '${name}': use one of ${PRESETS.join(', ')}`);
  return parseConfig(JSON.parse(readFileSync(join(presetDir, `${name}.json`), 'utf8')), `preset ${name}`);
}

/** Reads a config.json file (or a directory holding one). */
export function readConfigFile(path: string): ModelConfig {
  let text: string;
  const file = path.endsWith('.json') ? path : join(path, 'config.json');
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`cannot read model config ${file}: ${(e as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(file, [{ path: [], message: `not valid JSON (${(e as Error).message})` }]);
  }
  return parseConfig(raw, file);
}

/** The config as config.json text (HF key names, unknown keys preserved). */
export function configToJson(c: ModelConfig): string {
  return `${JSON.stringify(c, null, 2)}\n`;
}

// ---- derived quantities -------------------------------------------------------------------------

/** Whether layer i uses the MoE feed-forward (else the dense MLP). */
export function isMoeLayer(c: ModelConfig, i: number): boolean {
  return !!c.n_routed_experts && i >= c.first_k_dense_replace && i % c.moe_layer_freq === 0;
}

export function qkHeadDim(c: ModelConfig): number {
  return c.attention_type === 'mla' ? c.qk_nope_head_dim + c.qk_rope_head_dim : (c.head_dim ?? c.hidden_size / c.num_attention_heads);
}

export function vHeadDim(c: ModelConfig): number {
  return c.attention_type === 'mla' ? c.v_head_dim : (c.head_dim ?? c.hidden_size / c.num_attention_heads);
}

export function kvHeads(c: ModelConfig): number {
  return c.attention_type === 'mla' ? c.num_attention_heads : (c.num_key_value_heads ?? c.num_attention_heads);
}

/** YaRN's attention-temperature factor: 0.1·m·ln(s) + 1 for s > 1. */
export function yarnMscale(scale: number, m: number): number {
  return scale <= 1 ? 1 : 0.1 * m * Math.log(scale) + 1;
}

/** The attention softmax scale: (qk head dim)^-½, times mscale(s, mscale_all_dim)² under YaRN (as HF). */
export function softmaxScale(c: ModelConfig): number {
  let s = qkHeadDim(c) ** -0.5;
  if (c.rope_scaling?.mscale_all_dim) {
    const m = yarnMscale(c.rope_scaling.factor, c.rope_scaling.mscale_all_dim);
    s *= m * m;
  }
  return s;
}
