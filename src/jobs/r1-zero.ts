/**
 * The R1-Zero experiment, one command (`tinyseek r1-zero`): for each task (Countdown, then
 * multiplication), the base model is evaluated on the task's held-out split, trained with GRPO on
 * rule rewards only (presets rl-<task>), and evaluated again the same way. Evaluation is greedy
 * pass@1 and pass@1 / pass@k over k samples at a stated temperature, on the same problems before
 * and after.
 *
 * Each task's report holds greedy pass@1 on the held-out problems (500 for Countdown; multiplication's
 * 2 × 2-digit held-out split has about 400), the sampled pass@1 and the pass@k curve (k = 1 … K over
 * K samples at temperature 1 on a subset), and the arithmetic probe (eval/arith-probe.ts) before and
 * after RL, with the run's curves summarised.
 *
 * Writes <report>/results/r1-zero.json (per task base_pass1 and rl_pass1 — greedy — base_arith,
 * minutes and the rest), <report>/r1-zero.md (tables, plots, sample completions) and the plots under
 * <report>/results/r1-zero/, where <report> is <runsDir>/r1-zero-report unless docsDir is given (the
 * repository's docs/ only on request: a user's run leaves the tracked files alone). Reruns reuse
 * finished runs and evaluations; an interrupted RL run is resumed.
 *
 * It composes RL runs and evaluations; the numbers are whatever they produce.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type TaskName, generateProblems } from '../data/index.ts';
import {
  type ArithProbe,
  type EvalReport,
  type SearchOutcome,
  type StopProbe,
  arithProbe,
  defaultKs,
  evaluate,
  formatArithProbe,
  formatSearchOutcomes,
  formatStopProbe,
  searchOutcomes,
  stopProbe,
  wholeByOp,
} from '../eval/index.ts';
import { writeFileAtomic } from '../io/durable.ts';
import { loadCheckpoint } from '../model/checkpoint.ts';
import { Tokenizer } from '../tokenizer/index.ts';
import { checkpointFingerprint, readCached, writeCached } from '../run/cached-result.ts';
import { readJsonObject } from '../run/config-file.ts';
import { type MetricRecord, readMetrics } from '../run/metrics.ts';
import { renderComparison } from '../run/plots.ts';
import { traceFormatOf } from '../run/trace-format.ts';
import { runDirOf } from '../run/run-dir.ts';
import { type RlSettings, resolveRlConfig } from '../rl/config.ts';
import { detectSelfCheck } from '../rl/selfcheck.ts';
import { finishedRl } from './stages.ts';

export const R1_ZERO_TASKS: readonly TaskName[] = ['countdown', 'multiplication'];

/** checkpoints/small-base in the package: the base model the experiment starts from by default. */
export const SHIPPED_BASE = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'checkpoints', 'small-base');

export interface R1ZeroOptions {
  tasks?: readonly TaskName[];
  /** The base checkpoint (default: the shipped one when present, else each preset's). */
  base?: string;
  /** RL steps per task (default: the preset's). */
  steps?: number;
  /** Other RL settings over the presets' (e.g. smaller batches for a quick check). */
  rlOverrides?: Record<string, unknown>;
  runsDir?: string;
  /** Where the report goes (default <runsDir>/r1-zero-report; the repository's docs/ only when asked). */
  docsDir?: string;
  /** Held-out problems for greedy pass@1 (default 500, or all a task's held-out split has when fewer). */
  evalProblems?: number;
  /** Samples per problem of the sampled evaluation, K of the pass@k curve (default 32). */
  samples?: number;
  /** Problems of the sampled evaluation (default 100). */
  sampledProblems?: number;
  /** Temperature of the sampled evaluation (default 1.0, the rollouts'). */
  temperature?: number;
  /** performance.now() when the main job began: its wall time so far goes into the report. */
  mainJobStarted?: number;
  log?: (s: string) => void;
}

/** Held-out problems each task's split can give (multiplication 2 × 2 digits: about 410). */
export const HELDOUT_CAP: Partial<Record<TaskName, number>> = { multiplication: 400 };

export interface EvalFigures {
  greedy_pass1: number;
  sampled_pass1: number;
  sampled_pass_at_k: number;
  majority: number;
  mean_reward: number;
  mean_tokens: number;
  well_formed: number;
  truncated: number;
  self_check_share: number | null;
  /** pass@k over the sampled evaluation, k = 1, 2, 4, … K. */
  pass_at_k: Record<string, number>;
  /** The arithmetic probe's whole-result accuracy (greedy) and its per-operation figures. */
  arith: number;
  arith_by_op: Record<string, number>;
  /** Countdown: the stop probe (P(stop) and greedy stops after the first and later missed lines). */
  stop: StopProbe | null;
  /** Countdown: how the greedy searches end (right, stopped, false claim, other). */
  outcomes: Record<SearchOutcome, number> | null;
}

export interface TaskResult {
  base_pass1: number;
  rl_pass1: number;
  base: EvalFigures;
  rl: EvalFigures;
  run: string;
  steps: number;
  /** The arithmetic probe's whole-result accuracy of the base and of the RL model. */
  base_arith: number;
  rl_arith: number;
  /** Minutes of the RL run (rollouts and updates). */
  minutes: number;
  rl_minutes: number;
  rollout_share: number;
  /** Seconds this invocation spent on the task (evaluations, probe, RL; cached stages cost ~0). */
  stage_seconds: number;
  /** Held-out problems of the greedy evaluation, and of the sampled one × samples. */
  problems: { greedy: number; sampled: number; samples: number };
  curve: { first: Record<string, number>; last: Record<string, number> };
  examples: { base: string; rl: string; problem: string }[];
}

interface EvalBundle {
  figures: EvalFigures;
  greedy: EvalReport;
}

const CURVE_KEYS = ['reward', 'accuracy', 'completion_len_mean', 'self_check_share', 'revise_share', 'kl', 'entropy', 'zero_spread_share'];

interface EvalPlan {
  n: number;
  samples: number;
  sampledProblems: number;
  temperature: number;
}

function evalKey(checkpoint: string, c: RlSettings, plan: EvalPlan): unknown {
  return {
    v: 5,
    checkpoint: checkpointFingerprint(checkpoint),
    traceFormat: traceFormatOf(checkpoint),
    task: c.task,
    taskConfig: c.taskConfig,
    ...plan,
    maxNewTokens: c.maxNewTokens,
  };
}

async function evaluateBoth(checkpoint: string, c: RlSettings, plan: EvalPlan, cacheFile: string, log: (s: string) => void): Promise<EvalBundle> {
  const { n, samples, temperature } = plan;
  const key = evalKey(checkpoint, c, plan);
  const cached = readCached<EvalBundle>(cacheFile, key);
  if (cached) {
    log(`evaluation of ${checkpoint} already done: ${cacheFile}`);
    return cached;
  }
  const model = loadCheckpoint(checkpoint);
  const tok = Tokenizer.load(path.join(checkpoint, 'tokenizer.json'));
  const common = { task: c.task, taskConfig: c.taskConfig, maxNewTokens: c.maxNewTokens, seed: 0 };
  const greedy = await evaluate(model, tok, { ...common, n, temperature: 0, examples: n, batchSize: 32 });
  const sampled = await evaluate(model, tok, {
    ...common,
    n: Math.min(plan.sampledProblems, n),
    temperature,
    samples,
    examples: 0,
    ks: defaultKs(samples),
    batchSize: Math.max(1, Math.floor(256 / samples)),
  });
  const probeProblems = generateProblems(c.task, { seed: 0, split: 'heldout', n: Math.min(200, n), config: c.taskConfig });
  const format = traceFormatOf(checkpoint);
  const probe: ArithProbe = arithProbe(model, tok, probeProblems, format);
  const figures: EvalFigures = {
    greedy_pass1: greedy.pass1,
    sampled_pass1: sampled.pass1,
    sampled_pass_at_k: sampled.passAtK[String(samples)] ?? sampled.pass1,
    majority: sampled.majority,
    mean_reward: greedy.meanReward,
    mean_tokens: greedy.meanCompletionTokens,
    well_formed: greedy.wellFormedShare,
    truncated: greedy.truncatedShare,
    self_check_share: greedy.examples.length ? greedy.examples.filter((e) => detectSelfCheck(e.completion).any).length / greedy.examples.length : null,
    pass_at_k: sampled.passAtK,
    arith: probe.overall.whole,
    arith_by_op: wholeByOp(probe),
    stop: c.task === 'countdown' ? stopProbe(model, tok, probeProblems, format) : null,
    outcomes: c.task === 'countdown' ? searchOutcomes(greedy.examples) : null,
  };
  const bundle: EvalBundle = { figures, greedy: { ...greedy, examples: greedy.examples.slice(0, 6) } };
  writeCached(cacheFile, key, bundle);
  log(
    `  greedy pass@1 ${(figures.greedy_pass1 * 100).toFixed(1)}%, sampled pass@1 ${(figures.sampled_pass1 * 100).toFixed(1)}% ` +
      `(${Math.min(plan.sampledProblems, n)} problems × ${samples} at T ${temperature}), pass@${samples} ${(figures.sampled_pass_at_k * 100).toFixed(1)}%, mean length ${figures.mean_tokens.toFixed(0)} tokens`,
  );
  log(`  arithmetic probe: ${formatArithProbe(probe)}`);
  if (figures.stop) log(`  stop probe: ${formatStopProbe(figures.stop)}`);
  if (figures.outcomes) log(`  greedy searches end: ${formatSearchOutcomes(figures.outcomes)}`);
  return bundle;
}

function averageOf(records: readonly MetricRecord[], key: string): number {
  const xs = records.map((r) => r[key]).filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : Number.NaN;
}

function curveSummary(records: readonly MetricRecord[]): TaskResult['curve'] {
  const rl = records.filter((r) => r.kind === 'rl');
  const span = Math.max(1, Math.min(5, Math.floor(rl.length / 4)));
  const first: Record<string, number> = {};
  const last: Record<string, number> = {};
  for (const k of CURVE_KEYS) {
    first[k] = averageOf(rl.slice(0, span), k);
    last[k] = averageOf(rl.slice(-span), k);
  }
  return { first, last };
}

async function runTask(task: TaskName, o: R1ZeroOptions, resultsDir: string, log: (s: string) => void): Promise<TaskResult> {
  const overrides: Record<string, unknown> = { ...o.rlOverrides, name: `r1-zero-${task}` };
  const base = o.base ?? (fs.existsSync(path.join(SHIPPED_BASE, 'config.json')) ? SHIPPED_BASE : undefined);
  if (base) overrides.base = base;
  if (o.steps) overrides.steps = o.steps;
  if (o.runsDir) overrides.runsDir = o.runsDir;
  const c = resolveRlConfig(`rl-${task}`, overrides);
  const runDir = runDirOf(c);
  const t0 = performance.now();
  const n = Math.min(o.evalProblems ?? 500, HELDOUT_CAP[task] ?? Number.POSITIVE_INFINITY);
  const plan: EvalPlan = { n, samples: o.samples ?? 32, sampledProblems: o.sampledProblems ?? 100, temperature: o.temperature ?? 1.0 };
  fs.mkdirSync(runDir, { recursive: true });

  log(`── ${task}: the base model ${c.base} on ${n} held-out problems`);
  const before = await evaluateBoth(c.base, c, plan, path.join(runDir, 'eval-base.json'), log);

  log(`── ${task}: GRPO, ${c.steps} steps`);
  const { finalDir } = await finishedRl(c, log);

  log(`── ${task}: the RL model on the same problems`);
  const after = await evaluateBoth(finalDir, c, plan, path.join(runDir, 'eval-rl.json'), log);

  const records = readMetrics(path.join(runDir, 'metrics.jsonl'));
  const rl = records.filter((r) => r.kind === 'rl');
  const rolloutS = rl.reduce((a, r) => a + (r.rollout_s as number), 0);
  const updateS = rl.reduce((a, r) => a + (r.update_s as number), 0);
  const plotsOut = path.join(resultsDir, 'r1-zero');
  fs.mkdirSync(plotsOut, { recursive: true });
  for (const name of ['reward', 'length', 'self_check', 'kl', 'entropy', 'zero_spread', 'time', 'clip']) {
    const src = path.join(runDir, 'plots', `${name}.svg`);
    if (fs.existsSync(src)) fs.copyFileSync(src, path.join(plotsOut, `${task}-${name}.svg`));
  }
  const passRecords = (f: EvalFigures): MetricRecord[] => Object.entries(f.pass_at_k).map(([k, v]) => ({ k: Number(k), pass_at_k: v }));
  await renderComparison(
    [
      { name: 'base', records: passRecords(before.figures) },
      { name: 'after RL', records: passRecords(after.figures) },
    ],
    'pass_at_k',
    path.join(plotsOut, `${task}-passk.svg`),
    { x: 'k', title: `${task}: pass@k on ${Math.min(plan.sampledProblems, n)} held-out problems (T ${plan.temperature})`, yTitle: 'pass@k' },
  );
  const examples = before.greedy.examples.slice(0, 3).map((b, i) => ({
    problem: JSON.stringify(b.problem),
    base: b.completion,
    rl: after.greedy.examples[i]?.completion ?? '',
  }));
  const minutes = (rl.length ? (rl[rl.length - 1].elapsed_s as number) : 0) / 60;
  return {
    base_pass1: before.figures.greedy_pass1,
    rl_pass1: after.figures.greedy_pass1,
    base_arith: before.figures.arith,
    rl_arith: after.figures.arith,
    base: before.figures,
    rl: after.figures,
    run: runDir,
    steps: c.steps,
    minutes,
    rl_minutes: minutes,
    rollout_share: rolloutS / Math.max(rolloutS + updateS, 1e-9),
    stage_seconds: (performance.now() - t0) / 1000,
    problems: { greedy: n, sampled: Math.min(plan.sampledProblems, n), samples: plan.samples },
    curve: curveSummary(records),
    examples,
  };
}

const pct = (x: number): string => `${(x * 100).toFixed(1)}%`;
const num = (x: number, d = 3): string => (Number.isFinite(x) ? x.toFixed(d) : '–');

function markdown(results: Record<string, TaskResult>, o: { samples: number; sampledProblems: number; temperature: number }): string {
  const lines: string[] = [
    '# R1-Zero on a laptop: results',
    '',
    'Written by `tinyseek r1-zero` (also the last stage of `tinyseek pipeline`); the numbers are in',
    '[results/r1-zero.json](results/r1-zero.json). The base model is evaluated, trained with GRPO on rule',
    'rewards only (presets `src/rl/presets/rl-<task>.json`), and evaluated again on the same held-out problems.',
    '',
    `Evaluation: greedy pass@1 on the held-out problems of each task (500, or all the split has); sampled pass@1, pass@k for k up to ${o.samples} and majority vote over ${o.samples} samples at temperature ${o.temperature} on ${o.sampledProblems} of them.`,
    "The arithmetic probe (`src/eval/arith-probe.ts`) teacher-forces each held-out problem's full reference trace and counts the equations whose whole result greedy decoding gets right.",
    '',
    '| task | greedy pass@1 base → RL | sampled pass@1 base → RL | pass@K base → RL | mean length (tokens) base → RL | arithmetic probe base → RL | RL steps | RL minutes | rollout share of time |',
    '|---|---|---|---|---|---|---|---|---|',
  ];
  for (const [task, r] of Object.entries(results)) {
    lines.push(
      `| ${task} | ${pct(r.base.greedy_pass1)} → **${pct(r.rl.greedy_pass1)}** (${r.problems.greedy} problems) | ${pct(r.base.sampled_pass1)} → ${pct(r.rl.sampled_pass1)} | ${pct(r.base.sampled_pass_at_k)} → ${pct(r.rl.sampled_pass_at_k)} (K ${r.problems.samples}) | ${num(r.base.mean_tokens, 0)} → ${num(r.rl.mean_tokens, 0)} | ${pct(r.base.arith)} → ${pct(r.rl.arith)} | ${r.steps} | ${num(r.rl_minutes, 1)} | ${pct(r.rollout_share)} |`,
    );
  }
  lines.push('', '## pass@k before and after RL (sampled at the rollout temperature)', '');
  for (const [task, r] of Object.entries(results)) {
    const ks = Object.keys(r.base.pass_at_k);
    lines.push(`| ${task} | ${ks.map((k) => `k=${k}`).join(' | ')} |`, `|---|${ks.map(() => '---').join('|')}|`);
    lines.push(
      `| base | ${ks.map((k) => pct(r.base.pass_at_k[k])).join(' | ')} |`,
      `| RL | ${ks.map((k) => pct(r.rl.pass_at_k[k] ?? Number.NaN)).join(' | ')} |`,
      '',
    );
    lines.push(`![${task} pass@k](results/r1-zero/${task}-passk.svg)`, '');
  }
  lines.push(
    '',
    '## During training (mean of the first and the last steps)',
    '',
    '| task | | reward | accuracy | length | self-check share | revise share | KL | entropy | zero-spread groups |',
    '|---|---|---|---|---|---|---|---|---|---|',
  );
  for (const [task, r] of Object.entries(results)) {
    for (const which of ['first', 'last'] as const) {
      const v = r.curve[which];
      lines.push(
        `| ${task} | ${which} | ${num(v.reward)} | ${pct(v.accuracy)} | ${num(v.completion_len_mean, 1)} | ${pct(v.self_check_share)} | ${pct(v.revise_share)} | ${num(v.kl, 4)} | ${num(v.entropy)} | ${pct(v.zero_spread_share)} |`,
      );
    }
  }
  for (const task of Object.keys(results)) {
    lines.push('', `## ${task}: curves`, '');
    for (const name of ['reward', 'length', 'self_check', 'kl', 'entropy', 'zero_spread', 'time'])
      lines.push(`![${task} ${name}](results/r1-zero/${task}-${name}.svg)`);
  }
  lines.push('', '## Greedy completions before and after', '');
  for (const [task, r] of Object.entries(results)) {
    for (const e of r.examples) {
      lines.push(`**${task}** ${e.problem}`, '', 'base:', '', '```', e.base, '```', '', 'after RL:', '', '```', e.rl, '```', '');
    }
  }
  lines.push('<!-- findings -->', '');
  return `${lines.join('\n')}\n`;
}

/** Where the report goes by default: beside the runs, never the repository's docs/. */
export const reportDirOf = (runsDir: string | undefined): string => path.join(runsDir ?? 'runs', 'r1-zero-report');

export async function runR1Zero(o: R1ZeroOptions = {}): Promise<Record<string, TaskResult>> {
  const log = o.log ?? ((s: string) => console.log(s));
  const docs = o.docsDir ?? reportDirOf(o.runsDir);
  const resultsDir = path.join(docs, 'results');
  fs.mkdirSync(resultsDir, { recursive: true });
  const results: Record<string, TaskResult> = {};
  for (const task of o.tasks ?? R1_ZERO_TASKS) results[task] = await runTask(task, o, resultsDir, log);
  const settings = {
    evalProblems: o.evalProblems ?? 500,
    samples: o.samples ?? 32,
    sampledProblems: o.sampledProblems ?? 100,
    temperature: o.temperature ?? 1.0,
  };
  // tasks run before and not in this run keep their results (a rerun of one task updates that one)
  const jsonFile = path.join(resultsDir, 'r1-zero.json');
  const earlier = fs.existsSync(jsonFile) ? readJsonObject(jsonFile, 'fix or delete it: the report is rewritten from the runs') : {};
  for (const task of R1_ZERO_TASKS) {
    const old = earlier[task] as TaskResult | undefined;
    if (!(task in results) && old && typeof old === 'object' && 'rl_pass1' in old && 'problems' in old) results[task] = old;
  }
  const json = {
    note: 'base_pass1 / rl_pass1: greedy pass@1 on the held-out split (fractions); base_arith / rl_arith: the arithmetic probe; minutes: the RL run; sampled figures and pass@k under base / rl',
    settings,
    ...(o.mainJobStarted !== undefined ? { main_job_minutes: (performance.now() - o.mainJobStarted) / 60000 } : {}),
    ...results,
  };
  writeFileAtomic(jsonFile, `${JSON.stringify(json, null, 2)}\n`);
  const mdFile = path.join(docs, 'r1-zero.md');
  const old = fs.existsSync(mdFile) ? fs.readFileSync(mdFile, 'utf8') : '';
  const findings = old.includes('<!-- findings -->') ? old.slice(old.indexOf('<!-- findings -->') + '<!-- findings -->'.length) : '\n';
  writeFileAtomic(mdFile, markdown(results, settings).replace(/<!-- findings -->\n\n$/, `<!-- findings -->${findings}`));
  log('── R1-Zero: held-out greedy pass@1, base → RL');
  for (const [task, r] of Object.entries(results))
    log(`  ${task.padEnd(15)} ${pct(r.base_pass1)} → ${pct(r.rl_pass1)}   (sampled pass@1 ${pct(r.base.sampled_pass1)} → ${pct(r.rl.sampled_pass1)})`);
  log(`results: ${path.join(resultsDir, 'r1-zero.json')}, ${mdFile}`);
  return results;
}
