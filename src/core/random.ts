/**
 * Seeded randomness. `manualSeed` seeds libtorch's global generators (CPU and every CUDA device);
 * a `Generator` is an independent stream that random ops take as an option, so that a run is
 * reproducible whatever else draws random numbers. A generator's state can be saved and restored
 * (for resuming a run exactly).
 */
import { type Device, parseDevice } from './device.ts';
import { fromNative } from './errors.ts';
import { native } from './native.ts';
import { wrap } from './dispatch.ts';
import type { Tensor } from './tensor.ts';

function guard<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    throw fromNative(e);
  }
}

export function manualSeed(seed: number | bigint): void {
  guard(() => native.manualSeed(seed));
}

export class Generator {
  /** The native generator id (an operand of random ops). */
  readonly id: number;
  readonly device: Device;

  constructor(seed: number | bigint, device: Device = 'cpu') {
    const d = parseDevice(device);
    this.id = guard(() => native.generatorNew(seed, d.type, d.index));
    this.device = device;
  }

  /** The seed this generator was last seeded with. */
  get seed(): bigint {
    return guard(() => native.generatorSeed(this.id));
  }

  /** Re-seeds the generator, restarting its stream. */
  manualSeed(seed: number | bigint): this {
    guard(() => native.generatorSeed(this.id, seed));
    return this;
  }

  /** The full internal state, as a uint8 tensor. */
  getState(): Tensor {
    return wrap(guard(() => native.generatorGetState(this.id)));
  }

  setState(state: Tensor): this {
    guard(() => native.generatorSetState(this.id, state._h));
    return this;
  }
}
