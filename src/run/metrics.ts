/**
 * The metrics log of a training run: one JSON object per line (JSONL), appended as the run goes.
 *
 * Durability: lines are appended with one write each (O_APPEND), fsynced every `fsyncEvery` lines
 * (default 20), on `flush()` (call it when a checkpoint is written, so that every line up to the
 * checkpoint's step is on disk) and on `close()`. A crash can lose the lines after the last fsync
 * and can leave a torn last line; `readMetrics` reports and skips a torn last line, and opening the
 * log with `resume` repairs it (cuts it off) before appending.
 *
 * Resuming: a run resumed from the checkpoint of step N may have logged steps past N before it
 * stopped. `MetricsLog.truncateAfter(file, N)` (or `new MetricsLog(file, { resume: true,
 * resumeStep: N })`) cuts the file at the first line whose `step` is greater than N, so that the
 * resumed run's file ends up line for line what an uninterrupted run would have written.
 *
 * Numbers that are not finite (NaN, ±Infinity: a diverged loss) are written as the strings "NaN",
 * "Infinity" and "-Infinity" (JSON has no such numbers) and read back as numbers.
 *
 * This module knows records and files, not models.
 */
import * as fs from 'node:fs';
import { dirname } from 'node:path';
import { syncDir, writeAllSync } from '../io/durable.ts';

export type MetricValue = number | string | boolean | null | number[] | Record<string, number>;
export type MetricRecord = Record<string, MetricValue>;

export interface MetricsLogOptions {
  /** Keep the file's lines and append (default false: start a fresh, empty file). */
  resume?: boolean;
  /** With `resume`: first cut the lines with `step` > resumeStep (see truncateAfter). */
  resumeStep?: number;
  /** fsync after this many lines (default 20); 1 fsyncs every line. */
  fsyncEvery?: number;
}

const NONFINITE = new Map<string, number>([
  ['NaN', Number.NaN],
  ['Infinity', Number.POSITIVE_INFINITY],
  ['-Infinity', Number.NEGATIVE_INFINITY],
]);

function encodeValue(_key: string, v: unknown): unknown {
  return typeof v === 'number' && !Number.isFinite(v) ? String(v) : v;
}

function decodeValue(_key: string, v: unknown): unknown {
  return typeof v === 'string' && NONFINITE.has(v) ? NONFINITE.get(v) : v;
}

/** One record as the line the log writes (with its newline). */
export function formatMetricLine(record: MetricRecord): string {
  if (record === null || typeof record !== 'object' || Array.isArray(record)) throw new TypeError('a metrics record must be a plain object');
  return `${JSON.stringify(record, encodeValue)}\n`;
}

function parseLine(line: string): MetricRecord | null {
  try {
    const r = JSON.parse(line, decodeValue) as unknown;
    return r !== null && typeof r === 'object' && !Array.isArray(r) ? (r as MetricRecord) : null;
  } catch {
    return null;
  }
}

interface Scan {
  /** Byte offset where each complete line starts, and its record (null: not a JSON object). */
  lines: { start: number; end: number; record: MetricRecord | null; blank: boolean }[];
  /** Byte offset where a trailing partial line (no newline) starts, or -1. */
  tornAt: number;
  /** That partial line parses as a complete record (only its newline is missing). */
  tornRecord: MetricRecord | null;
  size: number;
}

function scan(bytes: Buffer): Scan {
  const lines: Scan['lines'] = [];
  let start = 0;
  for (;;) {
    const nl = bytes.indexOf(0x0a, start);
    if (nl < 0) break;
    const text = bytes.toString('utf8', start, nl);
    const blank = text.trim() === '';
    lines.push({ start, end: nl + 1, record: blank ? null : parseLine(text), blank });
    start = nl + 1;
  }
  const tornAt = start < bytes.length ? start : -1;
  const tornRecord = tornAt >= 0 ? parseLine(bytes.toString('utf8', tornAt)) : null;
  return { lines, tornAt, tornRecord, size: bytes.length };
}

/** Cuts `file` to `length` bytes and fsyncs it. */
function cutFile(file: string, length: number): void {
  const fd = fs.openSync(file, 'r+');
  try {
    fs.ftruncateSync(fd, length);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

function appendNewline(file: string): void {
  const fd = fs.openSync(file, 'a');
  try {
    writeAllSync(fd, Buffer.from('\n'));
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

export class MetricsLog {
  readonly file: string;
  private fd: number | null;
  private readonly fsyncEvery: number;
  private unsynced = 0;

  constructor(file: string, o: MetricsLogOptions = {}) {
    this.file = file;
    this.fsyncEvery = o.fsyncEvery ?? 20;
    if (!(Number.isInteger(this.fsyncEvery) && this.fsyncEvery >= 1)) throw new RangeError(`fsyncEvery must be a positive integer, got ${o.fsyncEvery}`);
    const existed = fs.existsSync(file);
    if (o.resume && existed) {
      if (o.resumeStep !== undefined) MetricsLog.truncateAfter(file, o.resumeStep);
      else MetricsLog.repair(file);
    }
    this.fd = fs.openSync(file, o.resume ? 'a' : 'w');
    if (!existed || !o.resume) {
      fs.fsyncSync(this.fd);
      syncDir(dirname(file));
    }
  }

  /** Appends one record as one line. */
  append(record: MetricRecord): void {
    if (this.fd === null) throw new Error(`the metrics log ${this.file} is closed`);
    writeAllSync(this.fd, Buffer.from(formatMetricLine(record), 'utf8'));
    if (++this.unsynced >= this.fsyncEvery) this.flush();
  }

  /** fsyncs the lines appended so far. */
  flush(): void {
    if (this.fd === null || this.unsynced === 0) return;
    fs.fsyncSync(this.fd);
    this.unsynced = 0;
  }

  close(): void {
    if (this.fd === null) return;
    try {
      this.flush();
    } finally {
      fs.closeSync(this.fd);
      this.fd = null;
    }
  }

  /**
   * Cuts `file` at its first line whose `step` is greater than `step` (that line and all after it
   * go), and repairs a torn last line as `repair` does. Returns the number of lines removed (a
   * torn line counts).
   * A missing file is left missing (0).
   */
  static truncateAfter(file: string, step: number): number {
    if (!fs.existsSync(file)) return 0;
    const s = scan(fs.readFileSync(file));
    const after = (r: MetricRecord | null): boolean => r !== null && typeof r.step === 'number' && r.step > step;
    const cut = s.lines.findIndex((l) => after(l.record));
    if (cut >= 0) {
      cutFile(file, s.lines[cut].start);
      return s.lines.length - cut + (s.tornAt >= 0 ? 1 : 0);
    }
    if (s.tornAt < 0) return 0;
    if (s.tornRecord && !after(s.tornRecord)) {
      appendNewline(file); // a complete record that only lacks its newline: keep it
      return 0;
    }
    cutFile(file, s.tornAt);
    return 1;
  }

  /**
   * Makes `file` end with a complete line: a last line without its newline gets one when it is a
   * complete record, and is cut off otherwise (a crash mid-write). Returns whether it changed it.
   */
  static repair(file: string): boolean {
    if (!fs.existsSync(file)) return false;
    const s = scan(fs.readFileSync(file));
    if (s.tornAt < 0) return false;
    if (s.tornRecord) appendNewline(file);
    else cutFile(file, s.tornAt);
    return true;
  }
}

export interface ReadMetricsOptions {
  /** Where problems are reported (default: console.warn). */
  warn?: (message: string) => void;
  /** Skip (and report) bad lines anywhere instead of throwing on one before the last line. */
  lenient?: boolean;
}

/**
 * The records of a metrics file, in order. A torn last line (a crash mid-write, or a writer still
 * writing) is reported and skipped; a last line that only lacks its newline is read. A bad line
 * elsewhere is an error naming the file and line, unless `lenient`. Blank lines are ignored.
 */
export function readMetrics(file: string, o: ReadMetricsOptions = {}): MetricRecord[] {
  const warn = o.warn ?? ((m: string) => console.warn(m));
  const s = scan(fs.readFileSync(file));
  const out: MetricRecord[] = [];
  s.lines.forEach((l, i) => {
    if (l.record) {
      out.push(l.record);
      return;
    }
    if (l.blank) return;
    const where = `${file}:${i + 1}`;
    if (!o.lenient) throw new SyntaxError(`${where}: not a JSON object; the metrics file is damaged (readMetrics(file, { lenient: true }) skips such lines)`);
    warn(`${where}: not a JSON object, skipped`);
  });
  if (s.tornAt >= 0) {
    if (s.tornRecord) out.push(s.tornRecord);
    else warn(`${file}:${s.lines.length + 1}: torn last line (${s.size - s.tornAt} bytes, a write cut short), skipped`);
  }
  return out;
}
