/**
 * The copy probe: can a model restate the numbers of its prompt? Every worked solution starts by
 * copying them ("Numbers: 2, 11, 18. Target: 9." for Countdown, "We need 47 * 83." for
 * multiplication — the corpus's own openings), so a model that cannot copy cannot solve anything.
 *
 * The prompt is followed by that opening, teacher-forced in one forward pass, and the probe counts
 * the number tokens of the opening (digits, with a digit-splitting tokenizer) that the model's most
 * likely next token gets right. Chance is about 10% per digit; a model that reads its prompt scores
 * near 100%.
 *
 * It knows prompts, the model's forward and the tokenizer; not training.
 */
import { noGrad, tensor, tidy } from '../core/index.ts';
import { type Problem, encodeProblemPrompt } from '../data/index.ts';
import type { DeepSeekV3 } from '../model/transformer.ts';
import type { Tokenizer } from '../tokenizer/index.ts';

/** The opening that restates a problem's numbers, or null for a task without one. */
export function restatement(p: Problem): string | null {
  if (p.task === 'countdown') return `\nNumbers: ${p.nums.join(', ')}. Target: ${p.target}.`;
  if (p.task === 'multiplication') return `\nWe need ${p.a} * ${p.b}.`;
  return null;
}

export interface CopyProbe {
  /** Digits of restated numbers predicted right / digits counted. */
  digitAccuracy: number;
  /** Problems whose every restated digit was predicted right. */
  exactShare: number;
  digits: number;
  problems: number;
}

/** A token made of digits only (one digit with a digit-splitting tokenizer). */
const NUMBER_TOKEN = /^[0-9]+$/;

export function copyProbe(model: DeepSeekV3, tok: Tokenizer, problems: readonly Problem[]): CopyProbe {
  let right = 0;
  let digits = 0;
  let exact = 0;
  let counted = 0;
  const device = model.headWeight().device;
  const wasTraining = model.training;
  model.eval();
  try {
    for (const p of problems) {
      const text = restatement(p);
      if (text === null) continue;
      const prompt = [...encodeProblemPrompt(tok, p)];
      const cont = tok.encode(text);
      const ids = [...prompt, ...cont];
      if (ids.length > model.config.max_position_embeddings)
        throw new Error(`copyProbe: ${ids.length} ids exceed the model's ${model.config.max_position_embeddings} positions`);
      const predicted = tidy(() =>
        noGrad(() => {
          const x = tensor(BigInt64Array.from(ids.map(BigInt)), { shape: [1, ids.length] }).to(device); // (1, S)
          return model.forward(x).logits.argmax(-1).cpu().tolist() as number[][]; // (1, S)
        }),
      )[0];
      let all = true;
      let any = false;
      for (let i = prompt.length; i < ids.length; i++) {
        if (!NUMBER_TOKEN.test(tok.decode([ids[i]]))) continue;
        any = true;
        digits++;
        if (predicted[i - 1] === ids[i]) right++;
        else all = false;
      }
      if (any) {
        counted++;
        if (all) exact++;
      }
    }
  } finally {
    model.train(wasTraining);
  }
  if (counted === 0) throw new Error('copyProbe: no problem of a task with numbers to restate (countdown, multiplication)');
  return { digitAccuracy: right / digits, exactShare: exact / counted, digits, problems: counted };
}
