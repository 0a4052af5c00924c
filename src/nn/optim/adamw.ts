/**
 * AdamW (Loshchilov & Hutter): Adam with decoupled weight decay, matching torch.optim.AdamW
 * (foreach implementation, amsgrad off). Parameters come in groups that may each set their own
 * learning rate and weight decay; a schedule writes `group.lr` before each step.
 *
 * The optimizer knows parameters and their gradients, not modules or losses.
 */
import {
  type Tensor,
  foreachAddList_,
  foreachAdd_,
  foreachAddcdiv_,
  foreachAddcmul_,
  foreachDiv_,
  foreachMul_,
  foreachSqrt,
  noGrad,
  tidy,
  zerosLike,
} from '../../core/index.ts';
import type { Module } from '../module.ts';

export interface AdamWOptions {
  lr?: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
}

export interface ParamGroupSpec extends AdamWOptions {
  params: Tensor[];
  name?: string;
}

export interface ParamGroup {
  name: string;
  params: Tensor[];
  lr: number;
  betas: [number, number];
  eps: number;
  weightDecay: number;
}

interface ParamState {
  step: number;
  expAvg: Tensor;
  expAvgSq: Tensor;
}

/** Serializable optimizer state: per-parameter moments in group order, plus hyper-parameters. */
export interface AdamWState {
  groups: { name: string; lr: number; betas: [number, number]; eps: number; weightDecay: number; size: number }[];
  steps: number[];
  /** expAvg / expAvgSq per parameter index (null when the parameter has not been stepped yet). */
  expAvg: (Tensor | null)[];
  expAvgSq: (Tensor | null)[];
}

function check(o: Required<AdamWOptions>, where: string): void {
  if (!(o.lr >= 0)) throw new RangeError(`${where}: lr must be >= 0, got ${o.lr}`);
  if (!(o.eps >= 0)) throw new RangeError(`${where}: eps must be >= 0, got ${o.eps}`);
  for (const b of o.betas) if (!(b >= 0 && b < 1)) throw new RangeError(`${where}: betas must be in [0, 1), got ${o.betas.join(', ')}`);
  if (!(o.weightDecay >= 0)) throw new RangeError(`${where}: weightDecay must be >= 0, got ${o.weightDecay}`);
}

export class AdamW {
  readonly groups: ParamGroup[];
  private readonly state = new Map<Tensor, ParamState>();

  constructor(params: Tensor[] | ParamGroupSpec[], defaults: AdamWOptions = {}) {
    const d: Required<AdamWOptions> = {
      lr: defaults.lr ?? 1e-3,
      betas: defaults.betas ?? [0.9, 0.999],
      eps: defaults.eps ?? 1e-8,
      weightDecay: defaults.weightDecay ?? 0.01,
    };
    check(d, 'AdamW');
    const specs: ParamGroupSpec[] = params.length > 0 && !('params' in params[0]) ? [{ params: params as Tensor[] }] : (params as ParamGroupSpec[]);
    const seen = new Set<Tensor>();
    this.groups = specs.map((g, i) => {
      const group: ParamGroup = {
        name: g.name ?? `group${i}`,
        params: [...g.params],
        lr: g.lr ?? d.lr,
        betas: g.betas ?? d.betas,
        eps: g.eps ?? d.eps,
        weightDecay: g.weightDecay ?? d.weightDecay,
      };
      check(group, `AdamW group '${group.name}'`);
      for (const p of group.params) {
        if (seen.has(p)) throw new TypeError('AdamW: a parameter appears in more than one group');
        seen.add(p);
      }
      return group;
    });
    if (seen.size === 0) throw new TypeError('AdamW: no parameters to optimize');
  }

  /** One update from the current gradients; parameters without a gradient are skipped. */
  step(): void {
    noGrad(() => {
      for (const g of this.groups) tidy(() => this.stepGroup(g));
    });
  }

  private stepGroup(g: ParamGroup): void {
    const [b1, b2] = g.betas;
    // Parameters are grouped by step count so that each foreach call shares its bias corrections.
    const byStep = new Map<number, { p: Tensor[]; grad: Tensor[]; m: Tensor[]; v: Tensor[] }>();
    for (const p of g.params) {
      const grad = p.grad;
      if (!grad) continue;
      let st = this.state.get(p);
      if (!st) {
        st = { step: 0, expAvg: zerosLike(p).keep(), expAvgSq: zerosLike(p).keep() };
        this.state.set(p, st);
      }
      st.step += 1;
      let bucket = byStep.get(st.step);
      if (!bucket) {
        bucket = { p: [], grad: [], m: [], v: [] };
        byStep.set(st.step, bucket);
      }
      bucket.p.push(p);
      bucket.grad.push(grad);
      bucket.m.push(st.expAvg);
      bucket.v.push(st.expAvgSq);
    }
    for (const [step, b] of byStep) {
      const bc1 = 1 - b1 ** step;
      const bc2Sqrt = Math.sqrt(1 - b2 ** step);
      if (g.weightDecay !== 0) foreachMul_(b.p, 1 - g.lr * g.weightDecay);
      foreachMul_(b.m, b1);
      foreachAddList_(b.m, b.grad, 1 - b1);
      foreachMul_(b.v, b2);
      foreachAddcmul_(b.v, b.grad, b.grad, 1 - b2);
      const denom = foreachSqrt(b.v);
      foreachDiv_(denom, bc2Sqrt);
      foreachAdd_(denom, g.eps);
      foreachAddcdiv_(b.p, b.m, denom, -g.lr / bc1);
    }
  }

  /**
   * Drops the moments of every parameter `keep` rejects (ZeRO-1: a rank keeps only the shard it
   * steps). Those parameters start from fresh moments if this optimizer steps them later.
   */
  retain(keep: (p: Tensor) => boolean): void {
    for (const [p, st] of this.state) {
      if (keep(p)) continue;
      st.expAvg.dispose();
      st.expAvgSq.dispose();
      this.state.delete(p);
    }
  }

  /** Installs one parameter's step count and moments (copies them); step 0 clears its state. */
  setParamState(p: Tensor, step: number, expAvg: Tensor | null, expAvgSq: Tensor | null): void {
    const old = this.state.get(p);
    if (old) {
      old.expAvg.dispose();
      old.expAvgSq.dispose();
      this.state.delete(p);
    }
    if (step === 0 || !expAvg || !expAvgSq) return;
    noGrad(() => {
      this.state.set(p, { step, expAvg: zerosLike(p).copy_(expAvg).keep(), expAvgSq: zerosLike(p).copy_(expAvgSq).keep() });
    });
  }

  /** Clears gradients (sets them to none, as PyTorch's default). */
  zeroGrad(): void {
    for (const g of this.groups) for (const p of g.params) p.grad = null;
  }

  /** The optimizer's state, referencing its own moment tensors (save them, do not mutate them). */
  stateDict(): AdamWState {
    const all = this.groups.flatMap((g) => g.params);
    return {
      groups: this.groups.map((g) => ({ name: g.name, lr: g.lr, betas: g.betas, eps: g.eps, weightDecay: g.weightDecay, size: g.params.length })),
      steps: all.map((p) => this.state.get(p)?.step ?? 0),
      expAvg: all.map((p) => this.state.get(p)?.expAvg ?? null),
      expAvgSq: all.map((p) => this.state.get(p)?.expAvgSq ?? null),
    };
  }

  /** Restores state saved by stateDict() for the same parameter groups (copies the tensors). */
  loadStateDict(s: AdamWState): void {
    const all = this.groups.flatMap((g) => g.params);
    if (s.groups.length !== this.groups.length || s.groups.some((g, i) => g.size !== this.groups[i].params.length)) {
      throw new TypeError(
        `optimizer state has groups of sizes [${s.groups.map((g) => g.size).join(', ')}] but this optimizer has [${this.groups.map((g) => g.params.length).join(', ')}]`,
      );
    }
    if (s.steps.length !== all.length || s.expAvg.length !== all.length || s.expAvgSq.length !== all.length) {
      throw new TypeError('optimizer state is inconsistent: per-parameter lists differ in length');
    }
    noGrad(() => {
      all.forEach((p, i) => {
        const m = s.expAvg[i];
        const v = s.expAvgSq[i];
        const old = this.state.get(p);
        if (old) {
          old.expAvg.dispose();
          old.expAvgSq.dispose();
          this.state.delete(p);
        }
        if (!m || !v || s.steps[i] === 0) return;
        const shape = p.shape.join(',');
        if (m.shape.join(',') !== shape || v.shape.join(',') !== shape) {
          throw new TypeError(`optimizer state for parameter ${i} has shape [${m.shape.join(', ')}], the parameter [${p.shape.join(', ')}]`);
        }
        this.state.set(p, {
          step: s.steps[i],
          expAvg: zerosLike(p).copy_(m).keep(),
          expAvgSq: zerosLike(p).copy_(v).keep(),
        });
      });
    });
    s.groups.forEach((g, i) => {
      Object.assign(this.groups[i], { lr: g.lr, betas: g.betas, eps: g.eps, weightDecay: g.weightDecay });
    });
  }
}

/**
 * Two groups, as nanoGPT and most LLM trainers do: matrices (ndim >= 2: linear and embedding
 * weights) get weight decay; vectors (biases, norm scales) do not.
 */
export function weightDecayGroups(model: Module, weightDecay: number): ParamGroupSpec[] {
  const decay: Tensor[] = [];
  const noDecay: Tensor[] = [];
  for (const [, p] of model.namedParameters()) {
    if (!p.requiresGrad) continue;
    (p.ndim >= 2 ? decay : noDecay).push(p);
  }
  const groups: ParamGroupSpec[] = [{ name: 'decay', params: decay, weightDecay }];
  if (noDecay.length) groups.push({ name: 'no_decay', params: noDecay, weightDecay: 0 });
  return groups;
}
