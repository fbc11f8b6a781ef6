import { AudienceNotAllowed, MissingClaim, SubjectNotAllowed } from '../errors.js'
import type { Client } from '../keys/model.js'
import { compileSubjectPattern, type SubjectPattern } from './subject-pattern.js'

/**
 * A client's claim policy (docs/clients.md): which `aud` and `sub` its tokens may
 * carry and which claims they must carry. The limits below are also the JSON
 * schema's (src/schemas), so the API and the CLI refuse the same input.
 */
export const POLICY_LIMITS = {
  audiences: { items: 100, length: 2048 },
  subjects: { items: 100, length: 256 },
  requiredClaims: { items: 50, length: 256 },
} as const

/** Claims Signet sets on every token; `iss` too when the keyset has an issuer. */
const ALWAYS_STAMPED = new Set(['iat', 'exp', 'jti'])

interface CompiledPolicy {
  audiences: ReadonlySet<string> | null
  subjects: readonly SubjectPattern[] | null
  requiredClaims: readonly string[]
}

/** Compiled once per loaded client object (the keystore builds new ones on each reload). */
const compiled = new WeakMap<Client, CompiledPolicy>()

/**
 * The client's policy ready for the sign path. The keystore calls this as it loads
 * clients, so requests only look it up.
 */
export function claimPolicyOf(client: Client): CompiledPolicy {
  let policy = compiled.get(client)
  if (policy === undefined) {
    policy = {
      audiences: client.audiences === null ? null : new Set(client.audiences),
      subjects: client.subjects ? client.subjects.map(compileSubjectPattern) : null,
      requiredClaims: client.requiredClaims ?? [],
    }
    compiled.set(client, policy)
  }
  return policy
}

/**
 * Refuses claims the client may not sign: no `aud` (or one outside its audiences)
 * when it has audiences, no `sub` (or one no pattern matches) when it has subjects,
 * and a missing required claim. Claim values are never quoted in the refusal.
 * `sub` and `aud` have been checked to be a string / strings already.
 */
export function checkClaimPolicy(client: Client, claims: Record<string, unknown>, keysetHasIssuer: boolean): void {
  if (client.audiences === null && !client.subjects && !client.requiredClaims) return // no policy: the common case
  const policy = claimPolicyOf(client)
  if (policy.audiences !== null) {
    // An empty array is no audience at all (guarantee 12).
    if (claims.aud === undefined || (Array.isArray(claims.aud) && claims.aud.length === 0)) throw new MissingClaim('aud is required: this client may sign only for its audiences')
    const audiences = Array.isArray(claims.aud) ? claims.aud : [claims.aud]
    if (!audiences.every((aud) => policy.audiences!.has(aud as string))) throw new AudienceNotAllowed('aud holds a value this client may not use')
  }
  if (policy.subjects !== null) {
    if (claims.sub === undefined) throw new MissingClaim('sub is required: this client may sign only for its subjects')
    const sub = claims.sub as string
    if (!policy.subjects.some((pattern) => pattern.matches(sub))) throw new SubjectNotAllowed('sub matches none of the subject patterns of this client')
  }
  for (const name of policy.requiredClaims) {
    const stamped = ALWAYS_STAMPED.has(name) || (name === 'iss' && keysetHasIssuer)
    if (!stamped && !Object.hasOwn(claims, name)) throw new MissingClaim(`claim ${JSON.stringify(name)} is required for this client`)
  }
}
