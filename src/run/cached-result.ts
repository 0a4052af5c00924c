/**
 * Results a job can reuse (an evaluation of a checkpoint, say): stored as {key, value} and reused
 * only when the key — everything the result depends on, with the checkpoint's content fingerprint
 * — is the same. Written atomically, so an interrupted job never leaves half a result; an
 * unreadable file is recomputed, never trusted.
 *
 * It knows files and keys; not what the result means.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../io/durable.ts';

/** A fingerprint of a checkpoint's content: its config and weight files' bytes (sha-256). */
export function checkpointFingerprint(dir: string): string {
  const h = createHash('sha256');
  const files = fs
    .readdirSync(dir)
    .filter((n) => n === 'config.json' || n.endsWith('.safetensors'))
    .sort();
  for (const name of files) {
    h.update(`${name}\0`);
    h.update(fs.readFileSync(path.join(dir, name)));
  }
  return h.digest('hex').slice(0, 32);
}

/** The stored value when its key matches, else null. */
export function readCached<T>(file: string, key: unknown): T | null {
  if (!fs.existsSync(file)) return null;
  try {
    const stored = JSON.parse(fs.readFileSync(file, 'utf8')) as { key?: unknown; value?: T };
    return JSON.stringify(stored.key) === JSON.stringify(key) && stored.value !== undefined ? stored.value : null;
  } catch {
    return null;
  }
}

export function writeCached(file: string, key: unknown, value: unknown): void {
  writeFileAtomic(file, `${JSON.stringify({ key, value }, null, 2)}\n`);
}
