/**
 * Per-token log-probabilities of completions under a model, for the policy update: each row is its
 * prompt left-padded to the longest prompt of the micro-batch, followed by its completion
 * right-padded to the longest completion. One forward pass over (R, L + T − 1) — the pads masked as
 * keys, positions counted from each row's first real token — gives the logits that predicted each
 * completion token.
 *
 * It knows the model's forward; not rewards or the loss.
 */
import { type Tensor, tensor } from '../core/index.ts';
import type { DeepSeekV3 } from '../model/transformer.ts';

export interface SequenceBatch {
  /** (R, L + T) int64 ids: left-padded prompt, completion, right pads. */
  ids: Tensor;
  /** (R, L + T − 1) int64 positions of the input columns (0 on left pads). */
  positions: Tensor;
  /** (R, L + T − 1) bool, true on the left pads. */
  keyPadding: Tensor;
  /** (R, T) int64 the completion ids (pad after each completion's end). */
  targets: Tensor;
  /** (R, T) float32, 1 on completion tokens, 0 on pads. */
  mask: Tensor;
  promptWidth: number;
  completionWidth: number;
}

/**
 * Builds the tensors of rows (prompt, completion). `keep[r]` false zeroes row r's mask (e.g. a
 * truncated completion left out of the loss).
 */
export function sequenceBatch(
  prompts: readonly ArrayLike<number>[],
  completions: readonly ArrayLike<number>[],
  pad: number,
  keep?: readonly boolean[],
): SequenceBatch {
  const R = prompts.length;
  if (R === 0 || completions.length !== R) throw new Error(`sequenceBatch: ${R} prompts and ${completions.length} completions`);
  const L = Math.max(...prompts.map((p) => p.length));
  const T = Math.max(1, ...completions.map((c) => c.length));
  const W = L + T;
  const ids = new BigInt64Array(R * W).fill(BigInt(pad));
  const positions = new BigInt64Array(R * (W - 1));
  const padMask = new Uint8Array(R * (W - 1));
  const targets = new BigInt64Array(R * T).fill(BigInt(pad));
  const mask = new Float32Array(R * T);
  for (let r = 0; r < R; r++) {
    const p = prompts[r];
    const c = completions[r];
    if (p.length === 0) throw new Error(`sequenceBatch: row ${r} has an empty prompt`);
    const left = L - p.length;
    for (let i = 0; i < p.length; i++) ids[r * W + left + i] = BigInt(p[i]);
    for (let t = 0; t < c.length; t++) {
      ids[r * W + L + t] = BigInt(c[t]);
      targets[r * T + t] = BigInt(c[t]);
      if (keep === undefined || keep[r]) mask[r * T + t] = 1;
    }
    for (let col = 0; col < W - 1; col++) {
      positions[r * (W - 1) + col] = BigInt(Math.max(0, col - left));
      padMask[r * (W - 1) + col] = col < left ? 1 : 0;
    }
  }
  return {
    ids: tensor(ids, { shape: [R, W] }),
    positions: tensor(positions, { shape: [R, W - 1] }),
    keyPadding: tensor(padMask, { shape: [R, W - 1] }).bool(),
    targets: tensor(targets, { shape: [R, T] }),
    mask: tensor(mask, { shape: [R, T] }),
    promptWidth: L,
    completionWidth: T,
  };
}

/** (R, T) log π(completion token) under `model` (with gradient when grad mode is on). */
export function completionLogprobs(model: DeepSeekV3, b: SequenceBatch): { logp: Tensor; auxLoss: Tensor | null } {
  const W = b.promptWidth + b.completionWidth;
  const input = b.ids.narrow(1, 0, W - 1); // (R, W − 1)
  const device = model.headWeight().device;
  const out = model.forward(input.to(device), { positions: b.positions.to(device), keyPadding: b.keyPadding.to(device) });
  const logits = out.logits.narrow(1, b.promptWidth - 1, b.completionWidth); // (R, T, V): column L−1+t predicts token t
  const logp = logits
    .float()
    .logSoftmax(-1) // (R, T, V)
    .gather(2, b.targets.to(device).unsqueeze(2)) // (R, T, 1)
    .squeeze(2); // (R, T)
  return { logp, auxLoss: out.auxLoss };
}

/**
 * The same log-probabilities with each prompt computed once for all its completions: one sequence
 * per prompt holds the prompt followed by every completion's inputs (its tokens but the last), and
 * an attention mask lets each completion see the prompt and itself only, its positions continuing
 * from the prompt's end — so every completion token is predicted exactly as in its own row of
 * sequenceBatch, while the prompt's tokens go through the model once instead of G times.
 */
export interface SharedPromptBatch {
  /** (P, S) int64: per prompt, the prompt then the completions' inputs, right-padded. */
  ids: Tensor;
  /** (P, S) int64 rotary positions (prompt 0…L−1, each completion L, L+1, …; 0 on pads). */
  positions: Tensor;
  /** (P, 1, S, S) float32 additive mask (0 allowed, −inf not). */
  attention: Tensor;
  /** (R, T) int64 flat column (p·S + s) whose logits predict completion token t of row r. */
  columns: Tensor;
  /** (R, T) int64 the completion ids (pad after each completion's end). */
  targets: Tensor;
  /** (R, T) float32, 1 on completion tokens that count. */
  mask: Tensor;
  /** Tokens the forward runs over, pads excluded (for the report). */
  tokens: number;
}

/**
 * Rows r = 0…R−1 with prompt `prompts[groupOf[r]]` and completion `completions[r]`; rows of one
 * prompt need not be consecutive. `keep[r]` false zeroes row r's mask.
 */
export function sharedPromptBatch(
  prompts: readonly ArrayLike<number>[],
  groupOf: readonly number[],
  completions: readonly ArrayLike<number>[],
  pad: number,
  keep?: readonly boolean[],
): SharedPromptBatch {
  const R = completions.length;
  if (R === 0 || groupOf.length !== R) throw new Error(`sharedPromptBatch: ${R} completions and ${groupOf.length} group indices`);
  const used = [...new Set(groupOf)];
  const P = used.length;
  const rowsOf = used.map((g) => groupOf.flatMap((x, r) => (x === g ? [r] : [])));
  const lengths = used.map((g, i) => {
    const L = prompts[g].length;
    if (L === 0) throw new Error(`sharedPromptBatch: prompt ${g} is empty`);
    return L + rowsOf[i].reduce((n, r) => n + Math.max(0, completions[r].length - 1), 0);
  });
  const S = Math.max(...lengths);
  const T = Math.max(1, ...completions.map((c) => c.length));
  const ids = new BigInt64Array(P * S).fill(BigInt(pad));
  const positions = new BigInt64Array(P * S);
  const attention = new Float32Array(P * S * S).fill(Number.NEGATIVE_INFINITY);
  const columns = new BigInt64Array(R * T);
  const targets = new BigInt64Array(R * T).fill(BigInt(pad));
  const mask = new Float32Array(R * T);
  used.forEach((g, p) => {
    const prompt = prompts[g];
    const L = prompt.length;
    const base = p * S;
    const allow = (q: number, k: number): void => {
      attention[(p * S + q) * S + k] = 0;
    };
    for (let q = 0; q < L; q++) {
      ids[base + q] = BigInt(prompt[q]);
      positions[base + q] = BigInt(q);
      for (let k = 0; k <= q; k++) allow(q, k);
    }
    let off = L;
    for (const r of rowsOf[p]) {
      const c = completions[r];
      const inputs = Math.max(0, c.length - 1);
      for (let t = 0; t < inputs; t++) {
        const q = off + t;
        ids[base + q] = BigInt(c[t]);
        positions[base + q] = BigInt(L + t);
        for (let k = 0; k < L; k++) allow(q, k);
        for (let k = off; k <= q; k++) allow(q, k);
      }
      for (let t = 0; t < c.length; t++) {
        columns[r * T + t] = BigInt(base + (t === 0 ? L - 1 : off + t - 1));
        targets[r * T + t] = BigInt(c[t]);
        if (keep === undefined || keep[r]) mask[r * T + t] = 1;
      }
      for (let t = c.length; t < T; t++) columns[r * T + t] = BigInt(base + L - 1);
      off += inputs;
    }
    for (let q = lengths[p]; q < S; q++) allow(q, q); // pads attend to themselves only: finite, unused
  });
  return {
    ids: tensor(ids, { shape: [P, S] }),
    positions: tensor(positions, { shape: [P, S] }),
    attention: tensor(attention, { shape: [P, 1, S, S] }),
    columns: tensor(columns, { shape: [R, T] }),
    targets: tensor(targets, { shape: [R, T] }),
    mask: tensor(mask, { shape: [R, T] }),
    tokens: lengths.reduce((a, b) => a + b, 0),
  };
}

/** (R, T) log π(completion token) from a shared-prompt batch (with gradient when grad mode is on). */
export function sharedPromptLogprobs(model: DeepSeekV3, b: SharedPromptBatch): { logp: Tensor; auxLoss: Tensor | null } {
  const device = model.headWeight().device;
  const out = model.forward(b.ids.to(device), { positions: b.positions.to(device), attentionMask: b.attention.to(device) });
  const [P, S, V] = out.logits.shape;
  const [R, T] = b.columns.shape;
  const logp = out.logits
    .float()
    .logSoftmax(-1) // (P, S, V)
    .view([P * S, V])
    .indexSelect(0, b.columns.to(device).view([R * T])) // (R·T, V)
    .gather(1, b.targets.to(device).view([R * T, 1])) // (R·T, 1)
    .view([R, T]); // (R, T)
  return { logp, auxLoss: out.auxLoss };
}
