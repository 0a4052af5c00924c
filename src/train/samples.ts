/**
 * Sample generations shown during training: greedy completions of held-out problems, one task
 * after the other (at the given difficulty, e.g. the corpus's), with the reward each earns — so a
 * user sees what the model writes, not only its loss.
 */
import { TASK_NAMES, type TaskName } from '../data/index.ts';
import { evaluate } from '../eval/index.ts';
import type { DeepSeekV3 } from '../model/transformer.ts';
import type { Tokenizer } from '../tokenizer/index.ts';
import type { MetricRecord } from '../run/metrics.ts';

export async function sampleGenerations(
  model: DeepSeekV3,
  tok: Tokenizer,
  o: { count: number; maxNewTokens: number; seed: number; taskConfigs?: Partial<Record<TaskName, Record<string, unknown>>> },
): Promise<MetricRecord[]> {
  const out: MetricRecord[] = [];
  for (let i = 0; i < o.count; i++) {
    const task = TASK_NAMES[i % TASK_NAMES.length];
    const r = await evaluate(model, tok, { task, taskConfig: o.taskConfigs?.[task], n: 1, seed: o.seed + i, maxNewTokens: o.maxNewTokens, examples: 1 });
    const ex = r.examples[0];
    if (ex) out.push({ task, completion: ex.completion, reward: ex.reward, reference: ex.reference });
  }
  return out;
}
