/**
 * SQLite schema, as numbered migrations applied in order at start. A migration is
 * never edited once released: a change to the schema is a new entry.
 */
export const SQLITE_MIGRATIONS: { version: number; sql: string }[] = [
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
        default_ttl     INTEGER NOT NULL,
        max_ttl         INTEGER NOT NULL,
        rotation_period INTEGER NOT NULL,
        prepublish      INTEGER,
        x5c             INTEGER NOT NULL,
        backend         TEXT NOT NULL,
        created_at      INTEGER NOT NULL,
        updated_at      INTEGER NOT NULL
      );

      CREATE TABLE keys (
        kid             TEXT PRIMARY KEY,
        keyset          TEXT NOT NULL REFERENCES keysets (name),
        alg             TEXT NOT NULL,
        state           TEXT NOT NULL CHECK (state IN ('pending', 'active', 'retired', 'destroyed', 'revoked')),
        public_jwk      TEXT NOT NULL,
        certificate     BLOB,
        private_key     BLOB,
        hsm_id          TEXT,
        created_at      INTEGER NOT NULL,
        activates_at    INTEGER,
        activated_at    INTEGER,
        retired_at      INTEGER,
        published_until INTEGER,
        destroyed_at    INTEGER,
        revoked_at      INTEGER,
        revoke_reason   TEXT,
        max_ttl_seen    INTEGER NOT NULL
      );
      CREATE INDEX keys_by_keyset ON keys (keyset);
      -- Guarantee: at most one active key per keyset, whatever process writes.
      CREATE UNIQUE INDEX keys_one_active ON keys (keyset) WHERE state = 'active';

      CREATE TABLE clients (
        id          TEXT PRIMARY KEY,
        name        TEXT NOT NULL,
        keysets     TEXT NOT NULL,
        scopes      TEXT NOT NULL,
        audiences   TEXT,
        max_ttl     INTEGER,
        token_hash  TEXT NOT NULL UNIQUE,
        created_at  INTEGER NOT NULL,
        revoked_at  INTEGER
      );

      CREATE TABLE audit (
        id         INTEGER PRIMARY KEY,
        at         INTEGER NOT NULL,
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
        max_token_lifetime INTEGER NOT NULL,
        ca_certificate     TEXT,
        created_at         INTEGER NOT NULL,
        updated_at         INTEGER NOT NULL
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
