/**
 * The main job, in two stages:
 *
 *   1. the base model — by default the one the repository ships (checkpoints/small-base, made by
 *      `tinyseek pipeline --from-scratch --no-rl --ship-base`); with fromScratch: prepare the data
 *      and the tokenizer, pretrain the `small` model on the synthetic corpus and measure it on every
 *      task's held-out split (at the corpus's difficulty);
 *   2. R1-Zero (rl/experiment.ts): GRPO with rule rewards on Countdown and multiplication from that
 *      base, with the before / after table.
 *
 * Reruns reuse what is done: cached data, a finished pretraining run (its final/ model), an
 * interrupted one (resumed from its checkpoint), evaluation results newer than the model, finished
 * or interrupted RL runs.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TASK_NAMES, type TaskName, encodeProblemPrompt, generateProblems } from '../data/index.ts';
import { type EvalReport, arithProbe, defaultKs, evaluate, formatArithProbe, wholeByOp } from '../eval/index.ts';
import { loadCheckpoint, saveCheckpoint } from '../model/checkpoint.ts';
import { HELDOUT_CAP, SHIPPED_BASE, type TaskResult, runR1Zero } from './r1-zero.ts';
import { Tokenizer } from '../tokenizer/index.ts';
import { writeFileAtomic } from '../io/durable.ts';
import { checkpointFingerprint, readCached, writeCached } from '../run/cached-result.ts';
import { readJsonObject } from '../run/config-file.ts';
import { readMetrics } from '../run/metrics.ts';
import { PretrainConfig, resolveConfig } from '../train/config.ts';
import { dataSpecOf, preparePretrainData } from '../train/data-prep.ts';
import { finishedPretraining } from './stages.ts';

export interface PipelineOptions {
  /** Pretraining config: a preset name or file (default pretrain-small). */
  config?: string;
  overrides?: Record<string, unknown>;
  /** Held-out problems per task for the base-model evaluation. */
  evalProblems?: number;
  evalMaxTokens?: number;
  /** Pretrain the base model instead of starting from the shipped one. */
  fromScratch?: boolean;
  /** Run the R1-Zero stage (default true). */
  rl?: boolean;
  /** RL steps per task (default: the rl-<task> presets'). */
  rlSteps?: number;
  /** Write the pretrained base model to the shipped-base directory (with fromScratch). */
  shipBase?: boolean;
  /** Where the shipped base lives (default checkpoints/small-base in the package). */
  shippedBase?: string;
  /** Where the R1-Zero report goes (default <runsDir>/r1-zero-report; 'docs' updates the repository's). */
  docsDir?: string;
  /** Samples per problem of the base model's pass@k curve (default 64). */
  passKSamples?: number;
  /** Problems of that curve (default 64). */
  passKProblems?: number;
  log?: (s: string) => void;
}

const SHIPPED_INFO = 'pretraining.json';

export interface TaskFigures {
  pass1: number;
  wellFormed: number;
  meanReward: number;
  meanTokens: number;
  truncated: number;
  problems: number;
  /** The arithmetic probe's whole-result accuracy (eval/arith-probe.ts), when the task has one. */
  arith?: number;
  arithByOp?: Record<string, number>;
  /** pass@k at temperature 1 for k = 1, 2, 4, … passKSamples, on passKProblems problems. */
  passAtK?: Record<string, number>;
}

export interface PipelineSummary {
  runDir: string;
  model: string;
  valLoss: number | null;
  valBpb: number | null;
  steps: number;
  trainSeconds: number | null;
  base: Partial<Record<TaskName, TaskFigures>> | null;
  rl: Record<string, TaskResult> | null;
  /** Wall time of the whole job in seconds. */
  seconds?: number;
  /** The context probe of the pretraining data (share of trained tokens that see their problem). */
  contextCoverage?: number;
}

/** Pretraining facts stored beside the shipped base model. */
interface ShippedInfo {
  command: string;
  config: unknown;
  valLoss: number | null;
  valBpb: number | null;
  steps: number;
  trainSeconds: number | null;
  base: Partial<Record<TaskName, TaskFigures>>;
  /** The context probe of the training data (data/pack.ts contextCoverage). */
  contextCoverage?: number;
}

export async function runPipeline(o: PipelineOptions = {}): Promise<PipelineSummary> {
  const log = o.log ?? ((s: string) => console.log(s));
  const started = performance.now();
  const shipped = o.shippedBase ?? SHIPPED_BASE;
  let summary: PipelineSummary;
  if (!o.fromScratch && fs.existsSync(path.join(shipped, 'config.json'))) {
    const info = readJsonObject(
      path.join(shipped, SHIPPED_INFO),
      `restore it from the repository (git checkout ${shipped}) or pass --from-scratch`,
    ) as unknown as ShippedInfo;
    log('── 1/2 the base model ──────────────────────────────────────────');
    log(`the shipped base model ${shipped} (made by \`${info.command}\`; --from-scratch pretrains it again)`);
    log(`  pretrained ${info.steps} steps: validation loss ${info.valLoss?.toFixed(4) ?? '?'} nats/token, ${info.valBpb?.toFixed(4) ?? '?'} bits/byte`);
    summary = {
      runDir: shipped,
      model: shipped,
      valLoss: info.valLoss,
      valBpb: info.valBpb,
      steps: info.steps,
      trainSeconds: info.trainSeconds,
      base: info.base,
      rl: null,
    };
  } else {
    if (!o.fromScratch) log(`no shipped base model at ${shipped}: pretraining one`);
    summary = await pretrainStage(o, log);
    if (o.shipBase) await shipBaseModel(summary, shipped, log);
  }
  if (o.rl !== false) {
    log('── 2/2 R1-Zero: GRPO with rule rewards from the base model ─────');
    summary.rl = await runR1Zero({
      base: summary.model,
      steps: o.rlSteps,
      runsDir: o.overrides?.runsDir as string | undefined,
      docsDir: o.docsDir,
      log,
      mainJobStarted: started,
    });
  }
  summary.seconds = (performance.now() - started) / 1000;
  log('── summary ─────────────────────────────────────────────────────');
  log(`base model ${summary.model}: validation loss ${summary.valLoss?.toFixed(4) ?? '?'} nats/token, ${summary.valBpb?.toFixed(4) ?? '?'} bits/byte`);
  if (summary.base) {
    for (const task of TASK_NAMES) {
      const b = summary.base[task];
      if (b)
        log(
          `  ${task.padEnd(15)} base held-out greedy pass@1 ${(b.pass1 * 100).toFixed(1)}% (${b.problems} problems)${b.arith !== undefined ? `, arithmetic probe ${(b.arith * 100).toFixed(1)}%` : ''}`,
        );
    }
  }
  if (summary.rl) {
    for (const [task, r] of Object.entries(summary.rl))
      log(`  ${task.padEnd(15)} R1-Zero greedy pass@1 ${(r.base_pass1 * 100).toFixed(1)}% → ${(r.rl_pass1 * 100).toFixed(1)}% after ${r.steps} GRPO steps`);
  }
  log(`main job: ${(summary.seconds / 60).toFixed(1)} minutes`);
  return summary;
}

async function shipBaseModel(s: PipelineSummary, dir: string, log: (s: string) => void): Promise<void> {
  if (!s.base) throw new Error('shipBase: the base model has no evaluation');
  const model = loadCheckpoint(s.model);
  await saveCheckpoint(dir, model, { dtype: 'bfloat16' });
  fs.copyFileSync(path.join(s.model, 'tokenizer.json'), path.join(dir, 'tokenizer.json'));
  if (fs.existsSync(path.join(s.model, 'chat.json'))) fs.copyFileSync(path.join(s.model, 'chat.json'), path.join(dir, 'chat.json'));
  const cfg: unknown = readJsonObject(path.join(s.runDir, 'config.json'));
  const info: ShippedInfo = {
    command: 'node bin/tinyseek.js pipeline --from-scratch --no-rl --ship-base',
    config: cfg,
    valLoss: s.valLoss,
    valBpb: s.valBpb,
    steps: s.steps,
    trainSeconds: s.trainSeconds,
    base: s.base,
    contextCoverage: s.contextCoverage,
  };
  writeFileAtomic(path.join(dir, SHIPPED_INFO), `${JSON.stringify(info, null, 2)}\n`);
  log(`shipped base model written to ${dir} (bfloat16)`);
}

async function pretrainStage(o: PipelineOptions, log: (s: string) => void): Promise<PipelineSummary> {
  const source = o.config ?? 'pretrain-small';
  const cfg = resolveConfig(PretrainConfig, source, o.overrides ?? {}, source);

  log('── 1/2 pretraining the base model ──────────────────────────────');
  const run = await finishedPretraining(cfg, log);
  const { runDir, finalDir } = run;
  let trainSeconds = run.trainedSeconds;

  log('── the base model on the held-out problems ─────────────────────');
  const evalFile = path.join(runDir, 'eval-base.json');
  const n = o.evalProblems ?? 500;
  let base: Partial<Record<TaskName, TaskFigures>>;
  // the tasks the corpus trains (all three for the mixed 'web' corpus)
  const evalTasks = TASK_NAMES.filter((t) => cfg.corpus.tasks[t] > 0);
  const taskConfigs = Object.fromEntries(evalTasks.map((t) => [t, cfg.corpus[t]]));
  const kSamples = o.passKSamples ?? 64;
  const kProblems = o.passKProblems ?? 64;
  const evalKey = { v: 2, checkpoint: checkpointFingerprint(finalDir), n, taskConfigs, kSamples, kProblems, maxTokens: o.evalMaxTokens ?? 256 };
  const cached = readCached<Partial<Record<TaskName, TaskFigures>>>(evalFile, evalKey);
  if (cached) {
    base = cached;
    log(`evaluation already done: ${evalFile}`);
  } else {
    const model = loadCheckpoint(finalDir);
    const tok = Tokenizer.load(path.join(finalDir, 'tokenizer.json'));
    base = {};
    for (const task of evalTasks) {
      // Completions get the positions the longest prompt leaves (word problems can take ~300 with a small vocabulary).
      const problems = generateProblems(task, {
        seed: 0,
        split: 'heldout',
        n: Math.min(n, HELDOUT_CAP[task] ?? n),
        config: taskConfigs[task] as Record<string, unknown>,
      });
      const longest = Math.max(...problems.map((p) => encodeProblemPrompt(tok, p).length));
      const room = model.config.max_position_embeddings - longest;
      if (room < 16)
        throw new Error(
          `${task} prompts take up to ${longest} of the model's ${model.config.max_position_embeddings} positions; raise max_position_embeddings (modelOverrides) or the vocabulary size`,
        );
      const maxNewTokens = Math.min(o.evalMaxTokens ?? 256, room);
      const r: EvalReport = await evaluate(model, tok, { problems, n: problems.length, temperature: 0, maxNewTokens, seed: 0, examples: 0, batchSize: 32 });
      const f: TaskFigures = {
        pass1: r.pass1,
        wellFormed: r.wellFormedShare,
        meanReward: r.meanReward,
        meanTokens: r.meanCompletionTokens,
        truncated: r.truncatedShare,
        problems: problems.length,
      };
      log(
        `${task.padEnd(15)} greedy pass@1 ${(r.pass1 * 100).toFixed(1)}%  well-formed ${(r.wellFormedShare * 100).toFixed(0)}%  mean length ${r.meanCompletionTokens.toFixed(0)} tokens (${problems.length} problems)`,
      );
      if (task !== 'wordproblems' && cfg.corpus.kind === 'search') {
        const a = arithProbe(model, tok, problems.slice(0, 200), cfg.corpus.search);
        f.arith = a.overall.whole;
        f.arithByOp = wholeByOp(a);
        log(`${''.padEnd(15)} arithmetic probe: ${formatArithProbe(a)}`);
      }
      if (kSamples > 1) {
        const ks = defaultKs(kSamples);
        const sampled = await evaluate(model, tok, {
          problems: problems.slice(0, kProblems),
          temperature: 1,
          samples: kSamples,
          ks,
          maxNewTokens,
          seed: 0,
          examples: 0,
          batchSize: Math.max(1, Math.floor(256 / kSamples)),
        });
        f.passAtK = sampled.passAtK;
        log(
          `${''.padEnd(15)} pass@k at T 1 on ${Math.min(kProblems, problems.length)} problems: ${ks.map((k) => `@${k} ${(sampled.passAtK[String(k)] * 100).toFixed(1)}%`).join('  ')}`,
        );
      }
      base[task] = f;
    }
    writeCached(evalFile, evalKey, base);
  }

  const metrics = path.join(runDir, 'metrics.jsonl');
  const records = fs.existsSync(metrics) ? readMetrics(metrics) : [];
  const lastEval = records.filter((r) => r.kind === 'eval').at(-1);
  const valLoss = typeof lastEval?.val_loss === 'number' ? lastEval.val_loss : null;
  const valBpb = typeof lastEval?.val_bpb === 'number' ? lastEval.val_bpb : null;
  // a finished run reused: its training time is the last step's elapsed time
  const lastTrain = records.filter((r) => r.kind === 'train').at(-1);
  if (trainSeconds === null && typeof lastTrain?.elapsed_s === 'number') trainSeconds = lastTrain.elapsed_s;
  // the context probe of the training data (cached: this reloads it in seconds)
  const data = preparePretrainData(dataSpecOf(cfg), cfg.runsDir, () => undefined);
  const summary: PipelineSummary = {
    runDir,
    model: finalDir,
    valLoss,
    valBpb,
    steps: cfg.steps,
    trainSeconds,
    base,
    rl: null,
    contextCoverage: data.coverage.share,
  };
  writeFileAtomic(path.join(runDir, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
  return summary;
}
