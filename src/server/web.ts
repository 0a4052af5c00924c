/**
 * The web pages: the chat app at `/` and the runs dashboard at `/runs`, with their scripts and
 * styles served from this machine (no CDN), and the dashboard's read-only JSON API over the runs
 * directory. The pages' TypeScript (web/) is bundled with esbuild in memory on first request. Both
 * pages use only public HTTP endpoints: the chat page is a client of /chat/completions and /models,
 * the dashboard of /runs/api/*.
 *
 *   GET /                      chat page            GET /runs               runs dashboard
 *   GET /assets/chat.js        bundled web/chat.ts  GET /assets/runs.js     bundled web/runs.ts
 *   GET /assets/style.css      shared styles        GET /assets/uplot.css   uPlot's styles
 *   GET /runs/api/list                              the runs, newest first
 *   GET /runs/api/metrics?run=NAME&offset=BYTES     metrics.jsonl lines after a byte offset
 *   GET /runs/api/samples?run=NAME&offset=BYTES     samples.jsonl lines, with self-check spans
 *   GET /runs/api/config?run=NAME                   the run's config.json
 *
 * Every page carries a Content-Security-Policy that allows scripts from this origin only, so even
 * markup that slipped past the sanitizer could not run inline script.
 *
 * It knows routes, files and bundling; not models or the engine.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { RunsDirectory, UnknownRunError } from './runs-data.ts';

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const WEB = path.join(ROOT, 'web');

export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
].join('; ');

export interface WebOptions {
  /** The folder the dashboard lists; null: no dashboard. */
  runsDir: string | null;
  /** Serve the chat page (false for `tinyseek runs`, which has no model). */
  chat: boolean;
  /** Throws when a request may not read the runs API (API keys on); its error becomes the reply. */
  guard?: (req: FastifyRequest) => void;
}

class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
  ) {
    super(message);
  }
}

const bundles = new Map<string, Promise<string>>();

/** web/NAME.ts and what it imports, as one browser script (built once per process). */
function bundle(name: 'chat' | 'runs'): Promise<string> {
  let b = bundles.get(name);
  if (!b) {
    b = build({
      entryPoints: [path.join(WEB, `${name}.ts`)],
      bundle: true,
      write: false,
      format: 'esm',
      platform: 'browser',
      target: 'es2022',
      minify: true,
      legalComments: 'inline',
      logLevel: 'silent',
    }).then((r) => r.outputFiles[0].text);
    b.catch(() => bundles.delete(name));
    bundles.set(name, b);
  }
  return b;
}

const page = (reply: FastifyReply, file: string): FastifyReply =>
  reply
    .header('content-type', 'text/html; charset=utf-8')
    .header('content-security-policy', CONTENT_SECURITY_POLICY)
    .header('cache-control', 'no-cache')
    .send(fs.readFileSync(path.join(WEB, file)));

const offsetOf = (q: Record<string, unknown>): number => {
  const raw = q.offset ?? '0';
  const n = Number(raw);
  if (typeof raw !== 'string' || !/^\d+$/.test(raw) || !Number.isSafeInteger(n))
    throw new HttpError(400, `offset must be a whole number of bytes ≥ 0 (got ${JSON.stringify(raw)}); pass back the "offset" of the last reply`);
  return n;
};

const runOf = (q: Record<string, unknown>): string => {
  if (typeof q.run !== 'string' || q.run === '') throw new HttpError(400, 'the query needs run=NAME (GET /runs/api/list names the runs)');
  return q.run;
};

/** Adds the pages, their assets and the runs API to a fastify app. */
export function registerWeb(app: FastifyInstance, o: WebOptions): void {
  const runs = o.runsDir === null ? null : new RunsDirectory(o.runsDir);
  const guard = o.guard ?? (() => undefined);

  if (o.chat) app.get('/', (_req, reply) => page(reply, 'chat.html'));
  app.get('/assets/style.css', (_req, reply) => reply.header('content-type', 'text/css; charset=utf-8').send(fs.readFileSync(path.join(WEB, 'style.css'))));
  if (o.chat) app.get('/assets/chat.js', async (_req, reply) => reply.header('content-type', 'text/javascript; charset=utf-8').send(await bundle('chat')));
  if (!runs) return;

  app.get('/runs', (_req, reply) => page(reply, 'runs.html'));
  app.get('/assets/runs.js', async (_req, reply) => reply.header('content-type', 'text/javascript; charset=utf-8').send(await bundle('runs')));
  app.get('/assets/uplot.css', (_req, reply) =>
    reply.header('content-type', 'text/css; charset=utf-8').send(fs.readFileSync(path.join(ROOT, 'node_modules', 'uplot', 'dist', 'uPlot.min.css'))),
  );

  const lookup = <T>(read: () => T): T => {
    try {
      return read();
    } catch (e) {
      if (e instanceof RangeError) throw new HttpError(e instanceof UnknownRunError ? 404 : 400, e.message);
      throw e;
    }
  };
  app.get('/runs/api/list', async (req) => {
    guard(req);
    return { root: runs.root, runs: runs.list() };
  });
  for (const file of ['metrics', 'samples'] as const)
    app.get(`/runs/api/${file}`, async (req) => {
      guard(req);
      const q = req.query as Record<string, unknown>;
      const name = runOf(q);
      const offset = offsetOf(q);
      return lookup(() => (file === 'metrics' ? runs.metrics(name, offset) : runs.samples(name, offset)));
    });
  app.get('/runs/api/config', async (req) => {
    guard(req);
    const name = runOf(req.query as Record<string, unknown>);
    return { config: lookup(() => runs.config(name)) };
  });
}

export interface RunsServer {
  url: string;
  app: FastifyInstance;
  close(): Promise<void>;
}

/** `tinyseek runs`: the dashboard alone, with no model loaded. */
export async function startRunsServer(o: { runsDir: string; host?: string; port?: number; log?: boolean }): Promise<RunsServer> {
  const app = Fastify({ logger: o.log ?? false });
  app.setErrorHandler((err, _req, reply) => {
    const status = (err as { statusCode?: number }).statusCode ?? 500;
    const message = err instanceof Error ? err.message : String(err);
    const type = status >= 500 ? 'server_error' : 'invalid_request_error';
    reply.code(status).send({ error: { message, type, code: status === 404 ? 'not_found' : status >= 500 ? 'server_error' : 'invalid_format' } });
  });
  app.setNotFoundHandler((req, reply) => {
    reply.code(404).send({
      error: {
        message: `no route ${req.method} ${req.url}; this server shows the runs dashboard at /runs`,
        type: 'invalid_request_error',
        code: 'not_found',
      },
    });
  });
  app.get('/', (_req, reply) => reply.redirect('/runs'));
  registerWeb(app, { runsDir: o.runsDir, chat: false });
  const url = await app.listen({ host: o.host ?? '127.0.0.1', port: o.port ?? 0 });
  return { url, app, close: () => app.close() };
}
