/**
 * Gradient clipping by global norm, as torch.nn.utils.clip_grad_norm_.
 */
import { type Tensor, foreachMul_, foreachNorm, noGrad, stack, tidy } from '../../core/index.ts';

/**
 * Scales all gradients so that their joint p-norm is at most maxNorm. Returns the norm before
 * clipping (Infinity or NaN when a gradient is not finite: then nothing is scaled, and with
 * `errorIfNonfinite` it throws instead).
 */
export function clipGradNorm(params: Iterable<Tensor>, maxNorm: number, o: { normType?: number; errorIfNonfinite?: boolean } = {}): number {
  if (!(maxNorm > 0)) throw new RangeError(`clipGradNorm: maxNorm must be > 0, got ${maxNorm}`);
  const p = o.normType ?? 2;
  return noGrad(() =>
    tidy(() => {
      const grads: Tensor[] = [];
      for (const t of params) {
        const g = t.grad;
        if (g) grads.push(g);
      }
      if (grads.length === 0) return 0;
      const norms = foreachNorm(grads, p); // each ()
      const total = stack(norms).norm(p).item();
      if (!Number.isFinite(total)) {
        if (o.errorIfNonfinite) throw new RangeError(`the total norm of the gradients is ${total}: a loss or gradient is not finite`);
        return total;
      }
      const coef = maxNorm / (total + 1e-6);
      if (coef < 1) foreachMul_(grads, coef);
      return total;
    }),
  );
}
