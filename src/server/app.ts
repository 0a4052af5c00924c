/**
 * `tinyseek serve`'s HTTP API, DeepSeek-compatible (fastify): chat completions with reasoning
 * content, streaming (SSE), the context cache's usage fields, FIM completions for a model trained
 * for them, models, balance, health and Prometheus metrics. The engine runs in a worker thread
 * (engine-client.ts); this module turns requests into prompt ids and engine events into replies.
 *
 *   POST /chat/completions, /v1/chat/completions   (also chat prefix completion: a last assistant
 *                                                   message with "prefix": true)
 *   POST /beta/completions                         prompt (+ suffix for FIM), echo, logprobs
 *   GET  /models, /v1/models, /user/balance, /health, /metrics
 *   GET  /, /runs                                  the chat page and the runs dashboard (web.ts)
 *
 * Errors are `{"error": {"message", "type", "code"}}` with DeepSeek's statuses: 400 invalid format,
 * 401 authentication, 402 balance, 422 parameters, 429 rate (per key), 500, 503 overloaded (both with
 * Retry-After). A stream that fails after it started ends with a `data: {"error": …}` event.
 *
 * Under load: at most `maxBatch + maxQueue` requests are in the server at once (503 past it), and
 * `maxPerKey` per key (429). While a request waits for its first token, a stream gets `: keep-alive`
 * comments and a non-streaming reply blank lines (its 200 status is then already sent). A client
 * that disconnects aborts its request in the engine at once. `close()` stops admitting (503),
 * drains what is in flight, flushes the cache to disk and ends the worker.
 *
 * It knows HTTP, the API's fields, text and accounts; not tensors.
 */
import { randomUUID } from 'node:crypto';
import { basename } from 'node:path';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { EngineEvent, EngineFinish, EngineOptions } from '../engine/scheduler.ts';
import type { RowChoice } from '../engine/row-sampler.ts';
import { ReasoningStream, Tokenizer } from '../tokenizer/index.ts';
import { type Accounts, type KeyRow, PriceTable, costOf } from './accounts.ts';
import { ChatFormat, TagStripper } from './chat-format.ts';
import { EngineClient } from './engine-client.ts';
import { ChatRequest, CompletionRequest, schemaError } from './schemas.ts';
import { registerWeb } from './web.ts';
import type { WireRequest } from './worker-protocol.ts';
import { join } from 'node:path';

export interface ServerOptions {
  checkpoint: string;
  /** The id clients pass as `model` (default: the checkpoint folder's name). */
  modelId?: string;
  host?: string;
  /** 0: any free port. */
  port?: number;
  /** null: no authentication (a local single user). */
  accounts: Accounts | null;
  engine?: EngineOptions;
  device?: 'cpu' | 'cuda';
  threads?: number;
  /** Requests waiting beyond the engine's batch before 503. */
  maxQueue?: number;
  /** Requests one key may have in the server at once before 429. */
  maxPerKey?: number;
  /** Keep-alive interval while a request waits for its first token. */
  keepAliveMs?: number;
  /** max_tokens when a request gives none (capped by the context left). */
  defaultMaxTokens?: number;
  /** The runs dashboard's folder (GET /runs); null: no dashboard. Default: none. */
  runsDir?: string | null;
  /** Prices shown by GET /models and the chat page (default: the accounts' table, else the V3 launch prices). */
  prices?: PriceTable;
  log?: boolean;
}

export interface RunningServer {
  url: string;
  app: FastifyInstance;
  engine: EngineClient;
  /** Requests in the server now. */
  inFlight(): number;
  close(): Promise<void>;
}

class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: string,
    readonly code: string,
    readonly retryAfter?: number,
  ) {
    super(message);
  }
}

const TYPES: Record<number, [string, string]> = {
  400: ['invalid_request_error', 'invalid_format'],
  401: ['authentication_error', 'invalid_api_key'],
  402: ['insufficient_balance', 'insufficient_balance'],
  404: ['invalid_request_error', 'not_found'],
  413: ['invalid_request_error', 'body_too_large'],
  415: ['invalid_request_error', 'unsupported_media_type'],
  422: ['invalid_request_error', 'invalid_parameters'],
  429: ['rate_limit_error', 'rate_limit_reached'],
  500: ['server_error', 'server_error'],
  503: ['server_error', 'server_overloaded'],
};

const fail = (status: number, message: string, retryAfter?: number): ApiError => {
  const [type, code] = TYPES[status] ?? TYPES[500];
  return new ApiError(status, message, type, code, retryAfter);
};

const errorBody = (e: ApiError): object => ({ error: { message: e.message, type: e.type, code: e.code } });

/** What one finished or streaming reply has produced so far. */
interface ReplyState {
  reasoning: string;
  content: string;
  tokens: number;
  reasoningTokens: number;
  promptTokens: number;
  cachedTokens: number;
  logprobs: { token: string; logprob: number; bytes: number[]; top_logprobs: { token: string; logprob: number; bytes: number[] }[] }[];
  finish: EngineFinish | null;
}

/** Turns engine tokens into text pieces: decoding, stop strings, reasoning split, answer tags. */
class TextPipeline {
  private readonly decoder;
  private readonly reasoning: ReasoningStream | null;
  private readonly tags: TagStripper | null;
  private held = '';
  private raw = '';
  stopped = false;

  constructor(
    tok: Tokenizer,
    private readonly stops: readonly string[],
    o: { reasoning: boolean; startInReasoning: boolean; answerTags: boolean },
  ) {
    this.decoder = tok.createDecoder({ skipSpecial: true });
    this.reasoning = o.reasoning ? new ReasoningStream({ startInReasoning: o.startInReasoning }) : null;
    this.tags = o.answerTags ? new TagStripper(['<answer>', '</answer>']) : null;
  }

  /** Whether the reply is (still) in its reasoning. */
  get inReasoning(): boolean {
    return this.reasoning !== null && !this.raw.includes('</think>') && (this.reasoning.hasReasoning || this.raw.trim() === '');
  }

  push(id: number): { reasoning: string; content: string } {
    if (this.stopped) return { reasoning: '', content: '' };
    return this.emit(this.decoder.push(id), false);
  }

  end(): { reasoning: string; content: string } {
    return this.emit(this.stopped ? '' : this.decoder.flush(), true);
  }

  private emit(text: string, final: boolean): { reasoning: string; content: string } {
    let s = this.held + text;
    this.held = '';
    for (const stop of this.stops) {
      const i = s.indexOf(stop);
      if (i >= 0) {
        s = s.slice(0, i);
        this.stopped = true;
      }
    }
    if (!this.stopped && !final && this.stops.length) {
      // hold back what may be the start of a stop string
      const longest = Math.max(...this.stops.map((x) => x.length)) - 1;
      let keep = 0;
      for (const stop of this.stops) for (let k = Math.min(longest, s.length); k > keep; k--) if (stop.startsWith(s.slice(s.length - k))) keep = k;
      this.held = s.slice(s.length - keep);
      s = s.slice(0, s.length - keep);
    }
    this.raw += s;
    const d = this.reasoning ? this.reasoning.push(s) : { content: s };
    const tail = final || this.stopped ? (this.reasoning?.end() ?? {}) : {};
    let content = (d.content ?? '') + (tail.content ?? '');
    const reasoning = (d.reasoning ?? '') + (tail.reasoning ?? '');
    if (this.tags) content = this.tags.push(content) + (final || this.stopped ? this.tags.end() : '');
    return { reasoning, content };
  }
}

const bytesOf = (s: string): number[] => [...Buffer.from(s, 'utf8')];

/** A request's sampling fields as the engine takes them (the API's defaults: temperature 1, top_p 1). */
function samplingOf(
  body: {
    temperature?: number | null;
    top_p?: number | null;
    presence_penalty?: number | null;
    frequency_penalty?: number | null;
    seed?: number | null;
  },
  topLogprobs: number,
): Pick<WireRequest, 'sampling' | 'seed'> {
  return {
    sampling: {
      temperature: body.temperature ?? 1,
      topP: body.top_p ?? 1,
      topK: 0,
      presencePenalty: body.presence_penalty ?? 0,
      frequencyPenalty: body.frequency_penalty ?? 0,
      topLogprobs,
    },
    ...(body.seed !== null && body.seed !== undefined ? { seed: body.seed } : {}),
  };
}

export async function startServer(o: ServerOptions): Promise<RunningServer> {
  const tok = Tokenizer.load(join(o.checkpoint, 'tokenizer.json'));
  const format = ChatFormat.load(o.checkpoint, tok);
  const modelId = o.modelId ?? basename(o.checkpoint.replace(/\/+$/, ''));
  const engineOptions: EngineOptions = { ...o.engine };
  const engine = new EngineClient({ checkpoint: o.checkpoint, device: o.device ?? 'cpu', engine: engineOptions, threads: o.threads ?? 0 });
  const maxBatch = engineOptions.maxBatch ?? 16;
  const maxQueue = o.maxQueue ?? 64;
  const maxPerKey = o.maxPerKey ?? 32;
  const keepAliveMs = o.keepAliveMs ?? 5000;
  const defaultMaxTokens = o.defaultMaxTokens ?? 512;
  const prices = o.prices ?? o.accounts?.prices ?? PriceTable.parse({});
  let loading = true;
  let closing = false;
  const inFlight = new Map<string, number>(); // key → requests in the server
  let total = 0;
  const drained: (() => void)[] = [];

  const registry = new Registry();
  const gauge = (name: string, help: string, collect: () => number): Gauge =>
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(collect());
      },
    });
  gauge('tinyseek_queue_depth', 'requests waiting for a batch slot in the engine', () => engine.stats?.waiting ?? 0);
  gauge('tinyseek_running_requests', 'requests the engine is computing', () => engine.stats?.running ?? 0);
  gauge('tinyseek_requests_in_server', 'requests admitted by the HTTP server and not finished', () => total);
  gauge('tinyseek_kv_blocks_in_use', 'KV cache blocks held by running requests', () => engine.stats?.blocksInUse ?? 0);
  gauge('tinyseek_kv_blocks_total', 'KV cache blocks in the pool', () => engine.stats?.blocksTotal ?? 0);
  gauge('tinyseek_prefix_cache_blocks', 'full blocks findable in the prefix cache', () => engine.stats?.blocksCached ?? 0);
  gauge('tinyseek_cache_hit_rate', 'prompt tokens served from the prefix cache / all prompt tokens', () =>
    engine.stats?.promptTokens ? engine.stats.cachedPromptTokens / engine.stats.promptTokens : 0,
  );
  gauge('tinyseek_tokens_per_second', 'decoding throughput over the last steps', () => engine.tokensPerSecond);
  gauge('tinyseek_mtp_acceptance', 'share of MTP drafts the main model kept (speculative decoding)', () =>
    engine.stats?.draftsProposed ? engine.stats.draftsAccepted / engine.stats.draftsProposed : 0,
  );
  gauge('tinyseek_preemptions', 'requests preempted for KV room (recomputed later)', () => engine.stats?.preemptions ?? 0);
  const requests = new Counter({
    name: 'tinyseek_http_requests_total',
    help: 'API requests by route and status',
    labelNames: ['route', 'status'],
    registers: [registry],
  });
  const ttft = new Histogram({ name: 'tinyseek_time_to_first_token_seconds', help: 'time from admission to the first token', registers: [registry] });

  const app = Fastify({ logger: o.log ?? false, bodyLimit: 8 << 20 });

  app.setErrorHandler((err, _req, reply) => {
    const status = (err as { statusCode?: number }).statusCode;
    const message = err instanceof Error ? err.message : String(err);
    const e = err instanceof ApiError ? err : status && status < 500 ? fail(status, `invalid request: ${message}`) : fail(500, `internal error: ${message}`);
    if (e.retryAfter !== undefined) reply.header('retry-after', String(e.retryAfter));
    reply.code(e.status).send(errorBody(e));
  });
  app.setNotFoundHandler((req, reply) => {
    reply
      .code(404)
      .send(
        errorBody(
          fail(404, `no route ${req.method} ${req.url}; the API serves POST /chat/completions, POST /beta/completions, GET /models; the chat page is GET /`),
        ),
      );
  });
  // replies written by respond() (hijacked streams) count themselves
  const counted = new WeakSet<FastifyRequest>();
  app.addHook('onResponse', async (req, reply) => {
    if (!counted.has(req)) requests.inc({ route: req.routeOptions.url ?? 'unknown', status: String(reply.statusCode) });
  });

  const authenticate = (req: FastifyRequest): KeyRow | null => {
    if (!o.accounts) return null;
    const h = req.headers.authorization;
    if (!h || !/^Bearer \S+$/.test(h)) throw fail(401, 'no API key: send the header "Authorization: Bearer <key>" (create one with `tinyseek keys create`)');
    const key = o.accounts.authenticate(h.slice(7));
    if (!key) throw fail(401, 'the API key is unknown or revoked; check it, or create one with `tinyseek keys create`');
    return key;
  };

  const checkModel = (model: string): void => {
    if (model !== modelId && model !== 'deepseek-reasoner')
      throw fail(422, `model "${model}" is not served here; this server serves "${modelId}" (GET /models)`);
  };

  const parse = <T>(schema: { safeParse(v: unknown): { success: true; data: T } | { success: false; error: import('zod').ZodError } }, body: unknown): T => {
    if (body === null || typeof body !== 'object' || Array.isArray(body)) throw fail(400, 'the body must be a JSON object; see the API reference');
    const r = schema.safeParse(body);
    if (!r.success) {
      const { status, message } = schemaError(r.error);
      throw fail(status, message);
    }
    return r.data;
  };

  /** Admits a request (429 / 503 when full) and returns its release. */
  const admit = (key: KeyRow | null): (() => void) => {
    if (loading) throw fail(503, 'the model is still loading; retry shortly', 2);
    if (closing) throw fail(503, 'the server is shutting down; retry on another instance', 5);
    if (engine.failed) throw fail(503, `the engine stopped: ${engine.failed.message}`, 30);
    const k = key ? String(key.id) : '';
    if ((inFlight.get(k) ?? 0) >= maxPerKey) throw fail(429, `this key has ${maxPerKey} requests in flight, the most allowed; wait for one to finish`, 1);
    if (total >= maxBatch + maxQueue) throw fail(503, `the server is at capacity (${total} requests in flight); retry after the delay`, 2);
    if (key && key.balance <= 0) throw fail(402, `the balance of this key is ${key.balance}; top it up (tinyseek keys top-up) before sending more requests`);
    inFlight.set(k, (inFlight.get(k) ?? 0) + 1);
    total++;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      inFlight.set(k, inFlight.get(k)! - 1);
      total--;
      if (total === 0) for (const d of drained.splice(0)) d();
    };
  };

  const maxTokensFor = (asked: number | null | undefined, promptLength: number): number => {
    const room = (engine.info?.maxPositions ?? 0) - promptLength;
    if (room < 1) throw fail(400, `the prompt is ${promptLength} tokens; the model's context is ${engine.info?.maxPositions} — shorten the messages`);
    if (asked !== null && asked !== undefined && asked > room)
      throw fail(
        400,
        `the prompt (${promptLength} tokens) plus max_tokens (${asked}) exceeds the model's context of ${engine.info?.maxPositions}; lower max_tokens to ${room} or less`,
      );
    return asked ?? Math.min(room, defaultMaxTokens);
  };

  const stopsOf = (stop: string | string[] | null | undefined): string[] =>
    (stop === null || stop === undefined ? [] : typeof stop === 'string' ? [stop] : stop).filter((s) => s !== '');

  const namespaceOf = (key: KeyRow | null, user: string | undefined): string => `${key ? key.id : 'local'}/${user ?? ''}`;

  const usageOf = (s: ReplyState): object => ({
    prompt_tokens: s.promptTokens,
    completion_tokens: s.tokens,
    total_tokens: s.promptTokens + s.tokens,
    prompt_cache_hit_tokens: s.cachedTokens,
    prompt_cache_miss_tokens: s.promptTokens - s.cachedTokens,
    prompt_tokens_details: { cached_tokens: s.cachedTokens },
    completion_tokens_details: { reasoning_tokens: s.reasoningTokens },
  });

  const charge = (key: KeyRow | null, id: string, s: ReplyState): void => {
    if (!key || !o.accounts || s.promptTokens === 0) return;
    o.accounts.charge(key.id, id, modelId, { cacheHit: s.cachedTokens, cacheMiss: s.promptTokens - s.cachedTokens, completion: s.tokens });
  };

  const finishReason = (f: EngineFinish | null, stopped: boolean): string | null =>
    stopped ? 'stop' : f === 'abort' ? 'stop' : f === 'insufficient_system_resource' ? 'insufficient_system_resource' : f;

  /**
   * Runs one generation and calls `onDelta` with each text piece; resolves with the reply. Aborts the
   * engine request when `signal` fires or a stop string is met.
   */
  const generate = async (
    wire: WireRequest,
    pipeline: TextPipeline,
    o2: {
      logprobs: boolean;
      signal: AbortSignal;
      onDelta?: (d: { reasoning: string; content: string; logprobs: ReplyState['logprobs'] }) => void;
      onFirst?: () => void;
    },
  ): Promise<ReplyState> => {
    const s: ReplyState = {
      reasoning: '',
      content: '',
      tokens: 0,
      reasoningTokens: 0,
      promptTokens: wire.prompt.length,
      cachedTokens: 0,
      logprobs: [],
      finish: null,
    };
    const t0 = performance.now();
    const it = engine.run(wire);
    const onAbort = (): void => void it.return(undefined);
    o2.signal.addEventListener('abort', onAbort, { once: true });
    let first = true;
    try {
      for await (const e of it as AsyncIterable<EngineEvent>) {
        if (e.cachedTokens !== undefined) s.cachedTokens = e.cachedTokens;
        if (first && e.tokens.length) {
          first = false;
          ttft.observe((performance.now() - t0) / 1000);
          o2.onFirst?.();
        }
        const lp: ReplyState['logprobs'] = [];
        let reasoning = '';
        let content = '';
        for (const t of e.tokens as RowChoice[]) {
          if (pipeline.stopped) break;
          const inReasoning = pipeline.inReasoning;
          const d = pipeline.push(t.token);
          s.tokens++;
          if (inReasoning) s.reasoningTokens++;
          reasoning += d.reasoning;
          content += d.content;
          if (o2.logprobs) {
            const text = tok.decode([t.token]);
            lp.push({
              token: text,
              logprob: t.logprob,
              bytes: bytesOf(text),
              top_logprobs: t.top.map((x) => ({ token: tok.decode([x.token]), logprob: x.logprob, bytes: bytesOf(tok.decode([x.token])) })),
            });
          }
        }
        if (e.finish || pipeline.stopped) {
          const d = pipeline.end();
          reasoning += d.reasoning;
          content += d.content;
          s.finish = e.finish ?? 'stop';
          if (e.finish === 'insufficient_system_resource') s.finish = e.finish;
        }
        s.reasoning += reasoning;
        s.content += content;
        s.logprobs.push(...lp);
        if (reasoning || content || lp.length) o2.onDelta?.({ reasoning, content, logprobs: lp });
        if (s.finish) break;
      }
    } catch (e) {
      if (e instanceof RangeError) throw fail(422, e.message);
      throw fail(500, `the engine failed: ${(e as Error).message}`);
    } finally {
      o2.signal.removeEventListener('abort', onAbort);
      if (!s.finish) await it.return(undefined);
    }
    return s;
  };

  /** Sends an SSE stream or a JSON reply with keep-alive, around a generation. */
  const respond = async (
    req: FastifyRequest,
    reply: FastifyReply,
    stream: boolean,
    run: (signal: AbortSignal, send: (chunk: object) => void, onFirst: () => void) => Promise<object | null>,
  ): Promise<void> => {
    const ac = new AbortController();
    reply.raw.on('close', () => {
      if (!reply.raw.writableFinished) ac.abort();
    });
    reply.hijack();
    counted.add(req);
    const res = reply.raw;
    let headersSent = false;
    let waiting = true;
    const head = (): void => {
      if (headersSent) return;
      headersSent = true;
      res.writeHead(
        200,
        stream ? { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' } : { 'content-type': 'application/json' },
      );
    };
    if (stream) head();
    const timer = setInterval(() => {
      if (!waiting) return;
      head();
      res.write(stream ? ': keep-alive\n\n' : '\n');
    }, keepAliveMs);
    const send = (chunk: object): void => {
      head();
      res.write(`data: ${JSON.stringify(chunk)}\n\n`);
    };
    try {
      const body = await run(ac.signal, send, () => {
        waiting = false;
      });
      waiting = false;
      if (ac.signal.aborted) return;
      if (stream) res.end('data: [DONE]\n\n');
      else {
        head();
        res.end(JSON.stringify(body));
      }
      requests.inc({ route: req.routeOptions.url ?? req.url, status: '200' });
    } catch (e) {
      const err = e instanceof ApiError ? e : fail(500, `internal error: ${(e as Error).message}`);
      if (ac.signal.aborted) return;
      if (headersSent) {
        if (stream) res.end(`data: ${JSON.stringify(errorBody(err))}\n\ndata: [DONE]\n\n`);
        else res.end(JSON.stringify(errorBody(err)));
      } else {
        res.writeHead(err.status, { 'content-type': 'application/json', ...(err.retryAfter !== undefined ? { 'retry-after': String(err.retryAfter) } : {}) });
        res.end(JSON.stringify(errorBody(err)));
      }
      requests.inc({ route: req.routeOptions.url ?? req.url, status: String(err.status) });
    } finally {
      clearInterval(timer);
    }
  };

  const chat = async (req: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const key = authenticate(req);
    const body = parse(ChatRequest, req.body);
    checkModel(body.model);
    if (body.tools?.length && !format.file.tools)
      throw fail(422, `model "${modelId}" does not support tool calls (its chat.json declares no "tools"); send the request without "tools"`);
    const last = body.messages.length - 1;
    const prefix = body.messages[last].role === 'assistant' && body.messages[last].prefix === true;
    body.messages.forEach((m, i) => {
      if (m.role === 'tool') throw fail(422, `messages[${i}]: role "tool" needs a model with tool support; "${modelId}" has none`);
      if (m.reasoning_content !== undefined && m.reasoning_content !== null && !(prefix && i === last))
        throw fail(
          400,
          `messages[${i}].reasoning_content: earlier turns' reasoning must not be sent back; drop the field (only a final assistant message with "prefix": true may carry it)`,
        );
      if (m.prefix && i !== last) throw fail(400, `messages[${i}].prefix: only the last message may be a prefix`);
      if (m.prefix && m.role !== 'assistant') throw fail(400, `messages[${i}].prefix: only an assistant message can be continued`);
    });
    if (!body.messages.some((m) => m.role === 'user')) throw fail(400, 'messages: the conversation needs at least one user message');
    const messages = body.messages.map((m) => ({
      role: m.role as 'system' | 'user' | 'assistant',
      content: m.content ?? '',
      ...(m.reasoning_content ? { reasoning_content: m.reasoning_content } : {}),
    }));
    const p = format.prompt(messages, { prefix });
    const maxTokens = maxTokensFor(body.max_tokens, p.ids.length);
    const json = body.response_format?.type === 'json_object';
    const release = admit(key);
    const id = `chatcmpl-${randomUUID()}`;
    const created = Math.floor(Date.now() / 1000);
    const includeUsage = body.stream_options?.include_usage === true;
    const wire: WireRequest = {
      id,
      prompt: p.ids,
      maxTokens,
      ...samplingOf(body, body.logprobs ? (body.top_logprobs ?? 0) : 0),
      stopSequences: format.stopSequences(),
      namespace: namespaceOf(key, body.user_id ?? body.user),
      ...(json ? { json: { opener: p.startInReasoning ? (format.answerTags ? '<answer>' : '</think>') : format.answerTags ? '<answer>' : '' } } : {}),
    };
    const pipeline = new TextPipeline(tok, stopsOf(body.stop), { reasoning: true, startInReasoning: p.startInReasoning, answerTags: format.answerTags });
    const base = { id, created, model: modelId, system_fingerprint: `tinyseek-${modelId}` };
    try {
      await respond(req, reply, body.stream === true, async (signal, send, onFirst) => {
        let roleSent = false;
        const s = await generate(wire, pipeline, {
          logprobs: body.logprobs === true,
          signal,
          onFirst,
          onDelta: body.stream
            ? (d) => {
                const delta: Record<string, unknown> = roleSent ? {} : { role: 'assistant' };
                roleSent = true;
                if (d.reasoning) delta.reasoning_content = d.reasoning;
                if (d.content) delta.content = d.content;
                send({
                  ...base,
                  object: 'chat.completion.chunk',
                  choices: [{ index: 0, delta, logprobs: body.logprobs ? { content: d.logprobs } : null, finish_reason: null }],
                });
              }
            : undefined,
        });
        charge(key, id, s);
        const finish = finishReason(s.finish, pipeline.stopped);
        if (body.stream) {
          send({ ...base, object: 'chat.completion.chunk', choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: finish }] });
          if (includeUsage) send({ ...base, object: 'chat.completion.chunk', choices: [], usage: usageOf(s) });
          return null;
        }
        return {
          ...base,
          object: 'chat.completion',
          choices: [
            {
              index: 0,
              message: { role: 'assistant', content: s.content, reasoning_content: s.reasoning },
              logprobs: body.logprobs ? { content: s.logprobs } : null,
              finish_reason: finish,
            },
          ],
          usage: usageOf(s),
        };
      });
    } finally {
      release();
    }
  };

  const completions = async (req: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const key = authenticate(req);
    const body = parse(CompletionRequest, req.body);
    checkModel(body.model);
    const fim = body.suffix !== null && body.suffix !== undefined;
    if (fim && !format.file.fim)
      throw fail(422, `model "${modelId}" was not pretrained for fill-in-the-middle (its chat.json has no "fim": true); send the request without "suffix"`);
    const ids = fim ? [...fimPrompt(tok, body.prompt, body.suffix!)] : [tok.special.bos, ...tok.encode(body.prompt)];
    const maxTokens = maxTokensFor(body.max_tokens, ids.length);
    const release = admit(key);
    const id = `cmpl-${randomUUID()}`;
    const created = Math.floor(Date.now() / 1000);
    const wire: WireRequest = {
      id,
      prompt: ids,
      maxTokens,
      ...samplingOf(body, body.logprobs ?? 0),
      namespace: namespaceOf(key, body.user_id ?? body.user),
    };
    const pipeline = new TextPipeline(tok, stopsOf(body.stop), { reasoning: false, startInReasoning: false, answerTags: false });
    const base = { id, created, model: modelId, system_fingerprint: `tinyseek-${modelId}`, object: 'text_completion' };
    const lpOf = (lp: ReplyState['logprobs']): object => ({
      tokens: lp.map((x) => x.token),
      token_logprobs: lp.map((x) => x.logprob),
      top_logprobs: lp.map((x) => Object.fromEntries(x.top_logprobs.map((t) => [t.token, t.logprob]))),
      text_offset: [],
    });
    try {
      await respond(req, reply, body.stream === true, async (signal, send, onFirst) => {
        let echoed = false;
        const echo = body.echo === true ? body.prompt : '';
        const s = await generate(wire, pipeline, {
          logprobs: body.logprobs !== null && body.logprobs !== undefined,
          signal,
          onFirst,
          onDelta: body.stream
            ? (d) => {
                const text = (echoed ? '' : echo) + d.content;
                echoed = true;
                send({ ...base, choices: [{ index: 0, text, logprobs: body.logprobs ? lpOf(d.logprobs) : null, finish_reason: null }] });
              }
            : undefined,
        });
        charge(key, id, s);
        const finish = finishReason(s.finish, pipeline.stopped);
        if (body.stream) {
          send({ ...base, choices: [{ index: 0, text: '', logprobs: null, finish_reason: finish }] });
          if (body.stream_options?.include_usage) send({ ...base, choices: [], usage: usageOf(s) });
          return null;
        }
        return {
          ...base,
          choices: [{ index: 0, text: echo + s.content, logprobs: body.logprobs ? lpOf(s.logprobs) : null, finish_reason: finish }],
          usage: usageOf(s),
        };
      });
    } finally {
      release();
    }
  };

  const models = async (req: FastifyRequest): Promise<object> => {
    authenticate(req);
    // pricing: per 1M tokens, as DeepSeek's pricing page lists it (a tinyseek extension of the model object)
    const pricing = {
      currency: prices.currency,
      prompt_cache_hit: prices.cacheHitPerMillion,
      prompt_cache_miss: prices.cacheMissPerMillion,
      completion: prices.outputPerMillion,
    };
    return { object: 'list', data: [{ id: modelId, object: 'model', owned_by: 'tinyseek', pricing }] };
  };

  app.post('/chat/completions', chat);
  app.post('/v1/chat/completions', chat);
  app.post('/beta/completions', completions);
  app.get('/models', models);
  app.get('/v1/models', models);
  app.get('/user/balance', async (req) => {
    const key = authenticate(req);
    const prices = o.accounts?.prices;
    if (!key || !prices) return { is_available: true, balance_infos: [] };
    const fresh = o.accounts!.row(key.id)!;
    return {
      is_available: fresh.balance > 0,
      balance_infos: [
        { currency: prices.currency, total_balance: fresh.balance.toFixed(2), granted_balance: '0.00', topped_up_balance: fresh.balance.toFixed(2) },
      ],
    };
  });
  app.get('/health', async (_req, reply) => {
    if (loading || engine.failed) {
      reply.code(503);
      return { status: engine.failed ? 'failed' : 'loading', ...(engine.failed ? { message: engine.failed.message } : {}) };
    }
    return { status: closing ? 'draining' : 'ok', model: modelId, running: engine.stats?.running ?? 0, waiting: engine.stats?.waiting ?? 0, in_server: total };
  });
  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', registry.contentType);
    return registry.metrics();
  });
  registerWeb(app, { runsDir: o.runsDir ?? null, chat: true, guard: (req) => void authenticate(req) });

  const address = await app.listen({ host: o.host ?? '127.0.0.1', port: o.port ?? 0 });
  engine.ready.then(
    () => {
      loading = false;
    },
    () => {
      loading = false;
    },
  );
  return {
    url: address,
    app,
    engine,
    inFlight: () => total,
    close: async () => {
      closing = true;
      if (total > 0) await new Promise<void>((r) => drained.push(r));
      await app.close();
      await engine.ready.catch(() => null);
      await engine.stop();
      o.accounts?.close();
    },
  };
}

/** The FIM prompt in PSM form: <｜fim▁begin｜>prefix<｜fim▁hole｜>suffix<｜fim▁end｜> (V3's tokens). */
function fimPrompt(tok: Tokenizer, prefix: string, suffix: string): number[] {
  const ids = ['<｜fim▁begin｜>', '<｜fim▁hole｜>', '<｜fim▁end｜>'].map((t) => tok.tokenToId(t));
  if (ids.some((x) => x === undefined))
    throw fail(422, 'the tokenizer has no FIM tokens (<｜fim▁begin｜>, <｜fim▁hole｜>, <｜fim▁end｜>); FIM needs a model pretrained with them');
  return [tok.special.bos, ids[0]!, ...tok.encode(prefix), ids[1]!, ...tok.encode(suffix), ids[2]!];
}

export { costOf };
