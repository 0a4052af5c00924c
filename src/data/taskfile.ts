/**
 * A user's own Countdown task file in TinyZero's schema — rows with `target` (an integer) and
 * `nums` (a list of integers), as in the Jiayi-Pan/Countdown-Tasks-3to4 parquet — read from JSONL
 * or parquet and turned into the same CountdownProblem objects the generator makes. Rows already
 * preprocessed by TinyZero/verl (`reward_model.ground_truth.{target, numbers}`) are read too.
 *
 * Every row is validated; a bad row names its 1-based line (JSONL) or row (parquet) number and the
 * field. With onBadRow 'stop' (the default) the first bad row throws a BadRowError; with 'skip' the
 * load goes on and the report lists every skipped row and why. Loaded problems carry no solution
 * (`solution: null`); countdown.referenceAnswer solves small ones on demand.
 *
 * It knows nothing about splits: a user's file is used as given (its rows may fall in either of
 * our hash splits; `tinyseek data check` reports how many).
 */
import { extname } from 'node:path';
import { type BadRow, BadRowError, type LoadReport, type OnBadRow } from './badrows.ts';
import { parseJsonLines } from './io/jsonl.ts';
import { readParquetRows } from './io/parquet.ts';
import { countdownProblem } from './tasks/countdown.ts';
import type { CountdownProblem } from './tasks/types.ts';

export type TaskFileFormat = 'jsonl' | 'parquet';

export interface LoadTaskFileOptions {
  onBadRow?: OnBadRow;
  /** By default from the extension: .parquet → parquet; .jsonl, .ndjson, .json → jsonl. */
  format?: TaskFileFormat;
  /** Most numbers a row may have (default 10). */
  maxNumbers?: number;
  /** Stop after this many loaded problems. */
  limit?: number;
}

export interface LoadedTasks {
  readonly problems: CountdownProblem[];
  /** The 1-based line/row number each problem came from. */
  readonly rows: number[];
  readonly report: LoadReport;
}

export function formatFromPath(path: string): TaskFileFormat {
  const ext = extname(path).toLowerCase();
  if (ext === '.parquet') return 'parquet';
  if (ext === '.jsonl' || ext === '.ndjson' || ext === '.json') return 'jsonl';
  throw new Error(`${path}: cannot tell the format from the extension "${ext}"; name it .jsonl or .parquet, or pass format: 'jsonl' | 'parquet'`);
}

type Checked = { ok: true; problem: CountdownProblem } | { ok: false; field: string | null; reason: string };

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'bigint') return `${v}n`;
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`;
  if (typeof v === 'object') return 'an object';
  return `${typeof v} ${String(v)}`;
}

/** A whole number as a JS number, or null (accepts BigInt from INT64 parquet columns). */
function asInt(v: unknown): number | null {
  if (typeof v === 'number') return Number.isSafeInteger(v) ? v : null;
  if (typeof v === 'bigint') return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : null;
  return null;
}

function asList(v: unknown): unknown[] | null {
  if (Array.isArray(v)) return v;
  if (ArrayBuffer.isView(v) && !(v instanceof DataView)) return Array.from(v as unknown as ArrayLike<unknown>);
  return null;
}

/** Validates one row of TinyZero's Countdown schema. */
export function checkCountdownRow(value: unknown, maxNumbers = 10): Checked {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return { ok: false, field: null, reason: `expected an object with "target" and "nums", got ${describe(value)}` };
  }
  let row = value as Record<string, unknown>;
  let numsKey = 'nums';
  let prefix = '';
  if (!('target' in row) && !('nums' in row) && typeof row.reward_model === 'object' && row.reward_model !== null) {
    const gt = (row.reward_model as Record<string, unknown>).ground_truth;
    if (gt && typeof gt === 'object') {
      row = gt as Record<string, unknown>;
      numsKey = 'numbers';
      prefix = 'reward_model.ground_truth.';
    }
  }
  if (!('target' in row))
    return { ok: false, field: `${prefix}target`, reason: 'missing; every row needs "target" (an integer) and "nums" (a list of integers)' };
  if (!(numsKey in row))
    return { ok: false, field: `${prefix}${numsKey}`, reason: `missing; every row needs "target" (an integer) and "${numsKey}" (a list of integers)` };
  const target = asInt(row.target);
  if (target === null) return { ok: false, field: `${prefix}target`, reason: `expected an integer, got ${describe(row.target)}` };
  const list = asList(row[numsKey]);
  if (list === null) return { ok: false, field: `${prefix}${numsKey}`, reason: `expected a list of integers, got ${describe(row[numsKey])}` };
  if (list.length === 0) return { ok: false, field: `${prefix}${numsKey}`, reason: 'empty list; a problem needs at least one number' };
  if (list.length > maxNumbers)
    return { ok: false, field: `${prefix}${numsKey}`, reason: `${list.length} numbers, more than the ${maxNumbers} allowed (maxNumbers)` };
  const nums: number[] = [];
  for (let i = 0; i < list.length; i++) {
    const n = asInt(list[i]);
    if (n === null) return { ok: false, field: `${prefix}${numsKey}.${i}`, reason: `expected an integer, got ${describe(list[i])}` };
    if (n < 0)
      return {
        ok: false,
        field: `${prefix}${numsKey}.${i}`,
        reason: `${n} is negative; answers are written with non-negative literals, so a negative number can never be used`,
      };
    nums.push(n);
  }
  return { ok: true, problem: countdownProblem(nums, target, null) };
}

export async function loadCountdownFile(path: string, o: LoadTaskFileOptions = {}): Promise<LoadedTasks> {
  const format = o.format ?? formatFromPath(path);
  const unit = format === 'jsonl' ? 'line' : 'row';
  const onBadRow = o.onBadRow ?? 'stop';
  if (onBadRow !== 'stop' && onBadRow !== 'skip') throw new Error(`onBadRow must be 'stop' or 'skip', got ${JSON.stringify(onBadRow)}`);
  const problems: CountdownProblem[] = [];
  const rows: number[] = [];
  const skipped: BadRow[] = [];
  let rowsRead = 0;
  const handle = (row: number, c: Checked): void => {
    if (c.ok) {
      problems.push(c.problem);
      rows.push(row);
      return;
    }
    const bad: BadRow = { row, field: c.field, reason: c.reason };
    if (onBadRow === 'stop') throw new BadRowError(path, unit, bad);
    skipped.push(bad);
  };
  const done = (): boolean => o.limit !== undefined && problems.length >= o.limit;
  if (format === 'jsonl') {
    for await (const line of parseJsonLines(path)) {
      rowsRead++;
      handle(line.row, line.ok ? checkCountdownRow(line.value, o.maxNumbers) : { ok: false, field: null, reason: line.error });
      if (done()) break;
    }
  } else {
    for await (const r of readParquetRows(path)) {
      rowsRead++;
      handle(r.row, checkCountdownRow(r.value, o.maxNumbers));
      if (done()) break;
    }
  }
  return { problems, rows, report: { file: path, format, unit, rowsRead, rowsLoaded: problems.length, skipped } };
}
