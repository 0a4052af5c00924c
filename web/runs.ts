/**
 * The runs dashboard: every run under the server's runs directory, live curves of the chosen run
 * drawn with uPlot from its metrics.jsonl (read by byte offset, so each poll fetches only the lines
 * appended since the last), its sample completions with the self-check and revision phrases marked,
 * and the same held-out problem at the first and the last evaluation side by side. It uses only
 * the read-only /runs/api/* endpoints.
 *
 * It knows the page, the metrics' names and uPlot; not how runs are written.
 */
import uPlot from 'uplot';
import { applyTheme, byId, effectiveTheme, el, getJson, loadSettings, saveSettings } from './common.ts';

interface RunSummary {
  name: string;
  kind: string | null;
  steps: number | null;
  step: number | null;
  status: 'running' | 'finished' | 'stopped' | 'empty';
  updated: number;
}

interface Tail<T> {
  records: T[];
  offset: number;
  reset: boolean;
}

interface Mark {
  start: number;
  end: number;
  kind: 'check' | 'revise';
}

interface Sample {
  step?: number;
  heldout?: boolean;
  index?: number;
  task?: string;
  problem?: string;
  reference?: string;
  completion?: string;
  reward?: number;
  correct?: boolean;
  /** Rejection sampling: whether the trace was kept, or the filter that rejected it. */
  kept?: boolean;
  rejected_by?: string | null;
  marks: Mark[];
}

interface ChartDef {
  id: string;
  title: string;
  keys?: string[];
  prefixes?: string[];
}

/** The curves, in order; a chart shows when its run has any of its series. */
const CHARTS: ChartDef[] = [
  { id: 'loss', title: 'Loss', keys: ['loss', 'lm_loss', 'mtp_loss', 'val_loss'] },
  { id: 'bpb', title: 'Validation bits per byte', keys: ['val_bpb'] },
  { id: 'reward', title: 'Reward (total and per function)', keys: ['reward'], prefixes: ['reward_by_fn.'] },
  { id: 'accuracy', title: 'Accuracy (rollouts) and held-out greedy pass@1', keys: ['accuracy', 'heldout_pass1'] },
  { id: 'length', title: 'Completion length, tokens', keys: ['completion_len_mean', 'heldout_len', 'kept_len_mean'] },
  {
    id: 'rejection',
    title: 'Rejection sampling: share of the samples kept and rejected by each filter',
    keys: [
      'kept_share',
      'prompts_with_trace_share',
      'wrong_share',
      'unsound_share',
      'truncated_share',
      'malformed_share',
      'repetitive_share',
      'duplicate_share',
      'surplus_share',
    ],
  },
  { id: 'selfcheck', title: 'Self-check and revision share', keys: ['self_check_share', 'revise_share'] },
  { id: 'kl', title: 'KL to the reference model, nats/token', keys: ['kl'] },
  { id: 'entropy', title: 'Entropy, nats/token', keys: ['entropy'] },
  { id: 'spread', title: 'Groups with no reward spread', keys: ['zero_spread_share'] },
  { id: 'time', title: 'Seconds per step', keys: ['rollout_s', 'update_s', 'step_s'] },
  { id: 'speed', title: 'Tokens per second', keys: ['tokens_per_s', 'gen_tokens_per_s'] },
  { id: 'experts', title: 'Expert load, max / mean per layer', keys: ['expert_load_max_over_mean'], prefixes: ['expert_load.'] },
  { id: 'arith', title: 'Arithmetic probe (whole results right)', prefixes: ['arith_'] },
  { id: 'lr', title: 'Learning rate', keys: ['lr'] },
];

const COLORS = ['#4d6bfe', '#e8590c', '#2b8a3e', '#c2255c', '#7048e8', '#0b7285', '#e67700', '#5c940d', '#862e9c', '#495057'];

let settings = loadSettings();
let runs: RunSummary[] = [];
let selected: string | null = null;

/** The selected run's data, merged per step. */
let rows = new Map<number, Record<string, number>>();
let metricsOffset = 0;
let samples: Sample[] = [];
let samplesOffset = 0;
const charts = new Map<string, { plot: uPlot; series: string[]; box: HTMLElement }>();

const statusEl = byId('status');
const chartsEl = byId('charts');

function setStatus(text: string): void {
  statusEl.textContent = text;
  statusEl.hidden = text === '';
}

// ---------------------------------------------------------------- run list

function renderRuns(): void {
  const list = byId('runs');
  list.replaceChildren();
  if (runs.length === 0) list.append(el('li', 'muted', 'No runs yet: start one with tinyseek train or tinyseek rl.'));
  for (const r of runs) {
    const li = el('li', r.name === selected ? 'active' : '');
    const b = el('button', 'open');
    b.type = 'button';
    b.dataset.run = r.name;
    const name = el('span', '', `${r.name} `);
    const badge = el('span', `badge ${r.status}`, r.status);
    const progress = r.step === null ? '' : r.steps ? `step ${r.step} / ${r.steps}` : `step ${r.step}`;
    b.append(name, badge, el('span', 'run-meta', [r.kind, progress].filter(Boolean).join(' · ')));
    b.addEventListener('click', () => select(r.name));
    li.append(b);
    list.append(li);
  }
}

async function refreshRuns(): Promise<void> {
  try {
    const r = await getJson<{ root: string; runs: RunSummary[] }>('/runs/api/list', settings);
    runs = r.runs;
    byId('root').textContent = r.root;
    setStatus('');
  } catch (e) {
    setStatus(`runs not listed: ${(e as Error).message}`);
    return;
  }
  if (selected === null || !runs.some((r) => r.name === selected)) {
    const fromHash = new URLSearchParams(location.hash.slice(1)).get('run');
    const pick = runs.find((r) => r.name === fromHash) ?? runs[0];
    if (pick) select(pick.name);
  }
  renderRuns();
  const s = runs.find((r) => r.name === selected);
  byId('run-info').textContent = s ? `${s.kind ?? ''} · ${s.status}${s.step !== null ? ` · step ${s.step}${s.steps ? ` / ${s.steps}` : ''}` : ''}` : '';
}

function select(name: string): void {
  if (name === selected) return;
  selected = name;
  history.replaceState(null, '', `#run=${encodeURIComponent(name)}`);
  byId('run-title').textContent = name;
  rows = new Map();
  metricsOffset = 0;
  samples = [];
  samplesOffset = 0;
  for (const c of charts.values()) c.plot.destroy();
  charts.clear();
  chartsEl.replaceChildren();
  renderRuns();
  renderSamples();
  void pollMetrics();
  void pollSamples();
  document.body.classList.remove('sidebar-open');
}

// ---------------------------------------------------------------- curves

/** A record's numbers, nested objects flattened to "a.b" (reward_by_fn.accuracy, expert_load.1). */
function flatten(r: Record<string, unknown>, prefix = '', out: Record<string, number> = {}): Record<string, number> {
  for (const [k, v] of Object.entries(r)) {
    if (typeof v === 'number' && Number.isFinite(v)) out[prefix + k] = v;
    else if (v && typeof v === 'object' && !Array.isArray(v)) flatten(v as Record<string, unknown>, `${prefix}${k}.`, out);
  }
  return out;
}

function seriesOf(def: ChartDef, names: Set<string>): string[] {
  const out = (def.keys ?? []).filter((k) => names.has(k));
  for (const p of def.prefixes ?? []) out.push(...[...names].filter((n) => n.startsWith(p)).sort((a, b) => a.localeCompare(b, 'en', { numeric: true })));
  return out;
}

function chartWidth(box: HTMLElement): number {
  return Math.max(260, box.clientWidth - 12);
}

function drawCharts(): void {
  const steps = [...rows.keys()].sort((a, b) => a - b);
  const names = new Set<string>();
  for (const r of rows.values()) for (const k of Object.keys(r)) names.add(k);
  names.delete('step');
  const dark = effectiveTheme(settings.theme) === 'dark';
  const axis = {
    stroke: dark ? '#9aa1ab' : '#6b7280',
    grid: { stroke: dark ? '#30343c' : '#e2e5ea', width: 1 },
    ticks: { stroke: dark ? '#30343c' : '#e2e5ea' },
  };
  for (const def of CHARTS) {
    const series = seriesOf(def, names);
    let c = charts.get(def.id);
    if (c && (c.series.join('\n') !== series.join('\n') || c.plot.root.dataset.dark !== String(dark))) {
      c.plot.destroy();
      c.box.remove();
      charts.delete(def.id);
      c = undefined;
    }
    if (series.length === 0) continue;
    const data: uPlot.AlignedData = [steps, ...series.map((s) => steps.map((t) => rows.get(t)?.[s] ?? null))];
    if (!c) {
      const box = el('div', 'chart');
      box.dataset.chart = def.id;
      box.append(el('h4', '', def.title));
      const at = CHARTS.findIndex((d) => d.id === def.id);
      const before = [...chartsEl.children].find((n) => CHARTS.findIndex((d) => d.id === (n as HTMLElement).dataset.chart) > at);
      chartsEl.insertBefore(box, before ?? null);
      const plot = new uPlot(
        {
          width: chartWidth(box),
          height: 220,
          scales: { x: { time: false } },
          axes: [
            { ...axis, label: 'step' },
            { ...axis, size: 60 },
          ],
          series: [
            { label: 'step' },
            ...series.map((s, i) => ({ label: s, stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps: true, points: { size: 4 } })),
          ],
          legend: { live: true },
        },
        data,
        box,
      );
      plot.root.dataset.dark = String(dark);
      c = { plot, series, box };
      charts.set(def.id, c);
    } else c.plot.setData(data);
    c.box.dataset.lastStep = String(steps[steps.length - 1] ?? '');
    c.box.dataset.points = String(steps.length);
  }
}

async function pollMetrics(): Promise<void> {
  const run = selected;
  if (run === null) return;
  try {
    const t = await getJson<Tail<Record<string, unknown>>>(`/runs/api/metrics?run=${encodeURIComponent(run)}&offset=${metricsOffset}`, settings);
    if (run !== selected) return;
    if (t.reset) rows = new Map();
    metricsOffset = t.offset;
    if (t.records.length || t.reset) {
      for (const r of t.records) {
        if (typeof r.step !== 'number') continue;
        const { kind: _kind, ...rest } = r;
        rows.set(r.step, { ...rows.get(r.step), ...flatten(rest) });
      }
      drawCharts();
    }
  } catch (e) {
    setStatus(`metrics not read: ${(e as Error).message}`);
  }
}

// ---------------------------------------------------------------- samples

/** A completion as text nodes, its self-check and revision phrases in <mark>: never parsed as markup. */
function markedText(text: string, marks: readonly Mark[]): HTMLElement {
  const pre = el('pre');
  let at = 0;
  for (const m of marks) {
    if (m.start < at || m.end > text.length) continue;
    pre.append(document.createTextNode(text.slice(at, m.start)));
    const mk = el('mark', m.kind, text.slice(m.start, m.end));
    mk.title = m.kind === 'check' ? 'self-check' : 'revision';
    pre.append(mk);
    at = m.end;
  }
  pre.append(document.createTextNode(text.slice(at)));
  return pre;
}

function problemText(p: string | undefined): string {
  if (!p) return '';
  try {
    const v = JSON.parse(p) as Record<string, unknown>;
    const nums = v.nums ?? v.numbers;
    if (Array.isArray(nums) && v.target !== undefined) return `numbers ${JSON.stringify(nums)} → ${String(v.target)}`;
    if (typeof v.a === 'number' && typeof v.b === 'number') return `${v.a} × ${v.b}`;
    if (typeof v.question === 'string') return v.question;
  } catch {
    // not JSON: show as is
  }
  return p;
}

function sampleCard(s: Sample, label?: string): HTMLElement {
  const card = el('div', 'sample');
  card.dataset.step = String(s.step ?? '');
  const head = el('header');
  if (label) head.append(el('strong', '', label));
  head.append(el('span', '', `step ${s.step ?? '?'}`));
  if (s.heldout) head.append(el('span', '', `held-out #${s.index ?? 0}`));
  if (s.task) head.append(el('span', '', s.task));
  if (typeof s.reward === 'number') head.append(el('span', '', `reward ${s.reward.toFixed(2)}`));
  if (typeof s.correct === 'boolean') head.append(el('span', s.correct ? 'ok' : 'bad', s.correct ? 'correct' : 'wrong'));
  if (typeof s.rejected_by === 'string') head.append(el('span', 'bad', `rejected: ${s.rejected_by}`));
  else if (s.kept === true) head.append(el('span', 'ok', 'kept'));
  const checks = s.marks.filter((m) => m.kind === 'check').length;
  const revisions = s.marks.filter((m) => m.kind === 'revise').length;
  if (checks || revisions) head.append(el('span', '', `${checks} self-check${checks === 1 ? '' : 's'}, ${revisions} revision${revisions === 1 ? '' : 's'}`));
  card.append(head);
  const problem = problemText(s.problem) || (s.reference ? `reference ${s.reference}` : '');
  if (problem) card.append(el('div', 'muted', problem));
  card.append(markedText(s.completion ?? '', s.marks));
  return card;
}

/** Which samples are "the same problem" across evaluations: a held-out index, or a pretraining eval's task. */
function compareKey(s: Sample): string | null {
  if (s.heldout) return `held-out #${s.index ?? 0}`;
  if (s.task && s.reference !== undefined) return s.task;
  return null;
}

function renderSamples(): void {
  const list = byId('samples');
  list.replaceChildren();
  const recent = samples.slice(-40).reverse();
  if (recent.length === 0) list.append(el('p', 'muted', 'No samples yet: a run writes them to samples.jsonl at each step or evaluation.'));
  for (const s of recent) list.append(sampleCard(s));

  const body = byId('compare-body');
  body.replaceChildren();
  const groups = new Map<string, Sample[]>();
  for (const s of samples) {
    const k = compareKey(s);
    if (k !== null && typeof s.step === 'number') groups.set(k, [...(groups.get(k) ?? []), s]);
  }
  let shown = 0;
  for (const g of groups.values()) {
    const sorted = [...g].sort((a, b) => (a.step ?? 0) - (b.step ?? 0));
    const first = sorted[0];
    const last = sorted[sorted.length - 1];
    if (first.step === last.step) continue;
    body.append(sampleCard(first, 'first evaluation'), sampleCard(last, 'last evaluation'));
    if (++shown === 2) break;
  }
  if (shown === 0)
    body.append(el('p', 'muted', 'Shown once the run has evaluated the same held-out problem at two steps (RL runs write them at each evaluation).'));
}

async function pollSamples(): Promise<void> {
  const run = selected;
  if (run === null) return;
  try {
    const t = await getJson<Tail<Sample>>(`/runs/api/samples?run=${encodeURIComponent(run)}&offset=${samplesOffset}`, settings);
    if (run !== selected) return;
    if (t.reset) samples = [];
    samplesOffset = t.offset;
    if (t.records.length || t.reset) {
      samples.push(...t.records);
      if (samples.length > 2000) samples = [...samples.filter((s) => s.heldout || s.task).slice(-1000), ...samples.slice(-1000)];
      renderSamples();
    }
  } catch (e) {
    setStatus(`samples not read: ${(e as Error).message}`);
  }
}

// ---------------------------------------------------------------- wiring

/** Polls one reader at a time: a slow read never piles up requests. */
function every(ms: number, f: () => Promise<void>): void {
  const loop = async (): Promise<void> => {
    await f();
    window.setTimeout(() => void loop(), ms);
  };
  window.setTimeout(() => void loop(), ms);
}

byId('toggle-sidebar').addEventListener('click', () => document.body.classList.toggle('sidebar-open'));
byId('theme-toggle').addEventListener('click', () => {
  settings = { ...settings, theme: effectiveTheme(settings.theme) === 'dark' ? 'light' : 'dark' };
  saveSettings(settings);
  applyTheme(settings.theme);
  drawCharts();
});
window.addEventListener('hashchange', () => {
  const name = new URLSearchParams(location.hash.slice(1)).get('run');
  if (name && runs.some((r) => r.name === name)) select(name);
});
new ResizeObserver(() => {
  for (const c of charts.values()) c.plot.setSize({ width: chartWidth(c.box), height: 220 });
}).observe(chartsEl);

applyTheme(settings.theme);
renderSamples();
void refreshRuns();
every(5000, refreshRuns);
every(1000, pollMetrics);
every(2000, pollSamples);
