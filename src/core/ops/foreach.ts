/**
 * Multi-tensor ("foreach") ops: one dispatcher call updates a whole list of tensors, as
 * torch.optim's foreach implementations do. The in-place forms mutate every tensor in `xs`.
 */
import { S, TL, begin, op, runList, runVoid } from '../dispatch.ts';
import type { Tensor } from '../tensor.ts';

const MUL_S_ = op('_foreach_mul_', 'Scalar');
const ADD_S_ = op('_foreach_add_', 'Scalar');
const ADD_L_ = op('_foreach_add_', 'List');
const DIV_S_ = op('_foreach_div_', 'Scalar');
const ADDCMUL_ = op('_foreach_addcmul_', 'Scalar');
const ADDCDIV_ = op('_foreach_addcdiv_', 'Scalar');
const SQRT = op('_foreach_sqrt');
const NORM = op('_foreach_norm', 'Scalar');

export function foreachMul_(xs: readonly Tensor[], v: number): void {
  begin();
  TL(xs);
  S(v);
  runVoid(MUL_S_);
}

export function foreachAdd_(xs: readonly Tensor[], v: number): void {
  begin();
  TL(xs);
  S(v);
  runVoid(ADD_S_);
}

/** xs[i] += alpha · ys[i] */
export function foreachAddList_(xs: readonly Tensor[], ys: readonly Tensor[], alpha = 1): void {
  begin();
  TL(xs);
  TL(ys);
  S(alpha);
  runVoid(ADD_L_);
}

export function foreachDiv_(xs: readonly Tensor[], v: number): void {
  begin();
  TL(xs);
  S(v);
  runVoid(DIV_S_);
}

/** xs[i] += value · a[i] · b[i] */
export function foreachAddcmul_(xs: readonly Tensor[], a: readonly Tensor[], b: readonly Tensor[], value: number): void {
  begin();
  TL(xs);
  TL(a);
  TL(b);
  S(value);
  runVoid(ADDCMUL_);
}

/** xs[i] += value · a[i] / b[i] */
export function foreachAddcdiv_(xs: readonly Tensor[], a: readonly Tensor[], b: readonly Tensor[], value: number): void {
  begin();
  TL(xs);
  TL(a);
  TL(b);
  S(value);
  runVoid(ADDCDIV_);
}

export function foreachSqrt(xs: readonly Tensor[]): Tensor[] {
  begin();
  TL(xs);
  return runList(SQRT);
}

/** The p-norm of each tensor (0-d tensors). */
export function foreachNorm(xs: readonly Tensor[], p = 2): Tensor[] {
  begin();
  TL(xs);
  S(p);
  return runList(NORM);
}
