/**
 * The two ways a task's problem is put to a model, in one place so that GRPO rollouts, rejection
 * sampling, SFT examples and evaluation ask the same question the same way:
 *
 *   r1-zero   DeepSeek-R1-Zero's prompt ([BOS] + the task's prompt text, ending in `<think>`): what a
 *             pretrained base continues (tasks: promptOf; encode.ts: encodePrompt)
 *   r1        DeepSeek-R1's chat template: [BOS]<｜User｜>{question and format instruction}
 *             <｜Assistant｜><think>\n (tokenizer/chat.ts), what a chat model trained on
 *             conversations answers
 *
 * In both the reply is the reasoning, `</think>`, then `<answer>…</answer>`, scored by the task's
 * rule the same way.
 *
 * It knows the task texts, the chat template and the tokenizer; not batches or models.
 */
import { type ChatMessage, type Tokenizer, encodeChat } from '../tokenizer/index.ts';
import { encodePrompt } from './encode.ts';
import { framedInstruction } from './prompt.ts';
import { instructionOf, promptOf, questionOf } from './tasks/index.ts';
import type { Problem } from './tasks/types.ts';

export const PROMPT_FORMATS = ['r1-zero', 'r1'] as const;
export type PromptFormat = (typeof PROMPT_FORMATS)[number];

/** A problem's R1-Zero prompt: [BOS] + the task's prompt text (it ends in `<think>`). */
export function encodeProblemPrompt(tok: Tokenizer, p: Problem): Int32Array {
  return Int32Array.from(encodePrompt(tok, promptOf(p)));
}

/**
 * The user turn a problem becomes in R1's chat template: the task's question and the format
 * instruction of the problem's frame — the compact frame's short one for compact-frame problems
 * (what a model pretrained on that frame has read after every question), the task's own otherwise.
 */
export const userTurnOf = (problem: Problem): ChatMessage => {
  const frame = problem.task === 'wordproblems' ? undefined : problem.promptFrame;
  return { role: 'user', content: `${questionOf(problem)} ${framedInstruction(frame, instructionOf(problem))}` };
};

/**
 * A problem as a generation prompt in R1's chat template (…<｜User｜>{question}<｜Assistant｜><think>\n):
 * how a model trained on chat conversations is asked.
 */
export function encodeChatProblemPrompt(tok: Tokenizer, problem: Problem): Int32Array {
  return Int32Array.from(encodeChat(tok, [userTurnOf(problem)], { addGenerationPrompt: true }).ids);
}

/** A problem's prompt in the given format. */
export function encodeTaskPrompt(tok: Tokenizer, p: Problem, format: PromptFormat): Int32Array {
  return format === 'r1' ? encodeChatProblemPrompt(tok, p) : encodeProblemPrompt(tok, p);
}
