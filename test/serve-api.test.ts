// tinyseek serve's API against a real server on 127.0.0.1, through the official `openai` client:
// chat, streaming with reasoning content, usage and cache hits (also after a restart), JSON mode,
// prefix completion, each error status as the SDK's error class, cancellation freeing the slot,
// keys and balance.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import OpenAI from 'openai';
import { Accounts } from '../src/server/accounts.ts';
import { type RunningServer, startServer } from '../src/server/app.ts';
import { writeChatCheckpoint } from './fixtures/serve-model.ts';

const root = mkdtempSync(join(tmpdir(), 'tinyseek-serve-'));
const ckpt = join(root, 'tiny-chat');
let server: RunningServer;
let client: OpenAI;

before(async () => {
  await writeChatCheckpoint(ckpt);
  server = await startServer({
    checkpoint: ckpt,
    accounts: null,
    engine: { blockSize: 16, maxBatch: 4, diskDir: join(root, 'kv') },
    maxQueue: 2,
    keepAliveMs: 50,
  });
  await server.engine.ready;
  client = new OpenAI({ baseURL: server.url, apiKey: 'none', maxRetries: 0 });
});
after(async () => {
  await server?.close();
  rmSync(root, { recursive: true, force: true });
});

const ask = (content: string, extra: Record<string, unknown> = {}) => ({
  model: 'tiny-chat',
  messages: [{ role: 'user' as const, content }],
  max_tokens: 24,
  seed: 1,
  ...extra,
});

describe('tinyseek serve with the openai client', () => {
  test('GET /models and /health', async () => {
    const models = await client.models.list();
    assert.deepEqual(
      models.data.map((m) => m.id),
      ['tiny-chat'],
    );
    // tinyseek's extension: the prices per 1M tokens, which the chat page shows costs at
    assert.deepEqual((models.data[0] as unknown as { pricing: object }).pricing, {
      currency: 'CNY',
      prompt_cache_hit: 0.5,
      prompt_cache_miss: 2,
      completion: 8,
    });
    const h = (await (await fetch(`${server.url}/health`)).json()) as { status: string };
    assert.equal(h.status, 'ok');
  });

  test('a chat completion has reasoning content, usage that adds up, and a finish reason', async () => {
    const r = await client.chat.completions.create(ask('what is 2 + 6?'));
    const c = r.choices[0];
    assert.equal(c.message.role, 'assistant');
    assert.equal(typeof (c.message as unknown as { reasoning_content: string }).reasoning_content, 'string');
    assert.ok(['stop', 'length'].includes(c.finish_reason));
    const u = r.usage as unknown as Record<string, number> & { completion_tokens_details: { reasoning_tokens: number } };
    assert.equal(u.prompt_tokens, u.prompt_cache_hit_tokens + u.prompt_cache_miss_tokens);
    assert.equal(u.total_tokens, u.prompt_tokens + u.completion_tokens);
    assert.ok(u.completion_tokens > 0 && u.completion_tokens <= 24);
    assert.ok(u.completion_tokens_details.reasoning_tokens <= u.completion_tokens);
  });

  test('streaming: reasoning_content deltas, then content, the finish, then usage when asked', async () => {
    const stream = await client.chat.completions.create({ ...ask('what is 3 + 9?'), stream: true, stream_options: { include_usage: true } });
    let reasoning = '';
    let finish: string | null = null;
    let usage: Record<string, number> | null = null;
    let chunks = 0;
    for await (const ch of stream) {
      chunks++;
      if (ch.usage) usage = ch.usage as unknown as Record<string, number>;
      const d = ch.choices[0]?.delta as { reasoning_content?: string } | undefined;
      if (d?.reasoning_content) reasoning += d.reasoning_content;
      if (ch.choices[0]?.finish_reason) finish = ch.choices[0].finish_reason;
    }
    assert.ok(chunks > 2);
    assert.ok(finish);
    assert.ok(usage && usage.completion_tokens > 0);
    const whole = await client.chat.completions.create(ask('what is 3 + 9?'));
    assert.equal(reasoning, (whole.choices[0].message as unknown as { reasoning_content: string }).reasoning_content, 'same seed, same reasoning');
  });

  test('a repeated prefix is reported as cache hits, in whole blocks', async () => {
    const long = `${'the sum of 12 and 36 is 48. '.repeat(12)}what is 5 + 5?`;
    const a = await client.chat.completions.create(ask(long, { user_id: 'hits' }));
    const b = await client.chat.completions.create(ask(long, { user_id: 'hits' }));
    const ua = a.usage as unknown as Record<string, number>;
    const ub = b.usage as unknown as Record<string, number>;
    assert.equal(ua.prompt_cache_hit_tokens, 0);
    assert.ok(ub.prompt_cache_hit_tokens >= 16 && ub.prompt_cache_hit_tokens % 16 === 0, `${ub.prompt_cache_hit_tokens} hit tokens`);
    assert.equal(b.choices[0].message.content, a.choices[0].message.content);
    const other = await client.chat.completions.create(ask(long, { user_id: 'someone-else' }));
    assert.equal((other.usage as unknown as Record<string, number>).prompt_cache_hit_tokens, 0, 'another user_id never hits');
  });

  test('JSON mode: the content always parses', async () => {
    for (const seed of [1, 2, 3]) {
      const r = await client.chat.completions.create(ask('give a JSON object', { response_format: { type: 'json_object' }, max_tokens: 40, seed }));
      const content = r.choices[0].message.content ?? '';
      assert.doesNotThrow(() => JSON.parse(content), `content ${JSON.stringify(content)}`);
    }
  });

  test('chat prefix completion continues the assistant message', async () => {
    const r = await client.chat.completions.create({
      model: 'tiny-chat',
      messages: [{ role: 'user', content: 'what is 1 + 1?' }, { role: 'assistant', content: 'The sum', prefix: true, reasoning_content: 'add them' } as never],
      max_tokens: 8,
      seed: 1,
    });
    assert.ok(r.usage!.completion_tokens > 0);
  });

  test('errors surface as the SDK error classes, with a message naming the field', async () => {
    await assert.rejects(
      client.chat.completions.create(ask('hi', { temperature: 5 })),
      (e: unknown) => e instanceof OpenAI.UnprocessableEntityError && /temperature/.test((e as Error).message),
    );
    await assert.rejects(
      client.chat.completions.create({ model: 'tiny-chat', messages: 'hi' } as never),
      (e: unknown) => e instanceof OpenAI.BadRequestError && /messages/.test((e as Error).message),
    );
    await assert.rejects(client.chat.completions.create(ask('hi', { model: 'gpt-4' })), (e: unknown) => e instanceof OpenAI.UnprocessableEntityError);
    await assert.rejects(
      client.chat.completions.create(ask('hi', { tools: [{ type: 'function', function: { name: 'f', parameters: {} } }] })),
      (e: unknown) => e instanceof OpenAI.UnprocessableEntityError && /tool/.test((e as Error).message),
    );
    await assert.rejects(
      client.chat.completions.create({
        model: 'tiny-chat',
        messages: [{ role: 'user', content: 'a' }, { role: 'assistant', content: 'b', reasoning_content: 'secret' } as never, { role: 'user', content: 'c' }],
      }),
      (e: unknown) => e instanceof OpenAI.BadRequestError && /reasoning_content/.test((e as Error).message),
    );
    await assert.rejects(
      client.chat.completions.create(ask('hi', { max_tokens: 100000 })),
      (e: unknown) => e instanceof OpenAI.BadRequestError && /max_tokens/.test((e as Error).message),
    );
    const raw = await fetch(`${server.url}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"model": ' });
    assert.equal(raw.status, 400);
    const body = (await raw.json()) as { error: { message: string; type: string; code: string } };
    assert.ok(body.error.message && body.error.type && body.error.code);
  });

  test('a cancelled stream frees its slot in the engine', async () => {
    const ac = new AbortController();
    const stream = await client.chat.completions.create({ ...ask('count', { max_tokens: 400 }), stream: true }, { signal: ac.signal });
    let n = 0;
    try {
      for await (const _ of stream) if (++n === 3) ac.abort();
    } catch (e) {
      assert.ok(e instanceof Error && /abort/i.test(e.name + e.message), String(e));
    }
    assert.ok(n < 50, `the stream stopped after ${n} chunks`);
    for (let i = 0; i < 100 && (server.inFlight() > 0 || (server.engine.stats?.running ?? 0) > 0); i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(server.inFlight(), 0);
    assert.equal(server.engine.stats?.running, 0);
    assert.equal(server.engine.stats?.blocksInUse, 0);
  });

  test('cache hits survive a server restart (the prefix cache on disk)', async () => {
    const long = `${'the sum of 7 and 21 is 28. '.repeat(10)}what is 8 + 8?`;
    const first = await client.chat.completions.create(ask(long, { user_id: 'restart' }));
    assert.equal((first.usage as unknown as Record<string, number>).prompt_cache_hit_tokens, 0);
    await server.close();
    server = await startServer({
      checkpoint: ckpt,
      accounts: null,
      engine: { blockSize: 16, maxBatch: 4, diskDir: join(root, 'kv') },
      maxQueue: 2,
      keepAliveMs: 50,
    });
    await server.engine.ready;
    client = new OpenAI({ baseURL: server.url, apiKey: 'none', maxRetries: 0 });
    const again = await client.chat.completions.create(ask(long, { user_id: 'restart' }));
    const hits = (again.usage as unknown as Record<string, number>).prompt_cache_hit_tokens;
    assert.ok(hits >= 16, `${hits} hit tokens after the restart`);
    assert.equal(again.choices[0].message.content, first.choices[0].message.content);
  });
});

describe('keys, balance and the ledger', () => {
  test('401 without a valid key, 402 when the balance is spent, the ledger charges at the prices', async () => {
    const accounts = new Accounts(join(root, 'accounts.db'));
    const { key, row } = accounts.create('alice', 0.0005);
    const srv = await startServer({ checkpoint: ckpt, accounts, engine: { blockSize: 16, maxBatch: 2 } });
    await srv.engine.ready;
    try {
      const anon = new OpenAI({ baseURL: srv.url, apiKey: 'sk-wrong', maxRetries: 0 });
      await assert.rejects(anon.models.list(), (e: unknown) => e instanceof OpenAI.AuthenticationError);
      const alice = new OpenAI({ baseURL: srv.url, apiKey: key, maxRetries: 0 });
      const r = await alice.chat.completions.create(ask('what is 2 + 2?', { max_tokens: 30 }));
      const u = r.usage!;
      const [entry] = accounts.ledger({ keyId: row.id });
      assert.equal(entry.requestId, r.id);
      assert.equal(entry.cacheHit + entry.cacheMiss, u.prompt_tokens);
      assert.equal(entry.completion, u.completion_tokens);
      const want = (entry.cacheHit * 0.5 + entry.cacheMiss * 2 + entry.completion * 8) / 1e6;
      assert.ok(Math.abs(entry.cost - want) < 1e-6, `${entry.cost} vs ${want}`);
      const balance = (await (await fetch(`${srv.url}/user/balance`, { headers: { authorization: `Bearer ${key}` } })).json()) as {
        balance_infos: { currency: string }[];
      };
      assert.equal(balance.balance_infos[0].currency, 'CNY');
      // spend the rest, then 402
      accounts.topUp(row.id, -1);
      await assert.rejects(
        alice.chat.completions.create(ask('again')),
        (e: unknown) => e instanceof OpenAI.APIError && (e as { status: number }).status === 402,
      );
      accounts.revoke(row.id);
      await assert.rejects(alice.models.list(), (e: unknown) => e instanceof OpenAI.AuthenticationError);
    } finally {
      await srv.close();
    }
  });
});
