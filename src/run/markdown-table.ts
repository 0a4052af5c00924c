/**
 * Markdown tables for the reports jobs write into docs/, laid out as the repository's formatter
 * keeps them (padded columns), so that a regenerated report is byte-identical when its numbers are.
 *
 * It knows strings; nothing about runs.
 */

export /** A markdown table with padded columns (the layout the repository's formatter keeps): text left, figures right. */
function markdownTable(header: string[], rows: string[][]): string {
  const right = header.map((_, j) => j > 0);
  const w = header.map((h, j) => Math.max(3, h.length, ...rows.map((r) => r[j].length)));
  const cell = (x: string, j: number): string => (right[j] ? x.padStart(w[j]) : x.padEnd(w[j]));
  const line = (cells: string[]): string => `| ${cells.join(' | ')} |`;
  return [
    line(header.map((h, j) => h.padEnd(w[j]))),
    line(w.map((n, j) => (right[j] ? `${'-'.repeat(n - 1)}:` : '-'.repeat(n)))),
    ...rows.map((r) => line(r.map(cell))),
  ].join('\n');
}
