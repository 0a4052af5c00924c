// The metrics log: JSONL round trip, a torn last line, truncation on resume.
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { MetricsLog, type MetricRecord, formatMetricLine, readMetrics } from '../src/run/metrics.ts';

const dir = mkdtempSync(join(tmpdir(), 'tinyseek-metrics-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const fresh = (): string => join(dir, `m${n++}.jsonl`);

const record = (step: number): MetricRecord => ({
  kind: 'train',
  step,
  loss: 3 - step / 100,
  lr: 1e-3,
  mtp_loss: null,
  ok: true,
  per_depth: [1.5, 2.25],
  expert_load: { '1': 1.25, '3': 1.5 },
});

function collect(): { warn: (m: string) => void; messages: string[] } {
  const messages: string[] = [];
  return { warn: (m) => messages.push(m), messages };
}

describe('MetricsLog', () => {
  test('round trip: one line per record, every value type, in order', () => {
    const file = fresh();
    const log = new MetricsLog(file);
    const written = Array.from({ length: 45 }, (_, i) => record(i + 1));
    for (const r of written) log.append(r);
    log.close();
    const text = readFileSync(file, 'utf8');
    assert.equal(text.split('\n').length, 46); // 45 lines, each ended by a newline
    assert.ok(text.endsWith('\n'));
    assert.deepEqual(readMetrics(file), written);
  });

  test('non-finite numbers survive as numbers', () => {
    const file = fresh();
    const log = new MetricsLog(file, { fsyncEvery: 1 });
    log.append({ step: 1, loss: Number.NaN, grad_norm: Number.POSITIVE_INFINITY, x: Number.NEGATIVE_INFINITY });
    log.close();
    const [r] = readMetrics(file);
    assert.ok(Number.isNaN(r.loss));
    assert.equal(r.grad_norm, Number.POSITIVE_INFINITY);
    assert.equal(r.x, Number.NEGATIVE_INFINITY);
  });

  test('a fresh log replaces an old file; resume appends', () => {
    const file = fresh();
    writeFileSync(file, formatMetricLine(record(1)) + formatMetricLine(record(2)));
    new MetricsLog(file).close();
    assert.equal(readFileSync(file, 'utf8'), '');
    writeFileSync(file, formatMetricLine(record(1)));
    const log = new MetricsLog(file, { resume: true });
    log.append(record(2));
    log.close();
    assert.deepEqual(
      readMetrics(file).map((r) => r.step),
      [1, 2],
    );
  });

  test('append after close throws; close twice is fine', () => {
    const log = new MetricsLog(fresh());
    log.close();
    log.close();
    assert.throws(() => log.append(record(1)), /closed/);
    assert.throws(() => formatMetricLine([] as unknown as MetricRecord), /plain object/);
  });
});

describe('readMetrics', () => {
  test('a torn last line is reported and skipped', () => {
    const file = fresh();
    const full = formatMetricLine(record(1)) + formatMetricLine(record(2));
    const third = formatMetricLine(record(3));
    writeFileSync(file, full + third.slice(0, 17)); // crash in the middle of the third write
    const c = collect();
    const got = readMetrics(file, { warn: c.warn });
    assert.deepEqual(
      got.map((r) => r.step),
      [1, 2],
    );
    assert.equal(c.messages.length, 1);
    assert.match(c.messages[0], /:3: torn last line \(17 bytes/);
  });

  test('a last line that only lacks its newline is read', () => {
    const file = fresh();
    writeFileSync(file, formatMetricLine(record(1)) + formatMetricLine(record(2)).trimEnd());
    const c = collect();
    assert.deepEqual(
      readMetrics(file, { warn: c.warn }).map((r) => r.step),
      [1, 2],
    );
    assert.deepEqual(c.messages, []);
  });

  test('a bad line before the end is an error naming it, or skipped when lenient; blank lines are ignored', () => {
    const file = fresh();
    writeFileSync(file, `${formatMetricLine(record(1))}\n{"step": 2, "loss"\n${formatMetricLine(record(3))}`);
    assert.throws(() => readMetrics(file), /m\d+\.jsonl:3: not a JSON object/);
    const c = collect();
    assert.deepEqual(
      readMetrics(file, { lenient: true, warn: c.warn }).map((r) => r.step),
      [1, 3],
    );
    assert.equal(c.messages.length, 1);
  });

  test('an empty file has no records', () => {
    const file = fresh();
    writeFileSync(file, '');
    assert.deepEqual(readMetrics(file), []);
  });
});

describe('truncateAfter and resume', () => {
  test('cuts at the first line past the step: a resumed run matches an uninterrupted one', () => {
    // The uninterrupted run: steps 1..10, an evaluation after step 5 and after step 10.
    const lines = (from: number, to: number): MetricRecord[] =>
      Array.from({ length: to - from + 1 }, (_, i) => from + i).flatMap((s) =>
        s % 5 === 0 ? [record(s), { kind: 'eval', step: s, val_loss: 2 }] : [record(s)],
      );
    const whole = fresh();
    const w = new MetricsLog(whole);
    for (const r of lines(1, 10)) w.append(r);
    w.close();

    // The interrupted run: checkpoint at 5, crashed during step 8's line; resumed from 5.
    const file = fresh();
    const a = new MetricsLog(file);
    for (const r of lines(1, 7)) a.append(r);
    a.close();
    appendFileSync(file, formatMetricLine(record(8)).slice(0, 10));
    assert.equal(MetricsLog.truncateAfter(file, 5), 3); // steps 6, 7 and the torn 8
    const b = new MetricsLog(file, { resume: true });
    for (const r of lines(6, 10)) b.append(r);
    b.close();
    assert.equal(readFileSync(file, 'utf8'), readFileSync(whole, 'utf8'));
  });

  test('resumeStep in the constructor does the same; a torn line is repaired on resume', () => {
    const file = fresh();
    writeFileSync(file, formatMetricLine(record(1)) + formatMetricLine(record(2)) + formatMetricLine(record(3)).slice(0, 5));
    const log = new MetricsLog(file, { resume: true }); // no step: only the torn tail goes
    log.append(record(3));
    log.close();
    assert.deepEqual(
      readMetrics(file).map((r) => r.step),
      [1, 2, 3],
    );
    const again = new MetricsLog(file, { resume: true, resumeStep: 1 });
    again.append(record(2));
    again.close();
    assert.deepEqual(
      readMetrics(file).map((r) => r.step),
      [1, 2],
    );
  });

  test('nothing past the step: the file is unchanged; a complete last record missing its newline is kept', () => {
    const file = fresh();
    const text = formatMetricLine(record(1)) + formatMetricLine(record(2));
    writeFileSync(file, text);
    assert.equal(MetricsLog.truncateAfter(file, 2), 0);
    assert.equal(readFileSync(file, 'utf8'), text);
    writeFileSync(file, text.trimEnd());
    assert.equal(MetricsLog.truncateAfter(file, 2), 0);
    assert.equal(readFileSync(file, 'utf8'), text);
    assert.equal(MetricsLog.truncateAfter(join(dir, 'missing.jsonl'), 3), 0);
  });
});
