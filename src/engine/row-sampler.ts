/**
 * Per-request sampling for the serving engine: each row of a decoding step has its own settings,
 * seed and history, so the choice is made in JavaScript on the row's logits (V floats read back
 * once per step). Because the random stream belongs to the request, a seeded request draws the same
 * tokens whichever other requests share its batch.
 *
 * Order: presence and frequency penalties (OpenAI's definition: logit − presence·[count > 0] −
 * frequency·count, over the ids generated so far) → the allowed-ids constraint (JSON mode) →
 * temperature (0: greedy, lowest id on ties) → top-k → top-p → one draw.
 *
 * Logprobs are those of the model's own distribution, log_softmax of the raw logits at temperature
 * 1 (vLLM's default): what the model thinks of the token, whatever drew it. top_logprobs lists the
 * most likely ids under the same distribution.
 *
 * It knows logits, settings and a random stream; not tensors, the cache or text.
 */
import { Rng } from '../data/rng.ts';

export interface RowSampling {
  /** 0: greedy. */
  temperature: number;
  /** Nucleus mass in (0, 1]. */
  topP: number;
  /** 0 keeps all. */
  topK: number;
  presencePenalty: number;
  frequencyPenalty: number;
  /** How many top logprobs to return per token (0: none). */
  topLogprobs: number;
}

export interface RowChoice {
  token: number;
  /** log π(token) at temperature 1 with no processing. */
  logprob: number;
  /** The most likely ids with their logprobs (topLogprobs of them). */
  top: { token: number; logprob: number }[];
}

/** log_softmax of a row, in float64. */
function logSoftmax(logits: Float32Array): Float64Array {
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] - max);
  const lse = max + Math.log(sum);
  const out = new Float64Array(logits.length);
  for (let i = 0; i < logits.length; i++) out[i] = logits[i] - lse;
  return out;
}

export class RowSampler {
  private readonly rng: Rng;
  private readonly counts = new Map<number, number>();

  /** The ids generated so far with their counts. */
  protected seen(): ReadonlyMap<number, number> {
    return this.counts;
  }

  /** One uniform draw in [0, 1) from the request's stream. */
  protected uniform(): number {
    return this.rng.float();
  }

  constructor(
    readonly settings: RowSampling,
    seed: number | string,
  ) {
    this.rng = new Rng('sample', seed);
  }

  /** Records a generated id (for the penalties). */
  observe(token: number): void {
    this.counts.set(token, (this.counts.get(token) ?? 0) + 1);
  }

  /** Chooses the next id from `logits` (V); `allowed` (when given) is the only ids that may be drawn. */
  choose(logits: Float32Array, allowed?: (id: number) => boolean): RowChoice {
    const s = this.settings;
    const lp = logSoftmax(logits);
    const x = Float64Array.from(logits);
    if (s.presencePenalty !== 0 || s.frequencyPenalty !== 0) {
      for (const [id, n] of this.counts) x[id] -= s.presencePenalty + s.frequencyPenalty * n;
    }
    if (allowed) for (let i = 0; i < x.length; i++) if (!allowed(i)) x[i] = Number.NEGATIVE_INFINITY;
    let token: number;
    if (s.temperature === 0) {
      token = 0;
      for (let i = 1; i < x.length; i++) if (x[i] > x[token]) token = i;
      if (x[token] === Number.NEGATIVE_INFINITY) throw new Error('sampling: no id is allowed at this step');
    } else token = this.draw(x);
    return { token, logprob: lp[token], top: s.topLogprobs > 0 ? topOf(lp, s.topLogprobs) : [] };
  }

  private draw(x: Float64Array): number {
    const s = this.settings;
    // candidates in descending order of processed logit
    const order = Array.from(x.keys()).filter((i) => x[i] !== Number.NEGATIVE_INFINITY);
    if (order.length === 0) throw new Error('sampling: no id is allowed at this step');
    order.sort((a, b) => x[b] - x[a] || a - b);
    const k = s.topK > 0 ? Math.min(s.topK, order.length) : order.length;
    const kept = order.slice(0, k);
    const max = x[kept[0]];
    const w = kept.map((i) => Math.exp((x[i] - max) / s.temperature));
    const total = w.reduce((a, b) => a + b, 0);
    let n = kept.length;
    if (s.topP < 1) {
      let mass = 0;
      for (let j = 0; j < kept.length; j++) {
        mass += w[j] / total;
        if (mass >= s.topP) {
          n = j + 1;
          break;
        }
      }
    }
    const z = w.slice(0, n).reduce((a, b) => a + b, 0);
    let u = this.rng.float() * z;
    for (let j = 0; j < n; j++) {
      u -= w[j];
      if (u <= 0) return kept[j];
    }
    return kept[n - 1];
  }
}

/**
 * Speculative sampling (Leviathan et al. 2023; Chen et al. 2023): a draft token d drawn from q is
 * kept with probability min(1, p(d)/q(d)), else the token is drawn from max(0, p − q) normalised —
 * so the token follows p exactly, whatever q is. Greedy decoding is the case where p and q are
 * point masses: d is kept exactly when it is the target's argmax.
 */
export class SpeculativeSampler extends RowSampler {
  /** The processed distribution of a row (penalties, temperature, top-k, top-p); greedy: a point mass. */
  distribution(logits: Float32Array): Float64Array {
    const s = this.settings;
    const x = Float64Array.from(logits);
    if (s.presencePenalty !== 0 || s.frequencyPenalty !== 0) for (const [id, n] of this.seen()) x[id] -= s.presencePenalty + s.frequencyPenalty * n;
    const p = new Float64Array(x.length);
    if (s.temperature === 0) {
      let best = 0;
      for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
      p[best] = 1;
      return p;
    }
    const order = Array.from(x.keys()).sort((a, b) => x[b] - x[a] || a - b);
    const k = s.topK > 0 ? Math.min(s.topK, order.length) : order.length;
    const max = x[order[0]];
    let total = 0;
    for (let j = 0; j < k; j++) total += Math.exp((x[order[j]] - max) / s.temperature);
    let n = k;
    if (s.topP < 1) {
      let mass = 0;
      for (let j = 0; j < k; j++) {
        mass += Math.exp((x[order[j]] - max) / s.temperature) / total;
        if (mass >= s.topP) {
          n = j + 1;
          break;
        }
      }
    }
    let z = 0;
    for (let j = 0; j < n; j++) z += Math.exp((x[order[j]] - max) / s.temperature);
    for (let j = 0; j < n; j++) p[order[j]] = Math.exp((x[order[j]] - max) / s.temperature) / z;
    return p;
  }

  /** A token drawn from a distribution. */
  drawFrom(p: Float64Array): number {
    let u = this.uniform();
    let last = 0;
    for (let i = 0; i < p.length; i++) {
      if (p[i] <= 0) continue;
      last = i;
      u -= p[i];
      if (u <= 0) return i;
    }
    return last;
  }

  /** The target's token at a position where the draft proposed `draft` from `q`; `accepted` when it is the draft. */
  verify(p: Float64Array, draft: number, q: Float64Array): { token: number; accepted: boolean } {
    if (p[draft] >= q[draft] || this.uniform() * q[draft] < p[draft]) return { token: draft, accepted: true };
    const r = new Float64Array(p.length);
    let z = 0;
    for (let i = 0; i < p.length; i++) {
      r[i] = Math.max(0, p[i] - q[i]);
      z += r[i];
    }
    if (z <= 0) return { token: this.drawFrom(p), accepted: false };
    for (let i = 0; i < r.length; i++) r[i] /= z;
    return { token: this.drawFrom(r), accepted: false };
  }

  /** The record of a token under the row's raw logits (its logprob and the top logprobs). */
  describe(logits: Float32Array, token: number): RowChoice {
    const lp = logSoftmax(logits);
    return { token, logprob: lp[token], top: this.settings.topLogprobs > 0 ? topOf(lp, this.settings.topLogprobs) : [] };
  }
}

function topOf(lp: Float64Array, k: number): { token: number; logprob: number }[] {
  const idx = Array.from(lp.keys());
  idx.sort((a, b) => lp[b] - lp[a] || a - b);
  return idx.slice(0, k).map((token) => ({ token, logprob: lp[token] }));
}
