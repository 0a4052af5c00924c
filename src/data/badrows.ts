/**
 * Bad rows in a user's data file: what went wrong where (row or line number, field, reason), the
 * two policies (`stop` throws at the first bad row; `skip` keeps going and collects every skipped
 * row with its reason), and the report a load returns.
 *
 * It knows nothing about any particular schema.
 */

export type OnBadRow = 'stop' | 'skip';

export interface BadRow {
  /** 1-based line number (JSONL) or row number (parquet). */
  readonly row: number;
  /** The field at fault, dotted ("nums.2"), or null when the row as a whole is bad (not JSON, not an object). */
  readonly field: string | null;
  readonly reason: string;
}

export interface LoadReport {
  readonly file: string;
  readonly format: 'jsonl' | 'parquet';
  /** "line" for JSONL, "row" for parquet: how `row` numbers are to be read. */
  readonly unit: 'line' | 'row';
  /** Rows read (blank JSONL lines not counted). */
  readonly rowsRead: number;
  readonly rowsLoaded: number;
  readonly skipped: readonly BadRow[];
}

export function describeBadRow(file: string, unit: 'line' | 'row', b: BadRow): string {
  return `${file}: ${unit} ${b.row}${b.field ? `, field "${b.field}"` : ''}: ${b.reason}`;
}

export class BadRowError extends Error {
  constructor(
    readonly file: string,
    readonly unit: 'line' | 'row',
    readonly bad: BadRow,
  ) {
    super(
      `${describeBadRow(file, unit, bad)}. Fix that ${unit}, or skip bad rows (--skip-bad-rows on the command line, onBadRow: 'skip' in the API) to load the rest and get a report of what was skipped; \`tinyseek data check ${file}\` lists every bad row.`,
    );
    this.name = 'BadRowError';
  }
}
