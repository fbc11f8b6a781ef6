/**
 * What commands print: JSON for scripts (`--json`, one document on stdout), or
 * aligned tables and short lines for people. Failures never come through here;
 * they go to stderr as one line (see fail() in index.ts).
 */

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`)
}

export function printLines(...lines: string[]): void {
  process.stdout.write(lines.map((line) => `${line}\n`).join(''))
}

type Cell = string | number | boolean | null | undefined

export interface Column<T> {
  header: string
  value: (row: T) => Cell
}

/** A field of T that a table can show as it is. */
type Field<T> = { [K in keyof T & string]: T[K] extends Cell ? K : never }[keyof T & string]

/** A table's columns: a field name stands for that field as it is, headed by its name. */
export type Columns<T> = readonly (Field<T> | Column<T>)[]

/** When a row was made, to the second (keys, clients and issuers show it). */
export const CREATED: Column<{ createdAt: string | null }> = { header: 'created', value: (row) => shortTime(row.createdAt) }

/** Left-aligned columns with an upper-case header; missing values show as `-`. */
export function printTable<T>(rows: readonly T[], columns: Columns<T>): void {
  const full = columns.map((column): Column<T> => (typeof column === 'string' ? { header: column, value: (row) => row[column] as Cell } : column))
  const cells = rows.map((row) => full.map((column) => {
    const value = column.value(row)
    return value === null || value === undefined || value === '' ? '-' : String(value)
  }))
  const headers = full.map((column) => column.header.toUpperCase())
  const widths = headers.map((header, i) => Math.max(header.length, ...cells.map((line) => line[i]!.length)))
  const format = (line: string[]) => line.map((cell, i) => (i === line.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ')
  printLines(format(headers), ...cells.map(format))
}

/** An ISO 8601 time without milliseconds, for tables. */
export function shortTime(iso: string | null): string | null {
  return iso === null ? null : iso.replace(/\.\d{3}Z$/, 'Z')
}

/** A number of seconds as its two largest units: `29d 23h`, `15m`, `45s`. */
export function inWords(seconds: number): string {
  let rest = Math.max(0, Math.round(seconds))
  const parts: string[] = []
  for (const [unit, size] of [['d', 86_400], ['h', 3600], ['m', 60], ['s', 1]] as const) {
    if (rest >= size || (unit === 's' && parts.length === 0)) {
      parts.push(`${Math.floor(rest / size)}${unit}`)
      rest %= size
    }
    if (parts.length === 2) break
  }
  return parts.join(' ')
}

/** An ISO time and how far it is from `now` (ms): `2026-12-03T10:00:00Z (in 1h 5m)` or `(... ago)`. */
export function timeAndDistance(iso: string, now: number): string {
  const seconds = (Date.parse(iso) - now) / 1000
  const distance = Math.abs(seconds) < 1 ? 'now' : seconds > 0 ? `in ${inWords(seconds)}` : `${inWords(-seconds)} ago`
  return `${shortTime(iso)} (${distance})`
}
