/**
 * `tinyseek eval`: pass@1, pass@k, majority vote and completion statistics of a checkpoint on a
 * reasoning task.
 *
 *   tinyseek eval --checkpoint DIR [--tokenizer FILE] [--task countdown|multiplication|wordproblems
 *                 | --task-file FILE] [--split heldout|train] [--n 100] [--samples 1]
 *                 [--temperature 0] [--top-p 1] [--top-k 0] [--max-new-tokens 256] [--seed 0]
 *                 [--batch-size 16] [--no-stop-at-answer] [--examples 3] [--device cpu] [--json]
 *
 * The tokenizer defaults to DIR/tokenizer.json. Options are validated here; the work is done by
 * src/eval. Knows nothing about training.
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { type Command, InvalidArgumentError, Option } from 'commander';
import type { Device } from '../core/index.ts';
import { type Split, type TaskName, TASK_NAMES, generateProblems, isTaskName } from '../data/index.ts';
import {
  type ArithProbe,
  type EvalReport,
  type SearchOutcome,
  type StopProbe,
  arithProbe,
  evaluate,
  formatArithProbe,
  formatSearchOutcomes,
  formatStopProbe,
  searchOutcomes,
  stopProbe,
} from '../eval/index.ts';
import { loadCheckpoint } from '../model/checkpoint.ts';
import type { DeepSeekV3 } from '../model/transformer.ts';
import { traceFormatOf } from '../run/trace-format.ts';
import { Tokenizer } from '../tokenizer/index.ts';
import { ChatFormat } from '../server/chat-format.ts';

function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('expected a positive integer');
  return n;
}

function nonNegInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('expected a non-negative integer');
  return n;
}

function nonNegNumber(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError('expected a number ≥ 0');
  return n;
}

function share(v: string): number {
  const n = Number(v);
  if (!(n > 0 && n <= 1)) throw new InvalidArgumentError('expected a number in (0, 1]');
  return n;
}

function taskArg(v: string): TaskName {
  if (!isTaskName(v)) throw new InvalidArgumentError(`expected one of ${TASK_NAMES.join(', ')}`);
  return v;
}

function splitArg(v: string): Split {
  if (v !== 'train' && v !== 'heldout') throw new InvalidArgumentError("expected 'train' or 'heldout'");
  return v;
}

function jsonObjectArg(v: string): Record<string, unknown> {
  let x: unknown;
  try {
    x = JSON.parse(v);
  } catch (e) {
    throw new InvalidArgumentError(`not JSON (${(e as Error).message}); write an object such as '{"maxNumber":20}'`);
  }
  if (x === null || typeof x !== 'object' || Array.isArray(x)) throw new InvalidArgumentError('expected a JSON object such as \'{"maxNumber":20}\'');
  return x as Record<string, unknown>;
}

interface EvalCliOptions {
  checkpoint: string;
  tokenizer?: string;
  task: TaskName;
  taskFile?: string;
  taskConfig?: Record<string, unknown>;
  split: Split;
  n: number;
  samples: number;
  temperature: number;
  topP: number;
  topK: number;
  maxNewTokens: number;
  seed: number;
  batchSize: number;
  stopAtAnswer: boolean;
  format?: string;
  examples: number;
  device: string;
  json?: boolean;
  skipBadRows?: boolean;
  probes?: boolean;
}

const pct = (x: number): string => `${(100 * x).toFixed(1)}%`;

function formatReport(r: EvalReport): string {
  const lines = [
    `${r.task} · ${r.source} · ${r.problems} problems × ${r.samples} sample${r.samples === 1 ? '' : 's'} · ${r.temperature === 0 ? 'greedy' : `temperature ${r.temperature}, top-p ${r.topP}${r.topK ? `, top-k ${r.topK}` : ''}`} · ≤ ${r.maxNewTokens} new tokens · seed ${r.seed}${r.format === 'r1' ? " · R1's chat template" : ''}`,
    `  pass@1            ${pct(r.pass1)}`,
    ...Object.entries(r.passAtK)
      .filter(([k]) => k !== '1')
      .map(([k, v]) => `  pass@${k.padEnd(13)}${pct(v)}`),
    `  majority vote     ${pct(r.majority)}`,
    `  mean reward       ${r.meanReward.toFixed(3)}`,
    `  well-formed       ${pct(r.wellFormedShare)}   (a complete <answer>…</answer>)`,
    `  truncated         ${pct(r.truncatedShare)}   (hit ${r.maxNewTokens} tokens)`,
    `  mean length       ${r.meanCompletionTokens.toFixed(1)} tokens`,
    `  reasons           ${Object.entries(r.reasons)
      .sort((a, b) => (b[1] ?? 0) - (a[1] ?? 0))
      .map(([k, v]) => `${k} ${pct(v ?? 0)}`)
      .join(', ')}`,
    `  generation        ${r.generatedTokens} tokens in ${r.seconds.toFixed(1)} s (${r.tokensPerSecond.toFixed(0)} tokens/s)`,
  ];
  r.examples.forEach((e, i) => {
    lines.push(`── example ${i + 1}: reward ${e.reward} (${e.reason}), reference <answer>${e.reference ?? '?'}</answer>`);
    lines.push(e.completion);
  });
  return lines.join('\n');
}

interface Probes {
  arith: ArithProbe | null;
  stop: StopProbe | null;
  outcomes: Record<SearchOutcome, number> | null;
}

/** The probes on the generated problems the evaluation used (the first 200 for the teacher-forced ones). */
function runProbes(model: DeepSeekV3, tok: Tokenizer, o: EvalCliOptions, report: EvalReport): Probes {
  if (o.taskFile) throw new Error('--probes needs generated problems (the reference traces come from the generator); drop --task-file');
  const problems = generateProblems(o.task, { seed: o.seed, split: o.split, n: Math.min(o.n, 200), config: o.taskConfig });
  const searchTask = o.task === 'countdown' || o.task === 'multiplication';
  const format = traceFormatOf(o.checkpoint);
  return {
    arith: searchTask ? arithProbe(model, tok, problems, format) : null,
    stop: o.task === 'countdown' ? stopProbe(model, tok, problems, format) : null,
    outcomes: o.task === 'countdown' && o.samples === 1 ? searchOutcomes(report.examples) : null,
  };
}

function formatProbes(p: Probes): string {
  return [
    p.arith ? `  arithmetic probe  ${formatArithProbe(p.arith)}` : null,
    p.stop ? `  stop probe        ${formatStopProbe(p.stop)}` : null,
    p.outcomes ? `  searches end      ${formatSearchOutcomes(p.outcomes)}` : null,
  ]
    .filter((l) => l !== null)
    .join('\n');
}

export function registerEvalCommands(program: Command): void {
  program
    .command('eval')
    .description('evaluate a checkpoint on a reasoning task: pass@1, pass@k, majority vote, lengths, truncation, format')
    .requiredOption('--checkpoint <dir>', 'a tinyseek / Hugging Face DeepSeek-V3 checkpoint directory')
    .option('--tokenizer <file>', 'tokenizer.json (default: the one in the checkpoint directory)')
    .addOption(new Option('--task <name>', `task whose problems are generated: ${TASK_NAMES.join(', ')}`).argParser(taskArg).default('countdown'))
    .option('--task-file <file>', 'evaluate the Countdown rows of a JSONL or parquet file (TinyZero schema) instead')
    .addOption(new Option('--task-config <json>', 'settings of the task generator as JSON, e.g. \'{"maxCount":3,"maxNumber":20}\'').argParser(jsonObjectArg))
    .addOption(new Option('--split <split>', 'split of generated problems').argParser(splitArg).default('heldout'))
    .addOption(new Option('--n <n>', 'problems').argParser(positiveInt).default(100))
    .addOption(new Option('--samples <k>', 'completions per problem').argParser(positiveInt).default(1))
    .addOption(new Option('--temperature <t>', 'sampling temperature (0: greedy)').argParser(nonNegNumber).default(0))
    .addOption(new Option('--top-p <p>', 'nucleus mass').argParser(share).default(1))
    .addOption(new Option('--top-k <k>', 'keep the k most likely tokens (0: all)').argParser(nonNegInt).default(0))
    .addOption(new Option('--max-new-tokens <n>', 'most tokens per completion').argParser(positiveInt).default(256))
    .addOption(new Option('--seed <s>', 'seeds the problems and the sampler').argParser(nonNegInt).default(0))
    .addOption(new Option('--batch-size <n>', 'prompts per generation batch').argParser(positiveInt).default(16))
    .option('--no-stop-at-answer', 'do not stop a completion at its first </answer>')
    .addOption(
      new Option(
        '--format <f>',
        "how problems are asked: r1-zero (the R1-Zero prompt) or r1 (R1's chat template); default: the checkpoint's chat.json, else r1-zero",
      ).choices(['r1-zero', 'r1']),
    )
    .addOption(new Option('--examples <n>', 'sample completions to show').argParser(nonNegInt).default(3))
    .option('--device <device>', 'cpu, cuda, cuda:N', 'cpu')
    .option('--json', 'print one JSON object')
    .option('--probes', 'also the probes on the generated problems: the arithmetic probe, the stop probe and how the greedy searches end (countdown)')
    .option('--skip-bad-rows', 'with --task-file: leave malformed rows out (counted in the report) instead of stopping at the first')
    .action(async (o: EvalCliOptions, cmd: Command) => {
      if (!existsSync(o.checkpoint) || !statSync(o.checkpoint).isDirectory()) {
        throw new Error(
          `checkpoint directory ${o.checkpoint} does not exist; pass a directory with config.json and weights (a run's final/, checkpoints/small-base)`,
        );
      }
      if (o.taskFile && cmd.getOptionValueSource('task') === 'cli' && o.task !== 'countdown') {
        throw new Error(
          `--task-file holds Countdown rows (TinyZero's schema) and cannot be evaluated as --task ${o.task}; drop --task, or drop --task-file to generate ${o.task} problems`,
        );
      }
      if (o.taskFile && o.taskConfig) throw new Error('--task-config sets the problem generator, which --task-file does not use; give one of them');
      const tokPath = o.tokenizer ?? join(o.checkpoint, 'tokenizer.json');
      if (!o.tokenizer && !existsSync(tokPath)) throw new Error(`no tokenizer given and ${tokPath} does not exist; pass --tokenizer FILE`);
      const tokenizer = Tokenizer.load(tokPath);
      const model = loadCheckpoint(o.checkpoint, { device: o.device as Device });
      const report = await evaluate(model, tokenizer, {
        task: o.task,
        taskFile: o.taskFile,
        onBadRow: o.skipBadRows ? 'skip' : 'stop',
        taskConfig: o.taskConfig,
        split: o.split,
        n: o.n,
        samples: o.samples,
        temperature: o.temperature,
        topP: o.topP,
        topK: o.topK,
        maxNewTokens: o.maxNewTokens,
        seed: o.seed,
        batchSize: o.batchSize,
        stopAtAnswer: o.stopAtAnswer,
        format: formatOf(o, tokenizer),
        examples: o.probes ? o.n : o.examples, // the probes classify every greedy completion
        onProgress: o.json ? undefined : (done, total) => process.stderr.write(`\r${done}/${total} problems`),
      });
      if (!o.json) process.stderr.write('\n');
      const probes = o.probes ? runProbes(model, tokenizer, o, report) : null;
      const shown = o.probes ? { ...report, examples: report.examples.slice(0, o.examples) } : report;
      console.log(o.json ? JSON.stringify(probes ? { ...shown, probes } : shown) : formatReport(shown) + (probes ? `\n${formatProbes(probes)}` : ''));
    });
}

/** The prompt format: --format, else the template the checkpoint's chat.json declares, else R1-Zero's. */
function formatOf(o: EvalCliOptions, tokenizer: Tokenizer): 'r1-zero' | 'r1' {
  if (o.format === 'r1' || o.format === 'r1-zero') return o.format;
  if (!existsSync(join(o.checkpoint, 'chat.json'))) return 'r1-zero';
  return ChatFormat.load(o.checkpoint, tokenizer).file.template;
}
