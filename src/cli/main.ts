import { Command, InvalidArgumentError } from 'commander';
import type { ZodError } from 'zod';
import { readJsonObject } from '../run/config-file.ts';
import { doctor, formatDoctor, measureMatmul, tuneBlas } from './doctor.ts';
import { MlpDemoConfig, defaultMlpDemoConfig, runMlpDemo } from '../train/mlp-demo.ts';
import { runPipeline } from '../jobs/pipeline.ts';
import { runtimeInfo } from '../core/index.ts';
import { PRESETS, loadPreset, readConfigFile } from '../model/config.ts';
import { countParameters, kvCacheFigures } from '../model/params.ts';
import { formatCount } from './format.ts';
import { registerTokenizerCommands } from './tokenizer.ts';
import { registerDataCommands } from './data.ts';
import { registerTrainCommands } from './train.ts';
import { registerEvalCommands } from './eval.ts';
import { registerRlCommands } from './rl.ts';
import { registerServeCommands } from './serve.ts';
import { registerDistillCommands } from './distill.ts';
import { registerExportCommands } from './export.ts';
import { registerLaunchCommand } from './launch.ts';

function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('expected a positive integer');
  return n;
}

function formatZod(e: ZodError, source: string): string {
  return `invalid config (${source}):\n${e.issues.map((i) => `  ${i.path.join('.') || '(root)'}: ${i.message}`).join('\n')}`;
}

const program = new Command();
program.name('tinyseek').description('DeepSeek-V3 / R1 in TypeScript on libtorch').showHelpAfterError();

program
  .command('doctor')
  .description('print libtorch, devices, threads, BLAS core type and a measured matmul GFLOP/s')
  .option('--json', 'print one JSON object')
  .option('--tune-blas', 'measure every OpenBLAS core type this CPU can run and record the fastest')
  .option('--matmul-only', 'only measure matmul (used by --tune-blas)')
  .action((o: { json?: boolean; tuneBlas?: boolean; matmulOnly?: boolean }) => {
    if (o.matmulOnly) {
      const m = measureMatmul(1024, 0.4);
      console.log(JSON.stringify({ ...m, core: runtimeInfo().openblasCore }));
      return;
    }
    if (o.tuneBlas) {
      console.log('measuring fp32 matmul (1024×1024) for each OpenBLAS core type:');
      tuneBlas();
      return;
    }
    const r = doctor();
    console.log(o.json ? JSON.stringify({ ...r.info, cores: r.cores, matmul: r.matmul, warnings: r.warnings }) : formatDoctor(r));
  });

program
  .command('pipeline', { isDefault: true })
  .description(
    'the main job: the base model (the shipped one, or --from-scratch: data, tokenizer, pretraining, held-out evaluation), then R1-Zero GRPO on Countdown and multiplication with the before / after table (reruns reuse what is done)',
  )
  .option('--from-scratch', 'pretrain the base model instead of starting from the shipped one')
  .option('--no-rl', 'stop after the base model')
  .option('--ship-base', 'with --from-scratch: write the pretrained model to checkpoints/small-base')
  .option('--config <file>', 'pretraining config (a file or preset name; default pretrain-small)')
  .option('--name <name>', 'pretraining run name')
  .option('--runs-dir <dir>', 'where runs live')
  .option('--steps <n>', 'pretraining steps', positiveInt)
  .option('--rl-steps <n>', 'GRPO steps per task (default: the rl-countdown / rl-multiplication presets)', positiveInt)
  .option('--eval-n <n>', 'held-out problems per task for the base-model evaluation', positiveInt)
  .option('--update-docs', "write the R1-Zero report into the repository's docs/ (default: <runs-dir>/r1-zero-report)")
  .action(
    async (o: {
      fromScratch?: boolean;
      rl: boolean;
      shipBase?: boolean;
      config?: string;
      name?: string;
      runsDir?: string;
      steps?: number;
      rlSteps?: number;
      evalN?: number;
      updateDocs?: boolean;
    }) => {
      if (o.shipBase && !o.fromScratch) throw new Error('--ship-base writes a newly pretrained model: use it with --from-scratch');
      const overrides: Record<string, unknown> = {};
      if (o.name !== undefined) overrides.name = o.name;
      if (o.runsDir !== undefined) overrides.runsDir = o.runsDir;
      if (o.steps !== undefined) overrides.steps = o.steps;
      await runPipeline({
        config: o.config,
        overrides,
        evalProblems: o.evalN,
        fromScratch: o.fromScratch,
        rl: o.rl,
        rlSteps: o.rlSteps,
        shipBase: o.shipBase,
        docsDir: o.updateDocs ? 'docs' : undefined,
      });
    },
  );

program
  .command('engine-check')
  .description('the engine end to end in seconds: an MLP learns to add two numbers (loss, held-out accuracy, weights)')
  .option('--config <file>', 'JSON config overriding the embedded defaults')
  .option('--steps <n>', 'training steps', positiveInt)
  .option('--out <dir>', 'output directory')
  .action(async (o: { config?: string; steps?: number; out?: string }) => {
    const raw = { ...defaultMlpDemoConfig, ...(o.config ? readJsonObject(o.config) : {}) } as Record<string, unknown>;
    if (o.steps !== undefined) raw.steps = o.steps;
    if (o.out !== undefined) raw.outDir = o.out;
    const parsed = MlpDemoConfig.safeParse(raw);
    if (!parsed.success) throw new Error(formatZod(parsed.error, o.config ?? 'defaults'));
    await runMlpDemo(parsed.data);
  });

program
  .command('params')
  .description("count a model's parameters (total, activated per token) and KV-cache size from its config, allocating nothing")
  .option('--preset <name>', `one of ${PRESETS.join(', ')}`)
  .option('--config <file>', 'a config.json (or a directory holding one)')
  .option('--json', 'print one JSON object')
  .action((o: { preset?: string; config?: string; json?: boolean }) => {
    if (!o.preset === !o.config) throw new Error('give exactly one of --preset NAME or --config FILE');
    const c = o.preset ? loadPreset(o.preset) : readConfigFile(o.config!);
    const p = countParameters(c);
    const kv = kvCacheFigures(c);
    if (o.json) {
      console.log(
        JSON.stringify({
          source: o.preset ?? o.config,
          total: p.total,
          activated: p.activated,
          mtp: p.mtp,
          total_with_mtp: p.totalWithMtp,
          activated_with_mtp: p.activatedWithMtp,
          kv_elements_per_token_per_layer: kv.perTokenPerLayer,
          kv_elements_per_token_per_layer_mha: kv.mhaEquivalent,
          kv_elements_per_token: kv.perToken,
        }),
      );
      return;
    }
    const attention = c.attention_type === 'mla' ? 'MLA latent + rotary key' : `${c.attention_type.toUpperCase()} keys + values`;
    console.log(
      [
        `${o.preset ?? o.config}: ${c.num_hidden_layers} layers, hidden ${c.hidden_size}, ${c.n_routed_experts ? `${c.n_routed_experts} routed + ${c.n_shared_experts ?? 0} shared experts, ${c.num_experts_per_tok} active` : 'dense'}`,
        `  total parameters       ${formatCount(p.total)}  (${p.total})`,
        `  activated per token    ${formatCount(p.activated)}  (${p.activated})`,
        `  MTP modules add        ${formatCount(p.mtp)}  (${c.num_nextn_predict_layers} module${c.num_nextn_predict_layers === 1 ? '' : 's'}; with MTP: ${formatCount(p.totalWithMtp)} total, ${formatCount(p.activatedWithMtp)} activated)`,
        `  KV cache per token     ${kv.perTokenPerLayer} elements per layer (${attention}); multi-head attention would need ${kv.mhaEquivalent}; ${kv.perToken} over all layers`,
      ].join('\n'),
    );
  });

registerTokenizerCommands(program);
registerDataCommands(program);
registerTrainCommands(program);
registerEvalCommands(program);
registerRlCommands(program);
registerDistillCommands(program);
registerExportCommands(program);
registerLaunchCommand(program);
registerServeCommands(program);

/** The first argument names a command unless it is an option: an unknown name is an error, not the default command's argument. */
function unknownCommand(argv: readonly string[]): string | null {
  const first = argv[2];
  if (first === undefined || first.startsWith('-')) return null;
  const known = new Set(['help', ...program.commands.flatMap((c) => [c.name(), ...c.aliases()])]);
  return known.has(first) ? null : first;
}

try {
  const unknown = unknownCommand(process.argv);
  if (unknown !== null) {
    const names = program.commands.map((c) => c.name());
    const near = names.filter((n) => n.startsWith(unknown.slice(0, 2)));
    throw new Error(
      `unknown command '${unknown}'${near.length ? ` (did you mean ${near.join(' or ')}?)` : ''}; the commands are ${names.join(', ')} (tinyseek --help)`,
    );
  }
  await program.parseAsync(process.argv);
} catch (e) {
  console.error(`tinyseek: ${(e as Error).message}`);
  process.exitCode = 1;
}
