/**
 * The throw-away measurement behind the driver choice in docs/postgres.md:
 * node-postgres (pg) against postgres.js on the queries Signet's PostgreSQL
 * storage makes (generation poll, snapshot transaction, write transaction with
 * the advisory lock, generation bump and NOTIFY). Not part of the test suite, and
 * postgres.js is not a project dependency; run it in a scratch directory:
 *
 *   mkdir /tmp/pgcmp && cp test/storage/driver-comparison.mjs /tmp/pgcmp/cmp.mjs
 *   cd /tmp/pgcmp && npm init -y && npm i postgres@3 pg@8 && node cmp.mjs
 *
 * It creates and drops its own schema in postgres://postgres@127.0.0.1:5432/test.
 */
import pg from 'pg'
import postgres from 'postgres'
const URL = 'postgres://postgres@127.0.0.1:5432/test'
const schema = 'pgcmp_' + process.pid
const admin = new pg.Client({ connectionString: URL }); await admin.connect()
await admin.query(`CREATE SCHEMA ${schema}`)
await admin.query(`SET search_path=${schema}`)
await admin.query(`CREATE TABLE meta (name text primary key, value text not null); INSERT INTO meta VALUES ('generation','0');
CREATE TABLE keys (kid text primary key, keyset text, public_jwk text, private_key bytea, created_at bigint)`)
for (let i = 0; i < 50; i++) await admin.query('INSERT INTO keys VALUES ($1,$2,$3,$4,$5)', ['seed' + i, 'ks', JSON.stringify({ x: 'a'.repeat(80) }), Buffer.alloc(200, i), Date.now()])
const opts = `-c search_path=${schema}`
const pool = new pg.Pool({ connectionString: URL, options: opts, max: 10 })
const sql = postgres(URL, { max: 10, connection: { search_path: schema }, onnotice: () => {} })

async function time(label, n, fn, conc = 1) {
  for (let i = 0; i < 50; i++) await fn(i) // warm up
  const t0 = process.hrtime.bigint(); let k = 0
  await Promise.all(Array.from({ length: conc }, async () => { while (k < n) { const i = k++; await fn(i) } }))
  const ms = Number(process.hrtime.bigint() - t0) / 1e6
  return { label, n, conc, ops_per_s: Math.round(n / ms * 1000), us_per_op: Math.round(ms * 1000 / n) }
}
let c = 0
const rows = []
for (const round of [1, 2, 3]) {
await admin.query("DELETE FROM keys WHERE kid NOT LIKE 'seed%'")
rows.push(await time('pg generation read', 3000, () => pool.query("SELECT value FROM meta WHERE name='generation'")))
rows.push(await time('postgres.js generation read', 3000, () => sql`SELECT value FROM meta WHERE name='generation'`))
rows.push(await time('pg generation read x8', 6000, () => pool.query("SELECT value FROM meta WHERE name='generation'"), 8))
rows.push(await time('postgres.js generation read x8', 6000, () => sql`SELECT value FROM meta WHERE name='generation'`, 8))
rows.push(await time('pg snapshot (RR txn, 2 selects)', 1000, async () => {
  const cl = await pool.connect(); try { await cl.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY'); await cl.query('SELECT * FROM meta'); await cl.query('SELECT * FROM keys ORDER BY created_at, kid'); await cl.query('COMMIT') } finally { cl.release() } }))
rows.push(await time('postgres.js snapshot (RR txn, 2 selects)', 1000, () => sql.begin('ISOLATION LEVEL REPEATABLE READ READ ONLY', async (t) => { await t`SELECT * FROM meta`; await t`SELECT * FROM keys ORDER BY created_at, kid` })))
rows.push(await time('pg write txn (lock, insert, bump, notify)', 1000, async (i) => {
  const cl = await pool.connect(); try { await cl.query('BEGIN'); await cl.query('SELECT pg_advisory_xact_lock($1)', ['42']); await cl.query('INSERT INTO keys VALUES ($1,$2,$3,$4,$5)', ['pg' + round + '-' + i + '-' + c++, 'ks', '{}', Buffer.alloc(200), Date.now()]); await cl.query("UPDATE meta SET value = (value::bigint+1)::text WHERE name='generation'"); await cl.query("SELECT pg_notify('cmp', 'x')"); await cl.query('COMMIT') } finally { cl.release() } }))
rows.push(await time('postgres.js write txn (lock, insert, bump, notify)', 1000, (i) => sql.begin(async (t) => { await t`SELECT pg_advisory_xact_lock(${'42'})`; await t`INSERT INTO keys VALUES (${'pj' + round + '-' + i + '-' + c++}, 'ks', '{}', ${Buffer.alloc(200)}, ${Date.now()})`; await t`UPDATE meta SET value = (value::bigint+1)::text WHERE name='generation'`; await t`SELECT pg_notify('cmp', 'x')` })))
}
console.table(rows)
await pool.end(); await sql.end()
await admin.query(`DROP SCHEMA ${schema} CASCADE`); await admin.end()
