import { randomUUID } from 'node:crypto'
import { auditedTransaction, type AuditSink } from '../audit/recorder.js'
import type { Clock } from '../clock.js'
import { KEYSET_NAME } from '../config.js'
import { ClientNotFound, Conflict, InvalidRequest, IssuerNotFound } from '../errors.js'
import { SCOPES, type Client, type Scope, type WorkloadIdentity } from '../keys/model.js'
import { MAX_SECONDS } from '../keys/policy.js'
import type { Storage, Tx } from '../storage/types.js'
import { normaliseSubject } from '../tls/subject.js'
import { generateToken, hashToken } from './tokens.js'

export interface ClientInput {
  name?: unknown
  keysets?: unknown
  scopes?: unknown
  audiences?: unknown
  maxTtl?: unknown
  /** Subject of the client certificate the client must present (mutual TLS). */
  certificateSubject?: unknown
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

const stringList = (value: unknown): value is string[] => Array.isArray(value) && value.every((item) => typeof item === 'string')

/** Checks client input (API and CLI alike) and returns the fields to store. */
export function checkClientInput(input: ClientInput): Pick<Client, 'name' | 'keysets' | 'scopes' | 'audiences' | 'maxTtl' | 'certificateSubject' | 'identity'> {
  const { name, keysets, scopes, audiences, maxTtl, certificateSubject } = input
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
  if (audiences !== undefined && audiences !== null) {
    if (!stringList(audiences) || audiences.length === 0 || audiences.length > 100 || audiences.some((a) => a.length === 0 || a.length > 2048)) {
      throw new InvalidRequest('audiences must be a list of 1 to 100 non-empty strings')
    }
  }
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
    audiences: (audiences as string[] | null | undefined) ?? null,
    maxTtl: (maxTtl as number | null | undefined) ?? null,
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
  async create(input: ClientInput, actor: string): Promise<{ client: Client; token: string | null }> {
    const fields = checkClientInput(input)
    const generated = generateToken()
    const token = fields.identity && input.token !== true ? null : generated
    const client: Client = { id: randomUUID(), ...fields, tokenHash: hashToken(generated), createdAt: this.#clock.now(), revokedAt: null }
    await auditedTransaction(this.#storage, this.#auditSink, () => this.#clock.now(), async (tx, audit) => {
      if (client.identity) await checkBinding(tx, client.identity)
      await tx.insertClient(client)
      await audit({ actor, action: 'client.create', target: client.id, details: { name: client.name, keysets: client.keysets, scopes: client.scopes, audiences: client.audiences, maxTtl: client.maxTtl, ...(client.certificateSubject ? { certificateSubject: client.certificateSubject } : {}), ...(client.identity ? { identity: client.identity, token: token !== null } : {}) } })
    })
    await this.#onCommit()
    return { client, token }
  }

  async list(): Promise<Client[]> {
    return this.#storage.transaction((tx) => tx.listClients())
  }

  /** Revokes a client: its token stops working as soon as the change is seen. */
  async revoke(id: string, actor: string): Promise<Client> {
    const client = await auditedTransaction(this.#storage, this.#auditSink, () => this.#clock.now(), async (tx, audit) => {
      const current = await tx.getClient(id)
      if (!current) throw new ClientNotFound(`no client ${id}`)
      if (current.revokedAt !== null) throw new Conflict(`client ${id} is already revoked`)
      const revoked = { ...current, revokedAt: this.#clock.now() }
      await tx.updateClient(revoked)
      await audit({ actor, action: 'client.revoke', target: id, details: { name: current.name } })
      return revoked
    })
    await this.#onCommit()
    return client
  }
}
