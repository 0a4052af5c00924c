/**
 * `tinyseek pretrain` and `tinyseek sft`: a JSON config (a preset name or a file) with command-line
 * flags on top, validated once, then the run. Ctrl-C writes a checkpoint; `--resume` continues.
 */
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { readJsonObject } from '../run/config-file.ts';
import { MtpHeadConfig, PretrainConfig, SftConfig, TrainConfigError, presetPath, resolveConfig } from '../train/config.ts';
import { pretrainingCorpusOf, trainMtpHead } from '../train/mtp-head.ts';
import { TrainingDivergedError } from '../train/loop.ts';
import { ABLATIONS, type AblationName, runAblation } from '../jobs/ablations.ts';
import { pretrain } from '../train/pretrain.ts';
import { dataParallelFromEnv } from '../run/dp.ts';
import { sft } from '../train/sft.ts';

export function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('expected a positive integer');
  return n;
}

export function positiveNumber(v: string): number {
  const n = Number(v);
  if (!(n > 0)) throw new InvalidArgumentError('expected a positive number');
  return n;
}

interface CommonFlags {
  config?: string;
  name?: string;
  runsDir?: string;
  steps?: number;
  lr?: number;
  batchSize?: number;
  seed?: number;
  resume?: boolean;
  stopAfter?: number;
}

function overrides(f: CommonFlags, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const o: Record<string, unknown> = { ...extra };
  if (f.name !== undefined) o.name = f.name;
  if (f.runsDir !== undefined) o.runsDir = f.runsDir;
  if (f.steps !== undefined) o.steps = f.steps;
  if (f.batchSize !== undefined) o.batchSize = f.batchSize;
  if (f.seed !== undefined) o.seed = f.seed;
  if (f.lr !== undefined) o.optim = { lr: f.lr };
  return o;
}

function withCommon(cmd: Command): Command {
  return cmd
    .option('--config <file>', 'JSON config (a file, or a preset name)')
    .option('--name <name>', 'run name (the run lives in <runs-dir>/<name>)')
    .option('--runs-dir <dir>', 'where runs live')
    .option('--steps <n>', 'optimizer steps', positiveInt)
    .option('--lr <x>', 'peak learning rate', positiveNumber)
    .option('--batch-size <n>', 'sequences per micro-batch', positiveInt)
    .option('--seed <n>', 'seed', (v) => Number(v))
    .option('--resume', 'continue the run from its latest checkpoint')
    .option('--stop-after <steps>', 'train this many steps, checkpoint and stop (continue later with --resume)', positiveInt);
}

/** Runs a training command: a stop by Ctrl-C exits 130; divergence and config errors print one line and exit 1. */
export async function guarded(run: () => Promise<{ stoppedBy?: string } | object>): Promise<void> {
  try {
    const r = await run();
    if ('stoppedBy' in r && r.stoppedBy === 'interrupt') process.exitCode = 130;
  } catch (e) {
    if (e instanceof TrainingDivergedError || e instanceof TrainConfigError) {
      console.error(`tinyseek: ${e.message}`);
      process.exitCode = 1;
      return;
    }
    throw e;
  }
}

export function registerTrainCommands(program: Command): void {
  withCommon(program.command('pretrain').description('pretrain a base model on the synthetic corpus (preset pretrain-small by default)'))
    .option('--model <preset|config.json>', 'model preset or config file')
    .option('--balance <mode>', 'aux_free | aux_loss | none')
    .action(async (f: CommonFlags & { model?: string; balance?: string }) => {
      const extra: Record<string, unknown> = {};
      if (f.model !== undefined) extra.model = f.model;
      if (f.balance !== undefined) extra.balance = f.balance;
      const c = resolveConfig(PretrainConfig, f.config ?? 'pretrain-small', overrides(f, extra), f.config ?? 'preset pretrain-small');
      const dp = await dataParallelFromEnv();
      try {
        await guarded(() => pretrain(c, { resume: f.resume, stopAfter: f.stopAfter, dp }));
      } finally {
        dp?.close();
        dp?.group.destroy();
      }
    });

  withCommon(program.command('sft').description('supervised fine-tuning on chat conversations, loss on assistant tokens only (preset sft-small by default)'))
    .option('--from <dir>', 'checkpoint to fine-tune (with tokenizer.json)')
    .option('--data <corpus|file.jsonl>', "'corpus' or a JSONL file of {messages: [...]}")
    .action(async (f: CommonFlags & { from?: string; data?: string }) => {
      const extra: Record<string, unknown> = {};
      if (f.from !== undefined) extra.from = f.from;
      if (f.data !== undefined) extra.data = f.data;
      const c = resolveConfig(SftConfig, f.config ?? 'sft-small', overrides(f, extra), f.config ?? 'preset sft-small');
      const dp = await dataParallelFromEnv();
      try {
        await guarded(() => sft(c, { resume: f.resume, stopAfter: f.stopAfter, dp }));
      } finally {
        dp?.close();
        dp?.group.destroy();
      }
    });

  withCommon(
    program
      .command('train-mtp')
      .description('train an MTP draft head on top of a model trained without one, for speculative decoding (preset mtp-head-small by default)'),
  )
    .option('--from <dir>', 'the trained checkpoint (default checkpoints/small-base)')
    .action(async (f: CommonFlags & { from?: string }) => {
      const name = f.config ?? 'mtp-head-small';
      const raw = readJsonObject(name.endsWith('.json') ? name : presetPath(name));
      const from = f.from ?? String(raw.from);
      // the head learns on the corpus its base was pretrained on, unless the config names one
      const corpus = raw.corpus ?? pretrainingCorpusOf(from);
      if (!corpus) throw new Error(`${from} records no pretraining corpus (pretraining.json or its run's config.json); give "corpus" in a --config file`);
      const c = resolveConfig(MtpHeadConfig, name, overrides(f, { from, corpus }), f.config ?? 'preset mtp-head-small');
      await guarded(() => trainMtpHead(c, { resume: f.resume, stopAfter: f.stopAfter }));
    });

  program
    .command('ablate')
    .description(`one DeepSeek ablation at the small size (${ABLATIONS.join(', ')}); results in docs/ablations/`)
    .argument('<name>', ABLATIONS.join(' | '))
    .option('--steps <n>', 'pretraining steps per variant (default 250)', positiveInt)
    .option('--config <file>', 'base pretraining config (default pretrain-small)')
    .option('--runs-dir <dir>', 'where the runs live')
    .option('--docs-dir <dir>', 'where the report goes (default docs)')
    .action(async (name: string, f: { steps?: number; config?: string; runsDir?: string; docsDir?: string }) => {
      if (!(ABLATIONS as readonly string[]).includes(name)) throw new Error(`unknown ablation '${name}': use one of ${ABLATIONS.join(', ')}`);
      const results = await runAblation(name as AblationName, { steps: f.steps, base: f.config, runsDir: f.runsDir, docsDir: f.docsDir });
      console.log(
        JSON.stringify(
          results.map((r) => ({
            variant: r.name,
            val_loss: r.valLoss,
            val_bpb: r.valBpb,
            train_load: r.trainLoadMaxOverMean,
            val_load: r.valLoadMaxOverMean,
            mtp_right: r.mtpNextNextAccuracy,
            mtp_acceptance: r.mtpAcceptance,
            kv_bytes_per_token: r.kvBytesPerToken,
          })),
        ),
      );
    });
}
