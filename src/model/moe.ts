/**
 * DeepSeekMoE: SwiGLU experts, the gate, and the MoE layer that dispatches tokens to experts in
 * batches grouped by expert.
 *
 * Gate (DeepSeek-V3 §2.1.2): scores = sigmoid or softmax of x·Wᵀ ("original"). For aux-loss-free
 * balancing a per-expert bias b is added for *selection only*. Group-limited routing scores each
 * group by its max (no bias) or the sum of its top-2 (with bias), keeps `topk_group` groups and
 * picks the top-k experts inside them. The routing weights are the original scores of the chosen
 * experts, renormalised when `norm_topk_prob`, times `routed_scaling_factor`. No token is dropped.
 *
 * The bias is a buffer, never touched by autograd; `updateBias(γ)` moves it after an optimizer step
 * from the load the layer saw since the last update. The optional sequence-wise balance loss
 * (α·Σᵢ fᵢPᵢ per sequence) is returned by `forward` when training with α > 0.
 *
 * This module knows routing and experts; it does not know attention or tokens.
 */
import { type Generator, type Tensor, cat, empty, fusedUsable, moeSelect, noGrad, ones, tensor, tidy, zeros } from '../core/index.ts';
import { Linear, Module, ModuleList, init } from '../nn/index.ts';
import type { ModelConfig } from './config.ts';

export interface InitOptions {
  generator?: Generator;
}

/** SwiGLU MLP: down(silu(gate(x)) · up(x)). Experts, shared experts and dense layers are all this. */
export class Mlp extends Module {
  readonly gate_proj: Linear;
  readonly up_proj: Linear;
  readonly down_proj: Linear;

  constructor(dim: number, inter: number, std: number, o: InitOptions = {}) {
    super();
    this.gate_proj = this.registerModule('gate_proj', new Linear(dim, inter, { bias: false, initStd: std, generator: o.generator }));
    this.up_proj = this.registerModule('up_proj', new Linear(dim, inter, { bias: false, initStd: std, generator: o.generator }));
    this.down_proj = this.registerModule('down_proj', new Linear(inter, dim, { bias: false, initStd: std, generator: o.generator }));
  }

  /** (…, dim) → (…, dim) */
  forward(x: Tensor): Tensor {
    return this.down_proj.forward(this.gate_proj.forward(x).silu().mul(this.up_proj.forward(x)));
  }
}

export interface Routing {
  /** (T, k) routing weights, differentiable with respect to the gate. */
  weights: Tensor;
  /** (T, k) int64 expert ids. */
  indices: Tensor;
  /** (T, E) the original (unbiased) scores. */
  scores: Tensor;
}

export class Gate extends Module {
  readonly weight: Tensor; // (E, D)
  readonly bias: Tensor | null; // (E), selection only
  readonly nExperts: number;
  readonly topk: number;
  readonly nGroups: number;
  readonly topkGroups: number;
  readonly scoring: 'softmax' | 'sigmoid';
  readonly method: ModelConfig['topk_method'];
  readonly normTopk: boolean;
  readonly routeScale: number;

  constructor(c: ModelConfig, o: InitOptions = {}) {
    super();
    this.nExperts = c.n_routed_experts ?? 0;
    this.topk = c.num_experts_per_tok ?? 0;
    this.method = c.topk_method;
    this.nGroups = this.method === 'greedy' ? 1 : (c.n_group ?? 1);
    this.topkGroups = this.method === 'greedy' ? 1 : (c.topk_group ?? 1);
    this.scoring = c.scoring_func;
    this.normTopk = c.norm_topk_prob && this.topk > 1;
    this.routeScale = c.routed_scaling_factor;
    // U(±1/√D), torch.nn.Linear's default, which DeepSeek's gate keeps.
    this.weight = this.registerParameter('weight', init.fanInUniform_(empty([this.nExperts, c.hidden_size]), c.hidden_size, o.generator));
    this.bias = this.method === 'noaux_tc' ? this.registerBuffer('e_score_correction_bias', zeros([this.nExperts])) : null;
  }

  /** x (T, D) → the top-k experts per token and their weights. */
  route(x: Tensor): Routing {
    const mm = x.matmul(this.weight.mT); // (T, E)
    const logits = mm.dtype === 'bfloat16' || mm.dtype === 'float16' ? mm.float() : mm; // scored in at least float32
    const scores = this.scoring === 'sigmoid' ? logits.sigmoid() : logits.softmax(-1); // (T, E)
    const indices = noGrad(() =>
      tidy(() => {
        if (fusedUsable(scores) && (!this.bias || fusedUsable(this.bias))) return moeSelect(scores, this.bias, this.nGroups, this.topkGroups, this.topk); // one kernel: (T, k)
        let sel = scores.detach(); // (T, E)
        if (this.bias) sel = sel.add(this.bias);
        if (this.nGroups > 1) {
          const T = sel.shape[0];
          const grouped = sel.view([T, this.nGroups, this.nExperts / this.nGroups]); // (T, G, E/G)
          const groupScore = this.bias ? grouped.topk(2, -1).values.sum(-1) : grouped.amax(-1); // (T, G)
          const kept = groupScore.topk(this.topkGroups, -1).indices; // (T, topk_group)
          const dropped = ones([T, this.nGroups], { dtype: 'bool' }).scatter(1, kept, 0); // (T, G)
          sel = grouped.maskedFill(dropped.unsqueeze(-1), Number.NEGATIVE_INFINITY).flatten(1); // (T, E)
        }
        return sel.topk(this.topk, -1).indices; // (T, k)
      }),
    );
    let weights = scores.gather(1, indices); // (T, k)
    if (this.normTopk) weights = weights.div(weights.sum(-1, true).add(1e-20));
    if (this.routeScale !== 1) weights = weights.mul(this.routeScale);
    return { weights, indices, scores };
  }
}

/** Expert load seen by one MoE layer. */
export interface ExpertLoad {
  /** Tokens routed to each expert. */
  tokens: number[];
  /** max / mean of `tokens` (1 is perfectly balanced). */
  maxOverMean: number;
}

export function loadOf(tokens: number[]): ExpertLoad {
  const mean = tokens.reduce((a, b) => a + b, 0) / Math.max(1, tokens.length);
  return { tokens, maxOverMean: mean > 0 ? Math.max(...tokens) / mean : 1 };
}

export interface MoeOutput {
  /** (…, D) */
  out: Tensor;
  /** The α-weighted balance loss (a 0-d tensor), when training with α > 0. */
  auxLoss: Tensor | null;
}

export class MoE extends Module {
  readonly gate: Gate;
  readonly experts: ModuleList<Mlp>;
  readonly shared_experts: Mlp | null;
  readonly alpha: number;
  readonly seqAux: boolean;
  /** Tokens per expert in the last forward. */
  lastLoad: number[];
  /** Tokens per expert since the last bias update (or reset). */
  private accumulated: number[];

  constructor(c: ModelConfig, o: InitOptions = {}) {
    super();
    const E = c.n_routed_experts ?? 0;
    const Im = c.moe_intermediate_size ?? 0;
    const std = c.initializer_range;
    this.gate = this.registerModule('gate', new Gate(c, o));
    this.experts = this.registerModule('experts', new ModuleList(Array.from({ length: E }, () => new Mlp(c.hidden_size, Im, std, o))));
    this.shared_experts = c.n_shared_experts ? this.registerModule('shared_experts', new Mlp(c.hidden_size, Im * c.n_shared_experts, std, o)) : null;
    this.alpha = c.aux_loss_alpha;
    this.seqAux = c.seq_aux;
    this.lastLoad = new Array<number>(E).fill(0);
    this.accumulated = new Array<number>(E).fill(0);
  }

  /** x (B, S, D) → (B, S, D). Tokens are grouped by expert; each expert runs once on its batch. */
  forward(x: Tensor): MoeOutput {
    const shape = x.shape; // (B, S, D)
    const D = shape[shape.length - 1];
    const flat = x.reshape([-1, D]); // (T, D)
    const T = flat.shape[0];
    const { weights, indices, scores } = this.gate.route(flat);
    const k = this.gate.topk;
    const E = this.gate.nExperts;
    if (T === 1) return this.forwardOne(x, flat, weights, indices, scores);

    const assign = indices.flatten(); // (T·k) expert of each assignment
    const { values: sortedExperts, indices: order } = assign.sort(-1); // grouped by expert
    const counts = sortedExperts.bincount(null, E).toArray(); // (E) on the JS side: batch sizes
    const tokenOf = order.div(k, 'floor'); // (T·k) token of each sorted assignment
    const xs = flat.indexSelect(0, tokenOf); // (T·k, D)
    const ws = weights.flatten().indexSelect(0, order).unsqueeze(1).to(x.dtype); // (T·k, 1)

    const pieces = xs.split(counts, 0);
    const outs: Tensor[] = [];
    for (let e = 0; e < E; e++) if (counts[e] > 0) outs.push(this.experts.items[e].forward(pieces[e])); // (n_e, D)
    const routed = cat(outs, 0).mul(ws); // (T·k, D)
    let y = zeros([T, D], { dtype: x.dtype, device: x.device }).indexAdd(0, tokenOf, routed); // (T, D)
    if (this.shared_experts) y = y.add(this.shared_experts.forward(flat));

    this.lastLoad = counts;
    if (this.training) for (let e = 0; e < E; e++) this.accumulated[e] += counts[e]; // evaluation passes do not move the bias

    const auxLoss = this.training && this.alpha > 0 ? this.balanceLoss(scores, indices, shape[0], T) : null;
    return { out: y.reshape(shape), auxLoss };
  }

  /**
   * One token (batch-1 decoding): its k experts run on it directly and their outputs are weighted in
   * one product, without the sort / split / scatter that group a batch by expert.
   */
  private forwardOne(x: Tensor, flat: Tensor, weights: Tensor, indices: Tensor, scores: Tensor): MoeOutput {
    const shape = x.shape;
    const ids = indices.flatten().toArray() as number[]; // (k) on the JS side
    const outs = ids.map((e) => this.experts.items[e].forward(flat)); // k × (1, D)
    let y = weights.to(x.dtype).matmul(cat(outs, 0)); // (1, k) @ (k, D) → (1, D)
    if (this.shared_experts) y = y.add(this.shared_experts.forward(flat));
    const counts = new Array<number>(this.gate.nExperts).fill(0);
    for (const e of ids) counts[e]++;
    this.lastLoad = counts;
    if (this.training) for (const e of ids) this.accumulated[e]++;
    const auxLoss = this.training && this.alpha > 0 ? this.balanceLoss(scores, indices, shape[0], 1) : null;
    return { out: y.reshape(shape), auxLoss };
  }

  /**
   * α·Σᵢ fᵢ·Pᵢ, with fᵢ = E/(k·S)·(tokens of the sequence routed to i) and Pᵢ the mean normalised
   * score of i over the sequence; averaged over sequences (over the whole batch when !seq_aux).
   */
  private balanceLoss(scores: Tensor, indices: Tensor, batch: number, T: number): Tensor {
    const E = this.gate.nExperts;
    const k = this.gate.topk;
    const B = this.seqAux ? batch : 1;
    const S = T / B;
    const normalised = scores.div(scores.sum(-1, true)); // (T, E)
    const P = normalised.view([B, S, E]).mean(1); // (B, E)
    const f = noGrad(() =>
      zeros([B, E], { device: scores.device })
        .scatterAdd(1, indices.view([B, S * k]), ones([B, S * k], { device: scores.device }))
        .mul(E / (k * S)),
    ); // (B, E)
    return f.mul(P).sum(1).mean().mul(this.alpha);
  }

  /** Expert load since the last bias update. */
  load(): ExpertLoad {
    return loadOf([...this.accumulated]);
  }

  /**
   * The aux-loss-free update (DeepSeek-V3): b_i -= γ if expert i was above the mean load since the
   * last update, b_i += γ if below. Outside autograd. Resets the accumulated load.
   */
  updateBias(gamma: number): void {
    const bias = this.gate.bias;
    const counts = this.accumulated;
    this.accumulated = new Array<number>(counts.length).fill(0);
    if (!bias || gamma === 0) return;
    const mean = counts.reduce((a, b) => a + b, 0) / counts.length;
    const delta = counts.map((n) => (n > mean ? -gamma : n < mean ? gamma : 0));
    noGrad(() => tidy(() => bias.add_(tensor(delta, { dtype: bias.dtype }))));
  }

  /** Replaces the load since the last update (data parallelism: with the sum over ranks). */
  setLoad(tokens: number[]): void {
    if (tokens.length !== this.accumulated.length) throw new RangeError(`setLoad: ${tokens.length} counts for ${this.accumulated.length} experts`);
    this.accumulated = [...tokens];
  }

  /** Clears the accumulated load (e.g. after evaluation passes). */
  resetLoad(): void {
    this.accumulated.fill(0);
  }
}
