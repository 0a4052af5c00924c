/**
 * `tinyseek rl`: GRPO from a checkpoint with rule-based rewards (R1-Zero). One step:
 *
 *   rollout   promptsPerStep train-split prompts × G sampled completions (rollout.ts), scored;
 *             with dynamic sampling, groups whose rewards are all equal are dropped and more
 *             prompts are drawn (up to maxRolloutRounds batches) to fill the batch
 *   advantage group-normalised (grpo.ts); truncated completions masked when asked
 *   update    μ optimizer steps over the whole batch, each accumulating micro-batches of
 *             forward + policy loss + backward (π_old = the policy before the first of them; π_ref
 *             the frozen base model), gradient clipping, AdamW, the aux-loss-free bias update
 *   watch     one JSONL line (rewards per function, accuracy, lengths, truncation, self-checks, KL,
 *             clip ratios, entropy, zero-spread groups, rollout / update time), sample completions,
 *             the progress bar, held-out greedy accuracy every evalEvery steps, plots at the end
 *
 * A run lives in <runsDir>/<name>/ like a pretraining run (config.json, metrics.jsonl,
 * samples.jsonl, checkpoints/, final/, plots/). Checkpoints hold the policy, the optimizer, the
 * prompt order's position and the step (the sampler's seed is derived from the step), so a resumed
 * run continues where it stopped. The step loop is the run layer's driver (run/driver.ts): Ctrl-C
 * finishes the step, checkpoints and returns; a non-finite loss or gradient stops the run before the
 * weights change, and so does a policy whose output has become uniform (entropy near ln V).
 *
 * It wires parts together; the parts know nothing of each other.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type Tensor, noGrad, tidy } from '../core/index.ts';
import { type IteratorState, PromptLoader, type Problem, generateProblems } from '../data/index.ts';
import { evaluate } from '../eval/index.ts';
import { loadCheckpoint } from '../model/checkpoint.ts';
import type { DeepSeekV3 } from '../model/transformer.ts';
import { AdamW, applyLr, weightDecayGroups } from '../nn/index.ts';
import { Tokenizer } from '../tokenizer/index.ts';
import { pointLatestAt } from '../run/checkpointing.ts';
import { policyRunaway } from '../run/divergence.ts';
import { type StepOutput, loadFigures, optimizerStep, parametersFinite, runSteps } from '../run/driver.ts';
import type { MetricRecord } from '../run/metrics.ts';
import type { ChartSpec } from '../run/plots.ts';
import { checkpointWriter, openRunDir, resumePoint, runDirOf, saveFinalModel } from '../run/run-dir.ts';
import { type RunSink, openRunSink } from '../run/run-sink.ts';
import { type DataParallel, onLead, openRunDirOnLead, silentSink } from '../run/dp.ts';
import { RL_RUN_CONTROL_KEYS, REWARD_NAMES, type RlSettings } from './config.ts';
import { type LossNorm, type PolicyLossStats, advantageTensor, groupAdvantages, policyLoss } from './grpo.ts';
import { completionLogprobs, sequenceBatch, sharedPromptBatch, sharedPromptLogprobs } from './logprobs.ts';
import { type RewardWeights, parseRewardWeights } from './rewards.ts';
import { describeCurriculum, measureCurriculum, readCurriculum, writeCurriculum } from './curriculum.ts';
import { type Rollout, concatRollouts, rollout, selectGroups } from './rollout.ts';
import { detectSelfCheck } from './selfcheck.ts';

export const RL_CHARTS: ChartSpec[] = [
  {
    name: 'reward',
    title: 'reward and accuracy',
    yTitle: 'mean over completions',
    series: [
      { label: 'reward', key: 'reward' },
      { label: 'accuracy', key: 'accuracy' },
      { label: 'held-out greedy pass@1', key: 'heldout_pass1' },
    ],
  },
  { name: 'reward_by_function', title: 'reward per function', yTitle: 'mean', series: [{ label: 'reward', key: 'reward_by_fn' }] },
  {
    name: 'length',
    title: 'completion length',
    yTitle: 'tokens',
    series: [
      { label: 'mean', key: 'completion_len_mean' },
      { label: 'max', key: 'completion_len_max' },
    ],
  },
  {
    name: 'self_check',
    title: 'completions that check or revise their work',
    yTitle: 'share',
    series: [
      { label: 'check or revise', key: 'self_check_share' },
      { label: 'revise', key: 'revise_share' },
      { label: 'truncated', key: 'truncated_share' },
    ],
  },
  { name: 'kl', title: 'KL to the base model (k3)', yTitle: 'nats per token', series: [{ label: 'kl', key: 'kl' }] },
  {
    name: 'clip',
    title: 'clipped tokens',
    yTitle: 'share of tokens',
    series: [
      { label: 'low', key: 'clip_low' },
      { label: 'high', key: 'clip_high' },
    ],
  },
  { name: 'entropy', title: 'policy entropy', yTitle: 'nats per token', series: [{ label: 'entropy', key: 'entropy' }] },
  { name: 'zero_spread', title: 'groups with no reward spread', yTitle: 'share of groups', series: [{ label: 'zero spread', key: 'zero_spread_share' }] },
  {
    name: 'time',
    title: 'time per step',
    yTitle: 'seconds',
    series: [
      { label: 'rollout', key: 'rollout_s' },
      { label: 'update', key: 'update_s' },
    ],
  },
  { name: 'grad_norm', title: 'gradient norm (before clipping)', yTitle: 'global L2 norm', series: [{ label: 'grad norm', key: 'grad_norm' }] },
  { name: 'expert_load', title: 'expert load (max / mean tokens per expert)', yTitle: 'max / mean', series: [{ label: 'layer', key: 'expert_load' }] },
];

export interface RlOptions {
  resume?: boolean;
  /** Run this many steps, checkpoint and stop (continue later with resume). */
  stopAfter?: number;
  log?: (s: string) => void;
  /**
   * Data parallelism (tinyseek launch): each rank samples its share of every step's prompt groups,
   * the figures are gathered, and the update is data-parallel over the ranks' shares; rank 0 writes.
   */
  dp?: DataParallel | null;
}

export interface RlResult {
  runDir: string;
  finalDir: string | null;
  stoppedBy: 'done' | 'interrupt' | 'paused';
  step: number;
  elapsed: number;
  lastCheckpoint: string | null;
}

/** Held-out completions written to samples.jsonl at each evaluation (the runs dashboard's side-by-side). */
const HELDOUT_SAMPLES = 2;

const mean = (xs: readonly number[]): number => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);
const std = (xs: readonly number[]): number => {
  const m = mean(xs);
  return xs.length ? Math.sqrt(mean(xs.map((x) => (x - m) ** 2))) : 0;
};

/** The train-split problems a run draws its prompts from. */
export function trainProblems(c: Pick<RlSettings, 'task' | 'taskConfig' | 'trainProblems' | 'seed'>): Problem[] {
  return generateProblems(c.task, { seed: c.seed, split: 'train', n: c.trainProblems, config: c.taskConfig });
}

/**
 * The prompts' pool: the train problems, or with `curriculum` those of them at the edge of the
 * base's competence (curriculum.ts) — read back from the run directory on a resume, else sampled
 * now (every rank samples the same, with the same seed) and written there by the lead.
 */
function curriculumOf(
  c: RlSettings,
  model: DeepSeekV3,
  tok: Tokenizer,
  runDir: string,
  weights: RewardWeights,
  dp: DataParallel | null,
  log: (s: string) => void,
): Problem[] {
  const pool = trainProblems(c);
  if (!c.curriculum) return pool;
  let cur = readCurriculum(runDir, c.curriculum);
  if (!cur) {
    cur = noGrad(() =>
      measureCurriculum(model, tok, pool, c.curriculum!, {
        maxNewTokens: c.maxNewTokens,
        temperature: c.temperature,
        topP: c.topP,
        topK: c.topK,
        stopAtAnswer: c.stopAtAnswer,
        seed: rolloutSeed(c.seed, 1_000_000, 0), // a stream no RL step uses
        weights,
        lengthCache: c.lengthCache,
        format: c.format,
      }),
    );
    if (!dp || dp.lead) writeCurriculum(runDir, cur);
  }
  log(describeCurriculum(cur));
  if (cur.kept.length < c.promptsPerStep) {
    throw new Error(
      `curriculum: only ${cur.kept.length} of ${cur.rates.length} sampled problems lie in the success band [${c.curriculum.minRate}, ${c.curriculum.maxRate}], fewer than promptsPerStep (${c.promptsPerStep}); sample more problems (curriculum.problems) or widen the band`,
    );
  }
  return cur.kept.map((i) => pool[i]);
}

/** Sampler seed of a rollout round: a pure function of the run seed, the step and the round. */
const rolloutSeed = (seed: number, step: number, round: number): number => (seed * 1_000_003 + step * 17 + round) % 2 ** 31;

interface UpdateNumbers {
  loss: number;
  /** Expert load of the last optimizer step's tokens (read before the bias update resets it). */
  load: ReturnType<DeepSeekV3['expertLoad']>;
  gradNorms: number[];
  stats: PolicyLossStats;
  updates: number;
  /** Learning rate of the first optimizer step. */
  lr: number;
}

export interface UpdateInput {
  model: DeepSeekV3;
  /** The frozen base model (null: no KL term and no KL tracking). */
  ref: DeepSeekV3 | null;
  optimizer: AdamW;
  rollout: Rollout;
  /** One advantage per completion of the rollout. */
  advantages: Float64Array;
  settings: RlSettings;
  pad: number;
  /** Learning rate of an optimizer step, by its index over the run (warmup counts optimizer steps). */
  lrAt(optimizerStep: number): number;
  /** Optimizer steps done before this update. */
  optimizerStepsDone: number;
  /** Data parallelism: this rank's rollout is its share; divisors and gradients are the group's. */
  dp?: DataParallel | null;
}

/** μ optimizer steps over the rollout's rows (GRPO's update of one RL step). */
export async function policyUpdate(u: UpdateInput): Promise<UpdateNumbers> {
  const { model, ref, optimizer, rollout: r, advantages, settings: c, pad } = u;
  const rows = r.completions.length;
  const keep = r.truncated.map((t) => !(c.maskTruncated && t));
  const rowPrompts = r.problems.map((_, i) => r.prompts[Math.floor(i / r.groupSize)]);
  const chunks: number[][] = [];
  for (let s = 0; s < rows; s += c.microBatch) chunks.push(Array.from({ length: Math.min(c.microBatch, rows - s) }, (_, i) => s + i));
  let activeTokens = 0;
  r.completions.forEach((ids, i) => {
    if (keep[i]) activeTokens += ids.length;
  });
  // the divisors count the whole update batch: over every rank's share under data parallelism
  const [gRows, gTokens, gChunks] = u.dp ? await u.dp.sum([rows, activeTokens, chunks.length]) : [rows, activeTokens, chunks.length];
  const norm: LossNorm = { variant: c.loss, sequences: gRows, tokens: gTokens, microBatches: gChunks, maxCompletionLength: c.maxNewTokens };
  const oldLogp: (Tensor | null)[] = chunks.map(() => null);
  const refLogp: (Tensor | null)[] = chunks.map(() => null);
  const out: UpdateNumbers = {
    loss: 0,
    load: new Map(),
    gradNorms: [],
    stats: { tokens: 0, clippedLow: 0, clippedHigh: 0, klSum: ref ? 0 : null, ratioSum: 0 },
    updates: 0,
    lr: u.lrAt(u.optimizerStepsDone),
  };
  try {
    for (let it = 0; it < c.mu; it++) {
      applyLr(optimizer, u.lrAt(u.optimizerStepsDone + it));
      let loss = 0;
      chunks.forEach((rowsOf, k) => {
        if (u.dp && k === chunks.length - 1) u.dp.armGradients(model.parameters()); // its buckets sum during this backward
        const s = tidy(() => {
          // each prompt once for its completions (sharedPromptBatch), or one row per completion
          const shared = c.sharePrompt
            ? sharedPromptBatch(
                r.prompts,
                rowsOf.map((i) => Math.floor(i / r.groupSize)),
                rowsOf.map((i) => r.completions[i]),
                pad,
                rowsOf.map((i) => keep[i]),
              )
            : null;
          const sb = shared
            ? null
            : sequenceBatch(
                rowsOf.map((i) => rowPrompts[i]),
                rowsOf.map((i) => r.completions[i]),
                pad,
                rowsOf.map((i) => keep[i]),
              );
          const logprobsOf = (m: DeepSeekV3): { logp: Tensor; auxLoss: Tensor | null } =>
            shared ? sharedPromptLogprobs(m, shared) : completionLogprobs(m, sb!);
          const maskOf = (shared ? shared.mask : sb!.mask) as Tensor; // (R, T)
          if (it === 0 && ref) refLogp[k] = noGrad(() => logprobsOf(ref).logp).keep(); // (R, T)
          const { logp, auxLoss } = logprobsOf(model); // (R, T)
          if (it === 0 && c.mu > 1) oldLogp[k] = logp.detach().keep();
          const old = c.mu > 1 ? (oldLogp[k] as Tensor) : logp.detach(); // μ = 1: π_old is the current policy
          const adv = advantageTensor(
            rowsOf.map((i) => advantages[i]),
            logp,
          ); // (R)
          const mask = maskOf.to(logp.device); // (R, T)
          const pl = policyLoss(
            { logp, oldLogp: old, refLogp: refLogp[k], advantages: adv, mask },
            { epsLow: c.epsLow, epsHigh: c.epsHigh, beta: c.beta, norm },
          );
          const total = auxLoss ? pl.loss.add(auxLoss.div(chunks.length)) : pl.loss;
          total.backward();
          return { loss: pl.loss.item(), stats: pl.stats };
        });
        loss += s.loss;
        if (it === 0) {
          out.stats.tokens += s.stats.tokens;
          out.stats.ratioSum += s.stats.ratioSum;
          if (out.stats.klSum !== null && s.stats.klSum !== null) out.stats.klSum += s.stats.klSum;
        }
        if (it === c.mu - 1) {
          // ρ = 1 until the policy has moved: the last iteration's clipping is the one to report
          out.stats.clippedLow += s.stats.clippedLow;
          out.stats.clippedHigh += s.stats.clippedHigh;
        }
      });
      if (u.dp) loss = await syncUpdate(model, u.dp, loss);
      const step = await optimizerStep(model, optimizer, { loss, clipNorm: c.optim.clipNorm, gamma: c.biasUpdateSpeed, what: 'GRPO loss', dp: u.dp });
      out.load = step.load;
      out.loss = loss;
      out.gradNorms.push(step.gradNorm);
      out.updates++;
    }
  } finally {
    for (const t of [...oldLogp, ...refLogp]) t?.dispose();
  }
  if (u.dp) {
    const st = out.stats;
    const [tokens, clippedLow, clippedHigh, ratioSum, klSum] = await u.dp.sum([st.tokens, st.clippedLow, st.clippedHigh, st.ratioSum, st.klSum ?? 0]);
    out.stats = { tokens, clippedLow, clippedHigh, ratioSum, klSum: st.klSum === null ? null : klSum };
  }
  return out;
}

/** A rollout's per-row figures (rewards by function: [function][row]). */
interface RowFigures {
  totals: number[];
  correct: number[];
  lens: number[];
  truncated: number[];
  selfCheck: number[];
  revises: number[];
  entropy: number[];
  byFn: number[][];
}

function rowFigures(r: Rollout, fns: readonly string[]): RowFigures {
  return {
    totals: r.rewards.map((x) => x.total),
    correct: r.rewards.map((x) => (x.correct ? 1 : 0)),
    lens: r.completions.map((x) => x.length),
    truncated: r.truncated.map((t) => (t ? 1 : 0)),
    selfCheck: r.selfCheck.map((x) => (x.any ? 1 : 0)),
    revises: r.selfCheck.map((x) => (x.revises ? 1 : 0)),
    entropy: [...r.entropy],
    byFn: fns.map((name) => r.rewards.map((x) => x.values[name as keyof typeof x.values])),
  };
}

/** Every rank's rows, in rank order (each rank has as many rows: its share of the same rounds). */
async function gatherRows(dp: DataParallel, f: RowFigures): Promise<RowFigures> {
  const cols: number[][] = [f.totals, f.correct, f.lens, f.truncated, f.selfCheck, f.revises, f.entropy, ...f.byFn];
  const parts = await dp.gather(cols.flat());
  const n = f.totals.length;
  const col = (k: number): number[] => parts.flatMap((p) => p.slice(k * n, (k + 1) * n));
  return {
    totals: col(0),
    correct: col(1),
    lens: col(2),
    truncated: col(3),
    selfCheck: col(4),
    revises: col(5),
    entropy: col(6),
    byFn: f.byFn.map((_, k) => col(7 + k)),
  };
}

/** Sums one optimizer step's gradients, loss and expert load over the ranks; returns the loss. */
async function syncUpdate(model: DeepSeekV3, dp: DataParallel, loss: number): Promise<number> {
  const load = model.expertLoad();
  const layers = [...load.keys()];
  const sums = await dp.syncGradients(model.parameters(), [loss, ...layers.flatMap((l) => load.get(l)?.tokens ?? [])]);
  let at = 1;
  const global = new Map<number, number[]>();
  for (const l of layers) {
    const n = load.get(l)?.tokens.length ?? 0;
    global.set(l, sums.slice(at, at + n));
    at += n;
  }
  model.setExpertLoad(global);
  return sums[0];
}

export async function trainRl(c: RlSettings, o: RlOptions = {}): Promise<RlResult> {
  const log = o.dp && !o.dp.lead ? () => {} : (o.log ?? ((s: string) => console.log(s)));
  const tokFile = path.join(c.base, 'tokenizer.json');
  if (!fs.existsSync(path.join(c.base, 'config.json')))
    throw new Error(
      `base checkpoint ${c.base} has no config.json; pretrain one first (tinyseek pipeline --from-scratch --no-rl) or pass --base checkpoints/small-base (the shipped base model) or another checkpoint directory`,
    );
  if (!fs.existsSync(tokFile)) throw new Error(`base checkpoint ${c.base} has no tokenizer.json beside its weights`);
  const weights = parseRewardWeights(c.rewards);
  const dp = o.dp ?? null;
  if (dp && c.promptsPerStep % dp.worldSize !== 0) {
    throw new Error(`promptsPerStep ${c.promptsPerStep} does not split over ${dp.worldSize} ranks: choose a multiple of ${dp.worldSize}`);
  }
  const { runDir, latest } = dp
    ? await openRunDirOnLead(dp, () => openRunDir(c, o.resume, RL_RUN_CONTROL_KEYS), runDirOf(c), o.resume)
    : openRunDir(c, o.resume, RL_RUN_CONTROL_KEYS);

  const tok = Tokenizer.load(tokFile);
  const model = loadCheckpoint(c.base);
  model.train(true);
  const ref = c.beta > 0 || c.trackKl ? loadCheckpoint(c.base) : null;
  ref?.eval();
  const optimizer = new AdamW(weightDecayGroups(model, c.optim.weightDecay), { lr: c.optim.lr, betas: c.optim.betas, eps: c.optim.eps });
  const resumed = resumePoint(latest, model, optimizer, log);
  if (dp) {
    await dp.broadcastModule(model);
    dp.shardOptimizerState(optimizer);
  }
  const problems = curriculumOf(c, model, tok, runDir, weights, dp, log);
  const loader = new PromptLoader(tok, problems, {
    batchSize: c.promptsPerStep,
    seed: c.seed,
    resume: resumed.data as IteratorState | undefined,
    format: c.format,
  });
  const pad = Math.max(tok.special.pad, 0);
  const vocab = model.config.vocab_size;
  const sink: RunSink =
    dp && !dp.lead
      ? silentSink()
      : openRunSink(runDir, {
          total: c.steps,
          resumeAt: o.resume ? resumed.step : null,
          logEvery: c.logEvery,
          log,
          plots: { defaults: false, series: RL_CHARTS },
        });
  log(
    `rl ${c.name}: ${c.task} from ${c.base}, ${c.steps} steps of ${c.promptsPerStep} prompts × ${c.groupSize} completions (≤ ${c.maxNewTokens} tokens, T ${c.temperature}), ` +
      `loss ${c.loss}, ε ${c.epsLow}/${c.epsHigh}, β ${c.beta}, μ ${c.mu}, lr ${c.optim.lr}` +
      `${c.dynamicSampling ? ', dynamic sampling' : ''}${c.maskTruncated ? ', truncated masked' : ''}` +
      (dp ? `, data-parallel over ${dp.worldSize} ranks (${c.promptsPerStep / dp.worldSize} prompts each${dp.zero1 ? ', ZeRO-1' : ''})` : ''),
  );
  /** Linear warmup over optimizer steps (μ per RL step), then constant. */
  const lrAt = (optimizerStepIndex: number): number =>
    c.optim.warmupSteps > 0 ? c.optim.lr * Math.min(1, (optimizerStepIndex + 1) / c.optim.warmupSteps) : c.optim.lr;

  const runStep = async (stepNo: number): Promise<StepOutput> => {
    const t0 = performance.now();
    // rollout (dynamic sampling may draw more rounds); advantages once per round, kept groups' selected
    const drawn: Rollout[] = [];
    const kept: Rollout[] = [];
    const keptAdvantages: number[] = [];
    let keptGroups = 0;
    let zeroGroups = 0;
    let groups = 0;
    for (let round = 0; round < (c.dynamicSampling ? c.maxRolloutRounds : 1); round++) {
      const batch = loader.next();
      // under data parallelism each rank samples its slice of the prompt groups, with its own stream
      const share = dp ? batch.problems.length / dp.worldSize : batch.problems.length;
      const mine = dp ? batch.problems.slice(dp.rank * share, (dp.rank + 1) * share) : batch.problems;
      const r = rollout(model, tok, mine, {
        groupSize: c.groupSize,
        maxNewTokens: c.maxNewTokens,
        temperature: c.temperature,
        topP: c.topP,
        topK: c.topK,
        stopAtAnswer: c.stopAtAnswer,
        seed: rolloutSeed(c.seed, stepNo - 1, round) + (dp ? dp.rank * 7919 : 0),
        weights,
        lengthCache: c.lengthCache,
        format: c.format,
      });
      drawn.push(r);
      const adv = groupAdvantages(
        r.rewards.map((x) => x.total),
        c.groupSize,
        { scale: c.scaleRewards, eps: c.advantageEps },
      );
      groups += adv.zeroSpread.length;
      zeroGroups += adv.zeroSpread.filter(Boolean).length;
      const spread = adv.zeroSpread.flatMap((z, g) => (z ? [] : [g]));
      let useful: number[];
      if (!c.dynamicSampling) useful = adv.zeroSpread.map((_, g) => g);
      else if (!dp) useful = spread.slice(0, c.promptsPerStep - keptGroups);
      else {
        // the step's room for groups goes to the ranks in rank order, as one process would fill it
        const counts = (await dp.gather([spread.length])).map((x) => x[0]);
        const before = counts.slice(0, dp.rank).reduce((a, b) => a + b, 0);
        useful = spread.slice(0, Math.max(0, Math.min(spread.length, c.promptsPerStep - keptGroups - before)));
        keptGroups +=
          Math.min(
            counts.reduce((a, b) => a + b, 0),
            c.promptsPerStep - keptGroups,
          ) - useful.length; // the other ranks' kept groups; this rank's are added below
      }
      if (useful.length) kept.push(c.dynamicSampling ? selectGroups(r, useful) : r);
      for (const g of useful) keptAdvantages.push(...adv.advantages.subarray(g * c.groupSize, (g + 1) * c.groupSize));
      keptGroups += useful.length;
      if (keptGroups >= c.promptsPerStep) break;
    }
    const all = concatRollouts(drawn);
    const rolloutSeconds = (performance.now() - t0) / 1000;
    const fnNames = REWARD_NAMES.filter((name) => !(weights[name] === 0 && name !== 'accuracy' && name !== 'format'));
    // the step's figures are over every rank's rows
    let fig = rowFigures(all, fnNames);
    let genTokens = all.stats.generatedTokens;
    let genTokensPerSecond = all.stats.tokensPerSecond;
    if (dp) {
      fig = await gatherRows(dp, fig);
      const localKept = c.dynamicSampling ? 0 : keptGroups;
      const sums = await dp.sum([groups, zeroGroups, genTokens, genTokensPerSecond, localKept]);
      [groups, zeroGroups, genTokens, genTokensPerSecond] = sums;
      if (!c.dynamicSampling) keptGroups = sums[4];
    }
    const entropy = mean(fig.entropy);
    const runaway = policyRunaway(entropy, vocab);
    if (runaway) return { record: {}, progress: {}, tokens: 0, runaway, lr: lrAt((stepNo - 1) * c.mu) };
    // update (under data parallelism every rank joins it while any rank kept a group)
    const t1 = performance.now();
    const upd = (dp ? keptGroups > 0 : kept.length > 0)
      ? await policyUpdate({
          model,
          ref,
          optimizer,
          rollout: kept.length ? concatRollouts(kept) : selectGroups(drawn[0], []),
          advantages: Float64Array.from(keptAdvantages),
          settings: c,
          pad,
          lrAt,
          optimizerStepsDone: (stepNo - 1) * c.mu,
          dp,
        })
      : null;
    const updateSeconds = (performance.now() - t1) / 1000;
    const seconds = (performance.now() - t0) / 1000;

    const totals = fig.totals;
    const lens = fig.lens;
    const byFnMean: Record<string, number> = {};
    const byFnStd: Record<string, number> = {};
    fnNames.forEach((name, k) => {
      byFnMean[name] = mean(fig.byFn[k]);
      byFnStd[name] = std(fig.byFn[k]);
    });
    const groupStds: number[] = [];
    for (let g = 0; g < totals.length / c.groupSize; g++) groupStds.push(std(totals.slice(g * c.groupSize, (g + 1) * c.groupSize)));
    const tokens = upd?.stats.tokens ?? 0;
    const lr = upd?.lr ?? lrAt((stepNo - 1) * c.mu);
    const record: MetricRecord = {
      kind: 'rl',
      reward: mean(totals),
      reward_std: mean(groupStds),
      reward_by_fn: byFnMean,
      reward_std_by_fn: byFnStd,
      accuracy: mean(fig.correct),
      completion_len_mean: mean(lens),
      completion_len_max: Math.max(...lens),
      truncated_share: mean(fig.truncated),
      self_check_share: mean(fig.selfCheck),
      revise_share: mean(fig.revises),
      kl: upd && upd.stats.klSum !== null && tokens > 0 ? upd.stats.klSum / tokens : null,
      clip_low: upd && tokens > 0 ? upd.stats.clippedLow / tokens : null,
      clip_high: upd && tokens > 0 ? upd.stats.clippedHigh / tokens : null,
      clip_ratio: upd && tokens > 0 ? (upd.stats.clippedLow + upd.stats.clippedHigh) / tokens : null,
      entropy,
      zero_spread_share: groups ? zeroGroups / groups : 0,
      groups_used: keptGroups,
      rollout_rounds: drawn.length,
      loss: upd?.loss ?? null,
      grad_norm: upd ? mean(upd.gradNorms) : null,
      lr,
      rollout_s: rolloutSeconds,
      update_s: updateSeconds,
      step_s: seconds,
      gen_tokens: genTokens,
      gen_tokens_per_s: genTokensPerSecond,
      ...loadFigures(upd?.load ?? new Map()),
    };
    for (let i = 0; i < Math.min(c.sampleCount, all.texts.length); i++) {
      const row = (i * c.groupSize + (stepNo % c.groupSize)) % all.texts.length; // different groups, a rotating member
      const rw = all.rewards[row];
      sink.sample({
        step: stepNo,
        row,
        problem: JSON.stringify(all.problems[row]),
        completion: all.texts[row],
        reward: rw.total,
        rewards: rw.values,
        correct: rw.correct,
        self_check: all.selfCheck[row].any,
        tokens: all.completions[row].length,
      });
    }
    if (!upd) sink.log(`step ${stepNo}: every group had equal rewards after ${drawn.length} rounds; no update`);
    if (typeof record.kl === 'number' && record.kl > c.klAlarm) {
      sink.log(
        `step ${stepNo}: KL ALARM — ${record.kl.toFixed(4)} nats per token to the base model, above the bound ${c.klAlarm} (klAlarm); lower optim.lr or raise beta`,
      );
    }
    return {
      record,
      progress: {
        reward: (record.reward as number).toFixed(3),
        acc: `${((record.accuracy as number) * 100).toFixed(1)}%`,
        len: (record.completion_len_mean as number).toFixed(0),
        check: `${((record.self_check_share as number) * 100).toFixed(0)}%`,
        tokensPerSecond: genTokensPerSecond,
      },
      tokens: genTokens,
      lr,
    };
  };

  const evaluateHeldout = async (step: number): Promise<MetricRecord> => {
    const r = await evaluate(model, tok, {
      task: c.task,
      taskConfig: c.taskConfig,
      n: c.evalProblems,
      temperature: 0,
      maxNewTokens: c.maxNewTokens,
      seed: c.seed,
      examples: HELDOUT_SAMPLES,
      format: c.format,
    });
    model.train(true);
    // the same held-out problems at every evaluation (same seed): what the run learned, side by side
    r.examples.forEach((x, index) =>
      sink.sample({
        step,
        heldout: true,
        index,
        problem: JSON.stringify(x.problem),
        reference: x.reference,
        completion: x.completion,
        reward: x.reward,
        correct: x.reward === 1,
        self_check: detectSelfCheck(x.completion).any,
      }),
    );
    sink.log(`step ${step}: held-out greedy pass@1 ${(r.pass1 * 100).toFixed(1)}% (${c.evalProblems} problems)`);
    return { heldout_pass1: r.pass1, heldout_mean_reward: r.meanReward, heldout_len: r.meanCompletionTokens };
  };
  const save = checkpointWriter(runDir, {
    model,
    optimizer,
    tokenizer: tok,
    keep: c.keepCheckpoints,
    kind: 'rl',
    config: c,
    data: () => loader.state(),
    flush: () => sink.flush(),
  });
  const repoint = (dir: string): void => pointLatestAt(runDir, dir);
  const io = dp ? onLead(dp, optimizer, { save, evaluate: evaluateHeldout, repoint }) : { save, evaluate: evaluateHeldout, repoint };

  let result: Awaited<ReturnType<typeof runSteps>>;
  try {
    result = await runSteps({
      startStep: resumed.step,
      steps: c.steps,
      runStep,
      evalEvery: c.evalEvery,
      checkpointEvery: c.checkpointEvery,
      ...io,
      weightsFinite: () => parametersFinite(model),
      sink,
      tokensSeen: resumed.tokensSeen,
      elapsed: resumed.elapsed,
      resumedFrom: latest,
      stopAfter: o.stopAfter,
      anyRank: dp ? (flag) => dp.any(flag) : undefined,
    });
  } finally {
    sink.close();
  }
  // the policy keeps its base's chat template, unless it was trained in R1's chat template
  const baseChat = path.join(c.base, 'chat.json');
  const inherited = fs.existsSync(baseChat) ? (JSON.parse(fs.readFileSync(baseChat, 'utf8')) as { template?: unknown }) : null;
  const chat = c.format === 'r1' && inherited?.template !== 'r1' ? { template: 'r1' } : inherited;
  const finalDir = result.stoppedBy === 'done' && (!dp || dp.lead) ? await saveFinalModel(runDir, model, tok, log, chat) : null;
  await sink.plot();
  if (dp) await dp.barrier();
  return { runDir, finalDir, stoppedBy: result.stoppedBy, step: result.step, elapsed: result.elapsed, lastCheckpoint: result.lastCheckpoint };
}
