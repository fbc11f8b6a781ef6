import type { Keyset } from './model.js'
import { duration } from './time.js'

/** A keyset's policy as the edit form proposes it; prepublish null: the server's default. */
export interface PolicyChange {
  alg: string
  issuer: string | null
  defaultTtl: number
  maxTtl: number
  rotationPeriod: number
  prepublish: number | null
}

/**
 * The effective prepublish for a proposed policy: its own, or the server's default
 * max(3600, 2 x JWKS max-age) (effectivePrepublish in src/keys/policy.ts).
 */
export function effectivePrepublish(prepublish: number | null, jwksMaxAge: number): number {
  return prepublish ?? Math.max(3600, 2 * jwksMaxAge)
}

/**
 * What a policy change would do to verifiers, said before it is saved. `jwksMaxAge`
 * is the max-age of the keyset's JWK Set answer (null when it could not be read).
 *
 * A longer maxTtl needs no warning of its own: the server keeps the active key
 * published for the longest maxTtl it signed under (maxTtlSeen), and retired keys
 * sign nothing, so no token outlives its key in the JWK Set.
 */
export function policyWarnings(current: Keyset, next: PolicyChange, jwksMaxAge: number | null): string[] {
  const warnings: string[] = []
  const prepublish = jwksMaxAge === null ? next.prepublish : effectivePrepublish(next.prepublish, jwksMaxAge)
  if (jwksMaxAge !== null && prepublish !== null && prepublish < 2 * jwksMaxAge) {
    warnings.push(
      `prepublish ${duration(prepublish)} is shorter than twice the JWK Set's max-age (2 x ${duration(jwksMaxAge)}): ` +
        'a verifier holding a cached JWK Set may not know a new key when it starts signing, and will reject its tokens.',
    )
  }
  if (next.alg !== current.alg) {
    warnings.push(
      `alg changes from ${current.alg} to ${next.alg} at the next rotation: verifiers that accept only ${current.alg} will reject tokens signed after it.`,
    )
  }
  if (next.rotationPeriod > 0 && next.maxTtl > next.rotationPeriod) {
    warnings.push(
      `maxTtl ${duration(next.maxTtl)} is longer than rotationPeriod ${duration(next.rotationPeriod)}: each retired key stays published for maxTtl, so the JWK Set will hold about ${Math.ceil(next.maxTtl / next.rotationPeriod)} retired keys.`,
    )
  }
  if (next.rotationPeriod === 0 && current.rotationPeriod > 0) {
    warnings.push('rotationPeriod 0 turns automatic rotation off: the active key signs until someone rotates by hand.')
  }
  if (next.rotationPeriod > 0 && prepublish !== null && prepublish >= next.rotationPeriod) {
    warnings.push(`prepublish ${duration(prepublish)} is not shorter than rotationPeriod ${duration(next.rotationPeriod)}: a new key is published as soon as one activates.`)
  }
  if (current.issuer !== null && next.issuer !== current.issuer) {
    warnings.push(`the issuer changes from ${current.issuer}: verifiers that check iss reject new tokens until they are told.`)
  }
  return warnings
}
