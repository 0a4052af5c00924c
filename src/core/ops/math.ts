/**
 * Elementwise arithmetic, comparisons, activations and their in-place forms. Binary ops broadcast
 * and accept a tensor or a JS number (an int Scalar when integral, else a float).
 */
import { DEF, F, GEN, NONE, S, STR, T, begin, op, run, runVoid, type Op } from '../dispatch.ts';
import type { Tensor } from '../tensor.ts';

export function unary(o: Op, x: Tensor): Tensor {
  begin();
  T(x);
  return run(o);
}

/** A binary op with a Tensor overload and a Scalar overload. */
export function binary(ot: Op, os: Op, x: Tensor, y: Tensor | number): Tensor {
  begin();
  T(x);
  if (typeof y === 'number') {
    S(y);
    return run(os);
  }
  T(y);
  return run(ot);
}

function binaryInplace(ot: Op, os: Op, x: Tensor, y: Tensor | number): void {
  begin();
  T(x);
  if (typeof y === 'number') {
    S(y);
    runVoid(os);
  } else {
    T(y);
    runVoid(ot);
  }
}

function unaryInplace(o: Op, x: Tensor): void {
  begin();
  T(x);
  runVoid(o);
}

const ADD = op('add', 'Tensor');
const ADD_S = op('add', 'Scalar');
const SUB = op('sub', 'Tensor');
const SUB_S = op('sub', 'Scalar');
const MUL = op('mul', 'Tensor');
const MUL_S = op('mul', 'Scalar');
const DIV = op('div', 'Tensor');
const DIV_S = op('div', 'Scalar');
const DIV_MODE = op('div', 'Tensor_mode');
const DIV_S_MODE = op('div', 'Scalar_mode');
const RSUB_S = op('rsub', 'Scalar');
const POW = op('pow', 'Tensor_Tensor');
const POW_S = op('pow', 'Tensor_Scalar');
const REMAINDER = op('remainder', 'Tensor');
const REMAINDER_S = op('remainder', 'Scalar');
const MAXIMUM = op('maximum');
const MINIMUM = op('minimum');
const EQ = op('eq', 'Tensor');
const EQ_S = op('eq', 'Scalar');
const NE = op('ne', 'Tensor');
const NE_S = op('ne', 'Scalar');
const LT = op('lt', 'Tensor');
const LT_S = op('lt', 'Scalar');
const LE = op('le', 'Tensor');
const LE_S = op('le', 'Scalar');
const GT = op('gt', 'Tensor');
const GT_S = op('gt', 'Scalar');
const GE = op('ge', 'Tensor');
const GE_S = op('ge', 'Scalar');
const LOGICAL_AND = op('logical_and');
const LOGICAL_OR = op('logical_or');
const LOGICAL_XOR = op('logical_xor');
const CLAMP = op('clamp');
const CLAMP_ = op('clamp_');
const LERP_S = op('lerp', 'Scalar');
const LERP_T = op('lerp', 'Tensor');
const ADDCMUL = op('addcmul');
const ADDCDIV = op('addcdiv');
const GELU = op('gelu');
const SOFTPLUS = op('softplus');
const LEAKY_RELU = op('leaky_relu');

export const U = {
  neg: op('neg'),
  abs: op('abs'),
  exp: op('exp'),
  log: op('log'),
  log1p: op('log1p'),
  expm1: op('expm1'),
  sqrt: op('sqrt'),
  rsqrt: op('rsqrt'),
  sin: op('sin'),
  cos: op('cos'),
  tanh: op('tanh'),
  sigmoid: op('sigmoid'),
  relu: op('relu'),
  silu: op('silu'),
  square: op('square'),
  reciprocal: op('reciprocal'),
  floor: op('floor'),
  ceil: op('ceil'),
  round: op('round'),
  trunc: op('trunc'),
  sign: op('sign'),
  logicalNot: op('logical_not'),
  isnan: op('isnan'),
  isinf: op('isinf'),
  isfinite: op('isfinite'),
  bitwiseNot: op('bitwise_not'),
} as const;

export type UnaryName = keyof typeof U;

export const add = (x: Tensor, y: Tensor | number, alpha = 1): Tensor => {
  if (alpha === 1) return binary(ADD, ADD_S, x, y);
  begin();
  T(x);
  if (typeof y === 'number') {
    S(y);
    S(alpha);
    return run(ADD_S);
  }
  T(y);
  S(alpha);
  return run(ADD);
};
export const sub = (x: Tensor, y: Tensor | number): Tensor => binary(SUB, SUB_S, x, y);
/** y - x for a scalar y. */
export const rsub = (x: Tensor, y: number): Tensor => {
  begin();
  T(x);
  S(y);
  return run(RSUB_S);
};
export const mul = (x: Tensor, y: Tensor | number): Tensor => binary(MUL, MUL_S, x, y);

export type RoundingMode = 'trunc' | 'floor';

/** True division, or integer division rounded by `roundingMode`. */
export function div(x: Tensor, y: Tensor | number, roundingMode?: RoundingMode): Tensor {
  if (!roundingMode) return binary(DIV, DIV_S, x, y);
  begin();
  T(x);
  if (typeof y === 'number') S(y);
  else T(y);
  STR(roundingMode);
  return run(typeof y === 'number' ? DIV_S_MODE : DIV_MODE);
}

export const pow = (x: Tensor, y: Tensor | number): Tensor => binary(POW, POW_S, x, y);
export const remainder = (x: Tensor, y: Tensor | number): Tensor => binary(REMAINDER, REMAINDER_S, x, y);
export const maximum = (x: Tensor, y: Tensor): Tensor => binary(MAXIMUM, MAXIMUM, x, y);
export const minimum = (x: Tensor, y: Tensor): Tensor => binary(MINIMUM, MINIMUM, x, y);
export const eq = (x: Tensor, y: Tensor | number): Tensor => binary(EQ, EQ_S, x, y);
export const ne = (x: Tensor, y: Tensor | number): Tensor => binary(NE, NE_S, x, y);
export const lt = (x: Tensor, y: Tensor | number): Tensor => binary(LT, LT_S, x, y);
export const le = (x: Tensor, y: Tensor | number): Tensor => binary(LE, LE_S, x, y);
export const gt = (x: Tensor, y: Tensor | number): Tensor => binary(GT, GT_S, x, y);
export const ge = (x: Tensor, y: Tensor | number): Tensor => binary(GE, GE_S, x, y);
export const logicalAnd = (x: Tensor, y: Tensor): Tensor => binary(LOGICAL_AND, LOGICAL_AND, x, y);
export const logicalOr = (x: Tensor, y: Tensor): Tensor => binary(LOGICAL_OR, LOGICAL_OR, x, y);
export const logicalXor = (x: Tensor, y: Tensor): Tensor => binary(LOGICAL_XOR, LOGICAL_XOR, x, y);

function optScalar(v: number | null | undefined): void {
  if (v === null || v === undefined) NONE();
  else S(v);
}

/** Limits values to [min, max]; either bound may be null. */
export function clamp(x: Tensor, min: number | null = null, max: number | null = null): Tensor {
  if (min === null && max === null) throw new TypeError('clamp: give at least one of min and max');
  begin();
  T(x);
  optScalar(min);
  optScalar(max);
  return run(CLAMP);
}

export function clampInplace(x: Tensor, min: number | null = null, max: number | null = null): void {
  if (min === null && max === null) throw new TypeError('clamp_: give at least one of min and max');
  begin();
  T(x);
  optScalar(min);
  optScalar(max);
  runVoid(CLAMP_);
}

/** x + weight·(end - x). */
export function lerp(x: Tensor, end: Tensor, weight: Tensor | number): Tensor {
  begin();
  T(x);
  T(end);
  if (typeof weight === 'number') {
    S(weight);
    return run(LERP_S);
  }
  T(weight);
  return run(LERP_T);
}

/** x + value·a·b */
export function addcmul(x: Tensor, a: Tensor, b: Tensor, value = 1): Tensor {
  begin();
  T(x);
  T(a);
  T(b);
  S(value);
  return run(ADDCMUL);
}

/** x + value·a/b */
export function addcdiv(x: Tensor, a: Tensor, b: Tensor, value = 1): Tensor {
  begin();
  T(x);
  T(a);
  T(b);
  S(value);
  return run(ADDCDIV);
}

export function gelu(x: Tensor, approximate: 'none' | 'tanh' = 'none'): Tensor {
  begin();
  T(x);
  STR(approximate);
  return run(GELU);
}

export function softplus(x: Tensor, beta = 1, threshold = 20): Tensor {
  begin();
  T(x);
  S(beta);
  S(threshold);
  return run(SOFTPLUS);
}

export function leakyRelu(x: Tensor, slope = 0.01): Tensor {
  begin();
  T(x);
  F(slope);
  return run(LEAKY_RELU);
}

// ---- in place (optimizers, buffers; never on tensors autograd still needs) ----

const ADD_ = op('add_', 'Tensor');
const ADD_S_ = op('add_', 'Scalar');
const SUB_ = op('sub_', 'Tensor');
const SUB_S_ = op('sub_', 'Scalar');
const MUL_ = op('mul_', 'Tensor');
const MUL_S_ = op('mul_', 'Scalar');
const DIV_ = op('div_', 'Tensor');
const DIV_S_ = op('div_', 'Scalar');
const ZERO_ = op('zero_');
const FILL_ = op('fill_', 'Scalar');
const COPY_ = op('copy_');
const ADDCMUL_ = op('addcmul_');
const ADDCDIV_ = op('addcdiv_');
const LERP_S_ = op('lerp_', 'Scalar');
const SQRT_ = op('sqrt_');
const NORMAL_ = op('normal_');
const UNIFORM_ = op('uniform_');
const MASKED_FILL_ = op('masked_fill_', 'Scalar');

export function addInplace(x: Tensor, y: Tensor | number, alpha = 1): void {
  begin();
  T(x);
  if (typeof y === 'number') {
    S(y);
    S(alpha);
    runVoid(ADD_S_);
  } else {
    T(y);
    S(alpha);
    runVoid(ADD_);
  }
}
export const subInplace = (x: Tensor, y: Tensor | number): void => binaryInplace(SUB_, SUB_S_, x, y);
export const mulInplace = (x: Tensor, y: Tensor | number): void => binaryInplace(MUL_, MUL_S_, x, y);
export const divInplace = (x: Tensor, y: Tensor | number): void => binaryInplace(DIV_, DIV_S_, x, y);
export const zeroInplace = (x: Tensor): void => unaryInplace(ZERO_, x);
export const sqrtInplace = (x: Tensor): void => unaryInplace(SQRT_, x);

export function fillInplace(x: Tensor, v: number | boolean): void {
  begin();
  T(x);
  S(v);
  runVoid(FILL_);
}

export function copyInplace(x: Tensor, src: Tensor): void {
  begin();
  T(x);
  T(src);
  runVoid(COPY_);
}

export function addcmulInplace(x: Tensor, a: Tensor, b: Tensor, value = 1): void {
  begin();
  T(x);
  T(a);
  T(b);
  S(value);
  runVoid(ADDCMUL_);
}

export function addcdivInplace(x: Tensor, a: Tensor, b: Tensor, value = 1): void {
  begin();
  T(x);
  T(a);
  T(b);
  S(value);
  runVoid(ADDCDIV_);
}

export function lerpInplace(x: Tensor, end: Tensor, weight: number): void {
  begin();
  T(x);
  T(end);
  S(weight);
  runVoid(LERP_S_);
}

export function maskedFillInplace(x: Tensor, mask: Tensor, value: number | boolean): void {
  begin();
  T(x);
  T(mask);
  S(value);
  runVoid(MASKED_FILL_);
}

/** Fills with normal samples N(mean, std²) from `generator` (native id) or the global generator. */
export function normalInplace(x: Tensor, mean: number, std: number, generator: number | null): void {
  begin();
  T(x);
  F(mean);
  F(std);
  if (generator === null) DEF();
  else GEN(generator);
  runVoid(NORMAL_);
}

/** Fills with uniform samples in [low, high). */
export function uniformInplace(x: Tensor, low: number, high: number, generator: number | null): void {
  begin();
  T(x);
  F(low);
  F(high);
  if (generator === null) DEF();
  else GEN(generator);
  runVoid(UNIFORM_);
}
