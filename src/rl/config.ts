/**
 * Configuration of `tinyseek rl` (GRPO): a zod schema whose every field says what it is for, JSON
 * presets in presets/, validated once where a run starts. The aggregation variant sets the defaults
 * that belong to it (DAPO: ε_high 0.28, dynamic sampling, truncated completions masked; Dr. GRPO: no
 * std scaling); any field given explicitly wins.
 *
 * This module knows hyper-parameters, not tensors.
 */
import { z } from 'zod';
import { PROMPT_FORMATS, TASK_NAMES } from '../data/index.ts';
import { RunName, TrainConfigError, merge, readJsonObject } from '../run/config-file.ts';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const posInt = z.number().int().positive();
const nonNegInt = z.number().int().nonnegative();

export const LOSS_VARIANTS = ['grpo', 'bnpo', 'dr_grpo', 'dapo'] as const;
export type LossVariant = (typeof LOSS_VARIANTS)[number];

export const REWARD_NAMES = ['task', 'accuracy', 'format', 'length', 'language'] as const;
export type RewardName = (typeof REWARD_NAMES)[number];

const weight = z.number().nonnegative('a reward weight must be ≥ 0 (a negative weight pays the policy for failing); give 0 to switch it off');

export const RlConfig = z
  .object({
    name: RunName,
    runsDir: z.string().min(1).default('runs'),
    seed: nonNegInt.describe('seeds the prompt order and the sampler'),
    base: z.string().min(1).describe('the checkpoint to start from (a directory with config.json, weights and tokenizer.json)'),
    task: z.enum(TASK_NAMES).describe('the task whose train split gives the prompts'),
    taskConfig: z.record(z.string(), z.unknown()).default({}).describe("the task generator's settings (difficulty); the same are used for evaluation"),
    format: z
      .enum(PROMPT_FORMATS)
      .default('r1-zero')
      .describe(
        "how problems are asked, in rollouts and evaluations: r1-zero (R1-Zero's prompt, for a base model) or r1 (DeepSeek-R1's chat template, for a chat model)",
      ),
    trainProblems: posInt.default(20000).describe('distinct train-split problems to draw prompts from'),
    curriculum: z
      .object({
        problems: posInt.default(512).describe('train problems sampled before RL (the first of the train pool)'),
        samples: z.number().int().min(2).default(8).describe('completions per sampled problem, drawn as the rollouts draw them'),
        minRate: z.number().min(0).max(1).default(0.125).describe('lowest success rate of a kept problem'),
        maxRate: z.number().min(0).max(1).default(0.875).describe('highest success rate of a kept problem'),
      })
      .strict()
      .refine((c) => c.minRate <= c.maxRate, { message: 'minRate must not exceed maxRate' })
      .nullable()
      .default(null)
      .describe(
        "train only on problems at the edge of the base model's competence: each of `problems` train problems sampled `samples` times before RL, those whose success rate lies in [minRate, maxRate] kept (null: the whole pool)",
      ),
    steps: posInt.describe('RL steps; each is one rollout batch followed by μ optimizer steps'),
    promptsPerStep: posInt.describe('prompts (groups) per rollout batch'),
    groupSize: z.number().int().min(2).describe('G: completions per prompt'),
    maxNewTokens: posInt.describe('most tokens per completion'),
    temperature: z.number().positive().default(1).describe('sampling temperature of the rollouts'),
    topP: z.number().gt(0).max(1).default(1),
    topK: nonNegInt.default(0).describe('0: all tokens'),
    stopAtAnswer: z.boolean().default(true).describe('end a completion at its first </answer>'),
    loss: z.enum(LOSS_VARIANTS).default('grpo').describe('aggregation of the per-token loss: grpo, bnpo, dr_grpo or dapo'),
    epsLow: z.number().positive().default(0.2).describe('ε_low: the ratio is clipped below at 1 − ε_low'),
    epsHigh: z.number().positive().optional().describe('ε_high: the ratio is clipped above at 1 + ε_high (default 0.2; dapo 0.28)'),
    beta: z.number().min(0).default(0).describe('β of the KL penalty to the frozen reference (k3 estimator); 0: no penalty'),
    trackKl: z.boolean().default(true).describe('measure the KL to the reference even when β = 0 (one more forward per update)'),
    klAlarm: z
      .number()
      .positive()
      .default(0.1)
      .describe('nats per token: a step whose KL to the reference exceeds it logs an alarm (the policy is drifting from its base; lower the lr or raise β)'),
    mu: posInt.default(1).describe('μ: optimizer steps per rollout batch (each over the whole batch)'),
    microBatch: posInt.default(16).describe('completions per forward/backward in the update'),
    sharePrompt: z
      .boolean()
      .default(true)
      .describe(
        'the update runs each prompt once for all its completions (one sequence per prompt, completions masked from each other); false: one row per completion, the prompt recomputed G times',
      ),
    scaleRewards: z.boolean().optional().describe('divide advantages by the group std (default true; dr_grpo false)'),
    advantageEps: z.number().positive().default(1e-4).describe('ε added to the group std'),
    dynamicSampling: z
      .boolean()
      .optional()
      .describe('drop groups whose rewards are all equal and draw more prompts to fill the batch (default false; dapo true)'),
    maxRolloutRounds: posInt.default(3).describe('dynamic sampling: most rollout batches drawn per step'),
    maskTruncated: z.boolean().optional().describe('leave completions cut by maxNewTokens out of the loss (default false; dapo true)'),
    rewards: z
      .object({
        task: weight.default(1).describe("the task's rule reward (0 / 0.1 / 1, TinyZero)"),
        accuracy: weight.default(0).describe('1 when the answer is right, else 0'),
        format: weight.default(0).describe('1 for <think>…</think> followed by <answer>…</answer>, else 0'),
        length: weight.default(0).describe("DAPO's overlong penalty: 0 up to maxNewTokens − lengthCache tokens, then down to −1"),
        language: weight.default(0).describe("R1's language consistency: share of the reasoning's words in the Latin script"),
      })
      .strict()
      .prefault({}),
    lengthCache: posInt.default(32).describe('length reward: tokens before maxNewTokens where the penalty starts'),
    optim: z
      .object({
        lr: z.number().positive(),
        weightDecay: z.number().nonnegative().default(0),
        betas: z.tuple([z.number().min(0).lt(1), z.number().min(0).lt(1)]).default([0.9, 0.99]),
        eps: z.number().positive().default(1e-8),
        clipNorm: z.number().positive().default(1),
        warmupSteps: nonNegInt.default(0).describe('optimizer steps of linear warmup; then constant'),
      })
      .strict(),
    biasUpdateSpeed: z.number().min(0).default(0.001).describe('γ of the aux-loss-free bias update after each optimizer step (0: frozen)'),
    evalEvery: nonNegInt.default(0).describe('steps between held-out evaluations during the run (0: none)'),
    evalProblems: posInt.default(64).describe('held-out problems per evaluation during the run (greedy)'),
    checkpointEvery: posInt.default(10),
    keepCheckpoints: posInt.default(2),
    sampleCount: nonNegInt.default(2).describe('sample completions written to samples.jsonl each step'),
    logEvery: posInt.default(5).describe('steps between plain log lines when stdout is not a terminal'),
  })
  .strict();

export type RlConfigInput = z.input<typeof RlConfig>;

/** The config with the variant's defaults filled in. */
export type RlSettings = Omit<z.output<typeof RlConfig>, 'epsHigh' | 'scaleRewards' | 'dynamicSampling' | 'maskTruncated'> & {
  epsHigh: number;
  scaleRewards: boolean;
  dynamicSampling: boolean;
  maskTruncated: boolean;
};

/** Fills the fields the aggregation variant decides, unless set. */
export function withVariantDefaults(c: z.output<typeof RlConfig>): RlSettings {
  const dapo = c.loss === 'dapo';
  return {
    ...c,
    epsHigh: c.epsHigh ?? (dapo ? 0.28 : 0.2),
    scaleRewards: c.scaleRewards ?? c.loss !== 'dr_grpo',
    dynamicSampling: c.dynamicSampling ?? dapo,
    maskTruncated: c.maskTruncated ?? dapo,
  };
}

export const RL_RUN_CONTROL_KEYS = ['steps', 'evalEvery', 'evalProblems', 'checkpointEvery', 'keepCheckpoints', 'logEvery', 'sampleCount'];

const presetDir = join(dirname(fileURLToPath(import.meta.url)), 'presets');

export function rlPresetPath(name: string): string {
  return join(presetDir, `${name}.json`);
}

/** A preset (by name) or a JSON file, merged with overrides, validated, variant defaults filled. */
export function resolveRlConfig(base: string, overrides: Record<string, unknown> = {}): RlSettings {
  const raw = base.endsWith('.json') ? readJsonObject(base) : readJsonObject(rlPresetPath(base));
  const r = RlConfig.safeParse(merge(raw, overrides));
  if (!r.success) throw new TrainConfigError(base, r.error.issues);
  return withVariantDefaults(r.data);
}

/** Validates an in-memory config (tests, the experiment). */
export function parseRlConfig(input: RlConfigInput, source = 'rl config'): RlSettings {
  const r = RlConfig.safeParse(input);
  if (!r.success) throw new TrainConfigError(source, r.error.issues);
  return withVariantDefaults(r.data);
}
