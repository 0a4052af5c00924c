/**
 * The import direction: a module imports only from its own directory and from layers below it,
 *   core → nn → io → model → tokenizer → data → engine → eval → run → train | rl → jobs → server → cli
 * (train and rl are siblings: neither imports the other). src/index.ts, the package's face, may
 * import anything.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';

const SRC = path.join(import.meta.dirname, '..', 'src');
const RANK: Record<string, number> = {
  core: 0,
  nn: 1,
  io: 2,
  model: 3,
  tokenizer: 4,
  data: 5,
  engine: 6,
  eval: 7,
  run: 8,
  train: 9,
  rl: 9,
  jobs: 10,
  server: 11,
  cli: 12,
};

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? sourceFiles(p) : e.name.endsWith('.ts') ? [p] : [];
  });
}

/** The relative module specifiers a file imports or re-exports (static and dynamic). */
function importsOf(file: string): string[] {
  const text = fs.readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)[^'"`;]*?from\s*['"](\.[^'"]+)['"]|import\(\s*['"](\.[^'"]+)['"]\s*\)/g)) out.push(m[1] ?? m[2]);
  return out;
}

test('every source directory has a layer', () => {
  const dirs = fs
    .readdirSync(SRC, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => e.name);
  assert.deepEqual(
    dirs.filter((d) => !(d in RANK)),
    [],
  );
});

test('imports go down the layers', () => {
  const bad: string[] = [];
  for (const file of sourceFiles(SRC)) {
    const from = path.relative(SRC, file).split(path.sep);
    if (from.length === 1) continue; // src/index.ts
    for (const spec of importsOf(file)) {
      const target = path.relative(SRC, path.resolve(path.dirname(file), spec)).split(path.sep);
      const [a, b] = [from[0], target[0]];
      if (a === b) continue;
      if (!(b in RANK) || RANK[b] >= RANK[a]) bad.push(`${path.relative(SRC, file)} imports ${spec} (${a} → ${b})`);
    }
  }
  assert.deepEqual(bad, []);
});

test('the check sees an upward import', () => {
  const tmp = fs.mkdtempSync(path.join(SRC, '..', '.layers-probe-'));
  try {
    const f = path.join(tmp, 'x.ts');
    fs.writeFileSync(f, "import { runPipeline } from '../src/jobs/pipeline.ts';\nexport { x } from './y.ts';\nconst m = await import('../src/cli/main.ts');\n");
    assert.deepEqual(importsOf(f), ['../src/jobs/pipeline.ts', './y.ts', '../src/cli/main.ts']);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

test('the web pages (web/) import only each other and npm packages: browser code, no server modules', () => {
  const WEB = path.join(import.meta.dirname, '..', 'web');
  const bad: string[] = [];
  for (const file of sourceFiles(WEB))
    for (const spec of importsOf(file))
      if (!spec.startsWith('./') || spec.includes('/..') || spec.slice(2).includes('/')) bad.push(`${path.basename(file)} → ${spec}`);
  assert.deepEqual(bad, []);
  assert.ok(sourceFiles(WEB).length >= 3);
});
