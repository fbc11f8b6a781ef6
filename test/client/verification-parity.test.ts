import { createHmac, createPrivateKey, createPublicKey, sign as cryptoSign, type KeyObject } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createVerifier, VERIFICATION_CODES, VerificationError, type Verifier } from '../../src/client/index.js'
import { systemClock } from '../../src/clock.js'
import { MAX_TOKEN_BYTES } from '../../src/signing/token-limit.js'
import { createHarness, type Harness } from '../helpers/harness.js'
import { openStoredKey } from '../helpers/secrets.js'

/**
 * /v1/verify and the client's createVerifier speak one vocabulary: the same bad
 * token gets the same code from both. One set of bad tokens, each signed for real
 * with the keyset's own key where its refusal must have the stated cause, goes to a
 * listening Signet's /v1/verify and to a verifier on that keyset's JWK Set.
 */

const b64url = (value: unknown): string => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url')

/** A compact JWS over any header and payload, ES256 with raw R||S as RFC 7518 wants. */
function forge(header: Record<string, unknown>, payload: unknown, key: KeyObject): string {
  const input = `${b64url(header)}.${b64url(payload)}`
  return `${input}.${cryptoSign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`
}

const AUDIENCE = 'api'
const ISSUER = 'https://issuer.example'

describe('one vocabulary: /v1/verify and createVerifier refuse the same token with the same code', () => {
  let h: Harness
  let url: string
  let client: string
  let verifier: Verifier
  let kid: string
  let key: KeyObject
  let otherKid: string
  let otherKey: KeyObject
  let publicPem: string

  /** The private key of a published key, opened with the master key (white-box: the attack is not). */
  const privateKeyOf = async (wanted: string): Promise<KeyObject> => {
    const record = (await h.signet.storage.snapshot()).keys.find((stored) => stored.kid === wanted)!
    return createPrivateKey({ key: openStoredKey(h.config.masterKey!, { ...record, privateKey: record.privateKey! }).der, format: 'der', type: 'pkcs8' })
  }
  const publishedJwk = async (keyset: string) => ((await (await fetch(`${url}/keysets/${keyset}/jwks.json`)).json()) as { keys: Record<string, string>[] }).keys[0]!

  beforeAll(async () => {
    // The real clock: the verifier has no other.
    h = await createHarness({ clock: systemClock })
    await h.createKeyset({ name: 'parity', alg: 'ES256' })
    await h.createKeyset({ name: 'elsewhere', alg: 'ES256' })
    client = (await h.createClient({ scopes: ['verify'] })).token
    url = await h.listen()
    const jwk = await publishedJwk('parity')
    expect(jwk.alg).toBe('ES256')
    kid = jwk.kid!
    key = await privateKeyOf(kid)
    publicPem = createPublicKey({ key: { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y } as never, format: 'jwk' }).export({ format: 'pem', type: 'spki' }).toString()
    otherKid = (await publishedJwk('elsewhere')).kid!
    otherKey = await privateKeyOf(otherKid)
    verifier = createVerifier({ jwksUrl: `${url}/keysets/parity/jwks.json`, audience: AUDIENCE, issuer: ISSUER, logger: null })
  })

  afterAll(async () => {
    await h?.watchPrivateKeys()
    h?.watch.assertClean()
    await h?.close()
  })

  const now = () => Math.floor(Date.now() / 1000)
  const claims = (extra: Record<string, unknown> = {}) => ({ sub: 'user-42', aud: AUDIENCE, iss: ISSUER, iat: now(), exp: now() + 300, ...extra })
  const header = (extra: Record<string, unknown> = {}) => ({ alg: 'ES256', typ: 'JWT', kid, ...extra })

  /** What /v1/verify answers, over HTTP. */
  const server = async (token: string): Promise<{ valid: boolean; code?: string; payload?: Record<string, unknown> }> => {
    const response = await fetch(`${url}/v1/verify`, {
      method: 'POST',
      headers: { authorization: `Bearer ${client}`, 'content-type': 'application/json' },
      body: JSON.stringify({ token, keyset: 'parity', audience: AUDIENCE, issuer: ISSUER }),
    })
    expect(response.status).toBe(200)
    return await response.json() as { valid: boolean; code?: string }
  }
  /** What the client's verifier says: 'valid' or its VerificationError code. */
  const library = async (token: string): Promise<string> => {
    try {
      await verifier.verify(token)
      return 'valid'
    } catch (error) {
      expect(error).toBeInstanceOf(VerificationError)
      return (error as VerificationError).code
    }
  }

  it('a control: a well-formed token verifies on both, with the same payload', async () => {
    const token = forge(header(), claims({ role: 'reader' }), key)
    const answer = await server(token)
    expect(answer).toMatchObject({ valid: true, payload: { sub: 'user-42', role: 'reader', aud: AUDIENCE } })
    expect((await verifier.verify(token)).payload).toEqual(answer.payload)
    // Without a kid, the keyset's key is tried: still valid on both.
    const withoutKid = forge({ alg: 'ES256', typ: 'JWT' }, claims(), key)
    expect((await server(withoutKid)).valid).toBe(true)
    expect((await verifier.verify(withoutKid)).payload.sub).toBe('user-42')
  })

  it('every bad token gets the same code from both', async () => {
    const good = forge(header(), claims(), key)
    const [goodHeader, goodPayload, goodSignature] = good.split('.') as [string, string, string]
    const flipped = Buffer.from(goodSignature, 'base64url')
    flipped[5]! ^= 0x01
    const hmac = (hash: string, head: Record<string, unknown>) => {
      const input = `${b64url(head)}.${b64url(claims())}`
      return `${input}.${createHmac(hash, publicPem).update(input).digest('base64url')}`
    }
    const signedInput = (input: string) => `${input}.${cryptoSign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`
    const padded = (pad: string) => forge(header(), claims({ pad }), key)

    const cases: [string, string, string][] = [
      ['expired', forge(header(), claims({ iat: now() - 600, exp: now() - 60 }), key), 'expired'],
      ['bad signature', `${goodHeader}.${goodPayload}.${flipped.toString('base64url')}`, 'invalid_signature'],
      ['payload changed after signing', `${goodHeader}.${b64url(claims({ sub: 'admin' }))}.${goodSignature}`, 'invalid_signature'],
      ['no kid, signed by another key', forge({ alg: 'ES256' }, claims(), otherKey), 'invalid_signature'],
      ['unknown kid (a key of another keyset)', forge(header({ kid: otherKid }), claims(), otherKey), 'unknown_kid'],
      ['made-up kid', forge(header({ kid: 'made-up' }), claims(), key), 'unknown_kid'],
      ['kid that is not a string', forge(header({ kid: 42 }), claims(), key), 'unknown_kid'],
      ['wrong aud', forge(header(), claims({ aud: 'other' }), key), 'audience_mismatch'],
      ['no aud', forge(header(), claims({ aud: undefined }), key), 'audience_mismatch'],
      ['wrong iss', forge(header(), claims({ iss: 'https://evil.example' }), key), 'issuer_mismatch'],
      ['nbf in the future', forge(header(), claims({ nbf: now() + 600 }), key), 'not_yet_valid'],
      ['no exp', forge(header(), claims({ exp: undefined }), key), 'missing_claim'],
      ['exp not a number', forge(header(), claims({ exp: 'tomorrow' }), key), 'missing_claim'],
      ['alg none', `${b64url(header({ alg: 'none' }))}.${b64url(claims())}.`, 'alg_not_allowed'],
      ['alg NoNe without kid', `${b64url({ alg: 'NoNe' })}.${b64url(claims())}.`, 'alg_not_allowed'],
      ['HS256 keyed with the public key', hmac('sha256', header({ alg: 'HS256' })), 'alg_not_allowed'],
      ['HS512 with a made-up kid', hmac('sha512', header({ alg: 'HS512', kid: 'made-up' })), 'alg_not_allowed'],
      ['the kid\'s key as another algorithm (ES384)', `${b64url(header({ alg: 'ES384' }))}.${goodPayload}.${goodSignature}`, 'alg_not_allowed'],
      ['RS256 with no such key, no kid', forge({ alg: 'RS256' }, claims(), key), 'alg_not_allowed'],
      ['malformed: not a JWS', 'not-a-token', 'malformed'],
      ['malformed: garbage parts', 'a.b.c', 'malformed'],
      ['malformed: header without alg', forge({ kid }, claims(), key), 'malformed'],
      ['malformed: payload not base64url, signed as it is', signedInput(`${goodHeader}.!!!`), 'malformed'],
      ['malformed: payload not an object', forge(header(), [1, 2], key), 'malformed'],
      ['malformed: two parts', `${goodHeader}.${goodPayload}`, 'malformed'],
      ['unknown crit', forge(header({ crit: ['urn:example:unknown'], 'urn:example:unknown': true }), claims(), key), 'unsupported_crit'],
      ['too large (ASCII)', padded('x'.repeat(MAX_TOKEN_BYTES)), 'token_too_large'],
      // Under the limit in UTF-16 units, over it in UTF-8 bytes: bytes are what count.
      ['too large (UTF-8 bytes, not UTF-16 units)', `${good}${'€'.repeat(Math.ceil(MAX_TOKEN_BYTES / 3))}`, 'token_too_large'],
    ]
    expect(new Set(cases.map(([, , code]) => code))).toEqual(new Set(VERIFICATION_CODES.filter((code) => code !== 'invalid_claims')))
    expect(`${good}${'€'.repeat(Math.ceil(MAX_TOKEN_BYTES / 3))}`.length).toBeLessThan(MAX_TOKEN_BYTES)

    const answers: [string, string, string][] = []
    for (const [name, token] of cases) {
      const answer = await server(token)
      answers.push([name, answer.valid ? 'valid' : answer.code!, await library(token)])
    }
    expect(answers).toEqual(cases.map(([name, , code]) => [name, code, code]))
  })
})
