// tinyseek serve under bad input and load: hundreds of malformed bodies and parameter values are
// each answered 4xx (never 5xx, never a crash); more concurrent streams than the server admits
// each complete or get 429/503 with Retry-After, and nothing is left held afterwards.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { type RunningServer, startServer } from '../src/server/app.ts';
import { writeChatCheckpoint } from './fixtures/serve-model.ts';

const root = mkdtempSync(join(tmpdir(), 'tinyseek-load-'));
const ckpt = join(root, 'tiny-chat');
let server: RunningServer;

before(async () => {
  await writeChatCheckpoint(ckpt, { maxPositions: 256 });
  server = await startServer({ checkpoint: ckpt, accounts: null, engine: { blockSize: 16, maxBatch: 2 }, maxQueue: 2, keepAliveMs: 30, defaultMaxTokens: 2 });
  await server.engine.ready;
});
let closed = false;
after(async () => {
  if (!closed) await server?.close();
  rmSync(root, { recursive: true, force: true });
});

const valid = { model: 'tiny-chat', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 };

async function post(path: string, body: string, type = 'application/json'): Promise<number> {
  const r = await fetch(`${server.url}${path}`, { method: 'POST', headers: { 'content-type': type }, body });
  await r.text();
  return r.status;
}

const anyValue = fc.oneof(
  fc.string(),
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.string(), { maxLength: 3 }),
  fc.dictionary(fc.string(), fc.string(), { maxKeys: 3 }),
);
const FIELDS = [
  'model',
  'messages',
  'max_tokens',
  'temperature',
  'top_p',
  'stop',
  'stream',
  'stream_options',
  'response_format',
  'logprobs',
  'top_logprobs',
  'seed',
  'presence_penalty',
  'frequency_penalty',
  'n',
  'tools',
  'user_id',
];

describe('fuzz: malformed requests', () => {
  test('several hundred malformed bodies and values: always 4xx (or 200 when valid), never 5xx', async () => {
    const statuses = new Map<number, number>();
    const seen = (s: number): void => {
      statuses.set(s, (statuses.get(s) ?? 0) + 1);
      assert.ok(s < 500, `status ${s}`);
    };
    // a field of a valid body replaced by any value, or removed
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...FIELDS), anyValue, fc.boolean(), async (field, value, drop) => {
        const body: Record<string, unknown> = { ...valid };
        if (drop) delete body[field];
        else body[field] = value;
        if (body.stream === true) body.stream = false;
        seen(await post('/chat/completions', JSON.stringify(body)));
      }),
      { numRuns: 250, seed: 1 },
    );
    // messages of every wrong shape
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.dictionary(fc.constantFrom('role', 'content', 'prefix', 'reasoning_content', 'name'), anyValue), { maxLength: 3 }),
        async (messages) => {
          seen(await post('/chat/completions', JSON.stringify({ ...valid, messages })));
        },
      ),
      { numRuns: 150, seed: 2 },
    );
    // not JSON at all, the wrong type, the wrong route
    await fc.assert(
      fc.asyncProperty(fc.string({ maxLength: 40 }), async (text) => {
        seen(await post('/chat/completions', text));
        seen(await post('/beta/completions', text));
      }),
      { numRuns: 60, seed: 3 },
    );
    seen(await post('/chat/completions', JSON.stringify(valid), 'text/plain'));
    seen(await post('/chat/completions', '[]'));
    seen(await post('/chat/completions', 'null'));
    seen(await post('/nope', '{}'));
    seen(await post('/beta/completions', JSON.stringify({ model: 'tiny-chat', prompt: 'a', suffix: 'b' })));
    assert.ok([...statuses.values()].reduce((a, b) => a + b, 0) >= 500, 'at least 500 requests');
    assert.ok((statuses.get(400) ?? 0) > 0 && (statuses.get(422) ?? 0) > 0, JSON.stringify([...statuses]));
    const h = await fetch(`${server.url}/health`);
    assert.equal(h.status, 200, 'the server is still up');
  });
});

describe('load', () => {
  test('more concurrent streams than the server admits: each completes or gets 429/503; nothing leaks', async () => {
    const rss0 = process.memoryUsage().rss;
    const one = async (): Promise<string> => {
      const r = await fetch(`${server.url}/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ ...valid, max_tokens: 20, stream: true }),
      });
      const text = await r.text();
      if (r.status === 200) {
        assert.ok(text.trimEnd().endsWith('data: [DONE]'), text.slice(-200));
        return text.includes(': keep-alive') ? 'done-after-wait' : 'done';
      }
      assert.ok(r.status === 429 || r.status === 503, `status ${r.status}`);
      assert.ok(Number(r.headers.get('retry-after')) > 0, 'Retry-After is set');
      return String(r.status);
    };
    const pending = Promise.all(Array.from({ length: 12 }, one));
    // the engine computes in its worker: /health answers meanwhile
    await new Promise((r) => setTimeout(r, 30));
    const t0 = performance.now();
    const health = await fetch(`${server.url}/health`);
    const healthMs = performance.now() - t0;
    assert.equal(health.status, 200);
    assert.ok(((await health.json()) as { in_server: number }).in_server > 0, 'asked while requests were in flight');
    assert.ok(healthMs < 1000, `/health took ${healthMs.toFixed(0)} ms`);
    const results = await pending;
    const done = results.filter((r) => r.startsWith('done')).length;
    assert.ok(done >= 4, `${done} completed: ${results.join(', ')}`);
    assert.ok(
      results.some((r) => r === '503'),
      `the bound was reached: ${results.join(', ')}`,
    );
    // clients that disconnect mid-stream free their slots
    const controllers = Array.from({ length: 4 }, () => new AbortController());
    await Promise.all(
      controllers.map(async (ac) => {
        try {
          const r = await fetch(`${server.url}/chat/completions`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ ...valid, max_tokens: 200, stream: true }),
            signal: ac.signal,
          });
          const reader = r.body!.getReader();
          await reader.read();
          ac.abort();
        } catch {
          // aborted
        }
      }),
    );
    for (let i = 0; i < 200 && (server.inFlight() > 0 || (server.engine.stats?.running ?? 0) > 0); i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(server.inFlight(), 0);
    assert.equal(server.engine.stats?.running, 0);
    assert.equal(server.engine.stats?.waiting, 0);
    assert.equal(server.engine.stats?.blocksInUse, 0);
    const grown = (process.memoryUsage().rss - rss0) / 2 ** 20;
    assert.ok(grown < 300, `rss grew ${grown.toFixed(0)} MiB`);
  });
});

describe('shutdown', () => {
  test('close() stops admitting (503), lets the request in flight finish, then ends', async () => {
    const inFlight = fetch(`${server.url}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...valid, max_tokens: 60, stream: true }),
    }).then(async (r) => ({ status: r.status, text: await r.text() }));
    for (let i = 0; i < 100 && server.inFlight() === 0; i++) await new Promise((r) => setTimeout(r, 10));
    const closing = server.close();
    closed = true;
    const refused = await fetch(`${server.url}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(valid),
    });
    assert.equal(refused.status, 503);
    assert.match(((await refused.json()) as { error: { message: string } }).error.message, /shutting down/);
    const done = await inFlight;
    assert.equal(done.status, 200);
    assert.ok(done.text.trimEnd().endsWith('data: [DONE]'));
    await closing;
  });
});
