/**
 * Where a run's observations go: metrics.jsonl (one line per step and per evaluation),
 * samples.jsonl (generations at evaluation time), the progress bar (or plain lines without a
 * terminal), and the SVG plots under plots/. A resumed run first cuts both files back to the step
 * it resumes from, so that they read as if the run had never stopped.
 *
 * It knows files and records; not models.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { LoopSink } from './driver.ts';
import { type MetricRecord, MetricsLog, readMetrics } from './metrics.ts';
import { type PlotOptions, renderPlots } from './plots.ts';
import { createProgress } from './progress.ts';

export interface RunSink extends LoopSink {
  sample(r: MetricRecord): void;
  /** Renders plots/ from metrics.jsonl. */
  plot(): Promise<void>;
  lastEval(): MetricRecord | null;
  /** Makes every line written so far durable (called before each checkpoint). */
  flush(): void;
  close(): void;
}

export interface RunSinkOptions {
  total: number;
  /** The step a resumed run continues from, or null for a fresh run. */
  resumeAt: number | null;
  logEvery: number;
  log: (s: string) => void;
  title?: string;
  /** Charts instead of / besides the standard ones (plots.ts). */
  plots?: Pick<PlotOptions, 'series' | 'defaults'>;
}

export function openRunSink(runDir: string, o: RunSinkOptions): RunSink {
  const metricsFile = path.join(runDir, 'metrics.jsonl');
  const samplesFile = path.join(runDir, 'samples.jsonl');
  if (o.resumeAt === null) {
    fs.rmSync(metricsFile, { force: true });
    fs.rmSync(samplesFile, { force: true });
  } else {
    MetricsLog.truncateAfter(metricsFile, o.resumeAt);
    MetricsLog.truncateAfter(samplesFile, o.resumeAt);
  }
  const metrics = new MetricsLog(metricsFile, { resume: o.resumeAt !== null });
  const samples = new MetricsLog(samplesFile, { resume: o.resumeAt !== null });
  const progress = createProgress({ total: o.total, every: o.logEvery });
  let lastEval: MetricRecord | null = null;
  return {
    record(r) {
      metrics.append(r);
      if (r.kind === 'eval') lastEval = r;
    },
    progress(step, f) {
      progress.update(step, f);
    },
    log(line) {
      progress.log(line);
    },
    sample(r) {
      samples.append(r);
    },
    async plot() {
      try {
        await renderPlots(readMetrics(metricsFile), path.join(runDir, 'plots'), { title: o.title ?? path.basename(runDir), ...o.plots });
      } catch (e) {
        o.log(`plots not written: ${(e as Error).message}`);
      }
    },
    lastEval: () => lastEval,
    flush() {
      metrics.flush();
      samples.flush();
    },
    close() {
      progress.stop();
      metrics.close();
      samples.close();
    },
  };
}
