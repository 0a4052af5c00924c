/**
 * The DeepSeek ablations at the `small` size, one command each (`tinyseek ablate NAME`): every
 * variant pretrains on the same data, for the same steps, from the same seed; only the one choice
 * under test changes. Results go to docs/ablations/NAME.md as a table and SVG plots.
 *
 *   balance    aux-loss-free bias (V3) vs a conventional auxiliary balance loss vs neither:
 *              validation loss and max/mean expert load (training and validation tokens)
 *   mtp        one MTP module (λ = 0.3) vs none: validation loss of the main head at equal steps,
 *              and how often the MTP head's guess of token i+2 is right and equals what the main
 *              model would pick there (the greedy acceptance rate of MTP speculative decoding)
 *   attention  MLA vs multi-head vs grouped-query attention at (nearly) equal parameter count:
 *              validation loss and KV-cache bytes per token
 *
 * It composes pretraining runs and measurements; the numbers are whatever the runs produce.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { noGrad, tidy } from '../core/index.ts';
import { type PackedCorpus, packedBatch, toTensor } from '../data/index.ts';
import { writeFileAtomic } from '../io/durable.ts';
import { loadCheckpoint } from '../model/checkpoint.ts';
import { countParameters, kvCacheFigures, tensorSpecs } from '../model/params.ts';
import type { DeepSeekV3 } from '../model/transformer.ts';
import { PretrainConfig, merge, resolveConfig } from '../train/config.ts';
import { dataSpecOf, preparePretrainData } from '../train/data-prep.ts';
import { readJsonObject } from '../run/config-file.ts';
import { type MetricRecord, readMetrics } from '../run/metrics.ts';
import { renderComparison } from '../run/plots.ts';
import { configDifferences, pretrain, runDirOf } from '../train/pretrain.ts';

export const ABLATIONS = ['balance', 'mtp', 'attention'] as const;
export type AblationName = (typeof ABLATIONS)[number];

interface Variant {
  name: string;
  label: string;
  overrides: Record<string, unknown>;
}

const VARIANTS: Record<AblationName, Variant[]> = {
  balance: [
    { name: 'aux_free', label: 'aux-loss-free bias (γ = 0.001)', overrides: { balance: 'aux_free' } },
    { name: 'aux_loss', label: 'auxiliary balance loss (α = 0.01)', overrides: { balance: 'aux_loss' } },
    { name: 'none', label: 'no balancing', overrides: { balance: 'none' } },
  ],
  mtp: [
    { name: 'mtp', label: 'MTP depth 1, λ = 0.3', overrides: {} },
    { name: 'no_mtp', label: 'no MTP', overrides: { modelOverrides: { num_nextn_predict_layers: 0 } } },
  ],
  attention: [
    { name: 'mla', label: 'MLA (latent 64 + rotary 16)', overrides: {} },
    { name: 'mha', label: 'MHA (4 heads × 32)', overrides: { modelOverrides: { attention_type: 'mha', head_dim: 32, num_key_value_heads: 4 } } },
    { name: 'gqa', label: 'GQA (4 heads × 42, 2 KV groups)', overrides: { modelOverrides: { attention_type: 'gqa', head_dim: 42, num_key_value_heads: 2 } } },
  ],
};

export interface VariantResult {
  name: string;
  label: string;
  runDir: string;
  parameters: number;
  attentionParametersPerLayer: number;
  valLoss: number;
  valBpb: number;
  /** Mean over the last 50 training steps of the worst layer's max/mean expert load. */
  trainLoadMaxOverMean: number | null;
  /** Worst layer's max/mean load over the validation tokens. */
  valLoadMaxOverMean: number | null;
  mtpNextNextAccuracy: number | null;
  mtpAcceptance: number | null;
  kvBytesPerToken: number;
}

/** Worst layer's max/mean expert load over the validation tokens, and MTP accuracy/acceptance. */
export function measureOnValidation(
  model: DeepSeekV3,
  val: PackedCorpus,
  batches: number,
  batchSize: number,
): { load: number | null; mtpRight: number | null; mtpAccept: number | null } {
  model.eval();
  const layers = model.moeLayers();
  const totals = layers.map((m) => new Array<number>(m.gate.nExperts).fill(0));
  let right = 0;
  let accept = 0;
  let count = 0;
  noGrad(() => {
    const total = Math.min(val.numSequences, batches * batchSize);
    for (let s = 0; s < total; s += batchSize) {
      tidy(() => {
        const b = packedBatch(
          val,
          Array.from({ length: Math.min(batchSize, total - s) }, (_, i) => s + i),
        );
        const inputs = toTensor({ data: b.inputs, shape: b.shape });
        const targets = toTensor({ data: b.targets, shape: b.shape }); // (B, T): targets[i] = t_{i+1}
        const { logits, hidden } = model.forward(inputs);
        layers.forEach((m, li) => m.lastLoad.forEach((n, e) => (totals[li][e] += n)));
        const mtp = model.mtpLogits(inputs, hidden);
        if (mtp.logits.length === 0) return;
        const T = b.shape[1];
        const draft = mtp.logits[0].argmax(-1); // (B, T-1): guess of t_{i+2}
        const truth = targets.narrow(1, 1, T - 1); // (B, T-1): t_{i+2}
        const mainNext = logits.narrow(1, 1, T - 1).argmax(-1); // (B, T-1): main model's pick for t_{i+2}
        const valid = truth.ne(-100);
        right += draft.eq(truth).logicalAnd(valid).sum().item();
        accept += draft.eq(mainNext).logicalAnd(valid).sum().item();
        count += valid.sum().item();
      });
    }
  });
  model.train();
  const ratio = (xs: number[]): number => {
    const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
    return mean > 0 ? Math.max(...xs) / mean : 1;
  };
  return {
    load: layers.length ? Math.max(...totals.map(ratio)) : null,
    mtpRight: count ? right / count : null,
    mtpAccept: count ? accept / count : null,
  };
}

function attentionParams(model: DeepSeekV3): number {
  return tensorSpecs(model.config, { mtp: false })
    .filter((s) => s.name.startsWith('model.layers.0.self_attn.'))
    .reduce((a, s) => a + s.shape.reduce((x, y) => x * y, 1), 0);
}

export interface AblationOptions {
  steps?: number;
  base?: string;
  runsDir?: string;
  docsDir?: string;
  log?: (s: string) => void;
}

export async function runAblation(name: AblationName, o: AblationOptions = {}): Promise<VariantResult[]> {
  const log = o.log ?? ((s: string) => console.log(s));
  const base = o.base ?? 'pretrain-small';
  const steps = o.steps ?? 250;
  const results: VariantResult[] = [];
  const runs: { name: string; records: MetricRecord[] }[] = [];
  for (const v of VARIANTS[name]) {
    const over = merge(
      { name: `ablate-${name}-${v.name}`, steps, evalEvery: Math.max(1, Math.floor(steps / 6)), checkpointEvery: steps, sampleCount: 0 },
      v.overrides,
    );
    if (o.runsDir) over.runsDir = o.runsDir;
    const cfg = resolveConfig(PretrainConfig, base, over, `${name}/${v.name}`);
    const runDir = runDirOf(cfg);
    const saved = path.join(runDir, 'config.json');
    const done = fs.existsSync(path.join(runDir, 'final', 'config.json')) && fs.existsSync(saved) && configDifferences(readJsonObject(saved), cfg).length === 0;
    log(`── ${name}: ${v.label} ${done ? '(done already)' : ''}`);
    if (!done) {
      if (fs.existsSync(runDir)) fs.rmSync(runDir, { recursive: true, force: true });
      const r = await pretrain(cfg, { log });
      if (r.stoppedBy !== 'done') throw new Error(`the ${v.name} run stopped at step ${r.step}; run the ablation again to redo it`);
    }
    const records = readMetrics(path.join(runDir, 'metrics.jsonl'));
    runs.push({ name: v.label, records });
    const evals = records.filter((r) => r.kind === 'eval');
    const last = evals.at(-1);
    const trainLoads = records
      .filter((r) => r.kind === 'train' && typeof r.expert_load_max_over_mean === 'number')
      .slice(-50)
      .map((r) => r.expert_load_max_over_mean as number);
    const model = loadCheckpoint(path.join(runDir, 'final'));
    const data = preparePretrainData(dataSpecOf(cfg), cfg.runsDir, () => undefined);
    const m = measureOnValidation(model, data.val, cfg.evalBatches, cfg.batchSize);
    const kv = kvCacheFigures(model.config);
    results.push({
      name: v.name,
      label: v.label,
      runDir,
      parameters: countParameters(model.config).totalWithMtp,
      attentionParametersPerLayer: attentionParams(model),
      valLoss: last?.val_loss as number,
      valBpb: last?.val_bpb as number,
      trainLoadMaxOverMean: trainLoads.length ? trainLoads.reduce((a, b) => a + b, 0) / trainLoads.length : null,
      valLoadMaxOverMean: m.load,
      mtpNextNextAccuracy: m.mtpRight,
      mtpAcceptance: m.mtpAccept,
      kvBytesPerToken: kv.perToken * 2, // bf16
    });
  }
  await writeReport(name, results, runs, steps, o.docsDir ?? 'docs');
  return results;
}

const pct = (x: number | null): string => (x === null ? '—' : `${(x * 100).toFixed(1)}%`);
const num = (x: number | null, d = 3): string => (x === null || x === undefined || Number.isNaN(x) ? '—' : x.toFixed(d));

async function writeReport(
  name: AblationName,
  results: VariantResult[],
  runs: { name: string; records: MetricRecord[] }[],
  steps: number,
  docsDir: string,
): Promise<void> {
  const dir = path.join(docsDir, 'ablations');
  fs.mkdirSync(dir, { recursive: true });
  const trainRuns = runs.map((r) => ({ name: r.name, records: r.records.filter((x) => x.kind === 'train') }));
  const evalRuns = runs.map((r) => ({ name: r.name, records: r.records.filter((x) => x.kind === 'eval') }));
  await renderComparison(trainRuns, 'lm_loss', path.join(dir, `${name}-train-loss.svg`), { title: `${name}: training loss (main head)` });
  await renderComparison(evalRuns, 'val_loss', path.join(dir, `${name}-val-loss.svg`), { title: `${name}: validation loss` });
  if (name === 'balance')
    await renderComparison(trainRuns, 'expert_load_max_over_mean', path.join(dir, `${name}-expert-load.svg`), { title: 'max/mean expert load (worst layer)' });
  const rows: string[] = [];
  if (name === 'balance') {
    rows.push('| variant | validation loss | bits per byte | max/mean load, training (last 50 steps) | max/mean load, validation |', '|---|---|---|---|---|');
    for (const r of results)
      rows.push(`| ${r.label} | ${num(r.valLoss, 4)} | ${num(r.valBpb, 4)} | ${num(r.trainLoadMaxOverMean, 2)} | ${num(r.valLoadMaxOverMean, 2)} |`);
  } else if (name === 'mtp') {
    rows.push(
      "| variant | parameters (with MTP) | validation loss (main head) | bits per byte | MTP guess of t+2 right | MTP guess = main model's pick (acceptance) |",
      '|---|---|---|---|---|---|',
    );
    for (const r of results)
      rows.push(`| ${r.label} | ${r.parameters} | ${num(r.valLoss, 4)} | ${num(r.valBpb, 4)} | ${pct(r.mtpNextNextAccuracy)} | ${pct(r.mtpAcceptance)} |`);
  } else {
    rows.push(
      '| variant | attention parameters per layer | total parameters | validation loss | bits per byte | KV cache per token (bf16, all layers) |',
      '|---|---|---|---|---|---|',
    );
    for (const r of results)
      rows.push(
        `| ${r.label} | ${r.attentionParametersPerLayer} | ${r.parameters} | ${num(r.valLoss, 4)} | ${num(r.valBpb, 4)} | ${r.kvBytesPerToken} bytes |`,
      );
  }
  const text = [
    `# Ablation: ${name}`,
    '',
    `Reproduce with \`npx tinyseek ablate ${name}\` (the \`small\` preset, ${steps} steps of 8 × 256 tokens, seed 1234, the same cached data for every variant; ${new Date().toISOString().slice(0, 10)}).`,
    '',
    ...rows,
    '',
    `![training loss](${name}-train-loss.svg)`,
    `![validation loss](${name}-val-loss.svg)`,
    ...(name === 'balance' ? [`![expert load](${name}-expert-load.svg)`] : []),
    '',
    '<!-- findings -->',
    '',
  ].join('\n');
  const file = path.join(dir, `${name}.md`);
  // Keep hand-written findings below the marker when the report is regenerated.
  const old = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
  const notes = old.includes('<!-- findings -->') ? old.slice(old.indexOf('<!-- findings -->') + '<!-- findings -->'.length).trim() : '';
  writeFileAtomic(file, notes ? `${text}${notes}\n` : text);
  writeFileAtomic(path.join(dir, `${name}.json`), `${JSON.stringify(results, null, 2)}\n`);
}
