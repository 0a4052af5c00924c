// The MTP draft head: trained on top of a frozen model, it lowers its own loss and leaves the
// model's predictions unchanged; the serving engine then decodes with it, greedy output unchanged.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { inferenceMode, tensor, tidy } from '../src/core/index.ts';
import { Engine } from '../src/engine/scheduler.ts';
import { loadCheckpoint } from '../src/model/checkpoint.ts';
import type { DeepSeekV3 } from '../src/model/transformer.ts';
import { readMetrics } from '../src/run/metrics.ts';
import { MtpHeadConfig, PretrainConfig, resolveConfig } from '../src/train/config.ts';
import { pretrainingCorpusOf, trainMtpHead } from '../src/train/mtp-head.ts';
import { pretrain } from '../src/train/pretrain.ts';

const runs = mkdtempSync(join(tmpdir(), 'tinyseek-mtp-'));
after(() => rmSync(runs, { recursive: true, force: true }));
const quiet = (): void => {};

function logitsOf(m: DeepSeekV3, ids: number[]): Float32Array {
  return inferenceMode(() =>
    tidy(() => m.forward(tensor(Int32Array.from(ids), { shape: [1, ids.length], dtype: 'int64' })).logits.toTypedArray() as Float32Array),
  );
}

describe('MTP draft head', () => {
  test('trains on a frozen model: its loss falls, the model predicts the same, speculative decoding keeps greedy output', async () => {
    const base = await pretrain(resolveConfig(PretrainConfig, 'pretrain-tiny', { runsDir: runs, name: 'base', steps: 30 }, 'test'), { log: quiet });
    const corpus = pretrainingCorpusOf(base.finalDir!);
    assert.ok(corpus, 'the run records its corpus');
    const c = resolveConfig(
      MtpHeadConfig,
      'mtp-head-small',
      {
        runsDir: runs,
        name: 'head',
        from: base.finalDir,
        corpus,
        steps: 40,
        batchSize: 4,
        seqLen: 64,
        trainDocuments: 300,
        valDocuments: 40,
        evalEvery: 20,
        checkpointEvery: 20,
        optim: { warmupSteps: 2 },
      },
      'test',
    );
    const r = await trainMtpHead(c, { log: quiet });
    assert.equal(r.stoppedBy, 'done');
    assert.ok(existsSync(join(r.finalDir!, 'chat.json')));
    const losses = readMetrics(join(r.runDir, 'metrics.jsonl'))
      .filter((x) => x.kind === 'train')
      .map((x) => x.loss as number);
    assert.ok(losses.at(-1)! < losses[0] - 0.3, `MTP loss ${losses[0]} → ${losses.at(-1)}`);
    const before = loadCheckpoint(base.finalDir!);
    const withHead = loadCheckpoint(r.finalDir!);
    assert.equal(withHead.mtp.length, 1);
    const ids = [0, 12, 40, 7, 99, 3, 250, 17];
    assert.deepEqual(logitsOf(withHead, ids), logitsOf(before, ids), 'the frozen model predicts bit for bit the same');
    const greedy = { temperature: 0, topP: 1, topK: 0, presencePenalty: 0, frequencyPenalty: 0, topLogprobs: 0 };
    const outputs = [false, true].map((speculative) => {
      const e = new Engine(withHead, { blockSize: 8, speculative });
      e.add({ id: 'a', prompt: ids, maxTokens: 30, sampling: greedy, namespace: '', eosIds: [] });
      const out: number[] = [];
      while (e.busy) for (const ev of e.step()) out.push(...ev.tokens.map((t) => t.token));
      const s = e.stats;
      e.dispose();
      return { out, s };
    });
    assert.deepEqual(outputs[1].out, outputs[0].out);
    assert.ok(outputs[1].s.draftsProposed > 0);
    const last = r.lastEval!;
    assert.ok((last.mtp_agreement as number) > 0 && (last.mtp_agreement as number) <= 1);
  });
});
