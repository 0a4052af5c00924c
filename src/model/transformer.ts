/**
 * The DeepSeek-V3 causal language model: embedding, decoder layers (MLA + dense MLP / DeepSeekMoE),
 * final norm, output head (optionally tied to the embedding), and the MTP modules.
 *
 *   forward(ids)        logits and final hidden states; with a KV cache, the new positions only;
 *                       optional per-row positions and key padding (batched decoding of
 *                       left-padded prompts; without them the ops are those of training)
 *   loss(ids, targets)  L_main + (λ/D)·Σ_k L_MTP,k + the balance loss when α > 0
 *
 * Tensor names are Hugging Face's (model.embed_tokens.weight, model.layers.{i}.self_attn.…,
 * lm_head.weight), so a state dict maps one to one onto DeepSeek's checkpoints.
 *
 * This module knows the network; it does not know tokenizers, sampling or optimizers.
 */
import { type DType, type Device, Generator, type Tensor, crossEntropy, noGrad } from '../core/index.ts';
import { Embedding, Linear, Module, ModuleList, RMSNorm } from '../nn/index.ts';
import { type AttentionContext, type LayerCache, type MlaImpl, causalMask, paddedCausalMask } from './attention.ts';
import { DecoderLayer } from './block.ts';
import { type ModelConfig, qkHeadDim } from './config.ts';
import { type ExpertLoad, MoE } from './moe.ts';
import { MtpLayer } from './mtp.ts';
import { type RopeTables, ropeRows, ropeSlice, ropeTables } from './rope.ts';

/** The key/value cache of every layer for incremental decoding. */
export interface KVCache {
  readonly layers: LayerCache[];
  readonly batch: number;
  readonly maxLen: number;
  readonly mla: MlaImpl;
}

export interface ForwardOptions {
  /** Position of ids[:, 0] (= tokens already in the cache). */
  startPos?: number;
  cache?: KVCache | null;
  /** MLA form: 'naive' (default) or 'absorbed'; a cache must have been made for the same form. */
  mla?: MlaImpl;
  /**
   * (B, S) integer rotary position of each new token, per row. Default: startPos + s in every row.
   * Batched decoding of left-padded prompts passes column − padLeft[row] (clamped to 0 on the pads).
   * Values must lie in [0, max_position_embeddings).
   */
  positions?: Tensor;
  /**
   * (B, ≥ startPos+S) bool, true at key columns that hold padding (columns 0..startPos+S-1 are
   * read, so a decoder may pass one buffer for the whole cache). No query attends to a padding key;
   * a padding query attends to itself only, which keeps its (meaningless) output finite.
   * Default: no padding (the causal mask alone).
   */
  keyPadding?: Tensor;
  /**
   * (B, 1, S, S) additive mask (0 where a query may attend, −inf where not) replacing the causal
   * one, for sequences that are not one causal run — a prompt shared by several completions, each
   * attending to the prompt and to itself (rl/logprobs.ts). Every query row must keep at least one
   * key. Not with a cache or keyPadding.
   */
  attentionMask?: Tensor;
  /** 'last': logits of the last column only, (B, 1, V) — what sampling needs. Default 'all'. */
  logits?: 'all' | 'last';
}

export interface ForwardOutput {
  /** (B, S, V) */
  logits: Tensor;
  /** (B, S, D) after the final norm */
  hidden: Tensor;
  /** Sum of the MoE layers' balance losses (training with α > 0), else null. */
  auxLoss: Tensor | null;
}

export interface LossOptions {
  /** Targets equal to this are ignored (default -100). */
  ignoreIndex?: number;
  /** λ, the MTP loss weight (default 0.3, DeepSeek-V3's first phase). */
  mtpWeight?: number;
  mla?: MlaImpl;
}

export interface LossOutput {
  /** What to backpropagate. */
  loss: Tensor;
  /** The main next-token cross-entropy. */
  lmLoss: Tensor;
  /** Cross-entropy of each MTP depth (predicting t_{i+k+1}). */
  mtpLosses: Tensor[];
  auxLoss: Tensor | null;
}

export interface ModelOptions {
  /** Seeds the weights (default: the global generator). */
  seed?: number;
  generator?: Generator;
  dtype?: DType;
  device?: Device;
}

class Backbone extends Module {
  readonly embed_tokens: Embedding;
  readonly layers: ModuleList<DecoderLayer>;
  readonly norm: RMSNorm;

  constructor(c: ModelConfig, generator: Generator | undefined) {
    super();
    this.embed_tokens = this.registerModule('embed_tokens', new Embedding(c.vocab_size, c.hidden_size, { initStd: c.initializer_range, generator }));
    const layers: DecoderLayer[] = [];
    for (let i = 0; i < c.num_hidden_layers; i++) layers.push(new DecoderLayer(c, i, { generator }));
    for (let k = 0; k < c.num_nextn_predict_layers; k++) layers.push(new MtpLayer(c, c.num_hidden_layers + k, { generator }));
    this.layers = this.registerModule('layers', new ModuleList(layers));
    this.norm = this.registerModule('norm', new RMSNorm(c.hidden_size, { eps: c.rms_norm_eps }));
  }
}

export class DeepSeekV3 extends Module {
  readonly config: ModelConfig;
  readonly model: Backbone;
  readonly lm_head: Linear | null;
  /** The decoder layers (without the MTP modules). */
  readonly blocks: DecoderLayer[];
  readonly mtp: MtpLayer[];
  private readonly rope: RopeTables;

  constructor(config: ModelConfig, o: ModelOptions = {}) {
    super();
    this.config = config;
    // Weights come from `generator`, else a fresh one seeded with `seed`, else the global generator.
    const generator = o.generator ?? (o.seed !== undefined ? new Generator(o.seed) : undefined);
    this.model = this.registerModule('model', new Backbone(config, generator));
    this.lm_head = config.tie_word_embeddings
      ? null
      : this.registerModule('lm_head', new Linear(config.hidden_size, config.vocab_size, { bias: false, initStd: config.initializer_range, generator }));
    this.blocks = this.model.layers.items.slice(0, config.num_hidden_layers);
    this.mtp = this.model.layers.items.slice(config.num_hidden_layers) as MtpLayer[];
    const ropeDim = config.attention_type === 'mla' ? config.qk_rope_head_dim : qkHeadDim(config);
    this.rope = ropeTables(config, ropeDim, config.max_position_embeddings);
    if (o.dtype || o.device) this.to({ dtype: o.dtype, device: o.device });
  }

  /** The output projection (V, D): lm_head, or the embedding when tied. */
  headWeight(): Tensor {
    return this.lm_head ? this.lm_head.weight : this.model.embed_tokens.weight;
  }

  /**
   * Rotary rows and mask for S new positions after startPos, shared by the layers. Without
   * `positions` / `keyPadding` (training, unpadded decoding): position = column, causal mask.
   */
  private context(
    S: number,
    startPos: number,
    cache: LayerCache | null,
    mla: MlaImpl,
    like: Tensor,
    positions?: Tensor,
    keyPadding?: Tensor,
  ): AttentionContext {
    const { cos, sin } = positions ? ropeRows(this.rope, positions) : ropeSlice(this.rope, startPos, S);
    const toLike = (t: Tensor): Tensor => (t.device === like.device && t.dtype === like.dtype ? t : t.to({ dtype: like.dtype, device: like.device }));
    if (keyPadding) return { cos: toLike(cos), sin: toLike(sin), mask: null, batchMask: paddedCausalMask(keyPadding, S, startPos, like), startPos, cache, mla };
    return { cos: toLike(cos), sin: toLike(sin), mask: causalMask(S, startPos, like), startPos, cache, mla };
  }

  /** ids (B, S) int64 → logits (B, S, V), hidden (B, S, D). */
  forward(ids: Tensor, o: ForwardOptions = {}): ForwardOutput {
    const [B, S] = ids.shape;
    const startPos = o.startPos ?? 0;
    const cache = o.cache ?? null;
    const mla = cache ? cache.mla : (o.mla ?? 'naive');
    if (cache && (cache.batch !== B || (o.mla !== undefined && o.mla !== cache.mla))) {
      throw new TypeError(`the cache was made for batch ${cache.batch} (${cache.mla}); got batch ${B}${o.mla ? ` (${o.mla})` : ''}`);
    }
    if (o.positions || o.keyPadding) checkBatchOptions(o.positions, o.keyPadding, B, S, startPos);
    if (o.attentionMask) {
      const m = o.attentionMask.shape;
      if (cache || o.keyPadding) throw new TypeError('attentionMask replaces the causal mask of a whole sequence: not with a cache or keyPadding');
      if (m.length !== 4 || m[0] !== B || m[1] !== 1 || m[2] !== S || m[3] !== S)
        throw new TypeError(`attentionMask must be (${B}, 1, ${S}, ${S}); got (${m.join(', ')})`);
    }
    let x = this.model.embed_tokens.forward(ids); // (B, S, D)
    let auxLoss: Tensor | null = null;
    let ctx = this.context(S, startPos, null, mla, x, o.positions, o.keyPadding); // rotary rows and mask, shared by the layers
    if (o.attentionMask) ctx = { ...ctx, mask: null, batchMask: o.attentionMask.to({ dtype: x.dtype, device: x.device }) };
    this.blocks.forEach((layer, i) => {
      const r = layer.forward(x, cache ? { ...ctx, cache: cache.layers[i] } : ctx);
      x = r.out;
      if (r.auxLoss) auxLoss = auxLoss ? auxLoss.add(r.auxLoss) : r.auxLoss;
    });
    const hidden = this.model.norm.forward(x); // (B, S, D)
    if (o.logits === 'last') return { logits: hidden.narrow(1, S - 1, 1).matmul(this.headWeight().mT), hidden, auxLoss }; // (B, 1, V)
    return { logits: hidden.matmul(this.headWeight().mT), hidden, auxLoss };
  }

  /**
   * Training loss for ids (B, S) and targets (B, S) (targets[i] = the token after ids[i]; positions
   * to skip hold ignoreIndex). MTP depth k is trained on positions 0..S-1-k.
   */
  loss(ids: Tensor, targets: Tensor, o: LossOptions = {}): LossOutput {
    const ignoreIndex = o.ignoreIndex ?? -100;
    const V = this.config.vocab_size;
    const { logits, hidden, auxLoss: mainAux } = this.forward(ids, { mla: o.mla });
    const lmLoss = crossEntropy(logits.reshape([-1, V]), targets.reshape([-1]), { ignoreIndex });
    const mtp = this.mtpLogits(ids, hidden, o.mla);
    let auxLoss = mainAux;
    if (mtp.auxLoss) auxLoss = auxLoss ? auxLoss.add(mtp.auxLoss) : mtp.auxLoss;
    const mtpLosses = mtp.logits.map((logitsK, j) => {
      const k = j + 1;
      const len = logitsK.shape[1];
      return crossEntropy(logitsK.reshape([-1, V]), targets.narrow(1, k, len).reshape([-1]), { ignoreIndex });
    });
    let loss = lmLoss;
    if (mtpLosses.length) {
      const lambda = o.mtpWeight ?? 0.3;
      let sum = mtpLosses[0];
      for (const l of mtpLosses.slice(1)) sum = sum.add(l);
      loss = loss.add(sum.mul(lambda / this.mtp.length));
    }
    if (auxLoss) loss = loss.add(auxLoss);
    return { loss, lmLoss, mtpLosses, auxLoss };
  }

  /**
   * One inference step of the first MTP module with its own KV cache (speculative decoding): at the
   * new positions startPos… of each row, `hidden` (B, S, D) is the main model's final hidden state
   * and `nextIds` (B, S) the token that follows each position; returns logits (B, S, V) for the
   * token after that (two ahead). `cache` is the module's layer cache; positions and key padding as
   * in forward().
   */
  mtpStep(hidden: Tensor, nextIds: Tensor, o: { startPos: number; cache: LayerCache; positions?: Tensor; keyPadding?: Tensor }): Tensor {
    const m = this.mtp[0];
    if (!m) throw new RangeError('the model has no MTP module (num_nextn_predict_layers is 0)');
    const [B, S] = nextIds.shape;
    if (o.positions || o.keyPadding) checkBatchOptions(o.positions, o.keyPadding, B, S, o.startPos);
    const emb = this.model.embed_tokens.forward(nextIds); // (B, S, D): Emb(t_{i+1})
    const ctx = this.context(S, o.startPos, o.cache, 'absorbed', emb, o.positions, o.keyPadding);
    const r = m.predict(hidden, emb, ctx); // (B, S, D)
    return m.shared_head.norm.forward(r.out).matmul(this.headWeight().mT); // (B, S, V)
  }

  /**
   * The MTP modules' predictions for ids (B, S) given the main model's final hidden states:
   * logits[k-1] (B, S-k, V) at position i predicts token t_{i+k+1}. Depths that do not fit S are
   * left out.
   */
  mtpLogits(ids: Tensor, hidden: Tensor, mla?: MlaImpl): { logits: Tensor[]; auxLoss: Tensor | null } {
    const S = ids.shape[1];
    const logits: Tensor[] = [];
    let auxLoss: Tensor | null = null;
    let prev = hidden; // (B, S, D)
    this.mtp.forEach((m, j) => {
      const k = j + 1;
      const len = S - k;
      if (len <= 0) return;
      const emb = this.model.embed_tokens.forward(ids.narrow(1, k, len)); // (B, S-k, D): Emb(t_{i+k})
      const r = m.predict(prev.narrow(1, 0, len), emb, this.context(len, 0, null, mla ?? 'naive', emb));
      if (r.auxLoss) auxLoss = auxLoss ? auxLoss.add(r.auxLoss) : r.auxLoss;
      logits.push(m.shared_head.norm.forward(r.out).matmul(this.headWeight().mT)); // (B, S-k, V)
      prev = r.out;
    });
    return { logits, auxLoss };
  }

  /** Every MoE layer, main model first, then the MTP modules'. */
  moeLayers(): MoE[] {
    return this.model.layers.items.map((l) => l.mlp).filter((m): m is MoE => m instanceof MoE);
  }

  /** The aux-loss-free bias update on every MoE layer (call after each optimizer step). */
  updateBias(gamma: number): void {
    for (const m of this.moeLayers()) m.updateBias(gamma);
  }

  /** Replaces each MoE layer's load since the last bias update (keyed by layer index, as expertLoad()). */
  setExpertLoad(load: Map<number, number[]>): void {
    for (const l of this.model.layers.items) {
      const tokens = load.get(l.index);
      if (l.mlp instanceof MoE && tokens) l.mlp.setLoad(tokens);
    }
  }

  /** Expert load per MoE layer since the last bias update, keyed by layer index. */
  expertLoad(): Map<number, ExpertLoad> {
    const out = new Map<number, ExpertLoad>();
    for (const l of this.model.layers.items) if (l.mlp instanceof MoE) out.set(l.index, l.mlp.load());
    return out;
  }

  /** Allocates a KV cache for `batch` sequences of up to `maxLen` positions. */
  createCache(batch: number, maxLen: number, mla: MlaImpl = 'absorbed'): KVCache {
    if (maxLen > this.config.max_position_embeddings) {
      throw new RangeError(`maxLen ${maxLen} exceeds max_position_embeddings ${this.config.max_position_embeddings}`);
    }
    const like = this.model.embed_tokens.weight;
    return noGrad(() => ({
      layers: this.blocks.map((l) => l.self_attn.allocateCache(batch, maxLen, mla, like)),
      batch,
      maxLen,
      mla,
    }));
  }
}

/** Shape checks of the batched-decoding options (metadata reads only, no data). */
function checkBatchOptions(positions: Tensor | undefined, keyPadding: Tensor | undefined, B: number, S: number, startPos: number): void {
  if (positions) {
    const s = positions.shape;
    if (s.length !== 2 || s[0] !== B || s[1] !== S) throw new TypeError(`positions must be (${B}, ${S}) like ids; got (${s.join(', ')})`);
  }
  if (keyPadding) {
    const m = keyPadding.meta();
    if (m.dtype !== 'bool' || m.shape.length !== 2 || m.shape[0] !== B || m.shape[1] < startPos + S) {
      throw new TypeError(`keyPadding must be a bool (${B}, ≥ ${startPos + S}) tensor; got ${m.dtype} (${m.shape.join(', ')})`);
    }
  }
}

/** Frees a cache's tensors. */
export function disposeCache(cache: KVCache): void {
  for (const l of cache.layers) for (const t of [l.k, l.v, l.latent, l.kpe]) t?.dispose();
}
