/**
 * `tinyseek data …`: look at the tasks, the corpus and a user's task file from the command line.
 *
 *   tinyseek data countdown [--n 3] [--split train|heldout] [--seed S] [--config FILE] [--json]
 *   tinyseek data multiplication …   tinyseek data wordproblems …   (same options)
 *   tinyseek data corpus [--n 5] [--seed S] [--config FILE] [--accuracy N] [--json]
 *   tinyseek data check FILE [--format jsonl|parquet] [--stop] [--solve] [--json]
 *
 * Options are validated here and the work is done by src/data. Knows nothing about training.
 */
import { readFileSync } from 'node:fs';
import { type Command, InvalidArgumentError } from 'commander';
import {
  type CorpusDocument,
  type Problem,
  type Split,
  type TaskName,
  TASK_NAMES,
  assertTrainOnly,
  canonicalOf,
  corpusAccuracy,
  describeBadRow,
  generateCorpus,
  generateProblems,
  loadCountdownFile,
  parseCorpusConfig,
  parseTaskConfig,
  promptOf,
  referenceAnswerOf,
  solveCountdown,
  splitOfProblem,
} from '../data/index.ts';

function count(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('expected a non-negative integer');
  return n;
}

function seedArg(v: string): number | string {
  const n = Number(v);
  return Number.isSafeInteger(n) ? n : v;
}

function splitArg(v: string): Split {
  if (v !== 'train' && v !== 'heldout') throw new InvalidArgumentError("expected 'train' or 'heldout'");
  return v;
}

function readJsonFile(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new Error(`cannot read config ${path}: ${(e as Error).message}`);
  }
}

const bigintSafe = (_k: string, v: unknown): unknown => (typeof v === 'bigint' ? v.toString() : v);

function printProblems(task: TaskName, o: { n: number; split: Split; seed: number | string; config?: string; json?: boolean }): void {
  const config = parseTaskConfig(task, o.config ? readJsonFile(o.config) : {});
  const problems: Problem[] = generateProblems(task, { seed: o.seed, split: o.split, n: o.n, config });
  if (o.json) {
    for (const p of problems)
      console.log(JSON.stringify({ ...p, canonical: canonicalOf(p), split: splitOfProblem(p), prompt: promptOf(p), reference: referenceAnswerOf(p) }));
    return;
  }
  problems.forEach((p, i) => {
    console.log(`── ${task} · ${o.split} · seed ${o.seed} · ${i + 1}/${problems.length} · ${canonicalOf(p)}`);
    console.log(promptOf(p));
    console.log(`── reference answer: <answer>${referenceAnswerOf(p)}</answer>\n`);
  });
}

function printCorpus(o: { n: number; seed?: number | string; config?: string; accuracy?: number; json?: boolean }): void {
  const raw = (o.config ? readJsonFile(o.config) : {}) as Record<string, unknown>;
  const c = parseCorpusConfig({ ...raw, ...(o.seed !== undefined ? { seed: o.seed } : {}) });
  const docs = generateCorpus(Math.max(o.n, o.accuracy ?? 0), c);
  const show: CorpusDocument[] = docs.slice(0, o.n);
  for (const d of show) {
    if (o.json) console.log(JSON.stringify({ index: d.index, kind: d.kind, task: d.task, style: d.style, text: d.text }, bigintSafe));
    else console.log(`── document ${d.index} · ${d.kind}${d.task ? ` · ${d.task} · ${d.style}` : ''}\n${d.text}\n`);
  }
  if (o.accuracy) {
    assertTrainOnly(docs, c);
    const a = corpusAccuracy(docs.slice(0, o.accuracy));
    if (o.json) {
      console.log(JSON.stringify({ accuracy: a }));
      return;
    }
    const pct = (x: number): string => `${(100 * x).toFixed(1)}%`;
    console.log(
      `corpus accuracy over the first ${o.accuracy} documents (seed ${c.seed}): ${pct(a.overall.accuracy)} of ${a.overall.documents} worked problems end with a right answer; ${a.factsDocuments} facts documents`,
    );
    for (const t of TASK_NAMES) console.log(`  ${t.padEnd(16)} ${pct(a.byTask[t].accuracy).padStart(6)}  (${a.byTask[t].documents} documents)`);
    for (const [s, r] of Object.entries(a.byStyle)) console.log(`  style ${s.padEnd(12)} ${pct(r.accuracy).padStart(6)}  (${r.documents} documents)`);
    console.log('  no document uses a held-out problem or states a held-out product (checked)');
  }
}

async function checkFile(file: string, o: { format?: 'jsonl' | 'parquet'; stop?: boolean; solve?: boolean; json?: boolean }): Promise<void> {
  const { problems, rows, report } = await loadCountdownFile(file, { format: o.format, onBadRow: o.stop ? 'stop' : 'skip' });
  const unsolvable: number[] = [];
  let unsolvedLarge = 0;
  if (o.solve) {
    problems.forEach((p, i) => {
      if (p.nums.length > 5) unsolvedLarge++;
      else if (solveCountdown(p.nums, p.target) === null) unsolvable.push(rows[i]);
    });
  }
  const heldout = problems.filter((p) => splitOfProblem(p) === 'heldout').length;
  if (o.json) {
    console.log(JSON.stringify({ ...report, heldoutByHash: heldout, unsolvable: o.solve ? unsolvable : undefined }));
  } else {
    console.log(`${file} (${report.format}): ${report.rowsRead} rows read, ${report.rowsLoaded} valid Countdown problems, ${report.skipped.length} bad`);
    for (const b of report.skipped.slice(0, 50)) console.log(`  ${describeBadRow(file, report.unit, b)}`);
    if (report.skipped.length > 50) console.log(`  … and ${report.skipped.length - 50} more bad rows`);
    console.log(`  ${heldout} of the valid problems fall in tinyseek's held-out split (hash of the canonical form, 10%)`);
    if (o.solve) {
      console.log(
        `  ${unsolvable.length} valid problems have no solution${unsolvable.length ? ` (${report.unit}s ${unsolvable.slice(0, 20).join(', ')}${unsolvable.length > 20 ? ', …' : ''})` : ''}`,
      );
      if (unsolvedLarge) console.log(`  ${unsolvedLarge} problems with more than 5 numbers were not solved (too slow)`);
    }
  }
  if (report.skipped.length > 0) process.exitCode = 1;
}

export function registerDataCommands(program: Command): void {
  const data = program.command('data').description('reasoning tasks, the base-model corpus and task files: print samples, check files');

  for (const task of TASK_NAMES) {
    data
      .command(task)
      .description(`print ${task} prompts with their reference answers`)
      .option('--n <n>', 'how many problems', count, 3)
      .option('--split <split>', "'train' or 'heldout'", splitArg, 'train' as Split)
      .option('--seed <seed>', 'generator seed', seedArg, 0)
      .option('--config <file>', `JSON generator configuration for ${task} (fields and defaults: docs/data.md)`)
      .option('--json', 'one JSON object per problem')
      .action((o: { n: number; split: Split; seed: number | string; config?: string; json?: boolean }) => printProblems(task, o));
  }

  data
    .command('corpus')
    .description('print base-model corpus documents; --accuracy N measures the share of right final answers')
    .option('--n <n>', 'how many documents to print', count, 5)
    .option('--seed <seed>', 'corpus seed (overrides the config file)', seedArg)
    .option('--config <file>', 'JSON corpus configuration (fields and defaults: docs/data.md)')
    .option('--accuracy <n>', 'measure answer accuracy over the first N documents', count)
    .option('--json', 'JSON output')
    .action((o: { n: number; seed?: number | string; config?: string; accuracy?: number; json?: boolean }) => printCorpus(o));

  data
    .command('check')
    .description("validate a Countdown task file (TinyZero's schema: target, nums) in JSONL or parquet and report bad rows")
    .argument('<file>', '.jsonl or .parquet file')
    .option('--format <format>', "'jsonl' or 'parquet' (default: from the extension)", (v: string) => {
      if (v !== 'jsonl' && v !== 'parquet') throw new InvalidArgumentError("expected 'jsonl' or 'parquet'");
      return v;
    })
    .option('--stop', 'stop at the first bad row (default: skip bad rows and report them all)')
    .option('--solve', 'also check that every problem with at most 5 numbers has a solution')
    .option('--json', 'one JSON report')
    .action(async (file: string, o: { format?: 'jsonl' | 'parquet'; stop?: boolean; solve?: boolean; json?: boolean }) => checkFile(file, o));
}
