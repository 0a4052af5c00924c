/**
 * Benchmark runner: `npm run bench -- NAME [options]` runs bench/NAME.ts, whose default export
 * returns the figures; the last line printed is one JSON object with them.
 */
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export type BenchMain = (args: string[]) => Promise<Record<string, unknown>>;

const here = dirname(fileURLToPath(import.meta.url));
const [name, ...args] = process.argv.slice(2);
const available = readdirSync(here)
  .filter((f) => f.endsWith('.ts') && !['run.ts', 'peer.ts', 'common.ts'].includes(f))
  .map((f) => f.slice(0, -3));
if (!name || !available.includes(name)) {
  console.error(`usage: npm run bench -- NAME   (NAME: ${available.join(', ')})`);
  process.exit(2);
}
const file = join(here, `${name}.ts`);
if (!existsSync(file)) process.exit(2);
const mod = (await import(pathToFileURL(file).href)) as { default: BenchMain };
const figures = await mod.default(args);
console.log(JSON.stringify(figures));
process.exit(0);
