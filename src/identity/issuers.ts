import { AuditedChanges, type AuditedChangeOptions } from '../audit/recorder.js'
import { Conflict, IssuerNotFound } from '../errors.js'
import type { Issuer } from '../keys/model.js'
import type { Tx } from '../storage/types.js'
import type { IssuerInput, IssuerPatch } from '../schemas/index.js'
import { applyIssuerChange, checkNewIssuer } from './issuer-policy.js'

export type IssuerServiceOptions = AuditedChangeOptions

/** What the audit log keeps of an issuer: its policy, not a whole key set or certificate. */
function auditDetails(issuer: Issuer): Record<string, unknown> {
  return {
    issuer: issuer.issuer,
    jwksUri: issuer.jwksUri,
    staticKeys: issuer.jwks?.keys.map((key) => key.kid ?? null) ?? null,
    audiences: issuer.audiences,
    algorithms: issuer.algorithms,
    maxTokenLifetime: issuer.maxTokenLifetime,
    caCertificate: issuer.caCertificate !== null,
  }
}

/** The `iss` of a registered issuer is unique: two issuers for one `iss` would make a token's issuer ambiguous. */
async function refuseTakenIss(tx: Tx, iss: string, except: string | null): Promise<void> {
  const holder = (await tx.issuers.list()).find((issuer) => issuer.issuer === iss && issuer.name !== except)
  if (holder) throw new Conflict(`issuer ${holder.name} already has this iss`)
}

/** Trusted workload-token issuers (docs/workload-identity.md); every change is audited. */
export class IssuerService {
  readonly #changes: AuditedChanges

  constructor(options: IssuerServiceOptions) {
    this.#changes = new AuditedChanges(options)
  }

  async create(input: IssuerInput, actor: string): Promise<Issuer> {
    const fields = checkNewIssuer(input)
    const now = this.#changes.clock.now()
    const issuer: Issuer = { ...fields, createdAt: now, updatedAt: now }
    await this.#changes.apply(async (tx, audit) => {
      if (await tx.issuers.get(issuer.name)) throw new Conflict(`issuer ${issuer.name} exists`)
      await refuseTakenIss(tx, issuer.issuer, null)
      await tx.issuers.insert(issuer)
      await audit({ actor, action: 'issuer.create', target: issuer.name, details: auditDetails(issuer) })
    })
    return issuer
  }

  async list(): Promise<Issuer[]> {
    return this.#changes.read((tx) => tx.issuers.list())
  }

  async get(name: string): Promise<Issuer> {
    const issuer = await this.#changes.read((tx) => tx.issuers.get(name))
    if (!issuer) throw new IssuerNotFound(`no issuer ${name}`)
    return issuer
  }

  async update(name: string, change: IssuerPatch, actor: string): Promise<Issuer> {
    const issuer = await this.#changes.apply(async (tx, audit) => {
      const current = await tx.issuers.get(name)
      if (!current) throw new IssuerNotFound(`no issuer ${name}`)
      const next: Issuer = { ...current, ...applyIssuerChange(current, change), updatedAt: this.#changes.clock.now() }
      await refuseTakenIss(tx, next.issuer, name)
      await tx.issuers.update(next)
      await audit({ actor, action: 'issuer.update', target: name, details: auditDetails(next) })
      return next
    })
    return issuer
  }

  /** Deletes an issuer; refused (409) while a live client is bound to it. */
  async remove(name: string, actor: string): Promise<Issuer> {
    const issuer = await this.#changes.apply(async (tx, audit) => {
      const current = await tx.issuers.get(name)
      if (!current) throw new IssuerNotFound(`no issuer ${name}`)
      const bound = (await tx.clients.list()).filter((client) => client.revokedAt === null && client.identity?.issuer === name)
      if (bound.length > 0) throw new Conflict(`${bound.length} live client(s) are bound to issuer ${name} (${bound.slice(0, 5).map((client) => client.id).join(', ')}); revoke them first`)
      await tx.issuers.delete(name)
      await audit({ actor, action: 'issuer.delete', target: name, details: auditDetails(current) })
      return current
    })
    return issuer
  }
}
