/**
 * Logits processors: pure tensor functions from a (B, V) logits matrix to a (B, V) logits matrix,
 * applied before sampling, in Hugging Face's order (repetition penalty, then temperature, top-k,
 * top-p). A token a processor removes gets −∞, so softmax gives it probability exactly 0.
 *
 *   repetitionPenalty(p)  CTRL's rule (Keskar et al. 2019, HF's RepetitionPenaltyLogitsProcessor):
 *                         a token already in the row (prompt or completion) has its logit divided
 *                         by p when positive, multiplied by p when negative;
 *   temperature(t)        logits / t (t > 0; t = 0 is greedy decoding, handled by the sampler);
 *   topK(k)               keeps the k largest logits of each row (ties at the k-th value are kept);
 *   topP(p)               nucleus: keeps the smallest set of most likely tokens whose probability
 *                         reaches p (a token is removed when the mass of the tokens ranked above
 *                         it is already ≥ p; the most likely token is always kept); it sorts the
 *                         whole vocabulary of each row;
 *   topKTopP(k, p)        both in one pass that sorts only the k candidates.
 *
 * Everything stays on the tensor side: nothing here reads data back to JavaScript.
 * This module knows logits and token ids; not the model, the cache or stopping.
 */
import { type Tensor, fullLike, where } from '../core/index.ts';

/** Per-row state a processor may read: (B, V) bool, true for the tokens a row has seen. */
export interface ProcessorState {
  seen: Tensor | null;
}

/** One processing step: (B, V) logits → (B, V) logits. */
export type LogitsProcessor = (logits: Tensor, state: ProcessorState) => Tensor;

const NEG_INF = Number.NEGATIVE_INFINITY;

export function temperature(t: number): LogitsProcessor {
  if (!(t > 0) || !Number.isFinite(t))
    throw new RangeError(`temperature must be a positive finite number here (0 means greedy and skips processing), got ${t}`);
  return (logits) => (t === 1 ? logits : logits.div(t)); // (B, V)
}

export function topK(k: number): LogitsProcessor {
  if (!Number.isInteger(k) || k < 1) throw new RangeError(`topK must be a positive integer, got ${k}`);
  return (logits) => {
    const V = logits.shape[1];
    if (k >= V) return logits;
    const kth = logits.topk(k, -1).values.narrow(1, k - 1, 1); // (B, 1) the k-th largest
    return logits.maskedFill(logits.lt(kth), NEG_INF); // (B, V)
  };
}

export function topP(p: number): LogitsProcessor {
  if (!(p > 0 && p <= 1)) throw new RangeError(`topP must be in (0, 1], got ${p}`);
  return (logits) => {
    if (p === 1) return logits;
    const { values, indices } = logits.sort(-1, true); // (B, V) descending
    const probs = values.softmax(-1); // (B, V)
    const before = probs.cumsum(-1).sub(probs); // (B, V) mass of the tokens ranked above
    const dropSorted = before.ge(p); // (B, V); column 0 has before = 0 < p: always kept
    const drop = dropSorted.scatter(1, indices, dropSorted); // (B, V) back in vocabulary order
    return logits.maskedFill(drop, NEG_INF);
  };
}

/**
 * top-k then top-p in one pass, sorting only the k candidates (topk) instead of the whole
 * vocabulary: the same kept set as topK(k) followed by topP(p), except that of several tokens tied
 * at the k-th value exactly k are kept (topK alone keeps every tie).
 */
export function topKTopP(k: number, p: number): LogitsProcessor {
  const plainTopP = topP(p);
  if (!Number.isInteger(k) || k < 1) throw new RangeError(`topK must be a positive integer, got ${k}`);
  return (logits, state) => {
    if (k >= logits.shape[1]) return plainTopP(logits, state);
    const { values, indices } = logits.topk(k, -1); // (B, k) descending
    const probs = values.softmax(-1); // (B, k): the distribution after top-k
    const before = probs.cumsum(-1).sub(probs); // (B, k) mass ranked above
    const kept = values.maskedFill(before.ge(p), NEG_INF); // (B, k)
    return fullLike(logits, NEG_INF).scatter(1, indices, kept); // (B, V)
  };
}

export function repetitionPenalty(penalty: number): LogitsProcessor {
  if (!(penalty > 0) || !Number.isFinite(penalty)) throw new RangeError(`repetitionPenalty must be a positive finite number, got ${penalty}`);
  return (logits, state) => {
    if (penalty === 1 || !state.seen) return logits;
    const penalised = where(logits.gt(0), logits.div(penalty), logits.mul(penalty)); // (B, V)
    return where(state.seen, penalised, logits); // (B, V)
  };
}

/** Applies processors in order. */
export function applyProcessors(logits: Tensor, processors: readonly LogitsProcessor[], state: ProcessorState): Tensor {
  let x = logits;
  for (const p of processors) x = p(x, state);
  return x;
}
