import { randomUUID } from 'node:crypto'
import { AuditedChanges, type AuditedChangeOptions } from '../audit/recorder.js'
import { ClientNotFound, Conflict, InvalidRequest, IssuerNotFound } from '../errors.js'
import type { Client, Scope, WorkloadIdentity } from '../keys/model.js'
import type { ClientInput, ClientPatch } from '../schemas/index.js'
import type { Tx } from '../storage/types.js'
import { normaliseSubject } from '../tls/subject.js'
import { generateToken, hashToken } from './tokens.js'

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

/** A list without repeats, or null for none. */
const distinct = <T>(list: readonly T[] | null | undefined): T[] | null => (list === undefined || list === null ? null : [...new Set(list)])

/**
 * The fields to store from client input (API and CLI alike). Each field's type and
 * limits were checked by the request schema; this trims and de-duplicates, and
 * parses the certificate subject.
 */
export function clientFields(input: ClientInput): ClientFields {
  const { keysets, maxTtl, certificateSubject } = input
  let subject: string | null = null
  if (certificateSubject !== undefined && certificateSubject !== null) {
    try {
      subject = normaliseSubject(certificateSubject)
    } catch (error) {
      throw new InvalidRequest(`certificateSubject must be a distinguished name such as CN=billing-api,O=Acme: ${(error as Error).message}`)
    }
  }
  const identity = input.identity ?? null
  return {
    name: input.name.trim(),
    keysets: keysets === '*' || keysets.includes('*') ? '*' : [...new Set(keysets)],
    scopes: [...new Set(input.scopes)] as Scope[],
    audiences: distinct(input.audiences),
    maxTtl: maxTtl ?? null,
    subjects: distinct(input.subjects),
    requiredClaims: distinct(input.requiredClaims),
    // Absent when not bound (see CLIENT_LAYOUT in storage/rows.ts).
    ...(subject === null ? {} : { certificateSubject: subject }),
    ...(identity === null ? {} : { identity: { issuer: identity.issuer, subject: identity.subject } }),
  }
}

/**
 * An identity names a registered issuer (404 otherwise), and no other live client
 * has the very same binding (409): two would make that subject match none.
 */
export async function checkBinding(tx: Tx, identity: WorkloadIdentity): Promise<void> {
  if (!(await tx.issuers.get(identity.issuer))) throw new IssuerNotFound(`no issuer ${identity.issuer}`)
  const twin = (await tx.clients.list()).find((other) => other.revokedAt === null && other.identity?.issuer === identity.issuer && other.identity.subject === identity.subject)
  if (twin) throw new Conflict(`client ${twin.id} is already bound to this issuer and subject`)
}

export type ClientServiceOptions = AuditedChangeOptions

/** Application servers allowed to call Signet, and their bearer tokens. */
export class ClientService {
  readonly #changes: AuditedChanges

  constructor(options: ClientServiceOptions) {
    this.#changes = new AuditedChanges(options)
  }

  /**
   * Creates a client; its token is returned here once and never again. A client
   * bound to a workload identity gets a token only when `token: true` asks for one;
   * otherwise the stored hash is that of a random value nobody ever sees, so no
   * bearer token opens it.
   */
  async create(input: ClientInput, actor: string, guard?: ClientGuard): Promise<{ client: Client; token: string | null }> {
    const fields = clientFields(input)
    guard?.(null, fields)
    const generated = generateToken()
    const token = fields.identity && input.token !== true ? null : generated
    const client: Client = { id: randomUUID(), ...fields, tokenHash: hashToken(generated), createdAt: this.#changes.clock.now(), revokedAt: null }
    await this.#changes.apply(async (tx, audit) => {
      if (client.identity) await checkBinding(tx, client.identity)
      await tx.clients.insert(client)
      await audit({ actor, action: 'client.create', target: client.id, details: { name: client.name, ...policyOf(client), ...(client.certificateSubject ? { certificateSubject: client.certificateSubject } : {}), ...(client.identity ? { identity: client.identity, token: token !== null } : {}) } })
    })
    return { client, token }
  }

  async list(): Promise<Client[]> {
    return this.#changes.read((tx) => tx.clients.list())
  }

  /**
   * Changes a client's policy (the fields of patchClientBody; null clears an
   * optional one), stored like a new client's. The running service and other replicas pick it
   * up as they pick up a revocation: with the next reload of the client map.
   * The audit event holds each changed field before and after.
   */
  async update(id: string, patch: ClientPatch, actor: string, guard?: ClientGuard): Promise<Client> {
    const client = await this.#changes.apply(async (tx, audit) => {
      const current = await liveClient(tx, id)
      const fields = clientFields({ ...current, ...patch })
      guard?.(current, fields)
      // identity is absent from fields when cleared, so it is dropped from current first.
      const { identity: _previous, ...unbound } = current
      const next: Client = { ...unbound, ...fields }
      if (next.identity && JSON.stringify(next.identity) !== JSON.stringify(current.identity ?? null)) await checkBinding(tx, next.identity)
      await tx.clients.update(next)
      const before = policyOf(current)
      const after = policyOf(next)
      const changes = Object.fromEntries(Object.keys(after)
        .filter((field) => JSON.stringify(before[field as keyof typeof before]) !== JSON.stringify(after[field as keyof typeof after]))
        .map((field) => [field, { before: before[field as keyof typeof before], after: after[field as keyof typeof after] }]))
      await audit({ actor, action: 'client.update', target: id, details: { name: current.name, changes } })
      return next
    })
    return client
  }

  /** Revokes a client: its token stops working as soon as the change is seen. */
  async revoke(id: string, actor: string, guard?: ClientGuard): Promise<Client> {
    const client = await this.#changes.apply(async (tx, audit) => {
      const current = await liveClient(tx, id)
      guard?.(current, null)
      const revoked = { ...current, revokedAt: this.#changes.clock.now() }
      await tx.clients.update(revoked)
      await audit({ actor, action: 'client.revoke', target: id, details: { name: current.name } })
      return revoked
    })
    return client
  }
}

/** A client that exists and is not revoked: else 404, or 409 (a revoked client stays revoked). */
async function liveClient(tx: Tx, id: string): Promise<Client> {
  const current = await tx.clients.get(id)
  if (!current) throw new ClientNotFound(`no client ${id}`)
  if (current.revokedAt !== null) throw new Conflict(`client ${id} is already revoked`)
  return current
}

/** What a client may do, as API answers show it (absent optional limits as null). */
export function clientPolicy(client: Client) {
  return {
    keysets: client.keysets,
    scopes: client.scopes,
    audiences: client.audiences,
    maxTtl: client.maxTtl,
    subjects: client.subjects ?? null,
    requiredClaims: client.requiredClaims ?? null,
  }
}

/** A client's policy as the audit log records it: no token hash, nothing secret. */
function policyOf(client: Client) {
  return { ...clientPolicy(client), identity: client.identity ?? null }
}
