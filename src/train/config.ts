/**
 * Training configuration for `tinyseek pretrain` and `tinyseek sft`: a zod schema whose every field
 * says what it is for, JSON presets beside it, validated once where a run starts. Flags on the
 * command line override the file; the effective config is written into the run directory, and a
 * resumed run must match it.
 *
 * This module knows hyper-parameters, not tensors.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { CorpusConfig } from '../data/index.ts';
import { RunName, TrainConfigError, merge, readJsonObject } from '../run/config-file.ts';

export { TrainConfigError, merge, readJsonObject } from '../run/config-file.ts';

const posInt = z.number().int().positive();
const nonNegInt = z.number().int().nonnegative();

export const OptimConfig = z
  .object({
    lr: z.number().positive().describe('peak learning rate'),
    minLr: z.number().nonnegative().describe('learning rate at the end of the decay'),
    weightDecay: z.number().nonnegative().describe('decoupled weight decay on matrices (not on norms or the bias)'),
    betas: z.tuple([z.number().min(0).lt(1), z.number().min(0).lt(1)]).default([0.9, 0.95]),
    eps: z.number().positive().default(1e-8),
    clipNorm: z.number().positive().describe('max global gradient norm'),
    schedule: z.enum(['cosine', 'wsd']).describe('warmup + cosine, or warmup-stable-decay'),
    warmupSteps: nonNegInt,
    decayFraction: z.number().gt(0).max(1).default(0.2).describe('wsd only: share of the run spent decaying'),
  })
  .strict();

export const BalanceMode = z
  .enum(['aux_free', 'aux_loss', 'none'])
  .describe("aux_free: DeepSeek-V3's bias update (γ); aux_loss: a conventional balance loss with weight alpha, no bias; none: neither");

const common = {
  name: RunName,
  runsDir: z.string().min(1).default('runs'),
  seed: nonNegInt.describe('seeds model init and data order'),
  steps: posInt.describe('optimizer steps'),
  batchSize: posInt.describe('sequences per micro-batch'),
  gradAccum: posInt.default(1).describe('micro-batches per optimizer step'),
  seqLen: posInt.describe('tokens per sequence'),
  optim: OptimConfig,
  mtpWeight: z.number().min(0).default(0.3).describe('λ of the MTP loss (DeepSeek-V3: 0.3, then 0.1)'),
  balance: BalanceMode.default('aux_free'),
  biasUpdateSpeed: z.number().min(0).default(0.001).describe('γ of the aux-loss-free bias update'),
  biasFreezeFraction: z.number().min(0).max(1).default(0.1).describe('γ is 0 over this final share of the run (V3 froze it near the end)'),
  auxLossAlpha: z.number().min(0).default(0.01).describe("balance: 'aux_loss' — weight of the balance loss"),
  evalEvery: posInt.describe('steps between evaluations (validation loss, bits per byte, samples)'),
  evalBatches: posInt.default(8).describe('validation micro-batches per evaluation'),
  sampleCount: nonNegInt.default(2).describe('held-out prompts to generate from at each evaluation'),
  sampleTokens: posInt.default(96).describe('max new tokens of each sample'),
  checkpointEvery: posInt.describe('steps between checkpoints (also on Ctrl-C and at the end)'),
  keepCheckpoints: posInt.default(2).describe('how many step checkpoints to keep'),
  logEvery: posInt.default(10).describe('steps between plain log lines when stdout is not a terminal'),
};

export const PretrainConfig = z
  .object({
    ...common,
    model: z.string().describe('a preset name (tiny, small, gpt, …) or a config.json path'),
    modelOverrides: z.record(z.string(), z.unknown()).default({}).describe('config.json keys to change (ablations)'),
    vocabSize: posInt.describe('BPE vocabulary size (the model config follows it)'),
    splitDigits: z.boolean().default(true).describe('one token per digit (DeepSeek LLM, LLaMA); false: GPT-4-style groups of up to three'),
    corpus: CorpusConfig.default(CorpusConfig.parse({})).describe('the synthetic base corpus'),
    trainDocuments: posInt.describe('corpus documents to train on'),
    packing: z
      .enum(['stream', 'documents'])
      .default('stream')
      .describe(
        "'stream': fixed windows over the concatenated documents (GPT-2 style); 'documents': whole documents per row, so no token is trained apart from its problem",
      ),
    valDocuments: posInt.describe('documents of the validation set (drawn from a separate seed)'),
    fimRate: z
      .number()
      .min(0)
      .max(1)
      .default(0)
      .describe('share of training documents rearranged into fill-in-the-middle PSM order (DeepSeek-V3: 0.1); > 0 adds the FIM tokens to the tokenizer'),
  })
  .strict()
  .refine((c) => c.optim.warmupSteps < c.steps, { message: 'optim.warmupSteps must be below steps', path: ['optim', 'warmupSteps'] })
  .refine((c) => c.optim.minLr <= c.optim.lr, { message: 'optim.minLr must not exceed optim.lr', path: ['optim', 'minLr'] });

export type PretrainConfig = z.output<typeof PretrainConfig>;

export const SftConfig = z
  .object({
    ...common,
    from: z.string().min(1).describe('the checkpoint to fine-tune (a directory with config.json, weights and tokenizer.json)'),
    data: z
      .union([z.literal('corpus'), z.string().min(1)])
      .describe("'corpus': conversations built from the corpus's correct, self-checked solutions; or a JSONL file of {messages: [...]}"),
    examples: posInt.default(4000).describe("'corpus' data: conversations to build"),
    logitTeacher: z
      .string()
      .min(1)
      .nullable()
      .default(null)
      .describe(
        "logit distillation: a teacher checkpoint with the student's tokenizer, whose next-token distributions the student learns too (the loss (1 − α)·CE + α·KL_τ); null: plain SFT",
      ),
    logitWeight: z.number().min(0).max(1).default(0.5).describe('α of the logit distillation loss'),
    logitTemperature: z.number().gt(0).default(1).describe('τ of the logit distillation loss (Hinton et al. 2015)'),
    template: z
      .enum(['r1', 'r1-zero'])
      .default('r1')
      .describe(
        "r1: DeepSeek-R1's chat template (reasoning in the think block); r1-zero: the R1-Zero prompt and completion (lines with problem and completion, as tinyseek distill writes), the format tinyseek eval and GRPO use",
      ),
    valFraction: z.number().gt(0).lt(1).default(0.05),
  })
  .strict()
  .refine((c) => c.optim.warmupSteps < c.steps, { message: 'optim.warmupSteps must be below steps', path: ['optim', 'warmupSteps'] });

export type SftConfig = z.output<typeof SftConfig>;

export const MtpHeadConfig = z
  .object({
    ...common,
    from: z.string().min(1).describe('the trained model to add a draft head to (a checkpoint directory with config.json, weights, tokenizer.json)'),
    corpus: CorpusConfig.describe(
      "the documents to train on: the base model's own pretraining corpus (read from its pretraining.json when omitted on the CLI)",
    ),
    trainDocuments: posInt.describe('corpus documents to train on'),
    valDocuments: posInt.default(200).describe('documents of the validation set (a separate index range)'),
  })
  .strict()
  .refine((c) => c.optim.warmupSteps < c.steps, { message: 'optim.warmupSteps must be below steps', path: ['optim', 'warmupSteps'] });

export type MtpHeadConfig = z.output<typeof MtpHeadConfig>;

const presetDir = join(dirname(fileURLToPath(import.meta.url)), 'presets');

export function presetPath(name: string): string {
  return join(presetDir, `${name}.json`);
}

/** Base preset (by name or file), merged with overrides, validated. */
export function resolveConfig<S extends z.ZodType>(schema: S, base: string, overrides: Record<string, unknown>, source: string): z.output<S> {
  const raw = base.endsWith('.json') ? readJsonObject(base) : readJsonObject(presetPath(base));
  const r = schema.safeParse(merge(raw, overrides));
  if (!r.success) throw new TrainConfigError(source, r.error.issues);
  return r.data;
}
