/**
 * What the runs dashboard reads: the runs under a runs directory, and their metrics.jsonl and
 * samples.jsonl read from a byte offset, so that a page that polls gets only the lines appended
 * since its last read. Only complete lines are returned (a line being written stays for the next
 * read); a file that became shorter than the offset (a resumed run cuts its files back to the step
 * it resumes from) is read again from the start and marked `reset`. Sample completions come with the
 * spans of their self-check and revision phrases (rl/selfcheck.ts), which the page highlights.
 *
 * It knows run directories and JSONL; not HTTP or models.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { selfCheckSpans, type SelfCheckSpan } from '../rl/selfcheck.ts';
import { runDirOf } from '../run/run-dir.ts';

export interface RunSummary {
  name: string;
  /** The stage, from the first metrics line's `kind` or the config: train | rl | … ; null when unknown. */
  kind: string | null;
  /** The steps the run was configured for (config.json), when known. */
  steps: number | null;
  /** The last step in metrics.jsonl. */
  step: number | null;
  /** running: metrics written within the last two minutes and no final model yet. */
  status: 'running' | 'finished' | 'stopped' | 'empty';
  /** When metrics.jsonl (or the folder) last changed, ms since the epoch. */
  updated: number;
}

export interface Tail<T> {
  records: T[];
  /** Pass this back as `offset` to get what comes after. */
  offset: number;
  /** The file was shorter than the offset asked for: these records replace everything read before. */
  reset: boolean;
}

export interface AnnotatedSample {
  [key: string]: unknown;
  /** Self-check and revision phrases in `completion`. */
  marks: SelfCheckSpan[];
}

/** A run name that names no run under the runs directory (a badly formed name is a plain RangeError). */
export class UnknownRunError extends RangeError {}

const RUNNING_WINDOW_MS = 120_000;
/** At most this many bytes per read, so a long run's history arrives in pieces. */
const MAX_READ = 4 << 20;

export class RunsDirectory {
  constructor(readonly root: string) {}

  list(): RunSummary[] {
    if (!fs.existsSync(this.root)) return [];
    const out: RunSummary[] = [];
    for (const e of fs.readdirSync(this.root, { withFileTypes: true })) {
      if (!e.isDirectory() || e.name.startsWith('.')) continue;
      const dir = path.join(this.root, e.name);
      if (!fs.existsSync(path.join(dir, 'metrics.jsonl')) && !fs.existsSync(path.join(dir, 'config.json'))) continue;
      out.push(this.summary(e.name, dir));
    }
    return out.sort((a, b) => b.updated - a.updated);
  }

  /** A run's folder, refusing names that are not one of the runs (404 material). */
  dirOf(name: string): string {
    let dir: string;
    try {
      dir = runDirOf({ runsDir: this.root, name });
    } catch (e) {
      throw new RangeError(`${(e as Error).message}; GET /runs/api/list names the runs`);
    }
    if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new UnknownRunError(`no run named ${JSON.stringify(name)} under ${this.root}`);
    return dir;
  }

  config(name: string): Record<string, unknown> | null {
    const file = path.join(this.dirOf(name), 'config.json');
    if (!fs.existsSync(file)) return null;
    try {
      const v: unknown = JSON.parse(fs.readFileSync(file, 'utf8'));
      return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
    } catch {
      return null;
    }
  }

  metrics(name: string, offset: number): Tail<Record<string, unknown>> {
    return tailJsonl(path.join(this.dirOf(name), 'metrics.jsonl'), offset);
  }

  samples(name: string, offset: number): Tail<AnnotatedSample> {
    const t = tailJsonl(path.join(this.dirOf(name), 'samples.jsonl'), offset);
    return { ...t, records: t.records.map((r) => ({ ...r, marks: typeof r.completion === 'string' ? selfCheckSpans(r.completion) : [] })) };
  }

  private summary(name: string, dir: string): RunSummary {
    const metricsFile = path.join(dir, 'metrics.jsonl');
    const config = this.config(name);
    const steps = typeof config?.steps === 'number' ? config.steps : null;
    let kind: string | null = null;
    let step: number | null = null;
    let updated = fs.statSync(dir).mtimeMs;
    if (fs.existsSync(metricsFile)) {
      updated = fs.statSync(metricsFile).mtimeMs;
      const { first, last } = endsOf(metricsFile);
      kind = typeof first?.kind === 'string' ? first.kind : null;
      step = typeof last?.step === 'number' ? last.step : null;
    }
    const finished = fs.existsSync(path.join(dir, 'final'));
    const status = finished ? 'finished' : step === null ? 'empty' : Date.now() - updated < RUNNING_WINDOW_MS ? 'running' : 'stopped';
    return { name, kind, steps, step, status, updated };
  }
}

/** Complete JSON lines of a file from a byte offset (blank and unparsable lines are skipped). */
export function tailJsonl(file: string, offset: number): Tail<Record<string, unknown>> {
  if (!Number.isInteger(offset) || offset < 0) throw new RangeError(`offset must be a whole number of bytes ≥ 0 (got ${offset})`);
  if (!fs.existsSync(file)) return { records: [], offset: 0, reset: offset > 0 };
  const size = fs.statSync(file).size;
  const reset = size < offset;
  const from = reset ? 0 : offset;
  const length = Math.min(size - from, MAX_READ);
  if (length <= 0) return { records: [], offset: from, reset };
  const buf = Buffer.alloc(length);
  const fd = fs.openSync(file, 'r');
  try {
    fs.readSync(fd, buf, 0, length, from);
  } finally {
    fs.closeSync(fd);
  }
  const end = buf.lastIndexOf(0x0a);
  if (end < 0) return { records: [], offset: from, reset };
  const records: Record<string, unknown>[] = [];
  for (const line of buf.subarray(0, end).toString('utf8').split('\n')) {
    const r = parseRecord(line);
    if (r) records.push(r);
  }
  return { records, offset: from + end + 1, reset };
}

function parseRecord(line: string): Record<string, unknown> | null {
  if (!line.trim()) return null;
  try {
    const v: unknown = JSON.parse(line);
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** The first and the last complete record of a JSONL file, reading only its two ends. */
function endsOf(file: string): { first: Record<string, unknown> | null; last: Record<string, unknown> | null } {
  const size = fs.statSync(file).size;
  if (size === 0) return { first: null, last: null };
  const fd = fs.openSync(file, 'r');
  try {
    const read = (pos: number, n: number): string => {
      const b = Buffer.alloc(n);
      fs.readSync(fd, b, 0, n, pos);
      return b.toString('utf8');
    };
    const head = read(0, Math.min(size, 64 << 10));
    const first = parseRecord(head.split('\n')[0]);
    const n = Math.min(size, 64 << 10);
    const lines = read(size - n, n).split('\n');
    let last: Record<string, unknown> | null = null;
    for (let i = lines.length - 1; i >= 0 && !last; i--) last = parseRecord(lines[i]);
    return { first, last };
  } finally {
    fs.closeSync(fd);
  }
}
