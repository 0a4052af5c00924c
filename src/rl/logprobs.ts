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
export function sequenceBatch(prompts: readonly ArrayLike<number>[], completions: readonly ArrayLike<number>[], pad: number, keep?: readonly boolean[]): SequenceBatch {
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
