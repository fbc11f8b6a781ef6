import { randomUUID } from 'node:crypto'
import { auditedTransaction, type AuditSink } from '../audit/recorder.js'
import type { Clock } from '../clock.js'
import { KEYSET_NAME } from '../config.js'
import { ClientNotFound, Conflict, InvalidRequest, IssuerNotFound } from '../errors.js'
import { SCOPES, type Client, type Scope, type WorkloadIdentity } from '../keys/model.js'
import { MAX_SECONDS } from '../keys/policy.js'
import type { Storage, Tx } from '../storage/types.js'
import { normaliseSubject } from '../tls/subject.js'
import { POLICY_LIMITS } from './claim-policy.js'
import { generateToken, hashToken } from './tokens.js'

export interface ClientInput {
  name?: unknown
  keysets?: unknown
  scopes?: unknown
  audiences?: unknown
  maxTtl?: unknown
  /** Subject of the client certificate the client must present (mutual TLS). */
  certificateSubject?: unknown
  subjects?: unknown
  requiredClaims?: unknown
  /** The workload identity it is bound to: `{ issuer, subject }` (docs/workload-identity.md). */
  identity?: unknown
  /** With an identity: also issue a bearer token (none by default). */
  token?: unknown
}

/** Longest identity subject pattern. */
export const MAX_IDENTITY_SUBJECT = 1024

/** A workload identity binding: a registered issuer's name and a subject pattern with at least one literal character. */
function checkIdentity(value: unknown): WorkloadIdentity {
  const { issuer, subject } = (value ?? {}) as { issuer?: unknown; subject?: unknown }
  if (value === null || typeof value !== 'object' || Array.isArray(value) || Object.keys(value).some((key) => key !== 'issuer' && key !== 'subject')) {
    throw new InvalidRequest('identity must be { "issuer": "<issuer name>", "subject": "<subject or pattern>" }')
  }
  if (typeof issuer !== 'string' || !KEYSET_NAME.test(issuer)) throw new InvalidRequest('identity.issuer must be the name of a registered issuer')
  if (typeof subject !== 'string' || subject.length === 0 || subject.length > MAX_IDENTITY_SUBJECT || /[\u0000-\u001f\u007f]/.test(subject)) {
    throw new InvalidRequest(`identity.subject must be a subject of 1 to ${MAX_IDENTITY_SUBJECT} characters, where * matches any run of characters`)
  }
  // A bare * would accept every workload of the issuer (on a shared issuer such as GitHub's, anyone's).
  if (/^\*+$/.test(subject)) throw new InvalidRequest('identity.subject must name a workload: a pattern needs at least one literal character')
  return { issuer, subject }
}

/** What PATCH /v1/admin/clients/{id} and `signet clients update` may change; null clears an optional field. */
export const PATCHABLE_FIELDS = ['keysets', 'scopes', 'audiences', 'maxTtl', 'subjects', 'requiredClaims', 'identity'] as const
export type ClientPatch = Pick<ClientInput, (typeof PATCHABLE_FIELDS)[number]>

/** The stored fields of a client that input sets. */
export type ClientFields = Pick<Client, 'name' | 'keysets' | 'scopes' | 'audiences' | 'maxTtl' | 'certificateSubject' | 'identity'> & {
  subjects: string[] | null
  requiredClaims: string[] | null
}

/**
 * A check a caller adds to a change, run inside its transaction before anything
 * is written: the admin route passes the principal's keyset limits (admin-access.ts).
 * `before` is null for a new client, `after` for a revocation.
 */
export type ClientGuard = (before: Client | null, after: ClientFields | null) => void

const stringList = (value: unknown): value is string[] => Array.isArray(value) && value.every((item) => typeof item === 'string')

/** An optional list of 1 to `items` strings of 1 to `length` characters each, or null. */
function optionalList(field: 'audiences' | 'subjects' | 'requiredClaims', value: unknown, what: string): string[] | null {
  if (value === undefined || value === null) return null
  const { items, length } = POLICY_LIMITS[field]
  if (!stringList(value) || value.length === 0 || value.length > items || value.some((item) => item.length === 0 || item.length > length)) {
    throw new InvalidRequest(`${field} must be a list of 1 to ${items} ${what} of 1 to ${length} characters, or null for none`)
  }
  return [...new Set(value)]
}

/** Checks client input (API and CLI alike) and returns the fields to store. */
export function checkClientInput(input: ClientInput): ClientFields {
  const { name, keysets, scopes, maxTtl, certificateSubject } = input
  if (typeof name !== 'string' || name.trim().length === 0 || name.length > 128) {
    throw new InvalidRequest('name must be a non-empty string of at most 128 characters')
  }
  let allowed: string[] | '*'
  if (keysets === '*' || (stringList(keysets) && keysets.length === 1 && keysets[0] === '*')) {
    allowed = '*'
  } else if (stringList(keysets) && keysets.length > 0 && keysets.length <= 100 && keysets.every((k) => KEYSET_NAME.test(k))) {
    allowed = [...new Set(keysets)]
  } else {
    throw new InvalidRequest('keysets must be "*" or a list of 1 to 100 keyset names')
  }
  if (!stringList(scopes) || scopes.length === 0 || !scopes.every((s) => (SCOPES as readonly string[]).includes(s))) {
    throw new InvalidRequest(`scopes must be a non-empty list of ${SCOPES.join(', ')}`)
  }
  const audiences = optionalList('audiences', input.audiences, 'strings')
  const subjects = optionalList('subjects', input.subjects, 'patterns')
  const requiredClaims = optionalList('requiredClaims', input.requiredClaims, 'claim names')
  if (maxTtl !== undefined && maxTtl !== null && (typeof maxTtl !== 'number' || !Number.isSafeInteger(maxTtl) || maxTtl < 1 || maxTtl > MAX_SECONDS)) {
    throw new InvalidRequest(`maxTtl must be a whole number of seconds from 1 to ${MAX_SECONDS}`)
  }
  let subject: string | null = null
  if (certificateSubject !== undefined && certificateSubject !== null) {
    if (typeof certificateSubject !== 'string') throw new InvalidRequest('certificateSubject must be a distinguished name such as CN=billing-api,O=Acme')
    try {
      subject = normaliseSubject(certificateSubject)
    } catch (error) {
      throw new InvalidRequest(`certificateSubject must be a distinguished name such as CN=billing-api,O=Acme: ${(error as Error).message}`)
    }
  }
  const identity = input.identity === undefined || input.identity === null ? null : checkIdentity(input.identity)
  if (input.token !== undefined && typeof input.token !== 'boolean') throw new InvalidRequest('token must be true or false')
  return {
    name: name.trim(),
    keysets: allowed,
    scopes: [...new Set(scopes)] as Scope[],
    audiences,
    maxTtl: (maxTtl as number | null | undefined) ?? null,
    subjects,
    requiredClaims,
    // Absent when not bound (see clientFromRow).
    ...(subject === null ? {} : { certificateSubject: subject }),
    ...(identity === null ? {} : { identity }),
  }
}

/**
 * An identity names a registered issuer (404 otherwise), and no other live client
 * has the very same binding (409): two would make that subject match none.
 */
export async function checkBinding(tx: Tx, identity: WorkloadIdentity): Promise<void> {
  if (!(await tx.getIssuer(identity.issuer))) throw new IssuerNotFound(`no issuer ${identity.issuer}`)
  const twin = (await tx.listClients()).find((other) => other.revokedAt === null && other.identity?.issuer === identity.issuer && other.identity.subject === identity.subject)
  if (twin) throw new Conflict(`client ${twin.id} is already bound to this issuer and subject`)
}

export interface ClientServiceOptions {
  storage: Storage
  clock: Clock
  auditSink?: AuditSink | null
  onCommit?: () => Promise<void>
}

/** Application servers allowed to call Signet, and their bearer tokens. */
export class ClientService {
  readonly #storage: Storage
  readonly #clock: Clock
  readonly #auditSink: AuditSink | null
  readonly #onCommit: () => Promise<void>

  constructor(options: ClientServiceOptions) {
    this.#storage = options.storage
    this.#clock = options.clock
    this.#auditSink = options.auditSink ?? null
    this.#onCommit = options.onCommit ?? (async () => {})
  }

  /**
   * Creates a client; its token is returned here once and never again. A client
   * bound to a workload identity gets a token only when `token: true` asks for one;
   * otherwise the stored hash is that of a random value nobody ever sees, so no
   * bearer token opens it.
   */
  async create(input: ClientInput, actor: string, guard?: ClientGuard): Promise<{ client: Client; token: string | null }> {
    const fields = checkClientInput(input)
    guard?.(null, fields)
    const generated = generateToken()
    const token = fields.identity && input.token !== true ? null : generated
    const client: Client = { id: randomUUID(), ...fields, tokenHash: hashToken(generated), createdAt: this.#clock.now(), revokedAt: null }
    await auditedTransaction(this.#storage, this.#auditSink, () => this.#clock.now(), async (tx, audit) => {
      if (client.identity) await checkBinding(tx, client.identity)
      await tx.insertClient(client)
      await audit({ actor, action: 'client.create', target: client.id, details: { name: client.name, ...policyOf(client), ...(client.certificateSubject ? { certificateSubject: client.certificateSubject } : {}), ...(client.identity ? { identity: client.identity, token: token !== null } : {}) } })
    })
    await this.#onCommit()
    return { client, token }
  }

  async list(): Promise<Client[]> {
    return this.#storage.transaction((tx) => tx.listClients())
  }

  /**
   * Changes a client's policy (PATCHABLE_FIELDS; null clears an optional one),
   * checked like a new client's. The running service and other replicas pick it
   * up as they pick up a revocation: with the next reload of the client map.
   * The audit event holds each changed field before and after.
   */
  async update(id: string, patch: ClientPatch, actor: string, guard?: ClientGuard): Promise<Client> {
    const given = Object.keys(patch)
    const unknown = given.find((field) => !(PATCHABLE_FIELDS as readonly string[]).includes(field))
    if (unknown !== undefined) throw new InvalidRequest(`only ${PATCHABLE_FIELDS.join(', ')} can be changed, not ${JSON.stringify(unknown.slice(0, 32))}`)
    if (given.length === 0) throw new InvalidRequest(`nothing to change: give at least one of ${PATCHABLE_FIELDS.join(', ')}`)
    const client = await auditedTransaction(this.#storage, this.#auditSink, () => this.#clock.now(), async (tx, audit) => {
      const current = await liveClient(tx, id)
      const fields = checkClientInput({ ...current, ...patch })
      guard?.(current, fields)
      // identity is absent from fields when cleared, so it is dropped from current first.
      const { identity: _previous, ...unbound } = current
      const next: Client = { ...unbound, ...fields }
      if (next.identity && JSON.stringify(next.identity) !== JSON.stringify(current.identity ?? null)) await checkBinding(tx, next.identity)
      await tx.updateClient(next)
      const before = policyOf(current)
      const after = policyOf(next)
      const changes = Object.fromEntries(Object.keys(after)
        .filter((field) => JSON.stringify(before[field as keyof typeof before]) !== JSON.stringify(after[field as keyof typeof after]))
        .map((field) => [field, { before: before[field as keyof typeof before], after: after[field as keyof typeof after] }]))
      await audit({ actor, action: 'client.update', target: id, details: { name: current.name, changes } })
      return next
    })
    await this.#onCommit()
    return client
  }

  /** Revokes a client: its token stops working as soon as the change is seen. */
  async revoke(id: string, actor: string, guard?: ClientGuard): Promise<Client> {
    const client = await auditedTransaction(this.#storage, this.#auditSink, () => this.#clock.now(), async (tx, audit) => {
      const current = await liveClient(tx, id)
      guard?.(current, null)
      const revoked = { ...current, revokedAt: this.#clock.now() }
      await tx.updateClient(revoked)
      await audit({ actor, action: 'client.revoke', target: id, details: { name: current.name } })
      return revoked
    })
    await this.#onCommit()
    return client
  }
}

/** A client that exists and is not revoked: else 404, or 409 (a revoked client stays revoked). */
async function liveClient(tx: Tx, id: string): Promise<Client> {
  const current = await tx.getClient(id)
  if (!current) throw new ClientNotFound(`no client ${id}`)
  if (current.revokedAt !== null) throw new Conflict(`client ${id} is already revoked`)
  return current
}

/** A client's policy as the audit log records it: no token hash, nothing secret. */
function policyOf(client: Client) {
  return {
    keysets: client.keysets,
    scopes: client.scopes,
    audiences: client.audiences,
    maxTtl: client.maxTtl,
    subjects: client.subjects ?? null,
    requiredClaims: client.requiredClaims ?? null,
    identity: client.identity ?? null,
  }
}
