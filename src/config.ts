import { readFileSync } from 'node:fs'
import { isIP } from 'node:net'
import { availableParallelism } from 'node:os'
import { MasterKey } from './crypto/master-key.js'
import { ConfigError } from './errors.js'
import { KEYSET_NAME_PATTERN } from './schemas/keyset-name.js'

/**
 * Configuration from the environment (docs/configuration.md), checked once at start.
 *
 * The schema below is the table of every variable's rule: checkWholeNumbers holds
 * the integers to digits, checkSchema applies ranges, lengths, patterns and enums
 * and fills in the defaults. On top of it this module
 * reads `*_FILE` secrets, parses the master keys, and refuses any unknown
 * `SIGNET_*` variable, so a typo never falls back silently to a default. Every
 * error names the variable and never echoes a secret value.
 */

/** Variables that may be given directly or as a file path (`NAME_FILE`). */
// SIGNET_DATABASE_URL may hold a PostgreSQL password, so it has a _FILE form too.
const SECRETS = ['SIGNET_MASTER_KEY', 'SIGNET_ADMIN_TOKEN', 'SIGNET_PKCS11_PIN', 'SIGNET_NEW_MASTER_KEY', 'SIGNET_DATABASE_URL'] as const

/**
 * Where the CLI's remote mode and the client library find Signet (README,
 * "Configuration"): known, so never taken for a typo, but neither read nor checked
 * here, because `serve` ignores them. The CLI checks SIGNET_URL when it uses it
 * (cli/admin-remote.ts); the client library reads its own.
 */
const NOT_FOR_SERVE = ['SIGNET_URL', 'SIGNET_CLIENT_TOKEN', 'SIGNET_CLIENT_TOKEN_FILE'] as const

const schema = {
  type: 'object',
  properties: {
    SIGNET_MASTER_KEY: { type: 'string' },
    // What a Bearer header can carry: printable ASCII, no white space (a second newline in its file would never match).
    SIGNET_ADMIN_TOKEN: { type: 'string', minLength: 32, pattern: '^[!-~]+$' },
    SIGNET_DB: { type: 'string', minLength: 1, default: './data/signet.db' },
    SIGNET_DATABASE_URL: { type: 'string', pattern: '^postgres(ql)?://' },
    SIGNET_HOST: { type: 'string', minLength: 1, default: '127.0.0.1' },
    SIGNET_PORT: { type: 'integer', minimum: 0, maximum: 65535, default: 8080 },
    SIGNET_PUBLIC_PORT: { type: 'integer', minimum: 0, maximum: 65535 },
    SIGNET_PUBLIC_URL: { type: 'string', pattern: '^https?://[^\\s]+$' },
    SIGNET_DEFAULT_KEYSET: { type: 'string', pattern: KEYSET_NAME_PATTERN, default: 'default' },
    SIGNET_JWKS_MAX_AGE: { type: 'integer', minimum: 0, maximum: 31536000, default: 300 },
    SIGNET_TLS_CERT_FILE: { type: 'string', minLength: 1 },
    SIGNET_TLS_KEY_FILE: { type: 'string', minLength: 1 },
    SIGNET_TLS_CLIENT_CA_FILE: { type: 'string', minLength: 1 },
    SIGNET_LOG_LEVEL: { type: 'string', enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], default: 'info' },
    SIGNET_PKCS11_MODULE: { type: 'string', minLength: 1 },
    SIGNET_PKCS11_TOKEN_LABEL: { type: 'string', minLength: 1 },
    SIGNET_PKCS11_SLOT: { type: 'integer', minimum: 0 },
    SIGNET_PKCS11_PIN: { type: 'string', minLength: 1 },
    SIGNET_NEW_MASTER_KEY: { type: 'string' },
    // Labels of AES-256 master keys inside the PKCS#11 token (docs/hsm.md).
    SIGNET_MASTER_KEY_PKCS11: { type: 'string', minLength: 1, maxLength: 128 },
    SIGNET_NEW_MASTER_KEY_PKCS11: { type: 'string', minLength: 1, maxLength: 128 },
    SIGNET_AUDIT_FILE: { type: 'string', minLength: 1 },
    // Signet's own additions, documented in the README.
    SIGNET_AUTH_FAILURE_LIMIT: { type: 'integer', minimum: 0, default: 300 },
    SIGNET_SIGN_RATE_LIMIT: { type: 'integer', minimum: 0, default: 0 },
    // PostgreSQL pool and outage behaviour (docs/postgres.md).
    SIGNET_DATABASE_POOL_SIZE: { type: 'integer', minimum: 1, maximum: 1000, default: 10 },
    SIGNET_DATABASE_TIMEOUT_MS: { type: 'integer', minimum: 100, maximum: 600000, default: 5000 },
    SIGNET_STORAGE_OUTAGE_GRACE: { type: 'integer', minimum: 0, maximum: 86400, default: 300 },
    // Load shedding and slow clients (docs/security.md).
    SIGNET_MAX_IN_FLIGHT: { type: 'integer', minimum: 0, maximum: 1000000, default: 512 },
    SIGNET_MAX_EVENT_LOOP_DELAY_MS: { type: 'integer', minimum: 0, maximum: 600000, default: 0 },
    SIGNET_HEADERS_TIMEOUT_MS: { type: 'integer', minimum: 100, maximum: 600000, default: 10000 },
    SIGNET_REQUEST_TIMEOUT_MS: { type: 'integer', minimum: 100, maximum: 3600000, default: 30000 },
    // Serving processes (README, "Workers or replicas"): a count or `auto`, checked by parseWorkers.
    SIGNET_WORKERS: { type: 'string', default: '1' },
  },
} as const

type Variable = keyof typeof schema.properties
const KNOWN = new Set<string>([
  ...Object.keys(schema.properties),
  ...SECRETS.map((name) => `${name}_FILE`),
  ...NOT_FOR_SERVE,
])

/** `SIGNET_TEST_*` variables belong to test suites (SIGNET_TEST_DATABASE_URL) and are ignored. */
const IGNORED_PREFIX = 'SIGNET_TEST_'

export interface Config {
  /** SIGNET_MASTER_KEY; with masterKeyPkcs11, Signet.open fills it in from the token. */
  masterKey: MasterKey | null
  newMasterKey: MasterKey | null
  /** SIGNET_MASTER_KEY_PKCS11: label of the master key inside the PKCS#11 token. */
  masterKeyPkcs11: string | null
  /** SIGNET_NEW_MASTER_KEY_PKCS11: label of the new master key, read by signet rewrap only. */
  newMasterKeyPkcs11: string | null
  adminToken: string | null
  dbPath: string
  databaseUrl: string | null
  host: string
  port: number
  publicPort: number | null
  publicUrl: string | null
  defaultKeyset: string
  jwksMaxAge: number
  tls: { certFile: string; keyFile: string; clientCaFile: string | null } | null
  logLevel: string
  /** pinFile: SIGNET_PKCS11_PIN_FILE, read again when the token refused the PIN (docs/hsm.md). */
  pkcs11: { module: string; tokenLabel: string | null; slot: number | null; pin: string | null; pinFile: string | null } | null
  auditFile: string | null
  /** Failed authentications per client address per minute before 429; 0 turns it off. */
  authFailureLimit: number
  /** Sign requests per client per second before 429; 0 turns it off. */
  signRateLimit: number
  /** Most PostgreSQL connections the pool opens (the session connection comes on top). */
  databasePoolSize: number
  /** Milliseconds to connect, to run one statement, or to wait for the write lock. */
  databaseTimeoutMs: number
  /** Seconds signing goes on from memory after storage stops answering; 0 stops at once. */
  storageOutageGrace: number
  /** Requests answered at once before new ones get 503 overloaded; 0 = no cap. */
  maxInFlight: number
  /** Mean event-loop delay (ms) above which requests get 503 overloaded; 0 (the default) = off. */
  maxEventLoopDelayMs: number
  /** Milliseconds a client has to send its request headers (slow-loris guard). */
  headersTimeoutMs: number
  /** Milliseconds a client has to send its whole request. */
  requestTimeoutMs: number
  /** Serving processes of `signet serve` (SIGNET_WORKERS, `auto` resolved to the cores); 1 = no cluster. */
  workers: number
  /** SIGNET_URL as given, unchecked: the Signet the CLI administers through its admin API (remote mode); unused by `serve`. */
  url: string | null
}

function readSecretFile(variable: string, path: string): string {
  let value: string
  try {
    value = readFileSync(path, 'utf8').replace(/\r?\n$/, '')
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'unreadable'
    throw new ConfigError(`${variable}: cannot read the file it names (${code})`)
  }
  if (value === '') throw new ConfigError(`${variable}: the file it names is empty`)
  return value
}

/** Resolves `NAME_FILE` into `NAME`; both at once is an error. */
function resolveSecrets(env: Record<string, string>): void {
  for (const name of SECRETS) {
    const fileVariable = `${name}_FILE`
    const path = env[fileVariable]
    if (path === undefined) continue
    if (env[name] !== undefined) throw new ConfigError(`${name} and ${fileVariable} are both set: keep one`)
    env[name] = readSecretFile(fileVariable, path)
    delete env[fileVariable]
  }
}

function parseMasterKey(variable: string, value: string | undefined): MasterKey | null {
  if (value === undefined) return null
  try {
    return MasterKey.fromBase64(value)
  } catch (error) {
    throw new ConfigError(`${variable} must be 32 random bytes in base64 (${(error as Error).message}); make one with: openssl rand -base64 32`)
  }
}

/**
 * Whole-number variables must be written as digits: Number() would also take
 * "1e3", "0x10" or "80 ", which a typo should never become.
 */
function checkWholeNumbers(env: Record<string, string>): void {
  for (const [name, definition] of Object.entries(schema.properties)) {
    const value = env[name]
    if (value !== undefined && (definition as { type: string }).type === 'integer' && !/^\d+$/.test(value)) {
      throw new ConfigError(`${name} must be a whole number written in digits`)
    }
  }
}

/** Most serving processes SIGNET_WORKERS may ask for: far more than cores is a typo, not a plan. */
export const MAX_WORKERS = 256

/** SIGNET_WORKERS: `auto` is one process per core (os.availableParallelism), else a count. */
function parseWorkers(value: string): number {
  if (value === 'auto') return Math.min(availableParallelism(), MAX_WORKERS)
  const count = /^\d+$/.test(value) ? Number(value) : NaN
  if (!(count >= 1 && count <= MAX_WORKERS)) {
    throw new ConfigError(`SIGNET_WORKERS must be auto or a whole number from 1 to ${MAX_WORKERS}, not ${JSON.stringify(value.slice(0, 32))}`)
  }
  return count
}

/** RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens. */
const HOST_NAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/

/**
 * SIGNET_HOST must be an IP address or a host name. A name whose last label is all
 * digits ("256.256.256.256", "10.0.0") is a mistyped address, not a name.
 */
function checkHost(value: string | undefined): void {
  if (value === undefined || isIP(value) !== 0) return
  const lastLabel = value.replace(/\.$/, '').split('.').pop() ?? ''
  if (!HOST_NAME.test(value) || /^\d+$/.test(lastLabel)) {
    throw new ConfigError(`SIGNET_HOST must be an IP address or a host name, not ${JSON.stringify(value.slice(0, 64))}`)
  }
}

/** A host as it goes in a URL: an IPv6 address in brackets, a zone's % escaped (RFC 6874). */
export function urlHost(host: string): string {
  return isIP(host) === 6 ? `[${host.replace('%', '%25')}]` : host
}

type Rule = { type: 'string' | 'integer'; minLength?: number; maxLength?: number; minimum?: number; maximum?: number; pattern?: string; enum?: readonly string[]; default?: string | number }

/**
 * Applies the schema to the variables that are set, in the schema's order, and fills
 * in the defaults. The words are ajv's (JSON Schema's) own, as the API's. Not ajv
 * itself: compiling this one schema cost every `signet` command about 90 ms (profiled)
 * of its start (README, "Choices of libraries"). Integers were checked as digits before
 * (checkWholeNumbers). The config test refuses a rule with another type, or a keyword
 * its type does not have here, so the table cannot ask for what is not checked.
 */
function checkSchema(env: Record<string, string>): Record<Variable, string | number | undefined> {
  const values: Record<string, string | number | undefined> = {}
  for (const [name, rule] of Object.entries(schema.properties) as [Variable, Rule][]) {
    const raw = env[name]
    if (raw === undefined) {
      values[name] = rule.default
      continue
    }
    const problem = ruleProblem(rule, raw)
    if (problem) throw new ConfigError(`${name} ${problem}`)
    values[name] = rule.type === 'integer' ? Number(raw) : raw
  }
  return values as Record<Variable, string | number | undefined>
}

/** The JSON Schema keywords a variable's rule may use, by its type: checkSchema knows these, no other. */
export const SCHEMA_KEYWORDS = {
  string: ['type', 'minLength', 'maxLength', 'pattern', 'enum', 'default'],
  integer: ['type', 'minimum', 'maximum', 'default'],
} as const

/** What is wrong with `raw` under `rule`, in ajv's words (lengths count code points, as ajv), or null. */
function ruleProblem(rule: Rule, raw: string): string | null {
  if (rule.type === 'integer') {
    const value = Number(raw)
    if (rule.maximum !== undefined && value > rule.maximum) return `must be <= ${rule.maximum}`
    if (rule.minimum !== undefined && value < rule.minimum) return `must be >= ${rule.minimum}`
    return null
  }
  const length = [...raw].length
  if (rule.maxLength !== undefined && length > rule.maxLength) return `must NOT have more than ${rule.maxLength} characters`
  if (rule.minLength !== undefined && length < rule.minLength) return `must NOT have fewer than ${rule.minLength} characters`
  if (rule.pattern !== undefined && !new RegExp(rule.pattern, 'u').test(raw)) return `must match pattern "${rule.pattern}"`
  if (rule.enum !== undefined && !rule.enum.includes(raw)) return 'must be equal to one of the allowed values'
  return null
}

/** The rules, for the config test that holds them to SCHEMA_KEYWORDS. */
export const VARIABLE_RULES: Readonly<Record<string, object>> = schema.properties

/**
 * Removes the secret values just read from the process environment, so child
 * processes and environment dumps never see them (docs/security.md). Only from
 * process.env itself: an env object a caller passes is its own. /proc/PID/environ
 * keeps what the process was started with, which is why the *_FILE forms are preferred.
 */
function forgetSecrets(environment: NodeJS.ProcessEnv): void {
  if (environment !== process.env) return
  // An application's client token has no business in Signet's own environment either.
  for (const name of [...SECRETS, 'SIGNET_CLIENT_TOKEN']) delete process.env[name]
}

/** Two sources for one master key is a mistake, never a choice to make silently. */
function checkOneSource(env: Record<string, string>, software: string, pkcs11: string): void {
  if (env[software] !== undefined && env[pkcs11] !== undefined) {
    throw new ConfigError(`${software} (or ${software}_FILE) and ${pkcs11} are both set: keep one`)
  }
  if (env[pkcs11] !== undefined && env.SIGNET_PKCS11_MODULE === undefined) {
    throw new ConfigError(`${pkcs11} needs SIGNET_PKCS11_MODULE (and the token's SIGNET_PKCS11_TOKEN_LABEL or SIGNET_PKCS11_SLOT, SIGNET_PKCS11_PIN)`)
  }
}

/**
 * Reads and checks the configuration. Throws ConfigError with a message naming
 * the first bad variable. Read from process.env, the secrets leave it (forgetSecrets).
 */
export function loadConfig(environment: NodeJS.ProcessEnv = process.env): Config {
  try {
    return readConfig(environment)
  } finally {
    forgetSecrets(environment)
  }
}

function readConfig(environment: NodeJS.ProcessEnv): Config {
  const env: Record<string, string> = {}
  for (const [name, value] of Object.entries(environment)) {
    if (!name.startsWith('SIGNET_') || name.startsWith(IGNORED_PREFIX) || value === undefined) continue
    if (!KNOWN.has(name)) throw new ConfigError(`${name} is not a Signet variable (check its spelling)`)
    if ((NOT_FOR_SERVE as readonly string[]).includes(name)) continue
    env[name] = value
  }
  const pkcs11PinFile = env.SIGNET_PKCS11_PIN_FILE ?? null
  resolveSecrets(env)
  checkOneSource(env, 'SIGNET_MASTER_KEY', 'SIGNET_MASTER_KEY_PKCS11')
  checkOneSource(env, 'SIGNET_NEW_MASTER_KEY', 'SIGNET_NEW_MASTER_KEY_PKCS11')
  checkWholeNumbers(env)
  checkHost(env.SIGNET_HOST)

  const values = checkSchema(env)
  const str = (name: Variable): string | null => (values[name] === undefined ? null : String(values[name]))
  const int = (name: Variable): number | null => (values[name] === undefined ? null : Number(values[name]))
  // Variables with a default in the schema: checkSchema has filled them in.
  const text = (name: Variable): string => String(values[name])
  const num = (name: Variable): number => Number(values[name])

  const certFile = str('SIGNET_TLS_CERT_FILE')
  const keyFile = str('SIGNET_TLS_KEY_FILE')
  const clientCaFile = str('SIGNET_TLS_CLIENT_CA_FILE')
  if ((certFile === null) !== (keyFile === null)) {
    throw new ConfigError(`${certFile === null ? 'SIGNET_TLS_CERT_FILE' : 'SIGNET_TLS_KEY_FILE'} is required with the other TLS file`)
  }
  if (clientCaFile !== null && certFile === null) {
    throw new ConfigError('SIGNET_TLS_CLIENT_CA_FILE needs SIGNET_TLS_CERT_FILE and SIGNET_TLS_KEY_FILE')
  }

  const pkcs11Module = str('SIGNET_PKCS11_MODULE')
  const port = num('SIGNET_PORT')
  const publicPort = int('SIGNET_PUBLIC_PORT')
  if (publicPort !== null && publicPort !== 0 && publicPort === port) {
    throw new ConfigError('SIGNET_PUBLIC_PORT must differ from SIGNET_PORT')
  }
  const headersTimeoutMs = num('SIGNET_HEADERS_TIMEOUT_MS')
  const requestTimeoutMs = num('SIGNET_REQUEST_TIMEOUT_MS')
  if (headersTimeoutMs > requestTimeoutMs) {
    throw new ConfigError('SIGNET_HEADERS_TIMEOUT_MS must not exceed SIGNET_REQUEST_TIMEOUT_MS')
  }

  return {
    masterKey: parseMasterKey('SIGNET_MASTER_KEY', env.SIGNET_MASTER_KEY),
    newMasterKey: parseMasterKey('SIGNET_NEW_MASTER_KEY', env.SIGNET_NEW_MASTER_KEY),
    masterKeyPkcs11: str('SIGNET_MASTER_KEY_PKCS11'),
    newMasterKeyPkcs11: str('SIGNET_NEW_MASTER_KEY_PKCS11'),
    adminToken: str('SIGNET_ADMIN_TOKEN'),
    dbPath: text('SIGNET_DB'),
    databaseUrl: str('SIGNET_DATABASE_URL'),
    host: text('SIGNET_HOST'),
    port,
    publicPort,
    publicUrl: str('SIGNET_PUBLIC_URL')?.replace(/\/+$/, '') ?? null,
    defaultKeyset: text('SIGNET_DEFAULT_KEYSET'),
    jwksMaxAge: num('SIGNET_JWKS_MAX_AGE'),
    tls: certFile && keyFile ? { certFile, keyFile, clientCaFile } : null,
    logLevel: text('SIGNET_LOG_LEVEL'),
    pkcs11: pkcs11Module
      ? { module: pkcs11Module, tokenLabel: str('SIGNET_PKCS11_TOKEN_LABEL'), slot: int('SIGNET_PKCS11_SLOT'), pin: str('SIGNET_PKCS11_PIN'), pinFile: pkcs11PinFile }
      : null,
    auditFile: str('SIGNET_AUDIT_FILE'),
    authFailureLimit: num('SIGNET_AUTH_FAILURE_LIMIT'),
    signRateLimit: num('SIGNET_SIGN_RATE_LIMIT'),
    databasePoolSize: num('SIGNET_DATABASE_POOL_SIZE'),
    databaseTimeoutMs: num('SIGNET_DATABASE_TIMEOUT_MS'),
    storageOutageGrace: num('SIGNET_STORAGE_OUTAGE_GRACE'),
    maxInFlight: num('SIGNET_MAX_IN_FLIGHT'),
    maxEventLoopDelayMs: num('SIGNET_MAX_EVENT_LOOP_DELAY_MS'),
    headersTimeoutMs,
    requestTimeoutMs,
    workers: parseWorkers(text('SIGNET_WORKERS')),
    url: environment.SIGNET_URL?.replace(/\/+$/, '') ?? null,
  }
}
