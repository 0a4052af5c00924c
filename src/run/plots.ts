/**
 * Charts of a training run as SVG files: Vega-Lite specs compiled to Vega and rendered headless
 * (`new vega.View(…, { renderer: 'none' }).toSVG()`: no browser, no canvas).
 *
 * `renderPlots(records, dir)` draws the standard charts from metrics records (src/train/metrics.ts)
 * whose keys it finds, each against `step`:
 *
 *   loss.svg          train `loss`, train main-model `lm_loss`, validation `val_loss`
 *   lr.svg            `lr`
 *   grad_norm.svg     `grad_norm` (before clipping)
 *   tokens_per_s.svg  `tokens_per_s`
 *   mtp_loss.svg      `mtp_loss` (a number, or one per depth as number[])
 *   aux_loss.svg      `aux_loss`
 *   expert_load.svg   `expert_load`: max/mean tokens per expert, one series per MoE layer
 *                     (Record<layer, number> or number[])
 *   val_bpb.svg       `val_bpb`
 *
 * plus a chart for every key (or group of keys) the caller names in `series`. Charts with no data
 * are not written. `renderComparison(runs, key, file)` puts one key of several runs on one chart
 * (ablations). A key may be a dotted path into a record value (`expert_load.3`). Values that are
 * null, missing or not finite are left out; series longer than `maxPoints` are averaged in buckets.
 * Every file is written atomically (a temporary file, fsynced, renamed over the target). Vega and
 * Vega-Lite (~0.4 s to load) are imported on the first render, not when this module is.
 *
 * This module knows numbers and files, not models.
 */
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { TopLevelSpec } from 'vega-lite';
import { writeFileAtomic } from '../io/durable.ts';
import type { MetricRecord, MetricValue } from './metrics.ts';

/** One line of a chart: the values of `key` (expanded when it holds a list or a map). */
export interface SeriesSpec {
  /** The legend label; a list value gives `label 1`, `label 2`, …, a map `label K` for each key K. */
  label: string;
  /** A record key, or a dotted path into a record value. */
  key: string;
}

export interface ChartSpec {
  /** The file name (without .svg). */
  name: string;
  title?: string;
  /** The y-axis title (default: the first series' key). */
  yTitle?: string;
  series: SeriesSpec[];
  /** A logarithmic y axis. */
  logY?: boolean;
}

export interface PlotOptions {
  /** Put before each chart's title (e.g. the run name). */
  title?: string;
  /** More charts: a key (one chart named after it) or a chart of several keys. */
  series?: (string | ChartSpec)[];
  /** Draw the standard charts (default true). */
  defaults?: boolean;
  /** The x key (default `step`). */
  x?: string;
  /** Points per series above which consecutive points are averaged in buckets (default 2000). */
  maxPoints?: number;
  width?: number;
  height?: number;
}

export const DEFAULT_CHARTS: readonly ChartSpec[] = [
  {
    name: 'loss',
    title: 'loss',
    yTitle: 'cross-entropy (nats)',
    series: [
      { label: 'train', key: 'loss' },
      { label: 'train main (lm)', key: 'lm_loss' },
      { label: 'val', key: 'val_loss' },
    ],
  },
  { name: 'lr', title: 'learning rate', yTitle: 'lr', series: [{ label: 'lr', key: 'lr' }] },
  { name: 'grad_norm', title: 'gradient norm (before clipping)', yTitle: 'global L2 norm', series: [{ label: 'grad norm', key: 'grad_norm' }] },
  { name: 'tokens_per_s', title: 'throughput', yTitle: 'tokens/s', series: [{ label: 'tokens/s', key: 'tokens_per_s' }] },
  { name: 'mtp_loss', title: 'MTP loss', yTitle: 'cross-entropy (nats)', series: [{ label: 'mtp', key: 'mtp_loss' }] },
  { name: 'aux_loss', title: 'balance loss', yTitle: 'aux loss', series: [{ label: 'aux', key: 'aux_loss' }] },
  { name: 'expert_load', title: 'expert load (max / mean tokens per expert)', yTitle: 'max / mean', series: [{ label: 'layer', key: 'expert_load' }] },
  { name: 'val_bpb', title: 'validation bits per byte', yTitle: 'bits per byte', series: [{ label: 'val', key: 'val_bpb' }] },
];

interface Point {
  x: number;
  y: number;
  series: string;
}

/** The value at `key`: the record's own key first, else a dotted path into nested values. */
export function valueAt(record: MetricRecord, key: string): MetricValue | undefined {
  if (key in record) return record[key];
  const parts = key.split('.');
  let v: unknown = record;
  for (const p of parts) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string, unknown>)[p];
  }
  return v as MetricValue | undefined;
}

/** (label, number) pairs of one value: a number, a list (label 1, 2, …) or a map (label K). */
function expand(label: string, v: MetricValue | undefined): [string, number][] {
  if (typeof v === 'number') return [[label, v]];
  if (Array.isArray(v)) return v.map((y, i): [string, number] => [`${label} ${i + 1}`, y]);
  if (v !== null && typeof v === 'object') return Object.entries(v).map(([k, y]): [string, number] => [`${label} ${k}`, y]);
  return [];
}

function seriesPoints(records: readonly MetricRecord[], series: readonly SeriesSpec[], xKey: string): Point[] {
  const out: Point[] = [];
  for (const r of records) {
    const x = valueAt(r, xKey);
    if (typeof x !== 'number' || !Number.isFinite(x)) continue;
    for (const s of series) {
      for (const [name, y] of expand(s.label, valueAt(r, s.key))) {
        if (typeof y === 'number' && Number.isFinite(y)) out.push({ x, y, series: name });
      }
    }
  }
  return out;
}

/** Series in first-seen order, each averaged in buckets down to at most `max` points. */
function bySeries(points: Point[], max: number): Map<string, Point[]> {
  const groups = new Map<string, Point[]>();
  for (const p of points) {
    const g = groups.get(p.series) ?? [];
    if (g.length === 0) groups.set(p.series, g);
    g.push(p);
  }
  for (const [name, g] of groups) {
    if (g.length <= max) continue;
    const out: Point[] = [];
    const per = g.length / max;
    for (let b = 0; b < max; b++) {
      const from = Math.floor(b * per);
      const to = Math.min(g.length, Math.floor((b + 1) * per));
      let sx = 0;
      let sy = 0;
      for (let i = from; i < to; i++) {
        sx += g[i].x;
        sy += g[i].y;
      }
      out.push({ x: sx / (to - from), y: sy / (to - from), series: name });
    }
    groups.set(name, out);
  }
  return groups;
}

interface ChartInput {
  title: string;
  xTitle: string;
  yTitle: string;
  logY: boolean;
  width: number;
  height: number;
  maxPoints: number;
}

/** Sparse series (few points, e.g. evaluations) get markers as well as a line. */
const SPARSE = 60;

function chartSpec(points: Point[], c: ChartInput): TopLevelSpec | null {
  const groups = bySeries(points, c.maxPoints);
  if (groups.size === 0) return null;
  const order = [...groups.keys()];
  const values = [...groups.values()].flatMap((g) => g.map((p) => ({ ...p, sparse: g.length <= SPARSE })));
  const logY = c.logY && values.every((v) => v.y > 0);
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: c.title,
    width: c.width,
    height: c.height,
    background: 'white',
    data: { values },
    encoding: {
      x: { field: 'x', type: 'quantitative', title: c.xTitle, scale: { nice: false } },
      y: { field: 'y', type: 'quantitative', title: c.yTitle, scale: logY ? { type: 'log' } : { zero: false } },
      color: { field: 'series', type: 'nominal', title: null, sort: order, legend: { orient: 'right', labelLimit: 240 } },
    },
    layer: [
      { mark: { type: 'line', strokeWidth: 1.5, clip: true } },
      { transform: [{ filter: 'datum.sparse' }], mark: { type: 'point', filled: true, size: 18, clip: true } },
    ],
  } as TopLevelSpec;
}

interface Libs {
  vega: typeof import('vega');
  compile: typeof import('vega-lite').compile;
}
let libs: Promise<Libs> | null = null;

function loadLibs(): Promise<Libs> {
  libs ??= Promise.all([import('vega'), import('vega-lite')]).then(([vega, vl]) => ({ vega, compile: vl.compile }));
  return libs;
}

/** The SVG text of a Vega-Lite spec, rendered without a browser or canvas. */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const { vega, compile } = await loadLibs();
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none', logLevel: vega.Error });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

function chartsOf(o: PlotOptions): ChartSpec[] {
  const extra = (o.series ?? []).map(
    (s): ChartSpec => (typeof s === 'string' ? { name: s.replace(/[^A-Za-z0-9._-]/g, '_'), title: s, series: [{ label: s, key: s }] } : s),
  );
  const charts = [...(o.defaults === false ? [] : DEFAULT_CHARTS), ...extra];
  const names = new Set<string>();
  for (const c of charts) {
    if (!/^[A-Za-z0-9._-]+$/.test(c.name)) throw new TypeError(`chart name ${JSON.stringify(c.name)}: use letters, digits, dot, dash, underscore`);
    if (names.has(c.name)) throw new TypeError(`two charts are named ${c.name}`);
    names.add(c.name);
  }
  return charts;
}

/**
 * Draws the standard charts and those named in `o.series` from `records` into `outDir` (created
 * when missing); returns the files written, in chart order. A chart with no data is skipped.
 */
export async function renderPlots(records: readonly MetricRecord[], outDir: string, o: PlotOptions = {}): Promise<string[]> {
  const xKey = o.x ?? 'step';
  const charts = chartsOf(o);
  mkdirSync(outDir, { recursive: true });
  const written: string[] = [];
  for (const c of charts) {
    const title = c.title ?? c.name;
    const spec = chartSpec(seriesPoints(records, c.series, xKey), {
      title: o.title ? `${o.title}: ${title}` : title,
      xTitle: xKey,
      yTitle: c.yTitle ?? c.series[0]?.key ?? '',
      logY: c.logY ?? false,
      width: o.width ?? 640,
      height: o.height ?? 320,
      maxPoints: o.maxPoints ?? 2000,
    });
    if (!spec) continue;
    const file = join(outDir, `${c.name}.svg`);
    writeFileAtomic(file, await renderSvg(spec));
    written.push(file);
  }
  return written;
}

export interface ComparisonOptions {
  title?: string;
  yTitle?: string;
  x?: string;
  logY?: boolean;
  maxPoints?: number;
  width?: number;
  height?: number;
}

/**
 * One chart of `key` for several runs (an ablation), one series per run (per run and sub-key when
 * the value is a list or a map), written atomically to `file`. Runs without the key are left out;
 * it throws when none has it.
 */
export async function renderComparison(
  runs: readonly { name: string; records: readonly MetricRecord[] }[],
  key: string,
  file: string,
  o: ComparisonOptions = {},
): Promise<string> {
  const xKey = o.x ?? 'step';
  const names = new Set<string>();
  for (const r of runs) {
    if (names.has(r.name)) throw new TypeError(`two runs are named ${r.name}`);
    names.add(r.name);
  }
  const points = runs.flatMap((r) => seriesPoints(r.records, [{ label: r.name, key }], xKey));
  const spec = chartSpec(points, {
    title: o.title ?? key,
    xTitle: xKey,
    yTitle: o.yTitle ?? key,
    logY: o.logY ?? false,
    width: o.width ?? 640,
    height: o.height ?? 320,
    maxPoints: o.maxPoints ?? 2000,
  });
  if (!spec) throw new RangeError(`none of the runs (${runs.map((r) => r.name).join(', ')}) has numeric values of ${key} against ${xKey}`);
  mkdirSync(dirname(file), { recursive: true });
  writeFileAtomic(file, await renderSvg(spec));
  return file;
}
