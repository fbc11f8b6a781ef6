import type { AuditEvent, Client, Issuer, KeyRecord, Keyset, WorkloadIdentity } from '../keys/model.js'
import type { Stored } from './types.js'

/**
 * The column layout that every SQL storage shares, one entry a field: a field is
 * stored in the column named after it in snake_case (`rsaBits` in `rsa_bits`),
 * JSON in text columns, booleans as 0 or 1, times as epoch milliseconds. Each
 * layout names every field of its domain object, so a field added to the model
 * without a column does not compile.
 */
export type Row = Record<string, unknown>

/** How one field is read from and written to its column (or columns). */
interface Field {
  /** The value of the field, or undefined to leave the field out of the object. */
  read(row: Row, column: string): unknown
  write(value: unknown, column: string): Row
  /** The columns it takes when not the one named after the field. */
  columns?: string[]
}

const isNull = (value: unknown): value is null | undefined => value === null || value === undefined

/** A field in one column, converted each way. Drivers may hand back numbers as bigint or string. */
const column = (fromColumn: (value: unknown) => unknown, toColumn: (value: unknown) => unknown = (value) => value): Field => ({
  read: (row, name) => fromColumn(row[name]),
  write: (value, name) => ({ [name]: toColumn(value) }),
})

const text = column(String)
const int = column(Number)
const bool = column((value) => Boolean(Number(value)), (value) => (value ? 1 : 0))
const json = column((value) => JSON.parse(String(value)), (value) => JSON.stringify(value))
const bytes = column((value) => Buffer.from(value as Uint8Array))

/** The field may be null, stored as NULL. */
const nullable = (field: Field): Field => ({
  read: (row, name) => (isNull(row[name]) ? null : field.read(row, name)),
  write: (value, name) => (isNull(value) ? { [name]: null } : field.write(value, name)),
})

/**
 * The field is left out of the object when its column is NULL, so rows written
 * before the column existed look as they did (and keep their integrity MACs).
 */
const optional = (field: Field): Field => ({
  read: (row, name) => (isNull(row[name]) ? undefined : field.read(row, name)),
  write: nullable(field).write,
})

/** A client's workload identity, in two columns; absent when not bound. */
const identity: Field = {
  columns: ['identity_issuer', 'identity_subject'],
  read: (row) => (isNull(row.identity_issuer) ? undefined : { issuer: String(row.identity_issuer), subject: String(row.identity_subject) }),
  write: (value) => ({ identity_issuer: (value as WorkloadIdentity | null)?.issuer ?? null, identity_subject: (value as WorkloadIdentity | null)?.subject ?? null }),
}

/** The integrity MAC (storage/row-integrity.ts); absent on rows written before rows were authenticated. */
const mac = optional(text)

const columnOf = (field: string): string => field.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`)

/** How the objects of one table map to its rows. */
export interface Layout<T> {
  columns: string[]
  fromRow(row: Row): T
  toRow(value: T): Row
}

function layout<T>(fields: Record<keyof T, Field>): Layout<T> {
  const entries = Object.entries<Field>(fields).map(([name, field]) => ({ name, field, column: columnOf(name) }))
  return {
    columns: entries.flatMap(({ field, column }) => field.columns ?? [column]),
    fromRow(row) {
      const value: Record<string, unknown> = {}
      for (const { name, field, column } of entries) {
        const read = field.read(row, column)
        if (read !== undefined) value[name] = read
      }
      return value as T
    },
    toRow(value) {
      const row: Row = {}
      for (const { name, field, column } of entries) Object.assign(row, field.write((value as Record<string, unknown>)[name], column))
      return row
    },
  }
}

export const KEYSET_LAYOUT = layout<Stored<Keyset>>({
  name: text,
  alg: text,
  rsaBits: int,
  issuer: nullable(text),
  defaultTtl: int,
  maxTtl: int,
  rotationPeriod: int,
  prepublish: nullable(int),
  x5c: bool,
  backend: text,
  createdAt: int,
  updatedAt: int,
  mac,
})

export const KEY_LAYOUT = layout<Stored<KeyRecord>>({
  kid: text,
  keyset: text,
  alg: text,
  state: text,
  publicJwk: json,
  certificate: nullable(bytes),
  privateKey: nullable(bytes),
  hsmId: nullable(text),
  createdAt: int,
  activatesAt: nullable(int),
  activatedAt: nullable(int),
  retiredAt: nullable(int),
  publishedUntil: nullable(int),
  destroyedAt: nullable(int),
  revokedAt: nullable(int),
  revokeReason: nullable(text),
  maxTtlSeen: int,
  mac,
})

export const CLIENT_LAYOUT = layout<Stored<Client>>({
  id: text,
  name: text,
  keysets: json,
  scopes: json,
  audiences: nullable(json),
  maxTtl: nullable(int),
  tokenHash: text,
  createdAt: int,
  revokedAt: nullable(int),
  mac,
  // Present only when set, so clients without them look as they did before the columns.
  certificateSubject: optional(text),
  subjects: optional(json),
  requiredClaims: optional(json),
  identity,
})

export const ISSUER_LAYOUT = layout<Stored<Issuer>>({
  name: text,
  issuer: text,
  jwksUri: nullable(text),
  jwks: nullable(json),
  audiences: json,
  algorithms: json,
  maxTokenLifetime: int,
  caCertificate: nullable(text),
  createdAt: int,
  updatedAt: int,
  mac,
})

export const AUDIT_LAYOUT = layout<AuditEvent>({
  id: int,
  at: int,
  actor: text,
  action: text,
  target: text,
  details: json,
  prevHash: text,
  hash: text,
})
