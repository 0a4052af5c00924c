/**
 * `tinyseek rl` (GRPO from a checkpoint with rule rewards) and `tinyseek r1-zero` (the experiment:
 * base → GRPO → before/after on Countdown and multiplication). A JSON config (preset or file) with
 * flags on top, validated once; Ctrl-C writes a checkpoint, `--resume` continues.
 */
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { TASK_NAMES, type TaskName } from '../data/index.ts';
import { LOSS_VARIANTS, resolveRlConfig } from '../rl/config.ts';
import { R1_ZERO_TASKS, runR1Zero } from '../jobs/r1-zero.ts';
import { trainRl } from '../rl/trainer.ts';
import { dataParallelFromEnv } from '../run/dp.ts';
import { guarded, positiveInt, positiveNumber } from './train.ts';

function nonNegNumber(v: string): number {
  const n = Number(v);
  if (!(n >= 0) || !Number.isFinite(n)) throw new InvalidArgumentError('expected a number ≥ 0');
  return n;
}

function lossArg(v: string): string {
  if (!(LOSS_VARIANTS as readonly string[]).includes(v)) throw new InvalidArgumentError(`expected one of ${LOSS_VARIANTS.join(', ')}`);
  return v;
}

function taskArg(v: string): TaskName {
  if (!(TASK_NAMES as readonly string[]).includes(v)) throw new InvalidArgumentError(`expected one of ${TASK_NAMES.join(', ')}`);
  return v as TaskName;
}

function tasksArg(v: string): TaskName[] {
  return v.split(',').map((t) => taskArg(t.trim()));
}

function rewardsArg(v: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const part of v.split(',')) {
    const [name, w] = part.split('=');
    const x = Number(w);
    if (!name || w === undefined || w.trim() === '' || !Number.isFinite(x))
      throw new InvalidArgumentError(`expected name=weight pairs such as task=1,format=0.5; got '${part}'`);
    if (x < 0)
      throw new InvalidArgumentError(
        `${name.trim()}=${x}: reward weights must be ≥ 0 (a negative weight pays the policy for failing); give 0 to switch one off`,
      );
    out[name.trim()] = x;
  }
  return out;
}

interface RlFlags {
  config?: string;
  name?: string;
  runsDir?: string;
  base?: string;
  task?: TaskName;
  steps?: number;
  prompts?: number;
  groupSize?: number;
  maxNewTokens?: number;
  temperature?: number;
  loss?: string;
  beta?: number;
  mu?: number;
  lr?: number;
  rewards?: Record<string, number>;
  dynamicSampling?: boolean;
  maskTruncated?: boolean;
  curriculum?: boolean;
  seed?: number;
  resume?: boolean;
  stopAfter?: number;
}

export function registerRlCommands(program: Command): void {
  program
    .command('rl')
    .description('GRPO with rule-based rewards from a checkpoint (R1-Zero); preset rl-countdown by default')
    .option('--config <file>', 'JSON config (a file, or a preset: rl-countdown, rl-multiplication)')
    .option('--name <name>', 'run name (the run lives in <runs-dir>/<name>)')
    .option('--runs-dir <dir>', 'where runs live')
    .option('--base <dir>', 'checkpoint to start from (with tokenizer.json)')
    .option('--task <name>', TASK_NAMES.join(' | '), taskArg)
    .option('--steps <n>', 'RL steps (rollout batches)', positiveInt)
    .option('--prompts <n>', 'prompts per step', positiveInt)
    .option('--group-size <G>', 'completions per prompt', positiveInt)
    .option('--max-new-tokens <n>', 'most tokens per completion', positiveInt)
    .option('--temperature <t>', 'rollout temperature', positiveNumber)
    .option('--loss <variant>', LOSS_VARIANTS.join(' | '), lossArg)
    .option('--beta <b>', 'KL weight (k3 estimator) to the frozen base model', nonNegNumber)
    .option('--mu <n>', 'optimizer steps per rollout batch', positiveInt)
    .option('--lr <x>', 'learning rate', positiveNumber)
    .option('--rewards <list>', 'reward weights, e.g. task=1,format=0.5,length=1 (task, accuracy, format, length, language)', rewardsArg)
    .option('--dynamic-sampling', 'drop groups with equal rewards and draw more prompts')
    .option('--mask-truncated', 'leave truncated completions out of the loss')
    .option('--curriculum', "train only on problems at the edge of the base's competence (the config's curriculum settings, or their defaults)")
    .option('--no-curriculum', 'train on the whole train pool even where the config names a curriculum')
    .option('--seed <n>', 'seed', (v) => Number(v))
    .option('--resume', 'continue the run from its latest checkpoint')
    .option('--stop-after <steps>', 'run this many steps, checkpoint and stop (continue later with --resume)', positiveInt)
    .action(async (f: RlFlags) => {
      const o: Record<string, unknown> = {};
      if (f.name !== undefined) o.name = f.name;
      if (f.runsDir !== undefined) o.runsDir = f.runsDir;
      if (f.base !== undefined) o.base = f.base;
      if (f.task !== undefined) o.task = f.task;
      if (f.steps !== undefined) o.steps = f.steps;
      if (f.prompts !== undefined) o.promptsPerStep = f.prompts;
      if (f.groupSize !== undefined) o.groupSize = f.groupSize;
      if (f.maxNewTokens !== undefined) o.maxNewTokens = f.maxNewTokens;
      if (f.temperature !== undefined) o.temperature = f.temperature;
      if (f.loss !== undefined) o.loss = f.loss;
      if (f.beta !== undefined) o.beta = f.beta;
      if (f.mu !== undefined) o.mu = f.mu;
      if (f.lr !== undefined) o.optim = { lr: f.lr };
      if (f.rewards !== undefined) o.rewards = f.rewards;
      if (f.dynamicSampling) o.dynamicSampling = true;
      if (f.maskTruncated) o.maskTruncated = true;
      if (f.curriculum === false) o.curriculum = null;
      if (f.seed !== undefined) o.seed = f.seed;
      let settings = resolveRlConfig(f.config ?? 'rl-countdown', o);
      if (f.curriculum === true && !settings.curriculum) settings = resolveRlConfig(f.config ?? 'rl-countdown', { ...o, curriculum: {} });
      const dp = await dataParallelFromEnv();
      try {
        await guarded(() => trainRl(settings, { resume: f.resume, stopAfter: f.stopAfter, dp }));
      } finally {
        dp?.close();
        dp?.group.destroy();
      }
    });

  program
    .command('r1-zero')
    .description(
      'the R1-Zero experiment: base model → GRPO with rule rewards → held-out before/after, for Countdown and multiplication; report in <runs-dir>/r1-zero-report (docs/ with --update-docs)',
    )
    .option('--tasks <list>', `comma-separated tasks (default ${R1_ZERO_TASKS.join(',')})`, tasksArg)
    .option('--base <dir>', "base checkpoint (default: each preset's)")
    .option('--steps <n>', "RL steps per task (default: the preset's)", positiveInt)
    .option('--eval-n <n>', 'held-out problems of the greedy evaluation (default 500, or all a split has)', positiveInt)
    .option('--samples <k>', 'samples per problem of the sampled evaluation: pass@k up to k (default 32)', positiveInt)
    .option('--sampled-n <n>', 'problems of the sampled evaluation (default 100)', positiveInt)
    .option('--temperature <t>', 'temperature of the sampled evaluation (default 1.0)', positiveNumber)
    .option('--runs-dir <dir>', 'where the runs live')
    .option('--docs-dir <dir>', 'where the report goes (default <runs-dir>/r1-zero-report)')
    .option('--update-docs', "write the report into the repository's docs/")
    .action(
      async (f: {
        tasks?: TaskName[];
        base?: string;
        steps?: number;
        evalN?: number;
        samples?: number;
        sampledN?: number;
        temperature?: number;
        runsDir?: string;
        docsDir?: string;
        updateDocs?: boolean;
      }) => {
        await guarded(() =>
          runR1Zero({
            tasks: f.tasks,
            base: f.base,
            steps: f.steps,
            evalProblems: f.evalN,
            samples: f.samples,
            sampledProblems: f.sampledN,
            temperature: f.temperature,
            runsDir: f.runsDir,
            docsDir: f.docsDir ?? (f.updateDocs ? 'docs' : undefined),
          }),
        );
      },
    );
}
