/**
 * How text becomes ids on the data side, in one place so that pretraining documents, RL prompts and
 * decoded completions agree:
 *  - the four tags <think> </think> <answer> </answer> in prompts and corpus documents become their
 *    single added-token ids (the same ids in pretraining and in RL); everything else is ordinary
 *    text, so a document containing the string "<｜end▁of▁sentence｜>" cannot forge an EOS (for
 *    text without control-token strings this equals encode(text, { allowSpecial: true }));
 *  - a pretraining document is [BOS] + text + [EOS]; an RL prompt is [BOS] + prompt text, and the
 *    ids of a prompt are an exact prefix of the ids of the same prompt followed by its completion
 *    (the prompt ends with the added token <think>, where the tokenizer cuts the text anyway);
 *  - a completion is decoded up to its first EOS (or pad), with control tokens dropped and the
 *    tags kept, which is the string the reward functions score.
 *
 * It knows the Tokenizer's API, nothing about BPE internals or batches.
 */
import type { Tokenizer } from '../tokenizer/index.ts';

const TAGS = /<think>|<\/think>|<answer>|<\/answer>/g;

export function encodeText(tok: Tokenizer, text: string): number[] {
  const tagId: Record<string, number> = {
    '<think>': tok.special.thinkOpen,
    '</think>': tok.special.thinkClose,
    '<answer>': tok.special.answerOpen,
    '</answer>': tok.special.answerClose,
  };
  const out: number[] = [];
  let last = 0;
  for (const m of text.matchAll(TAGS)) {
    const id = tagId[m[0]];
    if (id < 0) continue; // a tokenizer without this tag: leave it as text
    if (m.index > last) for (const t of tok.encode(text.slice(last, m.index))) out.push(t);
    out.push(id);
    last = m.index + m[0].length;
  }
  if (last < text.length) for (const t of tok.encode(last === 0 ? text : text.slice(last))) out.push(t);
  return out;
}

export function encodeDocument(tok: Tokenizer, text: string): number[] {
  return [tok.special.bos, ...encodeText(tok, text), tok.special.eos];
}

export function encodePrompt(tok: Tokenizer, prompt: string): number[] {
  return [tok.special.bos, ...encodeText(tok, prompt)];
}

/** The text a reward function scores, from the ids generated after the prompt. */
export function decodeCompletion(tok: Tokenizer, ids: ArrayLike<number>): string {
  const out: number[] = [];
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (id === tok.special.eos || id === tok.special.pad) break;
    out.push(id);
  }
  return tok.decode(out, { skipSpecial: true });
}
