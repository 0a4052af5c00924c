/**
 * Which answer in a completion counts. TinyZero (verl/utils/reward_score/countdown.py) takes the
 * LAST match of `<answer>(.*?)</answer>` and strips it. We take the last complete pair too, with
 * three stated differences:
 *  - the whole completion is searched (TinyZero first keeps only the text after "Assistant:" and
 *    then only its last line, so there an answer followed by a newline scores 0); our reward
 *    functions receive the completion alone, without the prompt;
 *  - the answer may span lines (TinyZero's `.` does not cross newlines);
 *  - a pair opens at the NEAREST "<answer>" before its "</answer>": a stray unclosed "<answer>"
 *    earlier in the reasoning does not swallow a later well-formed answer (TinyZero's non-greedy
 *    match would start at the stray tag and score the junk between).
 *
 * Consequences, each a rule:
 *  - repeated answers: the last complete pair wins ("<answer>1</answer> … <answer>2</answer>" → "2");
 *  - nested tags: "<answer><answer>3</answer></answer>" → "3" (the inner pair; the outer closing
 *    tag has no opening tag left and is ignored);
 *  - an unclosed tag yields nothing on its own ("<answer>5" → no answer), and an unclosed tag after
 *    a complete pair leaves the pair as the answer;
 *  - a "</answer>" with no "<answer>" before it (since the previous pair) is ignored;
 *  - tags are exact and case-sensitive ("<Answer>" and "<answer >" are not tags);
 *  - the content is returned raw; tasks trim it (JavaScript's String.prototype.trim, which also
 *    removes Unicode spaces);
 *  - empty content ("<answer></answer>") is a found, empty answer.
 *
 * It knows nothing about what a valid answer is; tasks decide. Linear time on any input.
 */

export const ANSWER_OPEN = '<answer>';
export const ANSWER_CLOSE = '</answer>';
export const THINK_OPEN = '<think>';
export const THINK_CLOSE = '</think>';

export type ExtractedAnswer = { found: false } | { found: true; content: string; start: number; end: number };

/** The last complete `<answer>…</answer>` pair, opening at the nearest `<answer>` (see the rules above). */
export function extractAnswer(completion: string): ExtractedAnswer {
  let best: ExtractedAnswer = { found: false };
  let lastOpen = -1;
  let nextOpen = completion.indexOf(ANSWER_OPEN);
  let nextClose = completion.indexOf(ANSWER_CLOSE);
  while (nextClose >= 0) {
    if (nextOpen >= 0 && nextOpen < nextClose) {
      lastOpen = nextOpen;
      nextOpen = completion.indexOf(ANSWER_OPEN, nextOpen + ANSWER_OPEN.length);
      continue;
    }
    if (lastOpen >= 0) {
      const start = lastOpen + ANSWER_OPEN.length;
      best = { found: true, content: completion.slice(start, nextClose), start, end: nextClose };
      lastOpen = -1;
    }
    nextClose = completion.indexOf(ANSWER_CLOSE, nextClose + ANSWER_CLOSE.length);
  }
  return best;
}
