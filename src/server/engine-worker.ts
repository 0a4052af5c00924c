/**
 * The engine's thread: loads the checkpoint, runs the serving engine's step loop, and talks to the
 * HTTP server by messages, so the server's event loop stays free (it answers /health while the
 * model computes). Between two steps it takes in new requests and aborts; when no request is left it
 * sleeps until a message comes.
 *
 * It knows the engine, the checkpoint and the protocol; not HTTP.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { join } from 'node:path';
import { setNumThreads } from '../core/index.ts';
import { Engine } from '../engine/scheduler.ts';
import { loadCheckpoint } from '../model/checkpoint.ts';
import { countParameters } from '../model/params.ts';
import { Tokenizer } from '../tokenizer/index.ts';
import { JsonConstraint } from './json-constraint.ts';
import type { FromWorker, ToWorker, WorkerInit } from './worker-protocol.ts';

const port = parentPort!;
const init = workerData as WorkerInit;
const post = (m: FromWorker): void => port.postMessage(m);

try {
  if (init.threads > 0) setNumThreads(init.threads);
  const model = loadCheckpoint(init.checkpoint, { device: init.device });
  model.eval();
  const tok = Tokenizer.load(join(init.checkpoint, 'tokenizer.json'));
  const texts = Array.from({ length: model.config.vocab_size }, (_, id) => (id < tok.vocabSize ? tok.decode([id]) : ''));
  const control = new Set(texts.flatMap((_, id) => (id >= tok.vocabSize || tok.isAdded(id) ? [id] : [])));
  const engine = new Engine(model, init.engine);
  let stopping = false;
  let scheduled = false;

  const loop = (): void => {
    scheduled = false;
    if (!engine.busy) return;
    const t0 = performance.now();
    const before = engine.stats.generatedTokens;
    const events = engine.step();
    post({ type: 'events', events, stats: engine.stats, stepMs: performance.now() - t0, tokens: engine.stats.generatedTokens - before });
    schedule();
  };
  // setImmediate lets queued messages (new requests, aborts) in between two steps
  const schedule = (): void => {
    if (!scheduled && engine.busy) {
      scheduled = true;
      setImmediate(loop);
    }
  };

  port.on('message', (m: ToWorker) => {
    try {
      if (m.type === 'add') {
        if (stopping) {
          post({ type: 'rejected', id: m.req.id, message: 'the server is shutting down' });
          return;
        }
        const { json, ...req } = m.req;
        engine.add({ ...req, ...(json ? { constraint: new JsonConstraint(texts, control, json.opener, req.maxTokens) } : {}) });
      } else if (m.type === 'abort') engine.abort(m.id);
      else if (m.type === 'flush') post({ type: 'flushed', blocks: engine.flush() });
      else if (m.type === 'stop') {
        stopping = true;
        engine.flush();
        engine.dispose();
        post({ type: 'stopped' });
        return;
      }
      schedule();
    } catch (e) {
      if (m.type === 'add') post({ type: 'rejected', id: m.req.id, message: (e as Error).message });
      else post({ type: 'fatal', message: (e as Error).message });
    }
  });
  post({
    type: 'ready',
    info: {
      vocabSize: model.config.vocab_size,
      maxPositions: model.config.max_position_embeddings,
      blockSize: engine.blockSize,
      parameters: countParameters(model.config).total,
    },
    stats: engine.stats,
  });
} catch (e) {
  post({ type: 'fatal', message: (e as Error).message });
}
