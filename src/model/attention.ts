/**
 * Attention: multi-head latent attention (MLA, DeepSeek-V2 §2.1) in its two equivalent forms, and
 * plain multi-head / grouped-query attention for the baselines.
 *
 * MLA. Queries: wq (or wq_a → RMSNorm → wq_b), split per head into a "nope" part and a rotary
 * part. Keys/values: wkv_a compresses x into a latent c_kv (kv_lora_rank) plus one rotary key k_pe
 * shared by all heads; RMSNorm(c_kv) is expanded by wkv_b into per-head k_nope and v.
 *   naive     expands K and V per head and attends as MHA (caches K and V);
 *   absorbed  folds wkv_b's key half into the query and its value half into the output, attending
 *             over the latent directly — the cache holds only RMSNorm(c_kv) and k_pe
 *             (kv_lora_rank + qk_rope_head_dim elements per token per layer: 576 at V3's shape).
 *             With that cache, each call attends in whichever form costs fewer multiply-adds for
 *             its S queries over T keys (mlaLatentCheaper): over the latent (decoding: S = 1), or
 *             by expanding the cached latent to per-head K and V and attending as MHA (a prompt's
 *             prefill, where S·T dominates and the latent form pays 2C + R per score against
 *             nope + R + v) — the split vLLM's MLA backends make between decode and prefill.
 *
 * Axis names: B batch, S new positions, T all positions (cache + new), H heads, D model width,
 * C kv_lora_rank, R rotary width.
 *
 * This module knows one layer's attention and its cache slots; not the model or sampling.
 */
import { type Generator, type Tensor, arange, cat, einsum, empty, full, zeros } from '../core/index.ts';
import { Linear, Module, RMSNorm } from '../nn/index.ts';
import { type ModelConfig, kvHeads, qkHeadDim, softmaxScale, vHeadDim } from './config.ts';
import { applyRotary } from './rope.ts';

export type MlaImpl = 'naive' | 'absorbed';

/** One layer's cache: what was written for positions 0..length-1. */
export interface LayerCache {
  /** MLA absorbed: (B, maxT, C) normalised latent and (B, maxT, R) rotary key. */
  latent?: Tensor;
  kpe?: Tensor;
  /** naive MLA and MHA/GQA: (B, maxT, H_kv, ·) keys and values. */
  k?: Tensor;
  v?: Tensor;
}

export interface AttentionContext {
  /** (S, 1, R/2) rotary tables at the new positions, or (B, S, 1, R/2) with per-row positions. */
  cos: Tensor;
  sin: Tensor;
  /** (S, T) additive mask (0 or -inf), or null when every position may attend to all of T. */
  mask: Tensor | null;
  /**
   * (B, 1, S, T) additive mask per row (causality plus key padding: paddedCausalMask); when set it
   * replaces `mask`. Absent on the plain path.
   */
  batchMask?: Tensor | null;
  /** First new position (= tokens already in the cache). */
  startPos: number;
  cache: LayerCache | null;
  mla: MlaImpl;
}

/** Writes x (B, S, …) into cache rows start..start+S-1 and returns rows 0..start+S-1. */
function writeCache(buf: Tensor, x: Tensor, start: number): Tensor {
  const S = x.shape[1];
  if (start + S > buf.shape[1]) throw new RangeError(`the KV cache holds ${buf.shape[1]} positions; ${start + S} needed`);
  buf.narrow(1, start, S).copy_(x.detach());
  return buf.narrow(1, 0, start + S);
}

/** MLA's widths as the cost of attending sees them. */
export interface MlaDims {
  heads: number;
  nope: number;
  rope: number;
  vDim: number;
  rank: number;
}

/**
 * Whether attending S queries over T cached latents costs fewer multiply-adds over the latent
 * (absorbing wkv_b into the query and the output) than expanding the T latents to K and V:
 *   latent    H·S·(nope·C + T·(2C + R) + C·v)
 *   expanded  H·(T·C·(nope + v) + S·T·(nope + R + v))
 */
export function mlaLatentCheaper(S: number, T: number, d: MlaDims): boolean {
  const C = d.rank;
  const latent = S * (d.nope * C + T * (2 * C + d.rope) + C * d.vDim);
  const expanded = T * C * (d.nope + d.vDim) + S * T * (d.nope + d.rope + d.vDim);
  return latent <= expanded;
}

/** softmax(scores·scale + mask) in at least float32, back in the input dtype. scores (…, S, T). */
function attentionProbs(scores: Tensor, scale: number, mask: Tensor | null): Tensor {
  const half = scores.dtype === 'bfloat16' || scores.dtype === 'float16';
  let s = half ? scores.float().mul(scale) : scores.mul(scale);
  if (mask) s = s.add(mask);
  const p = s.softmax(-1);
  return p.dtype === scores.dtype ? p : p.to(scores.dtype);
}

export class MLA extends Module {
  readonly heads: number;
  readonly nope: number;
  readonly rope: number;
  readonly vDim: number;
  readonly rank: number;
  readonly scale: number;
  /**
   * With the latent cache: 'auto' attends in the cheaper form per call (mlaLatentCheaper);
   * 'latent' always over the latent (the tests compare that form with the naive one).
   */
  absorbedForm: 'auto' | 'latent' = 'auto';
  readonly q_proj: Linear | null = null;
  readonly q_a_proj: Linear | null = null;
  readonly q_a_layernorm: RMSNorm | null = null;
  readonly q_b_proj: Linear | null = null;
  readonly kv_a_proj_with_mqa: Linear;
  readonly kv_a_layernorm: RMSNorm;
  readonly kv_b_proj: Linear;
  readonly o_proj: Linear;

  constructor(c: ModelConfig, o: { generator?: Generator } = {}) {
    super();
    const D = c.hidden_size;
    const std = c.initializer_range;
    const lin = (i: number, out: number): Linear => new Linear(i, out, { bias: false, initStd: std, generator: o.generator });
    this.heads = c.num_attention_heads;
    this.nope = c.qk_nope_head_dim;
    this.rope = c.qk_rope_head_dim;
    this.vDim = c.v_head_dim;
    this.rank = c.kv_lora_rank ?? 0;
    this.scale = softmaxScale(c);
    const qk = this.nope + this.rope;
    if (c.q_lora_rank) {
      this.q_a_proj = this.registerModule('q_a_proj', lin(D, c.q_lora_rank));
      this.q_a_layernorm = this.registerModule('q_a_layernorm', new RMSNorm(c.q_lora_rank, { eps: c.rms_norm_eps }));
      this.q_b_proj = this.registerModule('q_b_proj', lin(c.q_lora_rank, this.heads * qk));
    } else {
      this.q_proj = this.registerModule('q_proj', lin(D, this.heads * qk));
    }
    this.kv_a_proj_with_mqa = this.registerModule('kv_a_proj_with_mqa', lin(D, this.rank + this.rope));
    this.kv_a_layernorm = this.registerModule('kv_a_layernorm', new RMSNorm(this.rank, { eps: c.rms_norm_eps }));
    this.kv_b_proj = this.registerModule('kv_b_proj', lin(this.rank, this.heads * (this.nope + this.vDim)));
    this.o_proj = this.registerModule('o_proj', lin(this.heads * this.vDim, D));
  }

  /** Allocates this layer's cache slots for `batch` sequences of up to `maxLen` positions. */
  allocateCache(batch: number, maxLen: number, impl: MlaImpl, like: Tensor): LayerCache {
    const o = { dtype: like.dtype, device: like.device };
    if (impl === 'absorbed') return { latent: empty([batch, maxLen, this.rank], o).keep(), kpe: empty([batch, maxLen, this.rope], o).keep() };
    return { k: empty([batch, maxLen, this.heads, this.nope + this.rope], o).keep(), v: empty([batch, maxLen, this.heads, this.vDim], o).keep() };
  }

  /** x (B, S, D) → (B, S, D) */
  forward(x: Tensor, ctx: AttentionContext): Tensor {
    const [B, S] = x.shape;
    const H = this.heads;
    const q = (this.q_proj ? this.q_proj.forward(x) : this.q_b_proj!.forward(this.q_a_layernorm!.forward(this.q_a_proj!.forward(x)))).view([
      B,
      S,
      H,
      this.nope + this.rope,
    ]); // (B, S, H, nope+R)
    const qNope = q.narrow(-1, 0, this.nope); // (B, S, H, nope)
    const qPe = applyRotary(q.narrow(-1, this.nope, this.rope), ctx.cos, ctx.sin); // (B, S, H, R)
    const kv = this.kv_a_proj_with_mqa.forward(x); // (B, S, C+R)
    const latent = this.kv_a_layernorm.forward(kv.narrow(-1, 0, this.rank)); // (B, S, C)
    const kPe = applyRotary(kv.narrow(-1, this.rank, this.rope).unsqueeze(2), ctx.cos, ctx.sin); // (B, S, 1, R)

    const out = ctx.mla === 'absorbed' ? this.absorbed(qNope, qPe, latent, kPe, ctx) : this.naive(qNope, qPe, latent, kPe, ctx); // (B, S, H·v)
    return this.o_proj.forward(out);
  }

  private naive(qNope: Tensor, qPe: Tensor, latent: Tensor, kPe: Tensor, ctx: AttentionContext): Tensor {
    const [B, S, H] = qNope.shape;
    let [k, v] = this.expand(latent, kPe); // (B, S, H, nope+R), (B, S, H, v)
    if (ctx.cache) {
      k = writeCache(ctx.cache.k!, k, ctx.startPos); // (B, T, H, nope+R)
      v = writeCache(ctx.cache.v!, v, ctx.startPos); // (B, T, H, v)
    }
    return this.attendMha(cat([qNope, qPe], -1), k, v, ctx).reshape([B, S, H * this.vDim]);
  }

  /** Per-head keys and values from latents (B, T, C) and the shared rotary key (B, T, 1, R). */
  private expand(latent: Tensor, kPe: Tensor): [Tensor, Tensor] {
    const [B, T] = latent.shape;
    const H = this.heads;
    const kvb = this.kv_b_proj.forward(latent).view([B, T, H, this.nope + this.vDim]); // (B, T, H, nope+v)
    const k = cat([kvb.narrow(-1, 0, this.nope), kPe.expand([B, T, H, this.rope])], -1); // (B, T, H, nope+R)
    return [k, kvb.narrow(-1, this.nope, this.vDim)]; // (B, T, H, v)
  }

  /** q (B, S, H, nope+R) over k (B, T, H, nope+R), v (B, T, H, v) → (B, S, H, v). */
  private attendMha(q: Tensor, k: Tensor, v: Tensor, ctx: AttentionContext): Tensor {
    const scores = q.transpose(1, 2).matmul(k.permute([0, 2, 3, 1])); // (B, H, S, T)
    const probs = attentionProbs(scores, this.scale, ctx.batchMask ?? ctx.mask);
    return probs.matmul(v.transpose(1, 2)).transpose(1, 2); // (B, S, H, v)
  }

  private absorbed(qNope: Tensor, qPe: Tensor, latent: Tensor, kPe: Tensor, ctx: AttentionContext): Tensor {
    const [B, S, H] = qNope.shape;
    let lat = latent; // (B, S, C)
    let pe = kPe.squeeze(2); // (B, S, R)
    if (ctx.cache) {
      lat = writeCache(ctx.cache.latent!, lat, ctx.startPos); // (B, T, C)
      pe = writeCache(ctx.cache.kpe!, pe, ctx.startPos); // (B, T, R)
    }
    if (this.absorbedForm === 'auto' && !mlaLatentCheaper(S, lat.shape[1], this)) {
      const [k, v] = this.expand(lat, pe.unsqueeze(2)); // (B, T, H, nope+R), (B, T, H, v)
      return this.attendMha(cat([qNope, qPe], -1), k, v, ctx).reshape([B, S, H * this.vDim]);
    }
    const w = this.kv_b_proj.weight.view([H, this.nope + this.vDim, this.rank]); // (H, nope+v, C)
    const qLat = einsum('bshd,hdc->bshc', qNope, w.narrow(1, 0, this.nope)); // (B, S, H, C)
    const scores = einsum('bshc,btc->bsht', qLat, lat).add(einsum('bshr,btr->bsht', qPe, pe)); // (B, S, H, T)
    const mask = ctx.batchMask ? ctx.batchMask.transpose(1, 2) : ctx.mask ? ctx.mask.unsqueeze(1) : null; // (B, S, 1, T) or (S, 1, T)
    const probs = attentionProbs(scores, this.scale, mask); // (B, S, H, T)
    const oLat = einsum('bsht,btc->bshc', probs, lat); // (B, S, H, C)
    const o = einsum('bshc,hdc->bshd', oLat, w.narrow(1, this.nope, this.vDim)); // (B, S, H, v)
    return o.reshape([B, S, H * this.vDim]);
  }
}

/** Multi-head (kvHeads = heads) or grouped-query attention with full-width RoPE, for baselines. */
export class MHA extends Module {
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;
  readonly scale: number;
  readonly q_proj: Linear;
  readonly k_proj: Linear;
  readonly v_proj: Linear;
  readonly o_proj: Linear;

  constructor(c: ModelConfig, o: { generator?: Generator } = {}) {
    super();
    const D = c.hidden_size;
    this.heads = c.num_attention_heads;
    this.kvHeads = kvHeads(c);
    this.headDim = qkHeadDim(c);
    if (vHeadDim(c) !== this.headDim) throw new Error('MHA needs equal query and value head widths');
    this.scale = softmaxScale(c);
    const lin = (i: number, out: number, bias: boolean): Linear => new Linear(i, out, { bias, initStd: c.initializer_range, generator: o.generator });
    this.q_proj = this.registerModule('q_proj', lin(D, this.heads * this.headDim, c.attention_bias));
    this.k_proj = this.registerModule('k_proj', lin(D, this.kvHeads * this.headDim, c.attention_bias));
    this.v_proj = this.registerModule('v_proj', lin(D, this.kvHeads * this.headDim, c.attention_bias));
    this.o_proj = this.registerModule('o_proj', lin(this.heads * this.headDim, D, false));
  }

  allocateCache(batch: number, maxLen: number, _impl: MlaImpl, like: Tensor): LayerCache {
    const o = { dtype: like.dtype, device: like.device };
    const shape = [batch, maxLen, this.kvHeads, this.headDim];
    return { k: empty(shape, o).keep(), v: empty(shape, o).keep() };
  }

  /** x (B, S, D) → (B, S, D) */
  forward(x: Tensor, ctx: AttentionContext): Tensor {
    const [B, S] = x.shape;
    const H = this.heads;
    const G = this.kvHeads;
    const hd = this.headDim;
    const q = applyRotary(this.q_proj.forward(x).view([B, S, H, hd]), ctx.cos, ctx.sin); // (B, S, H, hd)
    let k = applyRotary(this.k_proj.forward(x).view([B, S, G, hd]), ctx.cos, ctx.sin); // (B, S, G, hd)
    let v = this.v_proj.forward(x).view([B, S, G, hd]); // (B, S, G, hd)
    if (ctx.cache) {
      k = writeCache(ctx.cache.k!, k, ctx.startPos); // (B, T, G, hd)
      v = writeCache(ctx.cache.v!, v, ctx.startPos);
    }
    const T = k.shape[1];
    if (G !== H) {
      k = k
        .unsqueeze(3)
        .expand([B, T, G, H / G, hd])
        .reshape([B, T, H, hd]); // (B, T, H, hd)
      v = v
        .unsqueeze(3)
        .expand([B, T, G, H / G, hd])
        .reshape([B, T, H, hd]);
    }
    const scores = q.transpose(1, 2).matmul(k.permute([0, 2, 3, 1])); // (B, H, S, T)
    const probs = attentionProbs(scores, this.scale, ctx.batchMask ?? ctx.mask);
    const o = probs.matmul(v.transpose(1, 2)); // (B, H, S, hd)
    return this.o_proj.forward(o.transpose(1, 2).reshape([B, S, H * hd]));
  }
}

/** The (S, T) causal mask for S new positions after `start` cached ones; null when S = 1. */
export function causalMask(S: number, start: number, like?: Tensor): Tensor | null {
  if (S === 1) return null;
  return full([S, start + S], Number.NEGATIVE_INFINITY, { dtype: 'float32', device: like?.device }).triu(start + 1);
}

/**
 * The (B, 1, S, T) additive mask for S new positions after `start` cached ones when some key
 * columns hold padding (`keyPadding` (B, ≥ T) bool, true at padding; columns 0..T-1 are read).
 * The query in column q = start + s may attend to key column t ≤ q unless t is padding; a padding
 * query attends to itself only. Its output is never used, but it must stay finite: a row masked
 * entirely would give NaN, which the layer would write into the cache for that column, and a NaN
 * key poisons every later score (NaN + -inf is NaN) even under the mask.
 */
export function paddedCausalMask(keyPadding: Tensor, S: number, start: number, like: Tensor): Tensor {
  const B = keyPadding.shape[0];
  const T = start + S;
  const device = like.device;
  const keys = arange(0, T, 1, { device }).view([1, T]); // (1, T) key columns
  const queries = arange(start, T, 1, { device }).view([S, 1]); // (S, 1) query columns
  const pad = keyPadding.narrow(1, 0, T).view([B, 1, 1, T]); // (B, 1, 1, T)
  const blocked = keys.gt(queries).logicalOr(pad.logicalAnd(keys.ne(queries))); // (B, 1, S, T)
  return zeros([B, 1, S, T], { dtype: 'float32', device }).maskedFill(blocked, Number.NEGATIVE_INFINITY);
}
