/**
 * Durable file writes: write every byte, fsync files and directories. Used by the writers that
 * promise atomic, crash-safe output (safetensors, checkpoints). Knows nothing of file formats.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

/** Writes all of `bytes` at the current position of `fd` (writeSync may write less than asked). */
export function writeAllSync(fd: number, bytes: Uint8Array): void {
  for (let done = 0; done < bytes.byteLength; ) done += fs.writeSync(fd, bytes, done, bytes.byteLength - done);
}

/** Creates `file` (it must not exist), writes `text` and fsyncs it. */
export function writeFileDurable(file: string, text: string): void {
  const fd = fs.openSync(file, 'wx');
  try {
    writeAllSync(fd, Buffer.from(text, 'utf8'));
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** fsyncs a directory so that its entries (creations, renames) are durable; best effort. */
export function syncDir(dir: string): void {
  try {
    const fd = fs.openSync(dir, 'r');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    // not every platform or file system allows fsync on a directory
  }
}

/** Writes `text` to `file` atomically: a temporary file beside it, fsynced, then renamed over it. */
export function writeFileAtomic(file: string, text: string): void {
  const tmp = `${file}.${process.pid}.${Math.random().toString(36).slice(2, 10)}.tmp`;
  try {
    writeFileDurable(tmp, text);
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  syncDir(path.dirname(file));
}
