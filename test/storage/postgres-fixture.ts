import { randomBytes } from 'node:crypto'
import pg from 'pg'

/**
 * PostgreSQL for tests. The tests read SIGNET_TEST_DATABASE_URL (CI:
 * postgres://postgres@127.0.0.1:5432/test); without it they skip, saying so.
 * Every test file works in a schema of its own, dropped afterwards, so files
 * running in parallel (and parallel CI runs on one server) never meet: Signet
 * derives its advisory-lock keys and notification filter from the schema.
 */
export const PG_VARIABLE = 'SIGNET_TEST_DATABASE_URL'
export const pgBaseUrl: string | null = process.env[PG_VARIABLE] || null
export const PG_SKIP = `${PG_VARIABLE} is not set: PostgreSQL tests skipped (CI sets it to postgres://postgres@127.0.0.1:5432/test)`

if (!pgBaseUrl) console.warn(PG_SKIP)

/** The base URL with `search_path` set to `schema` (libpq's `options` parameter). */
export function urlForSchema(base: string, schema: string): string {
  const url = new URL(base)
  url.searchParams.set('options', `-c search_path=${schema}`)
  return url.toString()
}

export interface TestSchema {
  schema: string
  /** SIGNET_DATABASE_URL for this schema. */
  url: string
  /** Runs SQL as an outside observer, in this schema. */
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<pg.QueryResult<R>>
  /** Drops the schema and everything in it, and ends connections the tests opened on it. */
  drop(): Promise<void>
}

/** Creates an empty schema with a unique name. */
export async function createTestSchema(prefix = 'signet_test'): Promise<TestSchema> {
  if (!pgBaseUrl) throw new Error(PG_SKIP)
  const schema = `${prefix}_${process.pid}_${randomBytes(4).toString('hex')}`
  const url = urlForSchema(pgBaseUrl, schema)
  const admin = new pg.Client({ connectionString: pgBaseUrl })
  admin.on('error', () => {})
  await admin.connect()
  await admin.query(`CREATE SCHEMA ${schema}`)
  await admin.query(`SET search_path = ${schema}`)
  return {
    schema,
    url,
    query: (sql, params) => admin.query(sql, params as unknown[]),
    drop: async () => {
      try {
        await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
      } finally {
        await admin.end().catch(() => {})
      }
    },
  }
}
