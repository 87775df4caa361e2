import Table from 'cli-table3';

/**
 * kubectl-style tables: no borders, upper-case headers, columns separated by
 * three spaces, no trailing blanks. Pure: returns the text.
 */

const NO_BORDERS = {
  top: '', 'top-mid': '', 'top-left': '', 'top-right': '',
  bottom: '', 'bottom-mid': '', 'bottom-left': '', 'bottom-right': '',
  left: '', 'left-mid': '', mid: '', 'mid-mid': '',
  right: '', 'right-mid': '', middle: '   ',
};

/** Renders rows under a header; an empty list gives just the header. */
export function renderTable(head: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const table = new Table({
    head: [...head],
    chars: NO_BORDERS,
    style: { 'padding-left': 0, 'padding-right': 0, head: [], border: [], compact: true },
  });
  for (const row of rows) table.push([...row]);
  return table
    .toString()
    .split('\n')
    .map((l) => l.trimEnd())
    .filter((l) => l !== '')
    .join('\n');
}

/** Visible width of a string (ANSI colour codes do not count). */
export function visibleWidth(s: string): number {
  // eslint-disable-next-line no-control-regex
  return s.replace(/\x1b\[[0-9;]*m/g, '').length;
}

/** Column widths for rows streamed one at a time (watch): the widest cell seen so far per column. */
export function columnWidths(rows: ReadonlyArray<readonly string[]>): number[] {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, visibleWidth(cell))));
  return widths;
}

/** One row padded to fixed widths with the table's separator, no trailing blanks. */
export function formatRow(cells: readonly string[], widths: readonly number[]): string {
  return cells
    .map((c, i) => (i === cells.length - 1 ? c : c + ' '.repeat(Math.max(0, (widths[i] ?? 0) - visibleWidth(c)))))
    .join('   ')
    .trimEnd();
}

/** `Key:  value` blocks for `describe`, keys padded to the widest. Nested lines are indented. */
export function renderFields(fields: ReadonlyArray<readonly [string, string]>, indent = ''): string {
  const width = Math.max(0, ...fields.map(([k]) => k.length + 1));
  return fields
    .map(([k, v]) => {
      const key = `${k}:`.padEnd(width + 2);
      const lines = v.split('\n');
      return `${indent}${key}${lines[0] ?? ''}`.trimEnd() + lines.slice(1).map((l) => `\n${indent}  ${l}`.trimEnd()).join('');
    })
    .join('\n');
}
