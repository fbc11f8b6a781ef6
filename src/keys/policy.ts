import { isRsa, type Alg, type RsaBits } from '../crypto/algorithms.js'
import { InvalidRequest } from '../errors.js'
import type { KeysetInput, KeysetPatch } from '../schemas/index.js'
import type { Keyset } from './model.js'

/**
 * Keyset policy: defaults and the rules that hold between fields (docs/api.md, the
 * keyset object). The type and range of each field are the request schema's
 * (src/schemas); the admin API and the CLI check input against it before it
 * reaches this module.
 */
export const DEFAULTS = {
  alg: 'ES256' as Alg,
  rsaBits: 2048 as RsaBits,
  defaultTtl: 900,
  maxTtl: 3600,
  rotationPeriod: 2_592_000,
}

/** Seconds a retired key stays published beyond the longest token lifetime. */
export const SKEW_SECONDS = 60

/** Longest accepted ttl, rotation period or prepublish, in seconds (10 years). */
export const MAX_SECONDS = 315_360_000

/** The policy fields of a keyset as the API and the CLI give them (src/schemas), its name aside. */
export type KeysetPolicyInput = Omit<KeysetPatch, 'name'>

/** The effective prepublish of a keyset: its own, or max(3600, 2 x JWKS max-age). */
export function effectivePrepublish(keyset: Pick<Keyset, 'prepublish'>, jwksMaxAge: number): number {
  return keyset.prepublish ?? Math.max(3600, 2 * jwksMaxAge)
}

/**
 * The given fields over `base`. Each field's type and range was checked by the
 * request schema; what is left are the rules between fields.
 */
function applyPolicy(base: Keyset, input: KeysetPolicyInput): Keyset {
  const next = { ...base }
  if (input.alg !== undefined) next.alg = input.alg
  if (input.rsaBits !== undefined) {
    if (!isRsa(next.alg)) throw new InvalidRequest(`rsaBits applies to RSA algorithms only, not ${next.alg}`)
    next.rsaBits = input.rsaBits
  }
  if (input.issuer !== undefined) next.issuer = input.issuer
  if (input.defaultTtl !== undefined) next.defaultTtl = input.defaultTtl
  if (input.maxTtl !== undefined) next.maxTtl = input.maxTtl
  if (input.rotationPeriod !== undefined) next.rotationPeriod = input.rotationPeriod
  if (input.prepublish !== undefined) next.prepublish = input.prepublish
  if (input.x5c !== undefined) next.x5c = input.x5c
  if (input.backend !== undefined) next.backend = input.backend
  if (next.defaultTtl > next.maxTtl) throw new InvalidRequest('defaultTtl must not exceed maxTtl')
  return next
}

/** A new keyset from API or CLI input, with defaults filled in. */
export function newKeyset(input: KeysetInput, now: number): Keyset {
  const base: Keyset = {
    name: input.name,
    alg: DEFAULTS.alg,
    rsaBits: DEFAULTS.rsaBits,
    issuer: null,
    defaultTtl: DEFAULTS.defaultTtl,
    maxTtl: DEFAULTS.maxTtl,
    rotationPeriod: DEFAULTS.rotationPeriod,
    prepublish: null,
    x5c: false,
    backend: 'software',
    createdAt: now,
    updatedAt: now,
  }
  // A keyset created with a small maxTtl and no defaultTtl gets defaultTtl = maxTtl.
  const defaultTtl = input.defaultTtl === undefined && input.maxTtl !== undefined && input.maxTtl < DEFAULTS.defaultTtl
    ? input.maxTtl
    : input.defaultTtl
  const { name: _name, ...policy } = input
  return applyPolicy(base, { ...policy, defaultTtl })
}

/** The keyset after a PATCH; `name` and `backend` cannot change. */
export function patchKeyset(current: Keyset, patch: KeysetPatch, now: number): Keyset {
  if (patch.name !== undefined && patch.name !== current.name) throw new InvalidRequest('a keyset cannot be renamed')
  if (patch.backend !== undefined && patch.backend !== current.backend) throw new InvalidRequest('the backend of a keyset cannot change')
  const { name: _name, ...policy } = patch
  return { ...applyPolicy(current, policy), updatedAt: now }
}
