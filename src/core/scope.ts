/**
 * Tensor lifetime. Every tensor owns a native handle that is freed in one of three ways:
 *   - explicitly, with `dispose()`;
 *   - at the end of the innermost `tidy()` scope that created it, unless it is returned from the
 *     scope (then it moves to the enclosing scope) or `keep()`-ed;
 *   - by the garbage collector, for tensors that live outside every scope (FinalizationRegistry,
 *     registered lazily: see the nursery below).
 * Tensors created inside a scope are not registered with the collector at all, which keeps the hot
 * path cheap; hot loops (training steps, decoding) should run inside `tidy()`.
 *
 * Native bytes are reported to V8 (so that the collector runs when native memory grows), except
 * while a scope is open: scoped tensors are not the collector's to free.
 *
 * GC-driven freeing happens when the event loop turns: a long synchronous loop that neither uses
 * `tidy()` nor awaits frees nothing until it ends.
 *
 * This module knows tensors only as handles with flags; it does not compute anything.
 */
import { BUF_WORDS, buf, native } from './native.ts';

/** What scope.ts needs to know about a tensor. */
export interface Owned {
  /** Native handle; -1 once disposed. */
  _h: number;
  /** Lifetime flags (REGISTERED, KEPT). */
  _f: number;
}

export const REGISTERED = 1;
export const KEPT = 2;

const registry = new FinalizationRegistry<number>((handle) => native.release(handle));
const scopes: Owned[][] = [];

// Tensors created outside any scope wait here before being registered with the collector:
// registering costs far more than the op itself, and most such tensors are disposed right away.
// The nursery is flushed (survivors registered) when the event loop turns or when it fills up;
// until then nothing could be collected anyway, since finalizers only run on the event loop.
const NURSERY_MAX = 4096;
const nursery: Owned[] = [];
let flushScheduled = false;

function flushNursery(): void {
  flushScheduled = false;
  for (const t of nursery) register(t);
  nursery.length = 0;
}

function register(t: Owned): void {
  if ((t._f & REGISTERED) === 0 && t._h >= 0) {
    registry.register(t, t._h, t);
    t._f |= REGISTERED;
  }
}

/**
 * Moves `source`'s native tensor into `target` (whose old one is freed), leaving `source` disposed.
 * The JS identity of `target` stays, so references to it (an optimizer's parameter list) follow.
 */
export function replaceHandle(target: Owned, source: Owned): void {
  if (source._h < 0) throw new TypeError('replaceHandle: the source tensor was disposed');
  if (target === source) return;
  const old = target._h;
  const wasRegistered = (target._f & REGISTERED) !== 0;
  if (wasRegistered) {
    registry.unregister(target);
    target._f &= ~REGISTERED;
  }
  if ((source._f & REGISTERED) !== 0) {
    registry.unregister(source);
    source._f &= ~REGISTERED;
  }
  if (old >= 0) native.release(old);
  target._h = source._h;
  source._h = -1;
  if (wasRegistered || (target._f & KEPT) !== 0 || scopes.length === 0) register(target);
}

/** Takes ownership of a newly created tensor wrapper. */
export function adopt(t: Owned): void {
  const n = scopes.length;
  if (n > 0) {
    scopes[n - 1].push(t);
    return;
  }
  nursery.push(t);
  if (nursery.length >= NURSERY_MAX) {
    flushNursery();
  } else if (!flushScheduled) {
    flushScheduled = true;
    setImmediate(flushNursery).unref();
  }
}

/** Frees a tensor now. Safe to call twice. */
export function disposeOne(t: Owned): void {
  const h = t._h;
  if (h < 0) return;
  t._h = -1;
  native.release((t._f & REGISTERED) !== 0 ? -1 - h : h);
}

/** Exempts a tensor from scope cleanup; the garbage collector (or dispose()) frees it later. */
export function keepOne<T extends Owned>(t: T): T {
  t._f |= KEPT;
  register(t);
  return t;
}

function isOwned(v: unknown): v is Owned {
  return typeof v === 'object' && v !== null && typeof (v as Owned)._h === 'number' && typeof (v as Owned)._f === 'number';
}

/** Collects the tensors inside a value (tensor, array, Map, plain object), depth-limited. */
function collect(v: unknown, out: Set<Owned>, depth: number): void {
  if (depth > 8 || v === null || typeof v !== 'object') return;
  if (isOwned(v)) {
    out.add(v);
    return;
  }
  if (Array.isArray(v)) {
    for (const e of v) collect(e, out, depth + 1);
  } else if (v instanceof Map) {
    for (const e of v.values()) collect(e, out, depth + 1);
  } else if (Object.getPrototypeOf(v) === Object.prototype) {
    for (const e of Object.values(v as Record<string, unknown>)) collect(e, out, depth + 1);
  }
}

function endScope(list: Owned[], escaping: Set<Owned> | null): void {
  const parent = scopes.length > 0 ? scopes[scopes.length - 1] : null;
  let n = 0;
  for (const t of list) {
    const h = t._h;
    if (h < 0 || (t._f & KEPT) !== 0) continue;
    if (escaping?.has(t)) {
      if (parent) parent.push(t);
      else register(t);
      continue;
    }
    buf[n++] = (t._f & REGISTERED) !== 0 ? -1 - h : h;
    t._h = -1;
    if (n === BUF_WORDS) {
      native.releaseMany(n);
      n = 0;
    }
  }
  if (n > 0) native.releaseMany(n);
}

/**
 * Runs `fn` and frees every tensor it created, except the tensors in its return value (a tensor,
 * or arrays / plain objects / Maps of them) and those passed to keep(). `fn` must be synchronous.
 */
export function tidy<T>(fn: () => T): T {
  const list: Owned[] = [];
  scopes.push(list);
  if (scopes.length === 1) native.setScopeDepth(1);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    scopes.pop();
    endScope(list, null);
    if (scopes.length === 0) native.setScopeDepth(0);
    throw e;
  }
  scopes.pop();
  if (result instanceof Promise) {
    endScope(list, null);
    if (scopes.length === 0) native.setScopeDepth(0);
    // The caller gets the TypeError below; the abandoned promise would otherwise reject later
    // (its code after the await uses freed tensors) and crash the process as unhandled.
    result.catch(() => undefined);
    throw new TypeError('tidy() needs a synchronous function: tensors created after an await would escape the scope; tidy() each synchronous step instead');
  }
  let escaping: Set<Owned> | null = null;
  if (result !== null && typeof result === 'object') {
    escaping = new Set();
    collect(result, escaping, 0);
  }
  endScope(list, escaping);
  if (scopes.length === 0) native.setScopeDepth(0); // reports the scope's net memory change
  return result;
}

/** Disposes every tensor found in the arguments (tensors, arrays, plain objects, Maps). */
export function dispose(...values: unknown[]): void {
  const found = new Set<Owned>();
  for (const v of values) collect(v, found, 0);
  for (const t of found) disposeOne(t);
}

/** Number of nested tidy() scopes currently open. */
export function scopeDepth(): number {
  return scopes.length;
}
