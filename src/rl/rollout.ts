/**
 * Rollouts for GRPO: G sampled completions of each prompt from the generation engine (one prefill
 * per prompt, its cache shared by the group), decoded and scored by the reward functions, with the
 * per-token entropies of the policy and the self-check verdict of each completion.
 *
 * Rows follow the engine's group layout: prompt p's g-th completion is row p·G + g.
 *
 * It knows the engine, the tokenizer and the rewards; not the loss or the optimizer.
 */
import { type Problem, type PromptFormat, decodeCompletion, encodeTaskPrompt } from '../data/index.ts';
import { type GenerateStats, generate } from '../engine/index.ts';
import type { DeepSeekV3 } from '../model/transformer.ts';
import type { Tokenizer } from '../tokenizer/index.ts';
import { type RewardBreakdown, type RewardWeights, scoreRewards } from './rewards.ts';
import { type SelfCheck, detectSelfCheck } from './selfcheck.ts';

export interface RolloutOptions {
  groupSize: number;
  maxNewTokens: number;
  temperature: number;
  topP: number;
  topK: number;
  stopAtAnswer: boolean;
  seed: number;
  weights: RewardWeights;
  lengthCache: number;
  /** How the prompts are asked: the R1-Zero prompt or R1's chat template. */
  format: PromptFormat;
}

export interface Rollout {
  groupSize: number;
  /** [P] encoded prompt of each group. */
  prompts: Int32Array[];
  /** [P·G] the problem of each row. */
  problems: Problem[];
  /** [P·G] generated ids, the stop id included. */
  completions: number[][];
  texts: string[];
  rewards: RewardBreakdown[];
  truncated: boolean[];
  /** [P·G] mean entropy (nats) of the temperature-1 policy over each completion's steps. */
  entropy: number[];
  selfCheck: SelfCheck[];
  stats: GenerateStats;
}

export function rollout(model: DeepSeekV3, tok: Tokenizer, problems: readonly Problem[], o: RolloutOptions): Rollout {
  const G = o.groupSize;
  const sp = tok.special;
  const prompts = problems.map((p) => encodeTaskPrompt(tok, p, o.format));
  const r = generate(model, prompts, {
    maxNewTokens: o.maxNewTokens,
    groupSize: G,
    temperature: o.temperature,
    topP: o.topP,
    topK: o.topK,
    seed: o.seed,
    eosIds: [sp.eos].filter((id) => id >= 0),
    stopSequences: o.stopAtAnswer && sp.answerClose >= 0 ? [[sp.answerClose]] : [],
    padId: sp.pad >= 0 ? sp.pad : undefined,
    entropy: true,
  });
  const rows = problems.length * G;
  const rowProblems: Problem[] = [];
  const texts: string[] = [];
  const rewards: RewardBreakdown[] = [];
  const truncated: boolean[] = [];
  const entropy: number[] = [];
  const selfCheck: SelfCheck[] = [];
  for (let row = 0; row < rows; row++) {
    const p = problems[Math.floor(row / G)];
    const ids = r.tokens[row];
    const text = decodeCompletion(tok, ids);
    const cut = r.finishReason[row] === 'length';
    rowProblems.push(p);
    texts.push(text);
    truncated.push(cut);
    rewards.push(scoreRewards(text, p, o.weights, { tokens: ids.length, truncated: cut, maxNewTokens: o.maxNewTokens, lengthCache: o.lengthCache }));
    const ent = r.entropies?.[row] ?? [];
    entropy.push(ent.length ? ent.reduce((a, b) => a + b, 0) / ent.length : 0);
    selfCheck.push(detectSelfCheck(text));
  }
  return { groupSize: G, prompts, problems: rowProblems, completions: r.tokens, texts, rewards, truncated, entropy, selfCheck, stats: r.stats };
}

/** The rows of the given groups (in order), as a rollout of its own. */
export function selectGroups(r: Rollout, groups: readonly number[]): Rollout {
  const G = r.groupSize;
  const rows = groups.flatMap((g) => Array.from({ length: G }, (_, i) => g * G + i));
  return {
    groupSize: G,
    prompts: groups.map((g) => r.prompts[g]),
    problems: rows.map((i) => r.problems[i]),
    completions: rows.map((i) => r.completions[i]),
    texts: rows.map((i) => r.texts[i]),
    rewards: rows.map((i) => r.rewards[i]),
    truncated: rows.map((i) => r.truncated[i]),
    entropy: rows.map((i) => r.entropy[i]),
    selfCheck: rows.map((i) => r.selfCheck[i]),
    stats: r.stats,
  };
}

/** Rollouts one after the other, as one (stats summed). */
export function concatRollouts(rs: readonly Rollout[]): Rollout {
  if (rs.length === 1) return rs[0];
  const stats = { ...rs[0].stats };
  for (const r of rs.slice(1)) {
    stats.rows += r.stats.rows;
    stats.promptTokens += r.stats.promptTokens;
    stats.generatedTokens += r.stats.generatedTokens;
    stats.steps += r.stats.steps;
    stats.compactions += r.stats.compactions;
    stats.prefillMs += r.stats.prefillMs;
    stats.decodeMs += r.stats.decodeMs;
  }
  const ms = stats.prefillMs + stats.decodeMs;
  stats.tokensPerSecond = stats.generatedTokens / Math.max(ms / 1000, 1e-9);
  return {
    groupSize: rs[0].groupSize,
    prompts: rs.flatMap((r) => r.prompts),
    problems: rs.flatMap((r) => r.problems),
    completions: rs.flatMap((r) => r.completions),
    texts: rs.flatMap((r) => r.texts),
    rewards: rs.flatMap((r) => r.rewards),
    truncated: rs.flatMap((r) => r.truncated),
    entropy: rs.flatMap((r) => r.entropy),
    selfCheck: rs.flatMap((r) => r.selfCheck),
    stats,
  };
}
