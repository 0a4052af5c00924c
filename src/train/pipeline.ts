/**
 * The main job: prepare the data and the tokenizer, pretrain the `small` model on the synthetic
 * corpus, and measure the base model on every task's held-out split. Reruns reuse what is done:
 * cached data, a finished pretraining run (its final/ model), an interrupted one (resumed from its
 * checkpoint), and evaluation results newer than the model.
 *
 * Later stages (RL) continue from the base model this writes.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TASK_NAMES, type TaskName } from '../data/index.ts';
import { type EvalReport, evaluate } from '../eval/index.ts';
import { loadCheckpoint } from '../model/checkpoint.ts';
import { Tokenizer } from '../tokenizer/index.ts';
import { latestCheckpoint } from './checkpointing.ts';
import { PretrainConfig, resolveConfig } from './config.ts';
import { configDifferences, pretrain, runDirOf } from './pretrain.ts';

export interface PipelineOptions {
  /** Pretraining config: a preset name or file (default pretrain-small). */
  config?: string;
  overrides?: Record<string, unknown>;
  /** Held-out problems per task for the base-model evaluation. */
  evalProblems?: number;
  evalMaxTokens?: number;
  log?: (s: string) => void;
}

export interface TaskFigures {
  pass1: number;
  wellFormed: number;
  meanReward: number;
  meanTokens: number;
  truncated: number;
  problems: number;
}

export interface PipelineSummary {
  runDir: string;
  model: string;
  valLoss: number | null;
  valBpb: number | null;
  steps: number;
  trainSeconds: number | null;
  base: Record<TaskName, TaskFigures>;
}

function isNewer(a: string, b: string): boolean {
  return fs.existsSync(a) && fs.existsSync(b) && fs.statSync(a).mtimeMs >= fs.statSync(b).mtimeMs;
}

export async function runPipeline(o: PipelineOptions = {}): Promise<PipelineSummary> {
  const log = o.log ?? ((s: string) => console.log(s));
  const source = o.config ?? 'pretrain-small';
  const cfg = resolveConfig(PretrainConfig, source, o.overrides ?? {}, source);
  const runDir = runDirOf(cfg);
  const finalDir = path.join(runDir, 'final');
  const savedConfig = path.join(runDir, 'config.json');
  const sameRun = fs.existsSync(savedConfig) && configDifferences(JSON.parse(fs.readFileSync(savedConfig, 'utf8')), cfg).length === 0;

  log('── 1/2 pretraining ─────────────────────────────────────────────');
  let trainSeconds: number | null = null;
  if (sameRun && fs.existsSync(path.join(finalDir, 'config.json'))) {
    log(`pretraining already done: ${finalDir} (delete ${runDir} to train again)`);
  } else {
    if (fs.existsSync(runDir) && !sameRun) {
      throw new Error(`${runDir} holds a run with other settings; choose another name (--name) or delete it`);
    }
    const r = await pretrain(cfg, { resume: sameRun && latestCheckpoint(runDir) !== null, log });
    if (r.stoppedBy !== 'done') throw new Error(`pretraining stopped at step ${r.step}; run the same command again to continue`);
    trainSeconds = r.elapsed;
  }

  log('── 2/2 the base model on the held-out problems ────────────────');
  const evalFile = path.join(runDir, 'eval-base.json');
  const n = o.evalProblems ?? 100;
  let base: Record<TaskName, TaskFigures>;
  const cached = isNewer(evalFile, path.join(finalDir, 'config.json')) ? (JSON.parse(fs.readFileSync(evalFile, 'utf8')) as { n: number; base: Record<TaskName, TaskFigures> }) : null;
  if (cached && cached.n === n) {
    base = cached.base;
    log(`evaluation already done: ${evalFile}`);
  } else {
    const model = loadCheckpoint(finalDir);
    const tok = Tokenizer.load(path.join(finalDir, 'tokenizer.json'));
    base = {} as Record<TaskName, TaskFigures>;
    // Prompts (word problems are the longest) take up to ~250 positions with a small vocabulary;
    // completions get the rest.
    const maxNewTokens = Math.max(32, Math.min(o.evalMaxTokens ?? 256, model.config.max_position_embeddings - 256));
    for (const task of TASK_NAMES) {
      const r: EvalReport = await evaluate(model, tok, { task, n, temperature: 0, maxNewTokens, seed: 0, examples: 0 });
      base[task] = {
        pass1: r.pass1,
        wellFormed: r.wellFormedShare,
        meanReward: r.meanReward,
        meanTokens: r.meanCompletionTokens,
        truncated: r.truncatedShare,
        problems: n,
      };
      log(`${task.padEnd(15)} greedy pass@1 ${(r.pass1 * 100).toFixed(1)}%  well-formed ${(r.wellFormedShare * 100).toFixed(0)}%  mean length ${r.meanCompletionTokens.toFixed(0)} tokens`);
    }
    fs.writeFileSync(evalFile, `${JSON.stringify({ n, base }, null, 2)}\n`);
  }

  const metrics = path.join(runDir, 'metrics.jsonl');
  let valLoss: number | null = null;
  let valBpb: number | null = null;
  if (fs.existsSync(metrics)) {
    const lines = fs.readFileSync(metrics, 'utf8').trim().split('\n');
    for (const line of lines.reverse()) {
      const r = JSON.parse(line) as { kind?: string; val_loss?: number; val_bpb?: number };
      if (r.kind === 'eval') {
        valLoss = r.val_loss ?? null;
        valBpb = r.val_bpb ?? null;
        break;
      }
    }
  }
  const summary: PipelineSummary = { runDir, model: finalDir, valLoss, valBpb, steps: cfg.steps, trainSeconds, base };
  fs.writeFileSync(path.join(runDir, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
  log('── summary ─────────────────────────────────────────────────────');
  log(`base model ${finalDir}: validation loss ${valLoss?.toFixed(4) ?? '?'} nats/token, ${valBpb?.toFixed(4) ?? '?'} bits/byte`);
  for (const task of TASK_NAMES) log(`  ${task.padEnd(15)} held-out greedy pass@1 ${(base[task].pass1 * 100).toFixed(1)}% (${base[task].problems} problems)`);
  return summary;
}
