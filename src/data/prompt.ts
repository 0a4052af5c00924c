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
