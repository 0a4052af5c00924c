/**
 * A checkpoint's weights and hyper-parameters as llama.cpp's `deepseek2` architecture sees them
 * (its converter, conversion/deepseek.py, and loader, src/models/deepseek2.cpp):
 *
 *   metadata  deepseek2.{context_length, embedding_length, block_count, feed_forward_length,
 *             attention.head_count, attention.head_count_kv = 1 (MLA runs as MQA over the latent),
 *             attention.key_length = kv_lora + rope, attention.value_length = kv_lora,
 *             attention.key_length_mla = nope + rope, attention.value_length_mla = v (these two
 *             switch MLA on), attention.q_lora_rank (0: no query compression), kv_lora_rank,
 *             layer_norm_rms_epsilon, rope.freq_base, rope.dimension_count = rope,
 *             leading_dense_block_count, vocab_size, expert_* (count, used, shared, feed-forward
 *             length, weights scale and norm, gating func 1 softmax / 2 sigmoid, group count and
 *             used count — only with more than one group), nextn_predict_layers, YaRN's keys}
 *   tensors   token_embd, output_norm, output; per block attn_norm, attn_q_a, attn_q_a_norm,
 *             attn_q_b (or attn_q), attn_kv_a_mqa, attn_kv_a_norm, attn_k_b (kv_b's K rows per
 *             head, transposed: [head, kv_lora, nope]), attn_v_b (its V rows: [head, v, kv_lora]),
 *             attn_output, ffn_norm, dense ffn_{gate,up,down} or MoE ffn_gate_inp,
 *             exp_probs_b.bias, ffn_{gate,up,down}_exps (the experts stacked) and
 *             ffn_{gate,up,down}_shexp; the MTP block as blk.{L}.nextn.* with its decoder layer
 *
 * Hugging Face's Linear weights are [out, in] row-major, which is ggml's {in, out}: the bytes are
 * the same. RoPE: tinyseek's rotary pairs are adjacent elements, which is llama.cpp's "norm" RoPE,
 * so no row is permuted. llama.cpp's MTP graph needs query compression and an MoE MLP in the MTP
 * block; where those do not hold the MTP block is left out (and said so).
 *
 * It knows the checkpoint layout and llama.cpp's names; not tokenizers or the file format's bytes.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { GgmlType, GgufTensor, GgufValue } from '../io/gguf.ts';
import { Q8_0_BLOCK, fromHalf } from '../io/gguf.ts';
import { SafetensorsFile } from '../io/safetensors.ts';
import { CONFIG_FILE, INDEX_FILE, WEIGHTS_FILE } from './checkpoint.ts';
import { type ModelConfig, readConfigFile } from './config.ts';

export const GGUF_DTYPES = ['f32', 'f16', 'bf16', 'q8_0'] as const;
export type GgufDType = (typeof GGUF_DTYPES)[number];

export interface GgufModel {
  metadata: [string, GgufValue][];
  tensors: GgufTensor[];
  /** What the export left out or changed, in words (for the log). */
  notices: string[];
  close(): void;
}

/** llama.cpp's general.file_type (llama_ftype) for the tensors' main type. */
const FILE_TYPE: Record<GgufDType, number> = { f32: 0, f16: 1, q8_0: 7, bf16: 32 };

/** The checkpoint's tensors by name, read on demand as float32. */
class Weights {
  private readonly files = new Map<string, SafetensorsFile>();
  private readonly where = new Map<string, string>();

  constructor(dir: string) {
    const index = path.join(dir, INDEX_FILE);
    if (fs.existsSync(index)) {
      const map = (JSON.parse(fs.readFileSync(index, 'utf8')) as { weight_map?: Record<string, string> }).weight_map;
      if (!map) throw new Error(`${index} has no weight_map`);
      for (const [name, file] of Object.entries(map)) this.where.set(name, path.join(dir, file));
    } else {
      const file = path.join(dir, WEIGHTS_FILE);
      if (!fs.existsSync(file)) throw new Error(`${dir} has no ${WEIGHTS_FILE} (or ${INDEX_FILE}): not a tinyseek checkpoint`);
      for (const name of this.open(file).names) this.where.set(name, file);
    }
  }

  private open(file: string): SafetensorsFile {
    let f = this.files.get(file);
    if (!f) {
      f = SafetensorsFile.open(file);
      this.files.set(file, f);
    }
    return f;
  }

  has(name: string): boolean {
    return this.where.has(name);
  }

  shape(name: string): number[] {
    return this.open(this.file(name)).info(name).shape;
  }

  private file(name: string): string {
    const f = this.where.get(name);
    if (!f) throw new Error(`the checkpoint has no tensor ${name}`);
    return f;
  }

  read(name: string): Float32Array {
    const f = this.open(this.file(name));
    const { dtype } = f.info(name);
    const raw = f.readRaw(name);
    const bytes = new Uint8Array(raw); // aligned copy
    if (dtype === 'F32') return new Float32Array(bytes.buffer, 0, bytes.length / 4);
    const u16 = new Uint16Array(bytes.buffer, 0, bytes.length / 2);
    const out = new Float32Array(u16.length);
    if (dtype === 'BF16') {
      const u32 = new Uint32Array(out.buffer);
      for (let i = 0; i < u16.length; i++) u32[i] = u16[i] << 16;
    } else if (dtype === 'F16') {
      for (let i = 0; i < u16.length; i++) out[i] = fromHalf(u16[i]);
    } else
      throw new Error(
        `tensor ${name} is ${dtype}; the GGUF export reads F32, BF16 and F16 checkpoints — load it and save it again in bfloat16 first (tinyseek convert)`,
      );
    return out;
  }

  close(): void {
    for (const f of this.files.values()) f.close();
  }
}

/** The K and V rows of kv_b_proj ([H·(nope+v), kv_lora]) in llama.cpp's split layout. */
export function splitKvB(w: Float32Array, heads: number, nope: number, v: number, kvLora: number): { kB: Float32Array; vB: Float32Array } {
  const kB = new Float32Array(heads * kvLora * nope); // [H, kv_lora, nope]: K part transposed per head
  const vB = new Float32Array(heads * v * kvLora); // [H, v, kv_lora]
  const per = nope + v;
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < nope; i++) {
      const row = (h * per + i) * kvLora;
      for (let j = 0; j < kvLora; j++) kB[(h * kvLora + j) * nope + i] = w[row + j];
    }
    vB.set(w.subarray((h * per + nope) * kvLora, (h * per + per) * kvLora), h * v * kvLora);
  }
  return { kB, vB };
}

export function ggufModel(dir: string, dtype: GgufDType): GgufModel {
  if (!fs.existsSync(path.join(dir, CONFIG_FILE))) throw new Error(`${dir} has no ${CONFIG_FILE}: not a tinyseek checkpoint`);
  const c: ModelConfig = readConfigFile(path.join(dir, CONFIG_FILE));
  if (c.attention_type !== 'mla')
    throw new Error(`${dir} uses ${c.attention_type} attention; llama.cpp's deepseek2 architecture runs multi-head latent attention (mla) only`);
  if (c.moe_layer_freq !== 1 && c.n_routed_experts)
    throw new Error(
      `${dir} has moe_layer_freq ${c.moe_layer_freq}; llama.cpp's deepseek2 knows leading dense layers then MoE in every layer (moe_layer_freq 1)`,
    );
  const groups = c.n_group ?? 1;
  if (groups > 1 && c.topk_method === 'group_limited_greedy')
    throw new Error(
      `${dir} routes by group_limited_greedy (a group's score is its best expert); llama.cpp scores a group by its two best (noaux_tc), so the export would change the routing`,
    );
  const w = new Weights(dir);
  const notices: string[] = [];
  const L = c.num_hidden_layers;
  const H = c.num_attention_heads;
  const nope = c.qk_nope_head_dim;
  const rope = c.qk_rope_head_dim;
  const qLora = c.q_lora_rank ?? 0;
  if (c.kv_lora_rank === null || c.kv_lora_rank === undefined)
    throw new Error(`${dir} has no kv_lora_rank: llama.cpp's deepseek2 needs multi-head latent attention`);
  const kvLora: number = c.kv_lora_rank;
  const moe = (i: number): boolean => (c.n_routed_experts ?? 0) > 0 && i >= c.first_k_dense_replace;

  let mtp = Math.min(c.num_nextn_predict_layers ?? 0, 1);
  if (mtp > 0) {
    const why = qLora === 0 ? 'the model has no query compression (q_lora_rank 0)' : !moe(L) ? 'its MTP block has a dense MLP' : null;
    if (why) {
      notices.push(`the MTP block is left out: llama.cpp's MTP graph needs query compression and an MoE MLP, and ${why}`);
      mtp = 0;
    } else if (!w.has(`model.layers.${L}.eh_proj.weight`)) {
      notices.push('the MTP block is left out: the checkpoint holds no MTP weights');
      mtp = 0;
    }
  }
  if ((c.num_nextn_predict_layers ?? 0) > 1 && mtp) notices.push(`only the first of ${c.num_nextn_predict_layers} MTP blocks is written (llama.cpp runs one)`);

  const A = 'deepseek2';
  const u32 = (value: number): GgufValue => ({ type: 'u32', value });
  const f32 = (value: number): GgufValue => ({ type: 'f32', value });
  const metadata: [string, GgufValue][] = [
    ['general.architecture', { type: 'string', value: A }],
    ['general.name', { type: 'string', value: path.basename(path.resolve(dir)) }],
    ['general.file_type', u32(FILE_TYPE[dtype])],
    ['general.alignment', u32(32)],
    [`${A}.context_length`, u32(c.max_position_embeddings)],
    [`${A}.embedding_length`, u32(c.hidden_size)],
    [`${A}.block_count`, u32(L + mtp)],
    [`${A}.feed_forward_length`, u32(c.intermediate_size)],
    [`${A}.attention.head_count`, u32(H)],
    [`${A}.attention.head_count_kv`, u32(1)],
    [`${A}.attention.key_length`, u32(kvLora + rope)],
    [`${A}.attention.value_length`, u32(kvLora)],
    [`${A}.attention.key_length_mla`, u32(nope + rope)],
    [`${A}.attention.value_length_mla`, u32(c.v_head_dim)],
    [`${A}.attention.q_lora_rank`, u32(qLora)],
    [`${A}.attention.kv_lora_rank`, u32(kvLora)],
    [`${A}.attention.layer_norm_rms_epsilon`, f32(c.rms_norm_eps)],
    [`${A}.rope.freq_base`, f32(c.rope_theta)],
    [`${A}.rope.dimension_count`, u32(rope)],
    [`${A}.leading_dense_block_count`, u32((c.n_routed_experts ?? 0) > 0 ? c.first_k_dense_replace : L + mtp)],
    [`${A}.vocab_size`, u32(c.vocab_size)],
    [`${A}.expert_feed_forward_length`, u32(c.moe_intermediate_size ?? c.intermediate_size)],
    [`${A}.expert_shared_count`, u32(c.n_shared_experts ?? 0)],
    [`${A}.nextn_predict_layers`, u32(mtp)],
  ];
  if ((c.n_routed_experts ?? 0) > 0) {
    metadata.push(
      [`${A}.expert_count`, u32(c.n_routed_experts ?? 0)],
      [`${A}.expert_used_count`, u32(c.num_experts_per_tok ?? 0)],
      [`${A}.expert_weights_scale`, f32(c.routed_scaling_factor)],
      [`${A}.expert_weights_norm`, { type: 'bool', value: c.norm_topk_prob }],
      [`${A}.expert_gating_func`, u32(c.scoring_func === 'sigmoid' ? 2 : 1)],
    );
    if (groups > 1 && c.topk_method === 'noaux_tc')
      metadata.push([`${A}.expert_group_count`, u32(groups)], [`${A}.expert_group_used_count`, u32(c.topk_group ?? groups)]);
  }
  const ys = c.rope_scaling;
  if (ys) {
    metadata.push(
      [`${A}.rope.scaling.type`, { type: 'string', value: 'yarn' }],
      [`${A}.rope.scaling.factor`, f32(ys.factor)],
      [`${A}.rope.scaling.original_context_length`, u32(ys.original_max_position_embeddings)],
      [`${A}.rope.scaling.yarn_beta_fast`, f32(ys.beta_fast)],
      [`${A}.rope.scaling.yarn_beta_slow`, f32(ys.beta_slow)],
      // llama.cpp's loader divides this key by 0.1 (its converter multiplies mscale_all_dim by 0.1)
      [`${A}.rope.scaling.yarn_log_multiplier`, f32(0.1 * ys.mscale_all_dim)],
    );
    if (ys.mscale !== ys.mscale_all_dim && ys.mscale !== 1)
      notices.push(`rope_scaling.mscale ${ys.mscale} differs from mscale_all_dim ${ys.mscale_all_dim}; llama.cpp's deepseek2 graph uses mscale_all_dim only`);
  }

  const tensors: GgufTensor[] = [];
  /** A matrix's type: the asked one, or f16 where rows do not split into q8_0 blocks; 1-D tensors and the router stay f32. */
  const matType = (shape: readonly number[]): GgmlType => (dtype === 'q8_0' && shape[shape.length - 1] % Q8_0_BLOCK !== 0 ? 'f16' : dtype);
  let fellBack = 0;
  const add = (name: string, shape: readonly number[], data: () => Float32Array, kind: 'matrix' | 'f32' = 'matrix'): void => {
    const type = kind === 'f32' || shape.length === 1 ? 'f32' : matType(shape);
    if (dtype === 'q8_0' && type === 'f16') fellBack++;
    tensors.push({ name, shape, type, data });
  };
  const copy = (gguf: string, hf: string, kind: 'matrix' | 'f32' = 'matrix'): void => add(gguf, w.shape(hf), () => w.read(hf), kind);
  const stack = (gguf: string, names: string[]): void => {
    const s = w.shape(names[0]);
    add(gguf, [names.length, ...s], () => {
      const n = s.reduce((a, b) => a * b, 1);
      const out = new Float32Array(n * names.length);
      names.forEach((nm, e) => out.set(w.read(nm), e * n));
      return out;
    });
  };

  copy('token_embd.weight', 'model.embed_tokens.weight');
  copy('output_norm.weight', 'model.norm.weight');
  if (!c.tie_word_embeddings) copy('output.weight', 'lm_head.weight');
  for (let i = 0; i < L + mtp; i++) {
    const p = `model.layers.${i}`;
    const b = `blk.${i}`;
    copy(`${b}.attn_norm.weight`, `${p}.input_layernorm.weight`);
    if (qLora > 0) {
      copy(`${b}.attn_q_a.weight`, `${p}.self_attn.q_a_proj.weight`);
      copy(`${b}.attn_q_a_norm.weight`, `${p}.self_attn.q_a_layernorm.weight`);
      copy(`${b}.attn_q_b.weight`, `${p}.self_attn.q_b_proj.weight`);
    } else copy(`${b}.attn_q.weight`, `${p}.self_attn.q_proj.weight`);
    copy(`${b}.attn_kv_a_mqa.weight`, `${p}.self_attn.kv_a_proj_with_mqa.weight`);
    copy(`${b}.attn_kv_a_norm.weight`, `${p}.self_attn.kv_a_layernorm.weight`);
    const kvb = `${p}.self_attn.kv_b_proj.weight`;
    let split: { kB: Float32Array; vB: Float32Array } | null = null;
    const parts = (): { kB: Float32Array; vB: Float32Array } => {
      split ??= splitKvB(w.read(kvb), H, nope, c.v_head_dim, kvLora);
      return split;
    };
    add(`${b}.attn_k_b.weight`, [H, kvLora, nope], () => parts().kB);
    add(`${b}.attn_v_b.weight`, [H, c.v_head_dim, kvLora], () => {
      const v = parts().vB;
      split = null;
      return v;
    });
    copy(`${b}.attn_output.weight`, `${p}.self_attn.o_proj.weight`);
    copy(`${b}.ffn_norm.weight`, `${p}.post_attention_layernorm.weight`);
    if (!moe(i)) {
      for (const x of ['gate', 'up', 'down']) copy(`${b}.ffn_${x}.weight`, `${p}.mlp.${x}_proj.weight`);
    } else {
      copy(`${b}.ffn_gate_inp.weight`, `${p}.mlp.gate.weight`, 'f32');
      if (w.has(`${p}.mlp.gate.e_score_correction_bias`)) copy(`${b}.exp_probs_b.bias`, `${p}.mlp.gate.e_score_correction_bias`);
      const E = c.n_routed_experts ?? 0;
      for (const x of ['gate', 'up', 'down'])
        stack(
          `${b}.ffn_${x}_exps.weight`,
          Array.from({ length: E }, (_, e) => `${p}.mlp.experts.${e}.${x}_proj.weight`),
        );
      if ((c.n_shared_experts ?? 0) > 0) for (const x of ['gate', 'up', 'down']) copy(`${b}.ffn_${x}_shexp.weight`, `${p}.mlp.shared_experts.${x}_proj.weight`);
    }
    if (i >= L) {
      copy(`${b}.nextn.eh_proj.weight`, `${p}.eh_proj.weight`);
      copy(`${b}.nextn.enorm.weight`, `${p}.enorm.weight`);
      copy(`${b}.nextn.hnorm.weight`, `${p}.hnorm.weight`);
      copy(`${b}.nextn.shared_head_norm.weight`, `${p}.shared_head.norm.weight`);
    }
  }
  if (fellBack) notices.push(`${fellBack} matrices whose rows are not a multiple of ${Q8_0_BLOCK} values are written as f16 instead of q8_0`);
  return { metadata, tensors, notices, close: () => w.close() };
}
