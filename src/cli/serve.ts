/**
 * `tinyseek serve` (the DeepSeek-compatible API over the serving engine), `tinyseek keys` (API keys
 * and balances) and `tinyseek usage` (the ledger). Serve state — the accounts database and the
 * prefix cache on disk — lives under `--state-dir` (default runs/serve).
 *
 *   tinyseek serve [--checkpoint DIR] [--host 127.0.0.1] [--port 8000] [--no-auth] [--prices FILE]
 *   tinyseek keys create --name N [--balance 10] | keys list | keys revoke ID | keys top-up ID AMOUNT
 *   tinyseek usage [--key ID] [--limit N]
 *   tinyseek runs [--runs-dir runs] [--host 127.0.0.1] [--port 8001]   the runs dashboard alone
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { readJsonObject } from '../run/config-file.ts';
import { Accounts, PriceTable } from '../server/accounts.ts';
import { startServer } from '../server/app.ts';
import { startRunsServer } from '../server/web.ts';

const CHECKPOINTS = join(fileURLToPath(import.meta.url), '..', '..', '..', 'checkpoints');

/** The shipped reasoning model: the R1-Zero model when shipped, else the base it was trained from. */
export function defaultServedCheckpoint(): string {
  for (const name of ['small-r1', 'small-r1-zero', 'small-base']) {
    const dir = join(CHECKPOINTS, name);
    if (existsSync(join(dir, 'config.json')) && existsSync(join(dir, 'chat.json'))) return dir;
  }
  throw new Error(`no shipped chat model under ${CHECKPOINTS}; pass --checkpoint DIR (a checkpoint with chat.json)`);
}

function int(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('expected a non-negative integer');
  return n;
}

function amount(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n)) throw new InvalidArgumentError('expected an amount such as 10 or 0.5');
  return n;
}

function priceTable(prices?: string): PriceTable {
  return prices ? PriceTable.parse(readJsonObject(prices, 'the price table')) : PriceTable.parse({});
}

function openAccounts(stateDir: string, prices?: string): Accounts {
  return new Accounts(join(stateDir, 'accounts.db'), priceTable(prices));
}

interface ServeOptions {
  checkpoint?: string;
  host: string;
  port: number;
  auth: boolean;
  stateDir: string;
  prices?: string;
  maxBatch: number;
  maxQueue: number;
  blockSize: number;
  kvBlocks?: number;
  diskBudgetMb: number;
  threads: number;
  device: string;
  runsDir: string;
}

export function registerServeCommands(program: Command): void {
  program
    .command('serve')
    .description('serve a chat model behind a DeepSeek-compatible API (chat completions with reasoning, streaming, context caching)')
    .option('--checkpoint <dir>', 'checkpoint with chat.json (default: the shipped reasoning model)')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--port <n>', 'port (0: any free one)', int, 8000)
    .option('--no-auth', 'no API keys: a local single user')
    .option('--state-dir <dir>', 'accounts database and prefix cache folder', 'runs/serve')
    .option('--prices <file>', 'price table JSON (default: DeepSeek-V3 launch prices, CNY per 1M tokens)')
    .option('--max-batch <n>', 'requests decoding at once', int, 16)
    .option('--max-queue <n>', 'requests waiting beyond the batch before 503', int, 64)
    .option('--block-size <n>', 'KV block and prefix-cache unit in tokens', int, 64)
    .option('--kv-blocks <n>', 'KV blocks in memory (default: room for every batch slot at full context)', int)
    .option('--disk-budget-mb <n>', 'prefix cache on disk, MB', int, 1024)
    .option('--threads <n>', 'torch threads of the engine (0: default)', int, 0)
    .option('--device <d>', 'cpu or cuda', 'cpu')
    .option('--runs-dir <dir>', 'runs the dashboard at /runs shows', 'runs')
    .action(async (o: ServeOptions) => {
      if (o.device !== 'cpu' && o.device !== 'cuda') throw new Error(`--device must be cpu or cuda, got ${o.device}`);
      const checkpoint = resolve(o.checkpoint ?? defaultServedCheckpoint());
      const accounts = o.auth ? openAccounts(o.stateDir, o.prices) : null;
      let created: string | null = null;
      if (accounts && accounts.list().filter((k) => !k.revoked).length === 0) created = accounts.create('default', 10).key;
      const server = await startServer({
        checkpoint,
        host: o.host,
        port: o.port,
        accounts,
        device: o.device,
        threads: o.threads,
        maxQueue: o.maxQueue,
        runsDir: resolve(o.runsDir),
        prices: priceTable(o.prices),
        engine: {
          maxBatch: o.maxBatch,
          blockSize: o.blockSize,
          ...(o.kvBlocks ? { numBlocks: o.kvBlocks } : {}),
          diskDir: join(o.stateDir, 'kv-cache'),
          diskBudgetBytes: o.diskBudgetMb << 20,
        },
      });
      const info = await server.engine.ready;
      const auth = accounts ? ' -H "Authorization: Bearer $TINYSEEK_API_KEY"' : '';
      console.log(`tinyseek serve: ${checkpoint} (${(info.parameters / 1e6).toFixed(1)}M parameters) at ${server.url}`);
      console.log(`  chat: ${server.url}/   runs dashboard: ${server.url}/runs (${resolve(o.runsDir)})`);
      if (created) console.log(`no API key existed: created one with balance 10 (shown once): ${created}\n  export TINYSEEK_API_KEY=${created}`);
      console.log(
        `  curl ${server.url}/chat/completions -H "Content-Type: application/json"${auth} -d '{"model": "${checkpoint.split('/').pop()}", "messages": [{"role": "user", "content": "Using the numbers [3, 7, 12], create an equation that equals 33."}]}'`,
      );
      let stopping = false;
      const stop = async (): Promise<void> => {
        if (stopping) return;
        stopping = true;
        console.log('tinyseek serve: stopping — draining requests in flight, flushing the prefix cache');
        await server.close();
        process.exit(0);
      };
      process.on('SIGTERM', () => void stop());
      process.on('SIGINT', () => void stop());
    });

  const keys = program.command('keys').description('API keys and balances of tinyseek serve');
  keys
    .command('create')
    .description('create a key (printed once; only its hash is stored)')
    .requiredOption('--name <name>', 'who the key is for')
    .option('--balance <amount>', 'starting balance', amount, 10)
    .option('--state-dir <dir>', 'serve state folder', 'runs/serve')
    .action((o: { name: string; balance: number; stateDir: string }) => {
      const a = openAccounts(o.stateDir);
      const { key, row } = a.create(o.name, o.balance);
      console.log(`key ${row.id} (${row.name}), balance ${row.balance}: ${key}`);
      a.close();
    });
  keys
    .command('list')
    .option('--state-dir <dir>', 'serve state folder', 'runs/serve')
    .action((o: { stateDir: string }) => {
      const a = openAccounts(o.stateDir);
      for (const k of a.list())
        console.log(`${k.id}\t${k.prefix}…\t${k.name}\tbalance ${k.balance.toFixed(6)}\t${k.revoked ? `revoked ${k.revoked}` : 'active'}`);
      a.close();
    });
  keys
    .command('revoke <id>')
    .option('--state-dir <dir>', 'serve state folder', 'runs/serve')
    .action((id: string, o: { stateDir: string }) => {
      const a = openAccounts(o.stateDir);
      if (!a.revoke(int(id))) throw new Error(`no active key with id ${id} (tinyseek keys list)`);
      console.log(`key ${id} revoked`);
      a.close();
    });
  keys
    .command('top-up <id> <amount>')
    .option('--state-dir <dir>', 'serve state folder', 'runs/serve')
    .action((id: string, value: string, o: { stateDir: string }) => {
      const a = openAccounts(o.stateDir);
      const row = a.row(int(id));
      if (!row) throw new Error(`no key with id ${id} (tinyseek keys list)`);
      a.topUp(row.id, amount(value));
      console.log(`key ${id}: balance ${a.row(row.id)!.balance}`);
      a.close();
    });

  program
    .command('runs')
    .description('serve the runs dashboard alone (live curves and samples of training and RL runs), with no model loaded')
    .option('--runs-dir <dir>', 'the runs to show', 'runs')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--port <n>', 'port (0: any free one)', int, 8001)
    .action(async (o: { runsDir: string; host: string; port: number }) => {
      const dir = resolve(o.runsDir);
      if (!existsSync(dir)) console.log(`tinyseek runs: ${dir} does not exist yet; runs appear as they start`);
      const server = await startRunsServer({ runsDir: dir, host: o.host, port: o.port });
      console.log(`tinyseek runs: ${dir} at ${server.url}/runs`);
      const stop = (): void => void server.close().then(() => process.exit(0));
      process.on('SIGTERM', stop);
      process.on('SIGINT', stop);
    });

  program
    .command('usage')
    .description('the usage ledger of tinyseek serve: tokens served from the cache, computed, generated, and their cost')
    .option('--key <id>', 'only this key', int)
    .option('--limit <n>', 'rows', int, 50)
    .option('--state-dir <dir>', 'serve state folder', 'runs/serve')
    .action((o: { key?: number; limit: number; stateDir: string }) => {
      const a = openAccounts(o.stateDir);
      const rows = a.ledger({ ...(o.key !== undefined ? { keyId: o.key } : {}), limit: o.limit });
      console.log('time                      key  cache hit  cache miss  completion  cost');
      for (const r of rows)
        console.log(
          `${r.time}  ${String(r.keyId).padStart(3)}  ${String(r.cacheHit).padStart(9)}  ${String(r.cacheMiss).padStart(10)}  ${String(r.completion).padStart(10)}  ${r.cost.toFixed(6)}`,
        );
      a.close();
    });
}
