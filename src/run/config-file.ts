/**
 * Reading the JSON files a run is configured and resumed from, and the rules every run's name and
 * location follow. A file that is not valid JSON, holds a key twice, or is not an object is an
 * error naming the file, the place in it and the fix; a run name is one path segment of safe
 * characters, so a run can never be written outside its runs directory.
 *
 * It knows files and names; not what a config means.
 */
import { readFileSync } from 'node:fs';
import { type Node, type ParseError, parseTree, printParseErrorCode } from 'jsonc-parser';
import { z } from 'zod';

export class TrainConfigError extends Error {
  constructor(source: string, issues: readonly { path: readonly PropertyKey[]; message: string }[]) {
    super(`invalid training config (${source}):\n${issues.map((i) => `  ${i.path.map(String).join('.') || '(root)'}: ${i.message}`).join('\n')}`);
    this.name = 'TrainConfigError';
  }
}

/** Names under a runs directory that belong to tinyseek itself, not to a run. */
export const RESERVED_RUN_NAMES: readonly string[] = ['cache', 'r1-zero-report'];

/** A run's name: one path segment of letters, digits, dot, dash and underscore, not hidden, not reserved. */
export const RunName = z
  .string()
  .regex(/^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/, 'one path segment of letters, digits, dot, dash and underscore (at most 128), not starting with a dot')
  .refine((n) => !RESERVED_RUN_NAMES.includes(n), {
    message: `${RESERVED_RUN_NAMES.join(' and ')} are kept for tinyseek's own files under the runs directory; choose another name`,
  })
  .describe('run name: the run lives in <runsDir>/<name>');

function lineColumn(text: string, offset: number): string {
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  return `line ${line}, column ${offset - before.lastIndexOf('\n')}`;
}

/** The first key that appears twice in one object, with where (or null). */
function duplicateKey(node: Node | undefined, text: string, at = ''): string | null {
  if (!node) return null;
  if (node.type === 'object') {
    const seen = new Set<string>();
    for (const prop of node.children ?? []) {
      const [keyNode, valueNode] = prop.children ?? [];
      const key = String(keyNode?.value);
      const where = at ? `${at}.${key}` : key;
      if (seen.has(key)) return `"${where}" appears twice (the second at ${lineColumn(text, keyNode?.offset ?? 0)})`;
      seen.add(key);
      const inner = duplicateKey(valueNode, text, where);
      if (inner) return inner;
    }
  } else if (node.type === 'array') {
    for (const [i, child] of (node.children ?? []).entries()) {
      const inner = duplicateKey(child, text, `${at}[${i}]`);
      if (inner) return inner;
    }
  }
  return null;
}

/**
 * Parses JSON text strictly: no comments, no trailing commas, no key twice in one object (plain
 * JSON.parse keeps the last silently). `what` names the source in errors, `fix` says what to do.
 */
export function parseJsonStrict(text: string, what: string, fix = 'correct it or restore it from a copy'): unknown {
  const errors: ParseError[] = [];
  const tree = parseTree(text, errors, { disallowComments: true, allowTrailingComma: false, allowEmptyContent: false });
  if (errors.length || !tree) {
    const e = errors[0];
    throw new Error(`${what} is not valid JSON (${e ? `${printParseErrorCode(e.error)} at ${lineColumn(text, e.offset)}` : 'empty'}); ${fix}`);
  }
  const dup = duplicateKey(tree, text);
  if (dup) throw new Error(`${what}: ${dup}; keep one of them`);
  return JSON.parse(text) as unknown;
}

/** Reads a JSON file that must hold an object; every failure names the file. */
export function readJsonObject(file: string, fix?: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(code === 'ENOENT' ? `${file} does not exist` : `cannot read ${file}: ${(e as Error).message}`);
  }
  const raw = parseJsonStrict(text, file, fix);
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new Error(`${file}: expected a JSON object`);
  return raw as Record<string, unknown>;
}

/** Deep-merges plain objects (arrays and scalars replace). */
export function merge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] =
      v && typeof v === 'object' && !Array.isArray(v) && b && typeof b === 'object' && !Array.isArray(b)
        ? merge(b as Record<string, unknown>, v as Record<string, unknown>)
        : v;
  }
  return out;
}
