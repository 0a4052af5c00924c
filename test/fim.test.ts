// Fill-in-the-middle: PSM documents keep every token; a tiny model pretrained with fimRate 0.5 fills
// a held-out middle (in bits per byte of the middle) better than the same model pretrained without,
// which can only read the prefix.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { inferenceMode, tensor, tidy } from '../src/core/index.ts';
import { corpusDocument, encodeText } from '../src/data/index.ts';
import { fimDocument, fimPrompt } from '../src/data/fim.ts';
import { Rng } from '../src/data/rng.ts';
import { loadCheckpoint } from '../src/model/checkpoint.ts';
import type { DeepSeekV3 } from '../src/model/transformer.ts';
import { resolveConfig } from '../src/train/config.ts';
import { PretrainConfig } from '../src/train/config.ts';
import { VAL_OFFSET, fimIdsOf } from '../src/train/data-prep.ts';
import { pretrain } from '../src/train/pretrain.ts';
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

  test('a model pretrained with FIM fills a held-out middle better than one pretrained without', async () => {
    const config = (name: string, fimRate: number): PretrainConfig =>
      resolveConfig(
        PretrainConfig,
        'pretrain-tiny',
        {
          runsDir: runs,
          name,
          fimRate,
          steps: 150,
          batchSize: 8,
          seqLen: 256,
          packing: 'documents',
          evalEvery: 150,
          checkpointEvery: 150,
          trainDocuments: 1500,
          corpus: {
            kind: 'search',
            tasks: { countdown: 1, multiplication: 0, wordproblems: 0 },
            countdown: { minCount: 3, maxCount: 3, maxNumber: 10, promptFrame: 'compact' },
          },
        },
        'test',
      );
    const withFim = await pretrain(config('fim', 0.5), { log: quiet });
    const without = await pretrain(config('plain', 0), { log: quiet });
    assert.deepEqual(JSON.parse(readFileSync(join(withFim.finalDir!, 'chat.json'), 'utf8')), { template: 'r1-zero', frame: 'compact', fim: true });
    const corpus = config('x', 0).corpus;
    const fimModel = loadCheckpoint(withFim.finalDir!);
    fimModel.eval();
    const fimTok = Tokenizer.load(join(withFim.finalDir!, 'tokenizer.json'));
    const plainModel = loadCheckpoint(without.finalDir!);
    plainModel.eval();
    const plainTok = Tokenizer.load(join(without.finalDir!, 'tokenizer.json'));
    assert.throws(() => fimIdsOf(plainTok), /fimRate > 0/);
    const ids = fimIdsOf(fimTok);
    let fimBits = 0;
    let plainBits = 0;
    let bytes = 0;
    for (let i = 0; i < 40; i++) {
      const text = corpusDocument(corpus, VAL_OFFSET + i).text;
      const lines = text.split('\n');
      if (lines.length < 6) continue;
      // the middle: two whole lines from the middle of the trace
      const a = Math.floor(lines.length / 2) - 1;
      const prefix = `${lines.slice(0, a).join('\n')}\n`;
      const middle = `${lines.slice(a, a + 2).join('\n')}\n`;
      const suffix = lines.slice(a + 2).join('\n');
      const fimIds = fimPrompt(ids, encodeText(fimTok, prefix), encodeText(fimTok, suffix));
      fimBits += bitsOf(fimModel, fimIds, encodeText(fimTok, middle));
      plainBits += bitsOf(plainModel, [plainTok.special.bos, ...encodeText(plainTok, prefix)], encodeText(plainTok, middle));
      bytes += Buffer.byteLength(middle);
    }
    const fimBpb = fimBits / bytes;
    const plainBpb = plainBits / bytes;
    assert.ok(bytes > 200, `${bytes} middle bytes`);
    assert.ok(fimBpb < plainBpb, `FIM ${fimBpb.toFixed(3)} vs prefix only ${plainBpb.toFixed(3)} bits per byte`);
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
