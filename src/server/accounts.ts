/**
 * API keys, balances and the usage ledger, in SQLite (better-sqlite3). A key is shown once when it
 * is created; only its sha-256 is stored. Each request that produced tokens writes one ledger row
 * (tokens served from the cache, missed, generated, and the cost at the price table) and takes the
 * cost off the key's balance in the same transaction. Amounts are kept in millionths of the
 * currency unit so sums stay exact.
 *
 * It knows keys, prices and SQL; not HTTP or the engine.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { z } from 'zod';

export const PriceTable = z
  .object({
    currency: z.string().min(1).default('CNY').describe('currency of the prices and balances'),
    cacheHitPerMillion: z.number().min(0).default(0.5).describe('price of 1M prompt tokens served from the context cache (V3 launch: ¥0.5)'),
    cacheMissPerMillion: z.number().min(0).default(2).describe('price of 1M prompt tokens computed (V3 launch: ¥2)'),
    outputPerMillion: z.number().min(0).default(8).describe('price of 1M completion tokens (V3 launch: ¥8)'),
  })
  .strict();
export type PriceTable = z.infer<typeof PriceTable>;

export interface Usage {
  cacheHit: number;
  cacheMiss: number;
  completion: number;
}

export interface KeyRow {
  id: number;
  name: string;
  prefix: string;
  created: string;
  revoked: string | null;
  balance: number;
}

export interface LedgerRow {
  id: number;
  keyId: number;
  time: string;
  requestId: string;
  model: string;
  cacheHit: number;
  cacheMiss: number;
  completion: number;
  cost: number;
}

const MICRO = 1e6;
const hashKey = (key: string): string => createHash('sha256').update(key).digest('hex');

/** The cost of a usage at the prices, in the currency unit. */
export function costOf(u: Usage, p: PriceTable): number {
  return (u.cacheHit * p.cacheHitPerMillion + u.cacheMiss * p.cacheMissPerMillion + u.completion * p.outputPerMillion) / 1e6;
}

export class Accounts {
  private readonly db: Database.Database;

  constructor(
    file: string,
    readonly prices: PriceTable = PriceTable.parse({}),
  ) {
    if (file !== ':memory:') mkdirSync(dirname(file), { recursive: true });
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS keys (
        id INTEGER PRIMARY KEY, hash TEXT UNIQUE NOT NULL, prefix TEXT NOT NULL, name TEXT NOT NULL,
        created TEXT NOT NULL, revoked TEXT, balance_micro INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS ledger (
        id INTEGER PRIMARY KEY, key_id INTEGER NOT NULL REFERENCES keys(id), time TEXT NOT NULL, request_id TEXT NOT NULL,
        model TEXT NOT NULL, cache_hit INTEGER NOT NULL, cache_miss INTEGER NOT NULL, completion INTEGER NOT NULL, cost_micro INTEGER NOT NULL);`);
  }

  /** A new key with a starting balance; the key text is returned once and never stored. */
  create(name: string, balance: number): { key: string; row: KeyRow } {
    if (!(balance >= 0)) throw new RangeError(`the balance must be a non-negative amount, got ${balance}`);
    const key = `sk-${randomBytes(24).toString('hex')}`;
    const info = this.db
      .prepare('INSERT INTO keys (hash, prefix, name, created, balance_micro) VALUES (?, ?, ?, ?, ?)')
      .run(hashKey(key), key.slice(0, 7), name, new Date().toISOString(), Math.round(balance * MICRO));
    return { key, row: this.row(Number(info.lastInsertRowid))! };
  }

  list(): KeyRow[] {
    return (this.db.prepare('SELECT id FROM keys ORDER BY id').all() as { id: number }[]).map((r) => this.row(r.id)!);
  }

  /** Revokes a key by id; false when there is no such key. */
  revoke(id: number): boolean {
    return this.db.prepare('UPDATE keys SET revoked = ? WHERE id = ? AND revoked IS NULL').run(new Date().toISOString(), id).changes > 0;
  }

  /** Adds to (or, negative, takes from) a key's balance. */
  topUp(id: number, amount: number): void {
    this.db.prepare('UPDATE keys SET balance_micro = balance_micro + ? WHERE id = ?').run(Math.round(amount * MICRO), id);
  }

  /** The live key matching a presented key text, or null. */
  authenticate(key: string): KeyRow | null {
    const r = this.db.prepare('SELECT id FROM keys WHERE hash = ? AND revoked IS NULL').get(hashKey(key)) as { id: number } | undefined;
    return r ? this.row(r.id) : null;
  }

  /** Records a request's usage and charges it, in one transaction; returns the cost. */
  charge(keyId: number, requestId: string, model: string, u: Usage): number {
    const cost = costOf(u, this.prices);
    const micro = Math.round(cost * MICRO);
    this.db.transaction(() => {
      this.db
        .prepare('INSERT INTO ledger (key_id, time, request_id, model, cache_hit, cache_miss, completion, cost_micro) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
        .run(keyId, new Date().toISOString(), requestId, model, u.cacheHit, u.cacheMiss, u.completion, micro);
      this.db.prepare('UPDATE keys SET balance_micro = balance_micro - ? WHERE id = ?').run(micro, keyId);
    })();
    return cost;
  }

  ledger(o: { keyId?: number; limit?: number } = {}): LedgerRow[] {
    const rows = this.db
      .prepare(
        `SELECT id, key_id AS keyId, time, request_id AS requestId, model, cache_hit AS cacheHit, cache_miss AS cacheMiss, completion, cost_micro AS cost
         FROM ledger ${o.keyId !== undefined ? 'WHERE key_id = @keyId' : ''} ORDER BY id DESC LIMIT @limit`,
      )
      .all(o.keyId !== undefined ? { keyId: o.keyId, limit: o.limit ?? 100 } : { limit: o.limit ?? 100 }) as LedgerRow[];
    return rows.map((r) => ({ ...r, cost: r.cost / MICRO }));
  }

  row(id: number): KeyRow | null {
    const r = this.db.prepare('SELECT id, name, prefix, created, revoked, balance_micro FROM keys WHERE id = ?').get(id) as
      | { id: number; name: string; prefix: string; created: string; revoked: string | null; balance_micro: number }
      | undefined;
    return r ? { id: r.id, name: r.name, prefix: r.prefix, created: r.created, revoked: r.revoked, balance: r.balance_micro / MICRO } : null;
  }

  close(): void {
    this.db.close();
  }
}
