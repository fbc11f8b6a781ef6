/**
 * PostgreSQL schema, as numbered migrations applied in order at start, under the
 * write lock so replicas that start together apply each one once. The layout is
 * the SQLite one (same tables, columns and indexes; see ../sqlite/migrations.ts)
 * with PostgreSQL types: epoch milliseconds in BIGINT, binary in BYTEA. JSON stays
 * in TEXT so rows.ts maps both databases the same way. A migration is never edited
 * once released: a change to the schema is a new entry.
 */
export const POSTGRES_MIGRATIONS: { version: number; sql: string }[] = [
  {
    version: 1,
    sql: `
      CREATE TABLE meta (
        name  TEXT PRIMARY KEY,
        value TEXT NOT NULL
      );
      INSERT INTO meta (name, value) VALUES ('generation', '0');

      CREATE TABLE keysets (
        name            TEXT PRIMARY KEY,
        alg             TEXT NOT NULL,
        rsa_bits        INTEGER NOT NULL,
        issuer          TEXT,
        default_ttl     BIGINT NOT NULL,
        max_ttl         BIGINT NOT NULL,
        rotation_period BIGINT NOT NULL,
        prepublish      BIGINT,
        x5c             SMALLINT NOT NULL,
        backend         TEXT NOT NULL,
        created_at      BIGINT NOT NULL,
        updated_at      BIGINT NOT NULL
      );

      CREATE TABLE keys (
        kid             TEXT PRIMARY KEY,
        keyset          TEXT NOT NULL REFERENCES keysets (name),
        alg             TEXT NOT NULL,
        state           TEXT NOT NULL CHECK (state IN ('pending', 'active', 'retired', 'destroyed', 'revoked')),
        public_jwk      TEXT NOT NULL,
        certificate     BYTEA,
        private_key     BYTEA,
        hsm_id          TEXT,
        created_at      BIGINT NOT NULL,
        activates_at    BIGINT,
        activated_at    BIGINT,
        retired_at      BIGINT,
        published_until BIGINT,
        destroyed_at    BIGINT,
        revoked_at      BIGINT,
        revoke_reason   TEXT,
        max_ttl_seen    BIGINT NOT NULL
      );
      CREATE INDEX keys_by_keyset ON keys (keyset);
      -- Guarantee: at most one active key per keyset, whatever replica writes.
      CREATE UNIQUE INDEX keys_one_active ON keys (keyset) WHERE state = 'active';

      CREATE TABLE clients (
        id          TEXT PRIMARY KEY,
        name        TEXT NOT NULL,
        keysets     TEXT NOT NULL,
        scopes      TEXT NOT NULL,
        audiences   TEXT,
        max_ttl     BIGINT,
        token_hash  TEXT NOT NULL UNIQUE,
        created_at  BIGINT NOT NULL,
        revoked_at  BIGINT
      );

      CREATE TABLE audit (
        id         BIGINT PRIMARY KEY,
        at         BIGINT NOT NULL,
        actor      TEXT NOT NULL,
        action     TEXT NOT NULL,
        target     TEXT NOT NULL,
        details    TEXT NOT NULL,
        prev_hash  TEXT NOT NULL,
        hash       TEXT NOT NULL
      );
    `,
  },
  {
    // A client may be bound to the subject of its mutual-TLS certificate (docs/observability.md).
    version: 2,
    sql: 'ALTER TABLE clients ADD COLUMN certificate_subject TEXT;',
  },
  {
    // A client's claim policy: subject patterns and required claim names, JSON lists (docs/clients.md).
    version: 3,
    sql: `
      ALTER TABLE clients ADD COLUMN subjects TEXT;
      ALTER TABLE clients ADD COLUMN required_claims TEXT;
    `,
  },
  {
    // Workload identity (docs/workload-identity.md): trusted token issuers, and the
    // identity a client may be bound to instead of (or beside) its bearer token.
    version: 4,
    sql: `
      CREATE TABLE issuers (
        name               TEXT PRIMARY KEY,
        issuer             TEXT NOT NULL UNIQUE,
        jwks_uri           TEXT,
        jwks               TEXT,
        audiences          TEXT NOT NULL,
        algorithms         TEXT NOT NULL,
        max_token_lifetime BIGINT NOT NULL,
        ca_certificate     TEXT,
        created_at         BIGINT NOT NULL,
        updated_at         BIGINT NOT NULL
      );
      ALTER TABLE clients ADD COLUMN identity_issuer TEXT;
      ALTER TABLE clients ADD COLUMN identity_subject TEXT;
    `,
  },
  {
    // Rows that carry authority are authenticated under a key derived from the master
    // key (docs/security.md). Existing rows get their MAC at the first start that holds
    // the master key (storage/integrity-upgrade.ts), not here: SQL cannot compute it.
    version: 5,
    sql: `
      ALTER TABLE keysets ADD COLUMN mac TEXT;
      ALTER TABLE keys ADD COLUMN mac TEXT;
      ALTER TABLE clients ADD COLUMN mac TEXT;
      ALTER TABLE issuers ADD COLUMN mac TEXT;
    `,
  },
]
