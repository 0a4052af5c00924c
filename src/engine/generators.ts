/**
 * A pool of seeded random generators for decoders that were given a seed rather than a Generator.
 * libtorch generators made by `new Generator()` live as long as the process (the addon keeps them
 * in a table), so a decoder takes one from the pool, re-seeds it (restarting its stream: the same
 * draws as a fresh Generator(seed)) and gives it back when it ends; concurrent decoders never
 * share one.
 *
 * It knows generators and devices; nothing about sampling.
 */
import { type Device, Generator } from '../core/index.ts';

const free = new Map<string, Generator[]>();

/** A generator on `device` seeded with `seed`, for the caller's exclusive use until release. */
export function acquireGenerator(seed: number | bigint, device: Device): Generator {
  const g = free.get(device)?.pop();
  return g ? g.manualSeed(seed) : new Generator(seed, device);
}

export function releaseGenerator(g: Generator): void {
  const list = free.get(g.device) ?? [];
  if (!list.includes(g)) list.push(g);
  free.set(g.device, list);
}
