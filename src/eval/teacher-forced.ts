/**
 * Teacher-forced forward passes for the probes: rows of token ids, right-padded into batches (a
 * right pad never reaches an earlier position under causal attention), run without gradients in
 * eval mode (the model's mode is restored after), and read per batch by the caller.
 *
 * It knows batching and the model's forward; not what a probe reads.
 */
import { type Tensor, noGrad, tensor, tidy } from '../core/index.ts';
import type { DeepSeekV3 } from '../model/transformer.ts';

/**
 * One value per row: `read` gets a batch's logits (B, L, V) inside tidy() and returns one plain
 * (non-tensor) value per row of that batch.
 */
export function teacherForced<T>(
  model: DeepSeekV3,
  rows: readonly (readonly number[])[],
  o: { pad: number; batchSize: number; read: (logits: Tensor) => T[] },
): T[] {
  const device = model.headWeight().device;
  const wasTraining = model.training;
  const out: T[] = [];
  model.eval();
  try {
    for (let s = 0; s < rows.length; s += o.batchSize) {
      const batch = rows.slice(s, s + o.batchSize);
      const L = Math.max(...batch.map((r) => r.length));
      const flat = new BigInt64Array(batch.length * L).fill(BigInt(o.pad));
      batch.forEach((r, i) => r.forEach((id, t) => (flat[i * L + t] = BigInt(id))));
      const values = tidy(() =>
        noGrad(() => {
          const x = tensor(flat, { shape: [batch.length, L] }).to(device); // (B, L)
          return o.read(model.forward(x).logits); // logits (B, L, V)
        }),
      );
      out.push(...values);
    }
  } finally {
    model.train(wasTraining);
  }
  return out;
}
