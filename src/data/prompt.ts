/**
 * The R1-Zero / TinyZero prompt template, shared by every task. A prompt is
 *
 *   A conversation between User and Assistant. The user asks a question, and the Assistant solves it. The assistant first thinks about the reasoning process in the mind and then provides the user with the answer.\n
 *   User: {question} {instruction}\n
 *   Assistant: Let me solve this step by step.\n
 *   <think>
 *
 * (no trailing newline: the model continues right after "<think>"). This is TinyZero's Countdown
 * "base" template (examples/data_preprocess/countdown.py) character for character when the
 * question and instruction are TinyZero's; every task here uses the same frame so that a small
 * model learns one format. The completion is everything the model writes after "<think>".
 *
 * The compact frame (`promptFrame: 'compact'` in a task's generator settings) keeps the R1-Zero
 * shape — the user's question, then the assistant's reasoning inside <think> </think> and its answer
 * inside <answer> </answer> — without the system line and the long instruction:
 *
 *   User: {question} Think in <think> </think>, answer in <answer> </answer>.\n
 *   Assistant: <think>
 *
 * It is the frame of the shipped reasoning models: a model trained from scratch reads its ~25
 * tokens instead of the ~100 of TinyZero's frame, which it would otherwise process for every
 * training document and every rollout. Problems loaded from user task files keep TinyZero's frame.
 *
 * It knows nothing about any task; tasks supply the question and the instruction.
 */

export const SYSTEM_LINE =
  'A conversation between User and Assistant. The user asks a question, and the Assistant solves it. The assistant first thinks about the reasoning process in the mind and then provides the user with the answer.';

export const ASSISTANT_PREFIX = 'Assistant: Let me solve this step by step.\n<think>';

/** The full prompt for one question. */
export function r1ZeroPrompt(question: string, instruction: string): string {
  return `${SYSTEM_LINE}\nUser: ${question} ${instruction}\n${ASSISTANT_PREFIX}`;
}

/** TinyZero's format instruction with an example answer, e.g. "(1 + 2) / 3". */
export function answerInstruction(example: string): string {
  return `Show your work in <think> </think> tags. And return the final answer in <answer> </answer> tags, for example <answer> ${example} </answer>.`;
}

/**
 * The "web" framing the corpus also uses for some documents (a plain Q/A page, no system line),
 * so the base model has seen the task outside the exact prompt too.
 */
export function plainPrompt(question: string): string {
  return `Question: ${question}\nAnswer: <think>`;
}

/** How a problem's prompt is framed: TinyZero's text, or the compact R1-Zero-shaped frame. */
export type PromptFrame = 'tinyzero' | 'compact';
export const PROMPT_FRAMES: readonly PromptFrame[] = ['tinyzero', 'compact'];

export const COMPACT_ASSISTANT_PREFIX = 'Assistant: <think>';

/** The compact frame's format instruction. */
export const COMPACT_INSTRUCTION = 'Think in <think> </think>, answer in <answer> </answer>.';

/** The compact frame for one question (see the module header). */
export function compactPrompt(question: string): string {
  return `User: ${question} ${COMPACT_INSTRUCTION}\n${COMPACT_ASSISTANT_PREFIX}`;
}

/** The format instruction a question carries in the given frame (the task's own, or the compact one). */
export function framedInstruction(frame: PromptFrame | undefined, instruction: string): string {
  return frame === 'compact' ? COMPACT_INSTRUCTION : instruction;
}

/** The prompt of a question in the given frame. */
export function framedPrompt(frame: PromptFrame | undefined, question: string, instruction: string): string {
  return frame === 'compact' ? compactPrompt(question) : r1ZeroPrompt(question, instruction);
}
