/**
 * The engine's end-to-end check, and for now the main job: a two-layer MLP learns to add two
 * `bits`-bit numbers given as bit vectors (a classification over 2^(bits+1) - 1 sums), with AdamW,
 * warmup + cosine, gradient clipping and a seeded generator. It prints the loss going down and
 * held-out accuracy, and saves the weights as safetensors.
 *
 * What it does not do: the language model (that is the pipeline's later stages).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { Generator, type Tensor, arange, cat, crossEntropy, manualSeed, noGrad, randint, runtimeInfo, tensor, tidy } from '../core/index.ts';
import { AdamW, Linear, Module, applyLr, clipGradNorm, warmupCosine, weightDecayGroups } from '../nn/index.ts';
import { saveSafetensors } from '../io/safetensors.ts';
import preset from './presets/mlp-demo.json' with { type: 'json' };

export const MlpDemoConfig = z
  .object({
    seed: z.number().int().nonnegative().describe('seeds data, init and dropout'),
    bits: z.number().int().min(1).max(12).describe('width of each addend in bits'),
    hidden: z.number().int().positive().describe('hidden width of the MLP'),
    batchSize: z.number().int().positive(),
    steps: z.number().int().positive(),
    lr: z.number().positive().describe('peak learning rate'),
    minLr: z.number().nonnegative().describe('learning rate at the end of the cosine'),
    warmupSteps: z.number().int().nonnegative(),
    weightDecay: z.number().nonnegative().describe('decoupled weight decay on matrices only'),
    clipNorm: z.number().positive().describe('max global gradient norm'),
    logEvery: z.number().int().positive(),
    outDir: z.string().min(1).describe('where the weights are written'),
  })
  .strict()
  .refine((c) => c.warmupSteps < c.steps, { message: 'warmupSteps must be below steps', path: ['warmupSteps'] })
  .refine((c) => c.minLr <= c.lr, { message: 'minLr must not exceed lr', path: ['minLr'] });

export type MlpDemoConfig = z.infer<typeof MlpDemoConfig>;

export const defaultMlpDemoConfig: MlpDemoConfig = MlpDemoConfig.parse(preset);

class AdderMLP extends Module {
  readonly fc1: Linear;
  readonly fc2: Linear;

  constructor(bits: number, hidden: number, generator: Generator) {
    super();
    this.fc1 = this.registerModule('fc1', new Linear(2 * bits, hidden, { generator }));
    this.fc2 = this.registerModule('fc2', new Linear(hidden, 2 ** (bits + 1) - 1, { generator }));
  }

  /** (B, 2·bits) → (B, classes) */
  forward(x: Tensor): Tensor {
    return this.fc2.forward(this.fc1.forward(x).silu());
  }
}

/** Bit vectors of a and b (B, 2·bits) and their sum (B). */
function encode(a: Tensor, b: Tensor, bits: number): { x: Tensor; y: Tensor } {
  return tidy(() => {
    const powers = tensor(
      Array.from({ length: bits }, (_, i) => 2 ** i),
      { dtype: 'int64' },
    ); // (bits)
    const bitsOf = (v: Tensor): Tensor => v.unsqueeze(1).div(powers, 'floor').remainder(2); // (B, bits)
    const x = cat([bitsOf(a), bitsOf(b)], 1).float(); // (B, 2·bits)
    return { x, y: a.add(b) };
  });
}

export interface MlpDemoResult {
  firstLoss: number;
  finalLoss: number;
  heldOutAccuracy: number;
  stepsPerSecond: number;
  weightsPath: string;
}

export async function runMlpDemo(cfg: MlpDemoConfig, log: (s: string) => void = console.log): Promise<MlpDemoResult> {
  manualSeed(cfg.seed);
  const gen = new Generator(cfg.seed);
  const model = new AdderMLP(cfg.bits, cfg.hidden, gen);
  const opt = new AdamW(weightDecayGroups(model, cfg.weightDecay), { lr: cfg.lr });
  const schedule = warmupCosine({ maxLr: cfg.lr, minLr: cfg.minLr, warmupSteps: cfg.warmupSteps, totalSteps: cfg.steps });
  const n = 2 ** cfg.bits;
  const rt = runtimeInfo();
  log(`engine: libtorch ${rt.torchVersion}, ${rt.threads} threads, OpenBLAS core ${rt.openblasCore ?? 'n/a'} (${rt.blasChoice.source})`);
  log(`mlp-demo: learn a + b for ${cfg.bits}-bit numbers; ${model.numParameters()} parameters; ${cfg.steps} steps of ${cfg.batchSize}`);

  let firstLoss = Number.NaN;
  let lastLoss = Number.NaN;
  const t0 = performance.now();
  for (let step = 0; step < cfg.steps; step++) {
    const loss = tidy(() => {
      applyLr(opt, schedule(step));
      const { x, y } = encode(randint(0, n, [cfg.batchSize], { generator: gen }), randint(0, n, [cfg.batchSize], { generator: gen }), cfg.bits);
      const l = crossEntropy(model.forward(x), y);
      l.backward();
      clipGradNorm(model.parameters(), cfg.clipNorm);
      opt.step();
      opt.zeroGrad();
      return l.item();
    });
    if (step === 0) firstLoss = loss;
    lastLoss = loss;
    if (step % cfg.logEvery === 0 || step === cfg.steps - 1) {
      log(`step ${String(step).padStart(5)}  loss ${loss.toFixed(4)}  lr ${schedule(step).toExponential(2)}`);
      await new Promise((r) => setImmediate(r)); // let the event loop (signals, finalizers) run
    }
  }
  const seconds = (performance.now() - t0) / 1000;

  // Held-out: every pair (a, b), in eval mode without gradients.
  model.eval();
  const accuracy = noGrad(() =>
    tidy(() => {
      const all = arange(n * n);
      const { x, y } = encode(all.div(n, 'floor'), all.remainder(n), cfg.bits);
      return model.forward(x).argmax(1).eq(y).float().mean().item();
    }),
  );
  log(`held-out accuracy over all ${n * n} pairs: ${(accuracy * 100).toFixed(1)}%  (${(cfg.steps / seconds).toFixed(0)} steps/s)`);

  mkdirSync(cfg.outDir, { recursive: true });
  const weightsPath = join(cfg.outDir, 'model.safetensors');
  await saveSafetensors(weightsPath, model.stateDict(), { task: `add ${cfg.bits}-bit numbers`, steps: String(cfg.steps) });
  log(`weights: ${weightsPath}`);
  return { firstLoss, finalLoss: lastLoss, heldOutAccuracy: accuracy, stepsPerSecond: cfg.steps / seconds, weightsPath };
}
