// Fill-in-the-middle: PSM documents keep every token; pretraining data with fimRate holds them; a
// tiny model trained with FIM documents fills a held-out middle (in bits per byte of the middle)
// better than the same model trained without, which can only read the prefix.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { inferenceMode, tensor, tidy } from '../src/core/index.ts';
import { IGNORE_INDEX, encodeDocument, encodeText } from '../src/data/index.ts';
import { FIM_TOKENS, fimDocument, fimPrompt } from '../src/data/fim.ts';
import { Rng } from '../src/data/rng.ts';
import { loadPreset, parseConfig } from '../src/model/config.ts';
import { DeepSeekV3 } from '../src/model/transformer.ts';
import { AdamW, weightDecayGroups } from '../src/nn/index.ts';
import { PretrainConfig, resolveConfig } from '../src/train/config.ts';
import { dataSpecOf, fimIdsOf, preparePretrainData } from '../src/train/data-prep.ts';
import { Tokenizer } from '../src/tokenizer/index.ts';

const runs = mkdtempSync(join(tmpdir(), 'tinyseek-fim-'));
after(() => rmSync(runs, { recursive: true, force: true }));
const quiet = (): void => {};

describe('fill-in-the-middle', () => {
  test('a PSM document holds the same tokens, in prefix, suffix, middle order', () => {
    const ids = { bos: 0, eos: 1, begin: 90, hole: 91, end: 92 };
    const doc = [0, 10, 11, 12, 13, 14, 15, 1];
    for (let seed = 0; seed < 20; seed++) {
      const out = fimDocument(doc, ids, new Rng(seed));
      assert.equal(out.length, doc.length + 3);
      const h = out.indexOf(91);
      const e = out.indexOf(92);
      const prefix = out.slice(2, h);
      const suffix = out.slice(h + 1, e);
      const middle = out.slice(e + 1, -1);
      assert.deepEqual([0, ...prefix, ...middle, ...suffix, 1], doc);
      assert.deepEqual(fimPrompt(ids, prefix, suffix), out.slice(0, e + 1));
    }
  });

  test('pretraining data with fimRate 0.5: about half the training documents in PSM order, the FIM tokens in the tokenizer', () => {
    const c = resolveConfig(PretrainConfig, 'pretrain-tiny', { runsDir: runs, name: 'fimdata', fimRate: 0.5 }, 'test');
    const data = preparePretrainData(dataSpecOf(c), runs, quiet);
    const ids = fimIdsOf(data.tokenizer);
    let begins = 0;
    for (const t of data.train.stream) if (t === ids.begin) begins++;
    assert.ok(begins > 0.4 * c.trainDocuments && begins < 0.6 * c.trainDocuments, `${begins} of ${c.trainDocuments} documents`);
    let valBegins = 0;
    for (const t of data.val.stream) if (t === ids.begin) valBegins++;
    assert.equal(valBegins, 0, 'validation documents stay in order');
    const plain = preparePretrainData(dataSpecOf(resolveConfig(PretrainConfig, 'pretrain-tiny', { runsDir: runs, name: 'plaindata' }, 'test')), runs, quiet);
    assert.throws(() => fimIdsOf(plain.tokenizer), /fimRate > 0/);
  });

  test('a model trained with FIM documents fills a held-out middle better than one trained without', (t) => {
    // documents "k=k.": a random letter, then the same letter. With the suffix in view the middle
    // (the first letter) can be read off it; from the prefix alone it is one guess in 26.
    const LETTERS = 'abcdefghijklmnopqrstuvwxyz';
    const docs = (n: number, seed: number): string[] => {
      const rng = new Rng('fim-docs', seed);
      return Array.from({ length: n }, () => {
        const c = LETTERS[rng.int(0, 25)];
        return `${c}=${c}.`;
      });
    };
    const tok = Tokenizer.train(docs(400, 1), { vocabSize: 280, specialTokens: [...FIM_TOKENS] });
    const ids = fimIdsOf(tok);
    const train = (fimRate: number): DeepSeekV3 => {
      const model = new DeepSeekV3(parseConfig({ ...loadPreset('tiny'), vocab_size: tok.vocabSize, max_position_embeddings: 64 }), { seed: 5 });
      const opt = new AdamW(weightDecayGroups(model, 0.01), { lr: 3e-3 });
      const rng = new Rng('fim-train', String(fimRate));
      const pool = docs(4000, 2).map((d) => encodeDocument(tok, d));
      for (let step = 0; step < 700; step++) {
        tidy(() => {
          const rows = Array.from({ length: 16 }, () => {
            const d = pool[rng.int(0, pool.length - 1)];
            return rng.bool(fimRate) ? fimDocument(d, ids, rng) : [...d];
          });
          const T = Math.max(...rows.map((r) => r.length)) - 1;
          const inputs = new Int32Array(16 * T).fill(tok.special.pad);
          const targets = new Int32Array(16 * T).fill(IGNORE_INDEX);
          rows.forEach((r, i) => {
            for (let t = 0; t < r.length - 1; t++) {
              inputs[i * T + t] = r[t];
              targets[i * T + t] = r[t + 1];
            }
          });
          const out = model.loss(tensor(inputs, { shape: [16, T], dtype: 'int64' }), tensor(targets, { shape: [16, T], dtype: 'int64' }));
          out.loss.backward();
          opt.step();
          opt.zeroGrad();
        });
      }
      model.eval();
      return model;
    };
    const withFim = train(0.5);
    const without = train(0);
    let fimBits = 0;
    let plainBits = 0;
    let bytes = 0;
    for (const c of LETTERS) {
      const middle = encodeText(tok, c);
      fimBits += bitsOf(withFim, fimPrompt(ids, [], encodeText(tok, `=${c}.`)), middle);
      plainBits += bitsOf(without, [tok.special.bos], middle);
      bytes += 1;
    }
    const fimBpb = fimBits / bytes;
    const plainBpb = plainBits / bytes;
    t.diagnostic(`middle bits per byte: FIM ${fimBpb.toFixed(3)}, prefix only ${plainBpb.toFixed(3)}`);
    assert.ok(fimBpb < plainBpb - 1, `FIM ${fimBpb.toFixed(3)} vs prefix only ${plainBpb.toFixed(3)} bits per byte`);
  });
});

/** −log₂ p(target | context) summed over the target's tokens. */
function bitsOf(model: DeepSeekV3, context: number[], target: number[]): number {
  return inferenceMode(() =>
    tidy(() => {
      const ids = [...context, ...target];
      const x = tensor(Int32Array.from(ids.slice(0, -1)), { shape: [1, ids.length - 1], dtype: 'int64' });
      const lp = model
        .forward(x)
        .logits.logSoftmax(-1)
        .reshape([ids.length - 1, -1]); // (T−1, V)
      const rows = lp.toTypedArray() as Float32Array;
      const V = lp.shape[1];
      let nats = 0;
      for (let k = 0; k < target.length; k++) {
        const pos = context.length - 1 + k;
        nats -= rows[pos * V + target[k]];
      }
      return nats / Math.LN2;
    }),
  );
}
