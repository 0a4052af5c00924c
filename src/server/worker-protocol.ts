/**
 * The messages between the HTTP server (main thread) and the engine worker. Everything crossing is
 * plain data (structured clone): token ids, settings, events and statistics.
 *
 * It knows message shapes only.
 */
import type { EngineEvent, EngineOptions, EngineRequest, EngineStats } from '../engine/scheduler.ts';

export interface WorkerInit {
  checkpoint: string;
  device: 'cpu' | 'cuda';
  engine: EngineOptions;
  /** Torch intra-op threads for the worker (0: leave the default). */
  threads: number;
}

/** A request as it crosses: JSON mode is a flag (the worker builds the constraint). */
export type WireRequest = Omit<EngineRequest, 'constraint'> & { json?: { opener: string } };

export type ToWorker = { type: 'add'; req: WireRequest } | { type: 'abort'; id: string } | { type: 'flush' } | { type: 'stop' };

export interface ModelInfo {
  vocabSize: number;
  maxPositions: number;
  blockSize: number;
  parameters: number;
}

export type FromWorker =
  | { type: 'ready'; info: ModelInfo; stats: EngineStats }
  | { type: 'events'; events: EngineEvent[]; stats: EngineStats; stepMs: number; tokens: number }
  | { type: 'rejected'; id: string; message: string }
  | { type: 'flushed'; blocks: number }
  | { type: 'stopped' }
  | { type: 'fatal'; message: string };
