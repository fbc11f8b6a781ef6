import { createRemoteJWKSet, jwtVerify } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createHarness, type Harness } from '../helpers/harness.js'

/** The keyset under load: rotates every ~2 s; a new key is published 2 s (twice the JWKS max-age) before it signs. */
const LIVE = { name: 'live', alg: 'ES256', rotationPeriod: 1, prepublish: 2, maxTtl: 60, defaultTtl: 60 }
const SIGNERS = 4
const SCHEDULED_ROTATIONS = 10
const REVOCATIONS = 2

interface Issued {
  token: string
  kid: string
  exp: number
}

/**
 * Rotation under load (docs/guarantees.md, 4 and 5): several clients sign without pause
 * while a verifier built on jose's remote JWK Set, caching for the max-age the
 * service serves, checks every token at once. Through 10 scheduled rotations and
 * 2 emergency revocations: no signing fails, and no verification fails except for
 * tokens of a revoked key.
 */
describe('rotation under load', () => {
  let h: Harness
  let url: string

  beforeAll(async () => {
    h = await createHarness({ clock: { now: () => Date.now() }, env: { SIGNET_JWKS_MAX_AGE: '1' } })
    await h.createKeyset(LIVE)
    url = await h.listen()
    h.signet.start()
  })
  afterAll(async () => {
    await h.watchPrivateKeys()
    h.watch.assertClean()
    await h.close()
  })

  const scheduledActivations = async () =>
    (await h.signet.storage.listAudit(0, 1_000_000)).filter((event) =>
      event.action === 'key.state' && event.actor === 'scheduler' && (event.details as { keyset?: string; to?: string }).keyset === LIVE.name && (event.details as { to?: string }).to === 'active').length

  it(`${SIGNERS} clients sign and verify through ${SCHEDULED_ROTATIONS} scheduled rotations and ${REVOCATIONS} emergency revocations`, { timeout: 150_000 }, async () => {
    const jwksUrl = new URL(`${url}/keysets/${LIVE.name}/jwks.json`)
    const served = await fetch(jwksUrl)
    const maxAge = Number(/max-age=(\d+)/.exec(served.headers.get('cache-control') ?? '')?.[1])
    expect(maxAge).toBe(1)
    // As an app server would configure it: cache for the served max-age, and refetch
    // on an unknown kid no more often than that.
    const jwks = createRemoteJWKSet(jwksUrl, { cacheMaxAge: maxAge * 1000, cooldownDuration: maxAge * 1000 })
    const verify = (token: string) => jwtVerify(token, jwks, { algorithms: [LIVE.alg] }).then(() => null, (error: { code?: string }) => error.code ?? String(error))

    const issued: Issued[] = []
    const signFailures: string[] = []
    const verifyFailures: { kid: string; code: string }[] = []
    let stop = false

    const tokens = await Promise.all(Array.from({ length: SIGNERS }, async () => (await h.createClient({ keysets: [LIVE.name], scopes: ['sign'] })).token))
    const signer = async (token: string) => {
      while (!stop) {
        const response = await fetch(`${url}/v1/sign`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: JSON.stringify({ keyset: LIVE.name, claims: { sub: 'load' } }),
        }).catch((error: Error) => error)
        if (response instanceof Error || response.status !== 200) {
          signFailures.push(response instanceof Error ? response.message : `${response.status} ${await response.text()}`)
        } else {
          const body = await response.text()
          h.watch.record(body)
          const { token: jwt, kid, exp } = JSON.parse(body)
          issued.push({ token: jwt, kid, exp })
          const failure = await verify(jwt)
          if (failure) verifyFailures.push({ kid, code: failure })
        }
        await new Promise((resolve) => setTimeout(resolve, 15))
      }
    }
    const load = Promise.all(tokens.map(signer))

    /** Revokes the active key once a pending key has been published longer than a cache lifetime. */
    const revokeActive = async () => {
      for (;;) {
        const keys = (await h.signet.storage.snapshot()).keys.filter((key) => key.keyset === LIVE.name)
        const pending = keys.find((key) => key.state === 'pending' && Date.now() - key.createdAt >= maxAge * 1000 + 200 && (key.activatesAt ?? 0) - Date.now() > 300)
        const active = keys.find((key) => key.state === 'active')
        if (pending && active) {
          const response = await h.admin('POST', `/v1/admin/keys/${active.kid}/revoke`, { reason: 'emergency drill' })
          expect(response.statusCode, response.body).toBe(200)
          return active.kid
        }
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
    }

    const revoked: string[] = []
    const deadline = Date.now() + 120_000
    while (Date.now() < deadline) {
      const rotations = await scheduledActivations()
      if (revoked.length < REVOCATIONS && rotations >= 3 + revoked.length * 4) revoked.push(await revokeActive())
      if (rotations >= SCHEDULED_ROTATIONS && revoked.length === REVOCATIONS) break
      await new Promise((resolve) => setTimeout(resolve, 200))
    }
    stop = true
    await load

    expect(await scheduledActivations()).toBeGreaterThanOrEqual(SCHEDULED_ROTATIONS)
    expect(revoked).toHaveLength(REVOCATIONS)
    expect(signFailures, 'sign failures').toEqual([])
    expect(issued.length).toBeGreaterThan(200)
    const kids = new Set(issued.map((token) => token.kid))
    expect(kids.size).toBeGreaterThanOrEqual(SCHEDULED_ROTATIONS + REVOCATIONS)
    const unexpected = verifyFailures.filter((failure) => !revoked.includes(failure.kid))
    expect(unexpected, 'verification failures of tokens whose key was not revoked').toEqual([])

    // A last pass: every unexpired token of a key that was not revoked still verifies.
    const now = Math.floor(Date.now() / 1000)
    let checked = 0
    for (const token of issued) {
      if (revoked.includes(token.kid) || token.exp <= now + 1) continue
      expect(await verify(token.token), `token of ${token.kid}`).toBeNull()
      checked++
    }
    expect(checked).toBeGreaterThan(100)
    // And tokens of the revoked keys are refused now that caches have moved on.
    await new Promise((resolve) => setTimeout(resolve, maxAge * 1000 + 100))
    for (const kid of revoked) {
      const token = issued.find((candidate) => candidate.kid === kid)
      if (token) expect(await verify(token.token)).not.toBeNull()
    }
  })
})
