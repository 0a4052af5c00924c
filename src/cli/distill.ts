/**
 * `tinyseek distill`: rejection sampling from a teacher, then SFT of a student on the kept traces
 * (jobs/distill.ts). A JSON config file (optional) with flags on top, validated once; `--resume`
 * continues an interrupted run.
 *
 *   tinyseek distill --teacher DIR --student DIR [--name N] [--prompts 2000] [--samples 4] [--steps 300]
 *   tinyseek distill-compare [--update-docs]   R1's Table 6 at small scale: RL alone, distilled, both
 *   tinyseek r1 [--ship] [--update-docs]         R1's multi-stage recipe: cold start, RL, rejection
 *                                                sampling + SFT, RL — the shipped chat model
 */
import type { Command } from 'commander';
import { readJsonObject } from '../run/config-file.ts';
import { dataParallelFromEnv } from '../run/dp.ts';
import { DistillConfig, distill } from '../jobs/distill.ts';
import { compareReportDirOf, runDistillCompare } from '../jobs/distill-compare.ts';
import { SHIPPED_R1, r1ReportDirOf, runR1 } from '../jobs/r1.ts';
import { TrainConfigError } from '../train/config.ts';
import { guarded, positiveInt, positiveNumber } from './train.ts';

interface DistillFlags {
  config?: string;
  teacher?: string;
  student?: string;
  name?: string;
  runsDir?: string;
  task?: string;
  taskConfig?: string;
  prompts?: number;
  samples?: number;
  keepPerPrompt?: number;
  temperature?: number;
  maxNewTokens?: number;
  template?: string;
  steps?: number;
  lr?: number;
  evalProblems?: number;
  logitWeight?: number;
  seed?: number;
  resume?: boolean;
  stopAfter?: number;
}

export function registerDistillCommands(program: Command): void {
  program
    .command('distill')
    .description("distil a reasoning teacher into a student: rejection sampling of the teacher's correct traces, then SFT of the student on them (R1's recipe)")
    .option('--config <file>', 'JSON config (the fields of DistillConfig); flags override it')
    .option('--teacher <dir>', 'the reasoning model that writes the traces')
    .option('--student <dir>', 'the checkpoint to fine-tune on them')
    .option('--name <name>', 'run name: <runs-dir>/<name> (SFT) and <runs-dir>/<name>-traces (sampling)')
    .option('--runs-dir <dir>', 'where runs live')
    .option('--task <name>', 'countdown | multiplication | wordproblems')
    .option('--task-config <json>', "the task generator's settings, e.g. '{\"maxNumber\":20}'")
    .option('--prompts <n>', 'train problems the teacher samples on', positiveInt)
    .option('--samples <K>', 'completions per prompt', positiveInt)
    .option('--keep-per-prompt <n>', 'most traces kept per prompt', positiveInt)
    .option('--temperature <t>', 'teacher sampling temperature', positiveNumber)
    .option('--max-new-tokens <n>', 'most tokens per completion', positiveInt)
    .option('--template <t>', 'r1-zero (the R1-Zero prompt format, default) | r1 (DeepSeek-R1 chat template)')
    .option('--logit-weight <α>', "also learn the teacher's next-token distributions, weight α in [0, 1] (same tokenizer; default 0: traces only)", (v) =>
      Number(v),
    )
    .option('--steps <n>', 'SFT optimizer steps', positiveInt)
    .option('--lr <x>', 'SFT peak learning rate', positiveNumber)
    .option('--eval-problems <n>', 'held-out problems for the student after SFT (0: none)', (v) => Number(v))
    .option('--seed <n>', 'seed', (v) => Number(v))
    .option('--resume', 'continue an interrupted run')
    .option('--stop-after <steps>', 'SFT: train this many steps, checkpoint and stop (continue with --resume)', positiveInt)
    .action(async (f: DistillFlags) => {
      const base = f.config ? readJsonObject(f.config, 'the distill config') : {};
      const o: Record<string, unknown> = { ...base };
      const set = (k: string, v: unknown): void => {
        if (v !== undefined) o[k] = v;
      };
      set('teacher', f.teacher);
      set('student', f.student);
      set('name', f.name);
      set('runsDir', f.runsDir);
      set('task', f.task);
      if (f.taskConfig !== undefined) {
        try {
          o.taskConfig = JSON.parse(f.taskConfig);
        } catch (e) {
          throw new Error(`--task-config: not JSON (${(e as Error).message}); pass an object such as '{"maxNumber":20}'`);
        }
      }
      set('prompts', f.prompts);
      set('samples', f.samples);
      set('keepPerPrompt', f.keepPerPrompt);
      set('temperature', f.temperature);
      set('maxNewTokens', f.maxNewTokens);
      set('template', f.template);
      set('evalProblems', f.evalProblems);
      set('logitWeight', f.logitWeight);
      set('seed', f.seed);
      const sftOver: Record<string, unknown> = { ...((base.sft as Record<string, unknown>) ?? {}) };
      if (f.steps !== undefined) sftOver.steps = f.steps;
      if (f.lr !== undefined) sftOver.optim = { ...((sftOver.optim as object) ?? {}), lr: f.lr };
      o.sft = sftOver;
      const r = DistillConfig.safeParse(o);
      if (!r.success) throw new TrainConfigError(f.config ?? 'tinyseek distill flags', r.error.issues);
      const dp = await dataParallelFromEnv();
      try {
        await guarded(() => distill(r.data, { resume: f.resume, stopAfter: f.stopAfter, dp }));
      } finally {
        dp?.close();
        dp?.group.destroy();
      }
    });

  program
    .command('distill-compare')
    .description(
      "R1's Table 6 at small scale: a smaller student base, then (a) RL alone, (b) distilled from the R1-Zero teacher, (c) distilled then RL, all on the same held-out problems",
    )
    .option('--runs-dir <dir>', 'where runs live', 'runs')
    .option('--update-docs', "write the report into the repository's docs/ (default: <runs-dir>/distill-report)")
    .option('--teacher <dir>', 'the teacher (default: the shipped R1-Zero model)')
    .option('--pretrain-steps <n>', "the student base's pretraining steps", positiveInt)
    .option('--rl-steps <n>', 'GRPO steps of arms (a) and (c)', positiveInt)
    .option('--prompts <n>', 'teacher prompts for the distillation', positiveInt)
    .option('--samples <K>', 'teacher samples per prompt', positiveInt)
    .option('--sft-steps <n>', "the distilled student's SFT steps", positiveInt)
    .option('--eval-problems <n>', 'held-out problems of every evaluation', positiveInt)
    .action(
      async (f: {
        runsDir: string;
        updateDocs?: boolean;
        teacher?: string;
        pretrainSteps?: number;
        rlSteps?: number;
        prompts?: number;
        samples?: number;
        sftSteps?: number;
        evalProblems?: number;
      }) => {
        const r = await runDistillCompare({ ...f, docsDir: f.updateDocs ? 'docs' : undefined, command: `npx tinyseek ${process.argv.slice(2).join(' ')}` });
        const pct = (x: number): string => `${(x * 100).toFixed(1)}%`;
        console.log(
          `teacher ${pct(r.teacher_pass1)} · student base ${pct(r.student_base_pass1)} · (a) RL ${pct(r.student_rl_pass1)} · (b) distilled ${pct(r.student_distill_pass1)} · (c) distilled + RL ${pct(r.student_distill_rl_pass1)}`,
        );
        console.log(`report: ${f.updateDocs ? 'docs' : compareReportDirOf(f.runsDir)}/distill.md`);
      },
    );

  program
    .command('r1')
    .description(
      "DeepSeek-R1's multi-stage recipe: cold-start SFT on the R1-Zero model's readable traces, reasoning RL in the chat template (accuracy + language consistency), rejection sampling + SFT of the base, RL again",
    )
    .option('--runs-dir <dir>', 'where runs live', 'runs')
    .option('--base <dir>', 'the base model every SFT stage starts from (default: the shipped small-base)')
    .option('--r1-zero <dir>', 'the R1-Zero model whose traces make the cold start (default: the shipped small-r1-zero)')
    .option('--rl-steps <n>', 'GRPO steps of each RL stage', positiveInt)
    .option('--final-rl-lr <x>', "peak learning rate of the last RL stage (5e-5; stage 2's is the preset's 1.5e-4)", positiveNumber)
    .option('--prompts <n>', 'train prompts of each rejection-sampling stage', positiveInt)
    .option('--samples <K>', 'samples per prompt of each rejection-sampling stage', positiveInt)
    .option('--sft-steps <n>', 'SFT steps of each SFT stage', positiveInt)
    .option('--language-weight <w>', 'weight of the language-consistency reward beside accuracy (1)', (v) => Number(v))
    .option('--eval-problems <n>', 'held-out problems of every evaluation', positiveInt)
    .option('--ship', `write the final model to ${SHIPPED_R1} (bfloat16), the model tinyseek serve uses by default`)
    .option('--update-docs', "write the report into the repository's docs/ (default: <runs-dir>/r1-report)")
    .action(
      async (f: {
        runsDir: string;
        base?: string;
        r1Zero?: string;
        rlSteps?: number;
        finalRlLr?: number;
        prompts?: number;
        samples?: number;
        sftSteps?: number;
        languageWeight?: number;
        evalProblems?: number;
        ship?: boolean;
        updateDocs?: boolean;
      }) => {
        if (f.languageWeight !== undefined && !(Number.isFinite(f.languageWeight) && f.languageWeight >= 0))
          throw new Error(`--language-weight must be a number ≥ 0, got ${f.languageWeight}`);
        await guarded(async () => {
          const r = await runR1({
            ...f,
            shipTo: f.ship ? SHIPPED_R1 : undefined,
            docsDir: f.updateDocs ? 'docs' : undefined,
            command: `npx tinyseek ${process.argv.slice(2).join(' ')}`,
          });
          const pct = (x: number): string => `${(x * 100).toFixed(1)}%`;
          console.log(`R1 chat model ${pct(r.r1_pass1)} (chat format) · R1-Zero model ${pct(r.r1_zero_pass1)} · base ${pct(r.base_pass1)}`);
          console.log(`report: ${f.updateDocs ? 'docs' : r1ReportDirOf(f.runsDir)}/r1.md`);
          return r;
        });
      },
    );
}
