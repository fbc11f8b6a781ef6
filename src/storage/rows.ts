import type { Alg, RsaBits } from '../crypto/algorithms.js'
import type { PublicJwk } from '../crypto/jwk.js'
import type { AuditEvent, Backend, Client, Issuer, IssuerJwk, KeyRecord, KeyState, Keyset, Scope, WorkloadIdentity } from '../keys/model.js'
import type { Stored } from './types.js'

// The column layout that every SQL storage shares, one entry a field: a field is
// stored in the column named after it in snake_case (`rsaBits` in `rsa_bits`),
// JSON in text columns, booleans as 0 or 1, times as epoch milliseconds. Each
// layout names every field of its domain object, so a field added to the model
// without a column does not compile.

/** A row as a driver hands it back: column name to value. */
export type Row = Record<string, unknown>

/**
 * How a field of type V is read from and written to its column (or columns). V is
 * the field's exact type, so a codec that reads another type (an int for a boolean,
 * a nullable for a field that may be absent) does not compile: a field read back
 * differently would change the row's integrity MAC (storage/row-integrity.ts).
 */
interface Field<V> {
  /** The value of the field; undefined leaves the field out of the object. */
  read: (row: Row, column: string) => V
  write: (value: V, column: string) => Row
  /** The columns it takes when not the one named after the field. */
  columns?: string[]
}

const isNull = (value: unknown): value is null | undefined => value === null || value === undefined

/** A field in one column, converted each way. Drivers may hand back numbers as bigint or string. */
const column = <V>(fromColumn: (value: unknown) => V, toColumn: (value: V) => unknown = (value) => value): Field<V> => ({
  read: (row, name) => fromColumn(row[name]),
  write: (value, name) => ({ [name]: toColumn(value) }),
})

/** Text; T narrows it to the values the domain allows (an Alg, a KeyState). */
const text = <T extends string = string>() => column((value) => String(value) as T)
const int = <T extends number = number>() => column((value) => Number(value) as T)
const bool = () => column((value) => Boolean(Number(value)), (value: boolean) => (value ? 1 : 0))
/** JSON in a text column; T is what Signet wrote there. */
const json = <T>() => column((value) => JSON.parse(String(value)) as T, (value: T) => JSON.stringify(value))
const bytes = () => column((value): Buffer => Buffer.from(value as Uint8Array))

/** Writes `field`, or NULL for null (and for undefined, an absent field). */
const orNull = <V>(field: Field<V>) => (value: V | null | undefined, name: string): Row => (isNull(value) ? { [name]: null } : field.write(value, name))

/** The field may be null, stored as NULL. */
const nullable = <V>(field: Field<V>): Field<V | null> => ({
  read: (row, name) => (isNull(row[name]) ? null : field.read(row, name)),
  write: orNull(field),
})

/**
 * The field may be absent (or null): it is left out of the object when its column
 * is NULL, so rows written before the column existed look as they did (and keep
 * their integrity MACs).
 */
const optional = <V>(field: Field<V>): Field<V | null | undefined> => ({
  read: (row, name) => (isNull(row[name]) ? undefined : field.read(row, name)),
  write: orNull(field),
})

/** A client's workload identity, in two columns; absent when not bound. */
const identity: Field<WorkloadIdentity | null | undefined> = {
  columns: ['identity_issuer', 'identity_subject'],
  read: (row) => (isNull(row.identity_issuer) ? undefined : { issuer: String(row.identity_issuer), subject: String(row.identity_subject) }),
  write: (value) => ({ identity_issuer: value?.issuer ?? null, identity_subject: value?.subject ?? null }),
}

/** The integrity MAC (storage/row-integrity.ts); absent on rows written before rows were authenticated. */
const mac = optional(text())

const columnOf = (field: string): string => field.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`)

/** How the objects of one table map to its rows. */
export interface Layout<T> {
  columns: string[]
  fromRow(row: Row): T
  toRow(value: T): Row
}

function layout<T>(fields: { [K in keyof T]-?: Field<T[K]> }): Layout<T> {
  // Each entry's codec matches its field (the parameter's type); here they are handled alike.
  const entries = Object.entries(fields as Record<string, Field<unknown>>).map(([name, field]) => ({ name, field, column: columnOf(name) }))
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
  name: text(),
  alg: text<Alg>(),
  rsaBits: int<RsaBits>(),
  issuer: nullable(text()),
  defaultTtl: int(),
  maxTtl: int(),
  rotationPeriod: int(),
  prepublish: nullable(int()),
  x5c: bool(),
  backend: text<Backend>(),
  createdAt: int(),
  updatedAt: int(),
  mac,
})

export const KEY_LAYOUT = layout<Stored<KeyRecord>>({
  kid: text(),
  keyset: text(),
  alg: text<Alg>(),
  state: text<KeyState>(),
  publicJwk: json<PublicJwk>(),
  certificate: nullable(bytes()),
  privateKey: nullable(bytes()),
  hsmId: nullable(text()),
  createdAt: int(),
  activatesAt: nullable(int()),
  activatedAt: nullable(int()),
  retiredAt: nullable(int()),
  publishedUntil: nullable(int()),
  destroyedAt: nullable(int()),
  revokedAt: nullable(int()),
  revokeReason: nullable(text()),
  maxTtlSeen: int(),
  mac,
})

export const CLIENT_LAYOUT = layout<Stored<Client>>({
  id: text(),
  name: text(),
  keysets: json<string[] | '*'>(),
  scopes: json<Scope[]>(),
  audiences: nullable(json<string[]>()),
  maxTtl: nullable(int()),
  tokenHash: text(),
  createdAt: int(),
  revokedAt: nullable(int()),
  mac,
  // Present only when set, so clients without them look as they did before the columns.
  certificateSubject: optional(text()),
  subjects: optional(json<string[]>()),
  requiredClaims: optional(json<string[]>()),
  identity,
})

export const ISSUER_LAYOUT = layout<Stored<Issuer>>({
  name: text(),
  issuer: text(),
  jwksUri: nullable(text()),
  jwks: nullable(json<{ keys: IssuerJwk[] }>()),
  audiences: json<string[]>(),
  algorithms: json<Alg[]>(),
  maxTokenLifetime: int(),
  caCertificate: nullable(text()),
  createdAt: int(),
  updatedAt: int(),
  mac,
})

export const AUDIT_LAYOUT = layout<AuditEvent>({
  id: int(),
  at: int(),
  actor: text(),
  action: text(),
  target: text(),
  details: json<Record<string, unknown>>(),
  prevHash: text(),
  hash: text(),
})
