// Memory stays flat over long training: native bytes and live tensors exactly, RSS within a bound.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Generator, crossEntropy, memoryStats, randn, tidy, type Tensor } from '../src/core/index.ts';
import { AdamW, Linear, Module, clipGradNorm, weightDecayGroups } from '../src/nn/index.ts';

class MLP extends Module {
  readonly fc1: Linear;
  readonly fc2: Linear;
  constructor(g: Generator) {
    super();
    this.fc1 = this.registerModule('fc1', new Linear(32, 128, { generator: g }));
    this.fc2 = this.registerModule('fc2', new Linear(128, 10, { generator: g }));
  }
  forward(x: Tensor): Tensor {
    return this.fc2.forward(this.fc1.forward(x).silu()); // (B, 10)
  }
}

const MiB = 1024 * 1024;

function setup(): { model: MLP; opt: AdamW; x: Tensor; y: Tensor } {
  const g = new Generator(7);
  const model = new MLP(g);
  const opt = new AdamW(weightDecayGroups(model, 0.1), { lr: 1e-3 });
  const x = randn([64, 32], { generator: g }).keep(); // (B, 32)
  const y = x.slice(1, 0, 10).argmax(1).keep(); // (B)
  return { model, opt, x, y };
}

function trainStep(model: MLP, opt: AdamW, x: Tensor, y: Tensor): number {
  const loss = crossEntropy(model.forward(x), y);
  loss.backward();
  clipGradNorm(model.parameters(), 1);
  opt.step();
  opt.zeroGrad();
  return loss.item();
}

describe('memory', () => {
  // Bound: after a 500-step warm-up (allocator pools, JIT, optimizer state), 4,500 more steps of
  // forward + backward + clip + AdamW may grow RSS by at most 16 MiB, and must leave the native
  // allocator's live bytes and the number of live tensors exactly where they were.
  test('5,000 training steps in tidy() keep native memory and RSS flat', () => {
    const { model, opt, x, y } = setup();
    let first = 0;
    let last = 0;
    let rssWarm = 0;
    let bytesWarm = 0;
    let tensorsWarm = 0;
    for (let step = 0; step < 5000; step++) {
      last = tidy(() => trainStep(model, opt, x, y));
      if (step === 0) first = last;
      if (step === 499) {
        rssWarm = process.memoryUsage().rss;
        bytesWarm = memoryStats().liveBytes;
        tensorsWarm = memoryStats().liveTensors;
      }
    }
    const rssEnd = process.memoryUsage().rss;
    const stats = memoryStats();
    assert.ok(last < first, `loss went down (${first} → ${last})`);
    assert.equal(stats.liveTensors, tensorsWarm, 'live tensors unchanged after warm-up');
    assert.equal(stats.liveBytes, bytesWarm, 'live native bytes unchanged after warm-up');
    assert.ok(rssEnd - rssWarm < 16 * MiB, `RSS grew by ${((rssEnd - rssWarm) / MiB).toFixed(1)} MiB (bound 16 MiB)`);
  });

  // Without tidy(), tensors are freed by the garbage collector once the event loop turns; a
  // training loop that awaits between steps must stay bounded too (here: 48 MiB over 1,500 steps).
  test('an async loop without tidy() is bounded by the garbage collector', async () => {
    const { model, opt, x, y } = setup();
    let rssWarm = 0;
    for (let step = 0; step < 2000; step++) {
      trainStep(model, opt, x, y);
      await new Promise((r) => setImmediate(r));
      if (step === 499) rssWarm = process.memoryUsage().rss;
    }
    const grown = process.memoryUsage().rss - rssWarm;
    assert.ok(grown < 48 * MiB, `RSS grew by ${(grown / MiB).toFixed(1)} MiB (bound 48 MiB)`);
  });
});
