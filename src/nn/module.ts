/**
 * Module: a named tree of parameters, buffers and submodules, as torch.nn.Module.
 *
 * Names join with '.', so a model's state dict carries exactly the tensor names a checkpoint uses
 * (model.layers.0.self_attn.q_proj.weight). Parameters and buffers are kept alive for the module's
 * lifetime (keep()), whatever tidy() scope they were created in. Subclasses register their parts
 * in the constructor and implement `forward`.
 *
 * This module knows structure and lifetime, not any particular layer.
 */
import { type DType, type Device, type Tensor, noGrad, tidy } from '../core/index.ts';
import { replaceHandle } from '../core/scope.ts';

export interface LoadResult {
  missing: string[];
  unexpected: string[];
}

export class StateDictError extends Error {
  readonly missing: string[];
  readonly unexpected: string[];
  readonly mismatched: string[];
  constructor(missing: string[], unexpected: string[], mismatched: string[]) {
    const parts: string[] = [];
    if (missing.length) parts.push(`missing ${missing.length}: ${missing.slice(0, 10).join(', ')}${missing.length > 10 ? ', …' : ''}`);
    if (unexpected.length) parts.push(`unexpected ${unexpected.length}: ${unexpected.slice(0, 10).join(', ')}${unexpected.length > 10 ? ', …' : ''}`);
    if (mismatched.length) parts.push(`mismatched ${mismatched.length}: ${mismatched.slice(0, 10).join('; ')}${mismatched.length > 10 ? '; …' : ''}`);
    super(`state dict does not match the module — ${parts.join(' | ')}`);
    this.name = 'StateDictError';
    this.missing = missing;
    this.unexpected = unexpected;
    this.mismatched = mismatched;
  }
}

interface BufferEntry {
  tensor: Tensor;
  persistent: boolean;
}

const NAME_RE = /^[A-Za-z0-9_]+$/;

function checkName(kind: string, name: string): void {
  if (!NAME_RE.test(name)) throw new TypeError(`${kind} name '${name}' must be letters, digits or '_' (dots join nested names)`);
}

export abstract class Module {
  training = true;
  private readonly paramMap = new Map<string, Tensor>();
  private readonly bufferMap = new Map<string, BufferEntry>();
  private readonly moduleMap = new Map<string, Module>();

  /** Registers a trainable tensor (requiresGrad is turned on unless `trainable` is false). */
  protected registerParameter(name: string, t: Tensor, trainable = true): Tensor {
    checkName('parameter', name);
    if (this.paramMap.has(name) || this.bufferMap.has(name) || this.moduleMap.has(name)) {
      throw new TypeError(`'${name}' is already registered on ${this.constructor.name}`);
    }
    if (trainable && !t.requiresGrad) t.requiresGrad_(true);
    this.paramMap.set(name, t.keep());
    return t;
  }

  /** Registers a non-trainable tensor; persistent buffers are part of the state dict. */
  protected registerBuffer(name: string, t: Tensor, persistent = true): Tensor {
    checkName('buffer', name);
    if (this.paramMap.has(name) || this.moduleMap.has(name)) throw new TypeError(`'${name}' is already registered on ${this.constructor.name}`);
    const old = this.bufferMap.get(name);
    if (old && old.tensor !== t) old.tensor.dispose();
    this.bufferMap.set(name, { tensor: t.keep(), persistent });
    return t;
  }

  protected registerModule<M extends Module>(name: string, m: M): M {
    checkName('module', name);
    if (this.paramMap.has(name) || this.bufferMap.has(name) || this.moduleMap.has(name)) {
      throw new TypeError(`'${name}' is already registered on ${this.constructor.name}`);
    }
    this.moduleMap.set(name, m);
    return m;
  }

  *namedParameters(prefix = ''): Generator<[string, Tensor]> {
    for (const [n, p] of this.paramMap) yield [prefix + n, p];
    for (const [n, m] of this.moduleMap) yield* m.namedParameters(`${prefix}${n}.`);
  }

  parameters(): Tensor[] {
    return [...this.namedParameters()].map(([, p]) => p);
  }

  *namedBuffers(prefix = '', persistentOnly = false): Generator<[string, Tensor]> {
    for (const [n, b] of this.bufferMap) if (!persistentOnly || b.persistent) yield [prefix + n, b.tensor];
    for (const [n, m] of this.moduleMap) yield* m.namedBuffers(`${prefix}${n}.`, persistentOnly);
  }

  *namedModules(prefix = ''): Generator<[string, Module]> {
    yield [prefix.replace(/\.$/, ''), this];
    for (const [n, m] of this.moduleMap) yield* m.namedModules(`${prefix}${n}.`);
  }

  children(): Module[] {
    return [...this.moduleMap.values()];
  }

  /** Sets training mode on this module and every submodule. */
  train(mode = true): this {
    for (const [, m] of this.namedModules()) m.training = mode;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** Number of parameter elements (trainable only, by default). */
  numParameters(trainableOnly = true): number {
    let n = 0;
    for (const [, p] of this.namedParameters()) if (!trainableOnly || p.requiresGrad) n += p.numel();
    return n;
  }

  /** Parameters and persistent buffers by name. The tensors are the module's own (not copies). */
  stateDict(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    for (const [n, p] of this.namedParameters()) out.set(n, p);
    for (const [n, b] of this.namedBuffers('', true)) out.set(n, b);
    return out;
  }

  /**
   * Copies values into the module's tensors (converting dtype, keeping each tensor's identity).
   * Every name and shape is checked first; with `strict` any missing, unexpected or mis-shaped
   * tensor is reported in one StateDictError and nothing is changed.
   */
  loadStateDict(sd: Map<string, Tensor> | Record<string, Tensor>, strict = true): LoadResult {
    const source = sd instanceof Map ? sd : new Map(Object.entries(sd));
    const own = this.stateDict();
    const missing = [...own.keys()].filter((k) => !source.has(k));
    const unexpected = [...source.keys()].filter((k) => !own.has(k));
    const mismatched: string[] = [];
    for (const [k, t] of own) {
      const s = source.get(k);
      if (!s) continue;
      const a = t.shape;
      const b = s.shape;
      if (a.length !== b.length || a.some((d, i) => d !== b[i])) mismatched.push(`${k}: expected [${a.join(', ')}], got [${b.join(', ')}]`);
    }
    if (mismatched.length || (strict && (missing.length || unexpected.length))) {
      throw new StateDictError(missing, unexpected, mismatched);
    }
    noGrad(() => {
      for (const [k, t] of own) {
        const s = source.get(k);
        if (s) t.copy_(s);
      }
    });
    return { missing, unexpected };
  }

  /** Clears every parameter's gradient. */
  zeroGrad(): void {
    for (const [, p] of this.namedParameters()) p.grad = null;
  }

  /**
   * Converts parameters and buffers to a dtype and/or device in place: each keeps its identity
   * (so create optimizers after moving, as in PyTorch, or before: both see the moved tensors).
   */
  to(target: DType | Device | { dtype?: DType; device?: Device }): this {
    const moveOne = (t: Tensor, trainable: boolean): void => {
      const moved = noGrad(() => tidy(() => t.detach().to(target, true)));
      if (trainable) moved.requiresGrad_(true);
      replaceHandle(t, moved);
    };
    for (const [, p] of this.namedParameters()) moveOne(p, p.requiresGrad);
    for (const [, b] of this.namedBuffers()) moveOne(b, false);
    return this;
  }
}

/** A list of submodules named 0, 1, 2, … */
export class ModuleList<M extends Module = Module> extends Module {
  readonly items: M[] = [];

  constructor(items: Iterable<M> = []) {
    super();
    for (const m of items) this.append(m);
  }

  append(m: M): this {
    this.registerModule(String(this.items.length), m);
    this.items.push(m);
    return this;
  }

  get length(): number {
    return this.items.length;
  }

  at(i: number): M {
    const m = this.items.at(i);
    if (!m) throw new RangeError(`ModuleList index ${i} out of range (length ${this.items.length})`);
    return m;
  }

  [Symbol.iterator](): Iterator<M> {
    return this.items[Symbol.iterator]();
  }
}
