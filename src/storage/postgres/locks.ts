import { createHash } from 'node:crypto'

/**
 * PostgreSQL advisory locks and notification channels are per database, not per
 * schema. Two Signet installations in two schemas of one database (or two test
 * runs) must not share them, so every lock key is derived from the schema name.
 */

/** What a lock protects. */
export type LockPurpose = 'write' | 'scheduler'

/**
 * The bigint advisory-lock key for `purpose` in `schema`: the first 8 bytes of a
 * SHA-256, as a signed 64-bit decimal string (what `pg_advisory_lock(bigint)` takes).
 */
export function advisoryLockKey(purpose: LockPurpose, schema: string): string {
  return createHash('sha256').update(`signet:${purpose}:${schema}`).digest().readBigInt64BE(0).toString()
}

/**
 * How pg_locks shows a bigint advisory lock: classid holds the high 32 bits,
 * objid the low 32 bits, objsubid is 1. Tests and operators use it to see who
 * holds the scheduler lease.
 */
export function advisoryLockRow(key: string): { classid: number; objid: number } {
  const value = BigInt.asUintN(64, BigInt(key))
  return { classid: Number(value >> 32n), objid: Number(value & 0xffffffffn) }
}

/** The channel every Signet installation in a database notifies; payloads name the schema. */
export const CHANGE_CHANNEL = 'signet_changes'
