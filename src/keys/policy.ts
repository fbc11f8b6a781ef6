import { ALGORITHMS, RSA_BITS, isAlg, isRsa, type Alg, type RsaBits } from '../crypto/algorithms.js'
import { KEYSET_NAME } from '../config.js'
import { InvalidRequest } from '../errors.js'
import type { Backend, Keyset } from './model.js'

/**
 * Keyset policy: defaults and the rules that hold between fields (docs/api.md, the keyset object).
 * Shared by the admin API and the CLI, so both refuse the same input the same way.
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

export interface KeysetPolicyInput {
  alg?: unknown
  rsaBits?: unknown
  issuer?: unknown
  defaultTtl?: unknown
  maxTtl?: unknown
  rotationPeriod?: unknown
  prepublish?: unknown
  x5c?: unknown
  backend?: unknown
}

export interface KeysetInput extends KeysetPolicyInput {
  name?: unknown
}

/** The effective prepublish of a keyset: its own, or max(3600, 2 x JWKS max-age). */
export function effectivePrepublish(keyset: Pick<Keyset, 'prepublish'>, jwksMaxAge: number): number {
  return keyset.prepublish ?? Math.max(3600, 2 * jwksMaxAge)
}

export function checkKeysetName(name: unknown): string {
  if (typeof name !== 'string' || !KEYSET_NAME.test(name)) {
    throw new InvalidRequest('name must match ^[a-z0-9][a-z0-9_-]{0,62}$')
  }
  return name
}

function seconds(field: string, value: unknown, min: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > MAX_SECONDS) {
    throw new InvalidRequest(`${field} must be a whole number of seconds from ${min} to ${MAX_SECONDS}`)
  }
  return value
}

function applyPolicy(base: Keyset, input: KeysetPolicyInput): Keyset {
  const next = { ...base }
  if (input.alg !== undefined) {
    if (!isAlg(input.alg)) throw new InvalidRequest(`alg must be one of ${ALGORITHMS.join(', ')}`)
    next.alg = input.alg
  }
  if (input.rsaBits !== undefined) {
    if (!(RSA_BITS as readonly unknown[]).includes(input.rsaBits)) throw new InvalidRequest('rsaBits must be 2048, 3072 or 4096')
    if (!isRsa(next.alg)) throw new InvalidRequest(`rsaBits applies to RSA algorithms only, not ${next.alg}`)
    next.rsaBits = input.rsaBits as RsaBits
  }
  if (input.issuer !== undefined) {
    if (input.issuer !== null && (typeof input.issuer !== 'string' || input.issuer.length === 0 || input.issuer.length > 2048)) {
      throw new InvalidRequest('issuer must be a non-empty string of at most 2048 characters, or null')
    }
    next.issuer = input.issuer as string | null
  }
  if (input.defaultTtl !== undefined) next.defaultTtl = seconds('defaultTtl', input.defaultTtl, 1)
  if (input.maxTtl !== undefined) next.maxTtl = seconds('maxTtl', input.maxTtl, 1)
  if (input.rotationPeriod !== undefined) next.rotationPeriod = seconds('rotationPeriod', input.rotationPeriod, 0)
  if (input.prepublish !== undefined) next.prepublish = input.prepublish === null ? null : seconds('prepublish', input.prepublish, 0)
  if (input.x5c !== undefined) {
    if (typeof input.x5c !== 'boolean') throw new InvalidRequest('x5c must be true or false')
    next.x5c = input.x5c
  }
  if (input.backend !== undefined) {
    if (input.backend !== 'software' && input.backend !== 'pkcs11') throw new InvalidRequest('backend must be software or pkcs11')
    next.backend = input.backend as Backend
  }
  if (next.defaultTtl > next.maxTtl) throw new InvalidRequest('defaultTtl must not exceed maxTtl')
  return next
}

/** A new keyset from API or CLI input, with defaults filled in. */
export function newKeyset(input: KeysetInput, now: number): Keyset {
  const name = checkKeysetName(input.name)
  const base: Keyset = {
    name,
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
  const defaultTtl = input.defaultTtl === undefined && typeof input.maxTtl === 'number' && input.maxTtl < DEFAULTS.defaultTtl
    ? input.maxTtl
    : input.defaultTtl
  return applyPolicy(base, { ...input, defaultTtl })
}

/** The keyset after a PATCH; `name` and `backend` cannot change. */
export function patchKeyset(current: Keyset, patch: KeysetPolicyInput & { name?: unknown }, now: number): Keyset {
  if (patch.name !== undefined && patch.name !== current.name) throw new InvalidRequest('a keyset cannot be renamed')
  if (patch.backend !== undefined && patch.backend !== current.backend) throw new InvalidRequest('the backend of a keyset cannot change')
  const { name: _name, ...policy } = patch
  return { ...applyPolicy(current, policy), updatedAt: now }
}
