/**
 * Autograd scopes and multi-output backward. Grad mode and inference mode are thread-local
 * switches in libtorch; the helpers here set them around a synchronous function and restore them
 * even when it throws.
 */
import { DisposedTensorError, fromNative } from './errors.ts';
import { buf, native } from './native.ts';
import type { Tensor } from './tensor.ts';

function refuseAsync(what: string, r: unknown): void {
  if (r instanceof Promise) {
    // The caller gets the TypeError; the abandoned promise must not crash the process later.
    r.catch(() => undefined);
    throw new TypeError(`${what} needs a synchronous function: the mode would not cover code after an await`);
  }
}

/** Runs fn with gradient recording off (like torch.no_grad()). */
export function noGrad<T>(fn: () => T): T {
  const prev = native.setGradEnabled(false);
  try {
    const r = fn();
    refuseAsync('noGrad()', r);
    return r;
  } finally {
    native.setGradEnabled(prev);
  }
}

/** Runs fn with gradient recording on, e.g. inside a noGrad() block. */
export function enableGrad<T>(fn: () => T): T {
  const prev = native.setGradEnabled(true);
  try {
    const r = fn();
    refuseAsync('enableGrad()', r);
    return r;
  } finally {
    native.setGradEnabled(prev);
  }
}

export function isGradEnabled(): boolean {
  return native.isGradEnabled();
}

/**
 * Runs fn in libtorch's inference mode (like torch.inference_mode()): faster than noGrad, but the
 * tensors it creates can never be used in autograd later.
 */
export function inferenceMode<T>(fn: () => T): T {
  native.inferenceEnter();
  try {
    const r = fn();
    refuseAsync('inferenceMode()', r);
    return r;
  } finally {
    native.inferenceExit();
  }
}

export function isInferenceMode(): boolean {
  return native.isInferenceMode();
}

/** Backpropagates from several outputs at once (like torch.autograd.backward). */
export function backward(outputs: readonly Tensor[], gradients?: readonly (Tensor | null)[], retainGraph = false, createGraph = false): void {
  const n = outputs.length;
  if (n === 0) throw new TypeError('backward: no outputs given');
  if (gradients && gradients.length !== n) throw new TypeError(`backward: ${n} outputs but ${gradients.length} gradients`);
  for (let i = 0; i < n; i++) {
    const o = outputs[i];
    if (o._h < 0) throw new DisposedTensorError(`backward (output ${i})`);
    buf[i] = o._h;
    const g = gradients?.[i];
    // A disposed gradient must not pass as -1, which means "no gradient" (implicit ones).
    if (g && g._h < 0) throw new DisposedTensorError(`backward (gradient ${i})`);
    buf[n + i] = g ? g._h : -1;
  }
  try {
    native.backward(n, retainGraph, createGraph);
  } catch (e) {
    throw fromNative(e);
  }
}
