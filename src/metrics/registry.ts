import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client'
import type { Clock } from '../clock.js'
import type { Keystore, LiveKeyset } from '../keys/keystore.js'
import { nextKeyDueAt } from '../keys/lifecycle.js'
import { KEY_STATES } from '../keys/model.js'
import { effectivePrepublish } from '../keys/policy.js'

/**
 * Signet's Prometheus metrics (prom-client), one registry per service instance so
 * tests and several instances in one process never share counters.
 *
 * Label values are bounded: keyset, issuer and client names and algorithms are
 * set by an admin; outcomes are the stable problem codes; a kid, a token or a claim is
 * never a label. A keyset name a caller asked for that does not exist is counted
 * under the empty keyset label, so a caller cannot grow the label set.
 *
 * Counters move on the request path (one increment and, for signing, one
 * histogram observation). Key and keyset gauges are computed from the in-memory
 * keystore when /metrics is scraped, so they add nothing to signing.
 *
 * With SIGNET_WORKERS the instance is several processes (cluster.ts): counters and
 * histograms are summed across them; the gauges below describe the instance's keys,
 * which every worker sees alike, so they carry an `aggregator` that takes one
 * worker's value instead of adding N copies.
 */

/** What the scrape-time gauges read: the keystore, the clock and the JWKS max-age. */
export interface MetricsSource {
  keystore: Keystore
  clock: Clock
  config: { jwksMaxAge: number }
  /** Rows that failed their integrity check, by table (storage/sealed-storage.ts). */
  integrityFailures?: { byTable(): ReadonlyMap<string, number> }
}

/** Seconds, for latencies from well under a millisecond (ES256 from memory) up to seconds. */
const SIGN_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]

export class SignetMetrics {
  readonly registry = new Registry()
  readonly signRequests: Counter<'endpoint' | 'keyset' | 'alg' | 'client' | 'outcome'>
  readonly tokensSigned: Counter<'keyset' | 'alg' | 'client'>
  readonly signDuration: Histogram<'endpoint'>
  readonly verifications: Counter<'outcome'>
  readonly jwksRequests: Counter<'keyset' | 'status'>
  readonly authFailures: Counter<'code'>
  readonly workloadAuth: Counter<'issuer' | 'result'>
  readonly storageErrors: Counter<'operation'>
  #source: MetricsSource | null = null
  readonly #exposition: (() => Promise<string>) | null

  /**
   * `exposition`: what /metrics answers instead of this registry alone (a cluster
   * worker asks the primary for the whole instance's metrics: cluster.ts).
   */
  constructor(options: { defaultMetrics?: boolean; exposition?: () => Promise<string> } = {}) {
    this.#exposition = options.exposition ?? null
    const registers = [this.registry]
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry })

    /** A request-path counter of this registry (name, label names, help). */
    const counter = <L extends string>(name: string, labelNames: readonly L[], help: string): Counter<L> => new Counter({ name, help, labelNames, registers })

    this.signRequests = counter('signet_sign_requests_total', ['endpoint', 'keyset', 'alg', 'client', 'outcome'],
      'Sign requests (/v1/sign and /v1/sign/batch) by keyset, algorithm, client name and outcome (ok or the problem code).')
    this.tokensSigned = counter('signet_tokens_signed_total', ['keyset', 'alg', 'client'],
      'Tokens signed, by keyset, algorithm and client name (a batch counts each of its tokens).')
    this.signDuration = new Histogram({
      name: 'signet_sign_duration_seconds',
      help: 'Time to answer a successful sign request, from its arrival to the last byte of the answer.',
      labelNames: ['endpoint'],
      buckets: SIGN_BUCKETS,
      registers,
    })
    this.verifications = counter('signet_verify_requests_total', ['outcome'],
      'POST /v1/verify answers by outcome: valid, the verification code of an invalid token, or the problem code of a refused request.')
    this.jwksRequests = counter('signet_jwks_requests_total', ['keyset', 'status'],
      'JWK Set requests by keyset and HTTP status (304: the client already had the current set).')
    this.authFailures = counter('signet_auth_failures_total', ['code'],
      'Refused authentications: unauthorized (no or bad token), forbidden (scope, keyset or certificate binding), rate_limited (too many failures from an address).')
    this.workloadAuth = counter('signet_workload_auth_total', ['issuer', 'result'],
      'Workload tokens presented, by issuer name (empty: no registered issuer) and result: accepted, or why refused (malformed, unknown_issuer, invalid_signature, jwks_unavailable, audience, expired, not_yet_valid, lifetime, missing_claim, no_client, ambiguous_client).')
    this.storageErrors = counter('signet_storage_errors_total', ['operation'],
      'Storage operations that failed because storage did not answer or complete them, by operation.')

    const metrics = this
    new Gauge({
      name: 'signet_keys',
      help: 'Keys per keyset and lifecycle state.',
      labelNames: ['keyset', 'state'],
      registers,
      aggregator: 'first',
      collect() {
        this.reset()
        for (const live of metrics.#keysets()) {
          for (const state of KEY_STATES) this.set({ keyset: live.keyset.name, state }, live.keyCounts[state])
        }
      },
    })
    new Gauge({
      name: 'signet_active_key_age_seconds',
      help: 'Seconds since the active key of each keyset was activated.',
      labelNames: ['keyset'],
      registers,
      aggregator: 'first',
      collect() {
        this.reset()
        const now = metrics.#now()
        for (const live of metrics.#keysets()) {
          const activatedAt = activeKeyActivatedAt(live)
          if (activatedAt !== null) this.set({ keyset: live.keyset.name }, (now - activatedAt) / 1000)
        }
      },
    })
    new Gauge({
      name: 'signet_next_rotation_seconds',
      help: 'Seconds until the next scheduled key change of each keyset: a pending key activating, or the automatic rotation creating the next key. Negative: overdue. Absent: nothing scheduled (manual rotation only).',
      labelNames: ['keyset'],
      registers,
      aggregator: 'first',
      collect() {
        this.reset()
        const source = metrics.#source
        if (!source) return
        const now = source.clock.now()
        for (const live of metrics.#keysets()) {
          const next = nextRotationAt(live, effectivePrepublish(live.keyset, source.config.jwksMaxAge))
          if (next !== null) this.set({ keyset: live.keyset.name }, (next - now) / 1000)
        }
      },
    })
    new Counter({
      name: 'signet_integrity_failures_total',
      help: 'Stored rows that failed their integrity check (MAC, or a kid that is not the thumbprint of its key) and are ignored, by table; each distinct failure counts once.',
      labelNames: ['table'],
      registers,
      collect() {
        this.reset()
        for (const [table, count] of metrics.#source?.integrityFailures?.byTable() ?? []) this.inc({ table }, count)
      },
    })
    new Gauge({
      name: 'signet_ready',
      help: '1 when the service is ready (as /readyz), else 0; with several workers, 1 when every one is.',
      registers,
      aggregator: 'min',
      collect() {
        this.set(metrics.#source?.keystore.readiness().ready ? 1 : 0)
      },
    })
  }

  /** Binds the scrape-time gauges to a running service. */
  track(source: MetricsSource): this {
    this.#source = source
    return this
  }

  #keysets(): Iterable<LiveKeyset> {
    return this.#source?.keystore.keysets() ?? []
  }

  #now(): number {
    return this.#source?.clock.now() ?? Date.now()
  }

  /** The Prometheus text exposition of every metric (of the whole instance). */
  async exposition(): Promise<string> {
    return this.#exposition ? this.#exposition() : this.registry.metrics()
  }

  get contentType(): string {
    return this.registry.contentType
  }
}

function activeKeyOf(live: LiveKeyset) {
  return live.activeKid === null ? undefined : live.published.find((key) => key.kid === live.activeKid)
}

function activeKeyActivatedAt(live: LiveKeyset): number | null {
  return activeKeyOf(live)?.activatedAt ?? null
}

/**
 * When the scheduler next acts on the keyset's keys: the earliest pending key's
 * activation, or, without a pending key, when automatic rotation creates the next
 * key, `prepublish` seconds before it is due (lifecycle.nextKeyDueAt, as the
 * scheduler plans it). Not lifecycle.nextRotationAt, which is when a new key signs.
 */
export function nextRotationAt(live: LiveKeyset, prepublishSeconds: number): number | null {
  let next: number | null = null
  for (const key of live.published) {
    if (key.state === 'pending' && key.activatesAt !== null && (next === null || key.activatesAt < next)) next = key.activatesAt
  }
  if (next !== null) return next
  const active = activeKeyOf(live)
  return active ? nextKeyDueAt(live.keyset, active, prepublishSeconds) : null
}
