import { createHash } from 'node:crypto'
import type { Client, Issuer } from '../keys/model.js'
import { isPattern, matchesSubject } from './subject-pattern.js'

/** Why a verified workload token names no client. */
export type BindingRefusal = 'no_client' | 'ambiguous_client'

interface IssuerBindings {
  /** Live clients by exact subject. */
  exact: Map<string, Client[]>
  /** Live clients bound to a subject pattern. */
  patterns: Client[]
}

/**
 * The trusted issuers and the live clients bound to their subjects, as the request
 * path reads them; rebuilt with the keystore's view after every change.
 */
export class IdentityDirectory {
  readonly #byIss: Map<string, Issuer>
  readonly #byName: Map<string, Issuer>
  readonly #bindings: Map<string, IssuerBindings>
  readonly #versions: Map<string, string>

  private constructor(issuers: Issuer[], bindings: Map<string, IssuerBindings>) {
    this.#byIss = new Map(issuers.map((issuer) => [issuer.issuer, issuer]))
    this.#byName = new Map(issuers.map((issuer) => [issuer.name, issuer]))
    this.#bindings = bindings
    this.#versions = new Map(issuers.map((issuer) => [issuer.name, createHash('sha256').update(JSON.stringify(issuer)).digest('base64url')]))
  }

  static readonly empty = new IdentityDirectory([], new Map())

  /** From stored rows: revoked clients, and clients of unknown issuers, bind nothing. */
  static from(issuers: readonly Issuer[], clients: readonly Client[]): IdentityDirectory {
    const bindings = new Map<string, IssuerBindings>(issuers.map((issuer) => [issuer.name, { exact: new Map(), patterns: [] }]))
    for (const client of clients) {
      if (client.revokedAt !== null || !client.identity) continue
      const entry = bindings.get(client.identity.issuer)
      if (!entry) continue
      if (isPattern(client.identity.subject)) {
        entry.patterns.push(client)
      } else {
        const list = entry.exact.get(client.identity.subject) ?? []
        list.push(client)
        entry.exact.set(client.identity.subject, list)
      }
    }
    return new IdentityDirectory([...issuers], bindings)
  }

  /** The registered issuer whose `iss` is exactly `iss`. */
  issuerByIss(iss: string): Issuer | undefined {
    return this.#byIss.get(iss)
  }

  issuerByName(name: string): Issuer | undefined {
    return this.#byName.get(name)
  }

  /** Changes whenever anything of the issuer changes; undefined once it is deleted. */
  issuerVersion(name: string): string | undefined {
    return this.#versions.get(name)
  }

  /**
   * The one live client bound to `subject` of issuer `issuerName`: an exact binding
   * wins over patterns; a subject matching two patterns and no exact binding (or
   * two exact bindings) names none.
   */
  bind(issuerName: string, subject: string): { client: Client } | { refused: BindingRefusal } {
    const entry = this.#bindings.get(issuerName)
    if (!entry) return { refused: 'no_client' }
    const exact = entry.exact.get(subject)
    if (exact) return exact.length === 1 ? { client: exact[0]! } : { refused: 'ambiguous_client' }
    let found: Client | null = null
    for (const client of entry.patterns) {
      if (!matchesSubject(client.identity!.subject, subject)) continue
      if (found) return { refused: 'ambiguous_client' }
      found = client
    }
    return found ? { client: found } : { refused: 'no_client' }
  }
}
