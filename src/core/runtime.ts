/**
 * The running engine: libtorch version and location, devices, threads, BLAS, memory. What
 * `tinyseek doctor` prints comes from here.
 */
import { blasChoice, native, addonFile, type NativeInfo, type NativeMemoryStats } from './native.ts';
import type { BlasChoice } from './blas.ts';

export interface RuntimeInfo extends NativeInfo {
  addon: string;
  threads: number;
  blasChoice: BlasChoice;
}

export function runtimeInfo(): RuntimeInfo {
  return { ...native.info(), addon: addonFile, threads: native.getNumThreads(), blasChoice };
}

/** Sets libtorch's intra-op thread count (defaults to the core count, or TINYSEEK_THREADS). */
export function setNumThreads(n: number): void {
  native.setNumThreads(n);
}

export function getNumThreads(): number {
  return native.getNumThreads();
}

export function cudaAvailable(): boolean {
  return native.info().cudaAvailable;
}

/** Live native memory: bytes held by libtorch's CPU allocator and tensors held by JS handles. */
export function memoryStats(): NativeMemoryStats {
  return native.memoryStats();
}
