/**
 * Logit-level distillation (Hinton et al. 2015, "Distilling the Knowledge in a Neural Network"):
 * besides the next token, the student learns the teacher's whole next-token distribution. At a
 * temperature τ, with p = softmax(z/τ):
 *
 *   KL_τ = τ² · mean over target positions of  Σ_v p_teacher(v) · (log p_teacher(v) − log p_student(v))
 *
 * (the τ² keeps its gradients on the scale of the cross-entropy's), and the SFT loss becomes
 * (1 − α) · CE + α · KL_τ. Positions whose target is ignored (the prompt, padding) do not count.
 * Teacher and student must share the tokenizer: the distributions are over the same ids.
 *
 * It knows tensors and the loss; not models, data or runs.
 */
import { type Tensor, logSoftmax } from '../core/index.ts';

/** KL_τ(teacher ‖ student) averaged over positions whose target is not `ignoreIndex`. */
export function distillKl(
  student: Tensor, // (B, T, V) logits
  teacher: Tensor, // (B, T, V) logits, no gradient
  targets: Tensor, // (B, T) int64, ignoreIndex where ignored
  o: { temperature?: number; ignoreIndex?: number } = {},
): Tensor {
  const tau = o.temperature ?? 1;
  if (!(tau > 0)) throw new RangeError(`distillKl: temperature must be > 0, got ${tau}`);
  if (teacher.shape.join() !== student.shape.join())
    throw new RangeError(`distillKl: teacher logits ${JSON.stringify(teacher.shape)} and student logits ${JSON.stringify(student.shape)} differ`);
  const logS = logSoftmax(student.float().div(tau), -1); // (B, T, V)
  const logT = logSoftmax(teacher.float().div(tau), -1); // (B, T, V)
  const perPos = logT.exp().mul(logT.sub(logS)).sum(-1); // (B, T)
  const keep = targets.ne(o.ignoreIndex ?? -100).float(); // (B, T)
  const n = keep.sum();
  return perPos
    .mul(keep)
    .sum()
    .div(n.clamp(1))
    .mul(tau * tau); // ()
}
