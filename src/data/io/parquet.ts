/**
 * Reads parquet rows as plain objects with hyparquet, a chunk of rows at a time (so a 500k-row
 * TinyZero file is never transposed in one piece), each with its 1-based row number. Integer
 * columns stored as INT64 come back from hyparquet as BigInt; this module passes values through
 * unchanged and leaves conversion to the caller's schema.
 *
 * hyparquet reads uncompressed and snappy files (what `datasets.to_parquet` and pandas write by
 * default); other codecs give an error that says so. It knows nothing about tasks.
 */
import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects, parquetSchema } from 'hyparquet';
import type { AsyncBuffer, FileMetaData } from 'hyparquet';

export interface ParquetRow {
  /** 1-based row number in the file. */
  readonly row: number;
  readonly value: Record<string, unknown>;
}

export interface ReadParquetOptions {
  /** Columns to read (all when omitted). */
  columns?: string[];
  /** Rows per read. Default 10_000. */
  chunkRows?: number;
}

async function open(path: string): Promise<{ file: AsyncBuffer; metadata: FileMetaData }> {
  let file: AsyncBuffer;
  try {
    file = await asyncBufferFromFile(path);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ENOENT') throw new Error(`${path}: no such file; check the path`);
    throw new Error(`${path}: cannot open (${err.message})`);
  }
  try {
    return { file, metadata: await parquetMetadataAsync(file) };
  } catch (e) {
    throw new Error(`${path}: not a readable parquet file (${(e as Error).message}); check that it is parquet and not truncated`);
  }
}

/** The top-level column names of a parquet file. */
export async function parquetColumns(path: string): Promise<string[]> {
  const { metadata } = await open(path);
  return parquetSchema(metadata).children.map((c) => c.element.name);
}

export async function* readParquetRows(path: string, o: ReadParquetOptions = {}): AsyncGenerator<ParquetRow> {
  const { file, metadata } = await open(path);
  const total = Number(metadata.num_rows);
  const chunk = o.chunkRows ?? 10_000;
  if (o.columns) {
    const have = parquetSchema(metadata).children.map((c) => c.element.name);
    const missing = o.columns.filter((c) => !have.includes(c));
    if (missing.length) throw new Error(`${path}: no column ${missing.map((m) => `"${m}"`).join(', ')}; the file has ${have.map((h) => `"${h}"`).join(', ')}`);
  }
  for (let start = 0; start < total; start += chunk) {
    const end = Math.min(total, start + chunk);
    let rows: Record<string, unknown>[];
    try {
      rows = (await parquetReadObjects({ file, metadata, columns: o.columns, rowStart: start, rowEnd: end })) as Record<string, unknown>[];
    } catch (e) {
      throw new Error(
        `${path}: cannot decode rows ${start + 1}-${end} (${(e as Error).message}); hyparquet reads uncompressed and snappy parquet — re-save the file with one of those codecs`,
      );
    }
    for (let i = 0; i < rows.length; i++) yield { row: start + i + 1, value: rows[i] };
  }
}
