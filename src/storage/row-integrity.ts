import { createHmac, createPublicKey, timingSafeEqual } from 'node:crypto'
import { canonicalJson } from '../audit/chain.js'
import { thumbprint } from '../crypto/jwk.js'
import { sealedCheckValue, type MasterKey } from '../crypto/master-key.js'
import { isDatabaseMasterKey } from '../keys/master-key-check.js'
import type { Client, Issuer, KeyRecord, Keyset } from '../keys/model.js'
import type { Stored, Tx, TxTable } from './types.js'

/**
 * Rows that carry authority, authenticated under a key derived from the master
 * key (docs/security.md, "The database is not trusted"), each with the primary
 * key of its rows. A new table is an entry here, a `mac` column (mapped by
 * rows.ts), a table of the same name in Tx and a field in Snapshot (checked there
 * by sealed-storage.ts and by `signet check`; the upgrade and the rewrap reach
 * every row as `tx[table]`), and its sealed table in SealedTx, which the compiler
 * asks for.
 */
export const SEALED_TABLES: { [T in SealedTable]: { id(row: RowOf<T>): string } } = {
  keysets: { id: (row) => row.name },
  keys: { id: (row) => row.kid },
  clients: { id: (row) => row.id },
  issuers: { id: (row) => row.name },
}

/** The domain object of each sealed table. */
interface SealedRows {
  keysets: Keyset
  keys: KeyRecord
  clients: Client
  issuers: Issuer
}

export type SealedTable = keyof SealedRows
export type RowOf<T extends SealedTable> = SealedRows[T]

/** The sealed tables' names, in SEALED_TABLES' order. */
export const SEALED_TABLE_NAMES = Object.keys(SEALED_TABLES) as SealedTable[]

/**
 * Rewrites every row of every sealed table as `rewrite` returns it, in `tx` (a
 * transaction of the storage itself): the upgrade seals them, a rewrap re-seals
 * them under the new key. Returns how many rows each table holds.
 */
export async function rewriteSealedRows(
  tx: Tx,
  rewrite: <T extends SealedTable>(table: T, row: Stored<RowOf<T>>) => Promise<Stored<RowOf<T>>>,
): Promise<Record<SealedTable, number>> {
  const counts = {} as Record<SealedTable, number>
  for (const table of SEALED_TABLE_NAMES) {
    const rows = tx[table] as TxTable<RowOf<typeof table>>
    const stored = await rows.list()
    for (const row of stored) await rows.update(await rewrite(table, row))
    counts[table] = stored.length
  }
  return counts
}

/** A row that failed its check: never used, logged once, counted and shown by `signet check`. */
export interface IntegrityFailure {
  table: string
  id: string
  reason: string
}

/**
 * The meta row recording that this database's rows and audit log are
 * authenticated, and from which audit event the chain is keyed (earlier events
 * were chained with plain SHA-256 before the upgrade). Itself authenticated.
 */
export const INTEGRITY_META = 'integrity'

export interface IntegrityMarker {
  /** 2: the rows are also recorded by the state manifest (state-manifest.ts); 1: written before it. */
  version: 1 | 2
  /** The first audit event chained with the keyed HMAC. */
  keyedFrom: number
}

/**
 * The canonical form a MAC covers: every field of the domain object but the MAC,
 * binary as base64, and a field that is null or absent left out, so a column
 * added later (NULL on existing rows) keeps their MACs valid while any value it
 * takes is covered.
 */
function canonicalFields(row: object): Record<string, unknown> {
  const fields: Record<string, unknown> = {}
  for (const [name, value] of Object.entries(row)) {
    if (name === 'mac' || value === null || value === undefined) continue
    fields[name] = Buffer.isBuffer(value) ? value.toString('base64') : value
  }
  return fields
}

/** What a row's MAC is computed over: the table, the primary key and canonicalFields. */
const macInput = (table: string, id: string, row: object): string => canonicalJson({ table, id, row: canonicalFields(row) })

/** Whether two hex MACs are equal (in constant time), neither of them empty. */
export const sameHex = (a: string, b: string): boolean => {
  const x = Buffer.from(a, 'hex')
  const y = Buffer.from(b, 'hex')
  return x.length === y.length && x.length > 0 && timingSafeEqual(x, y)
}

/** The two keys derived from the master key for integrity, derived once and held in memory. */
export class IntegrityKeys {
  readonly #rows: Buffer
  /** HMAC key of the audit chain and its head (audit/chain.ts). */
  readonly audit: Buffer
  readonly #masterKey: MasterKey

  constructor(masterKey: MasterKey) {
    this.#masterKey = masterKey
    this.#rows = masterKey.deriveKey('signet row integrity v1')
    this.audit = masterKey.deriveKey('signet audit chain v1')
  }

  /** Whether the database's master-key check value (absent before init) is this master key's. */
  ownsDatabase(checkValue: string | undefined): boolean {
    return isDatabaseMasterKey(this.#masterKey, checkValue)
  }

  /** The master-key check value of a database whose rows are authenticated (crypto/master-key.ts). */
  sealedCheckValue(): string {
    return sealedCheckValue(this.#masterKey)
  }

  /** HMAC-SHA256 over the table, the primary key and every field of the row, hex. */
  mac(table: string, id: string, row: object): string {
    return this.#hmac(macInput(table, id, row))
  }

  #hmac(input: string): string {
    return createHmac('sha256', this.#rows).update(input).digest('hex')
  }

  /** The row with its MAC, ready to store. */
  seal<T extends SealedTable>(table: T, row: RowOf<T>): RowOf<T> & { mac: string } {
    return { ...row, mac: this.mac(table, rowIdOf(table, row), row) }
  }

  /** Why a stored row cannot be trusted, or null when it can. */
  async check<T extends SealedTable>(table: T, row: RowOf<T> & { mac?: string | null }): Promise<string | null> {
    if (!row.mac) return 'no integrity MAC: the row was not written by Signet'
    const id = rowIdOf(table, row)
    // A row exactly as it was when last found intact needs no second look (reloads are
    // frequent, rows rarely change). "Exactly" is what the MAC covers and the MAC itself:
    // plain JSON of the row would take a NaN read from a tampered column for the null
    // it replaced.
    const seen = `${table}\0${id}`
    const input = macInput(table, id, row)
    const exact = `${row.mac}\n${input}`
    if (this.#intact.get(seen) === exact) return null
    if (!sameHex(row.mac, this.#hmac(input))) return 'integrity MAC does not match: the row was changed or written outside Signet'
    const reason = table === 'keys' ? await checkKid(row as RowOf<'keys'>) : null
    if (reason === null) this.#intact.set(seen, exact)
    return reason
  }

  /** The MAC and the MAC input of each row last found intact, by table and primary key. */
  readonly #intact = new Map<string, string>()

  /** The marker's stored value. */
  sealMarker(marker: IntegrityMarker): string {
    return JSON.stringify({ ...marker, mac: this.mac('meta', INTEGRITY_META, marker) })
  }

  /** The marker a stored value holds, or null when it is not authentic. */
  openMarker(value: string): IntegrityMarker | null {
    try {
      const { mac, ...marker } = JSON.parse(value) as IntegrityMarker & { mac: string }
      if ((marker.version !== 1 && marker.version !== 2) || !Number.isSafeInteger(marker.keyedFrom) || typeof mac !== 'string') return null
      return sameHex(mac, this.mac('meta', INTEGRITY_META, marker)) ? marker : null
    } catch {
      return null
    }
  }

  toJSON(): string {
    return '[IntegrityKeys]'
  }
}

/** The primary key of a row of `table`. */
export function rowIdOf<T extends SealedTable>(table: T, row: RowOf<T>): string {
  return (SEALED_TABLES[table] as { id(row: RowOf<T>): string }).id(row)
}

/** A key's kid is the RFC 7638 thumbprint of its public JWK, and the JWK names the same kid. */
async function checkKid(key: KeyRecord): Promise<string | null> {
  try {
    if (key.publicJwk.kid !== key.kid) return 'the public JWK names another kid'
    const computed = await thumbprint(createPublicKey({ key: key.publicJwk as never, format: 'jwk' }))
    return computed === key.kid ? null : 'kid is not the RFC 7638 thumbprint of the public JWK'
  } catch {
    return 'the public JWK is not a valid public key'
  }
}
