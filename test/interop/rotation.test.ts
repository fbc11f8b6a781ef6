import { setTimeout as sleep } from 'node:timers/promises'
import { createRemoteJWKSet, decodeJwt, jwtVerify } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createVerifier, SignetClient } from '../../src/client/index.js'
import { startLiveSignet, type LiveSignet } from '../helpers/live-server.js'

/**
 * Acceptance 3 of issue 4: while an app server signs continuously and verifiers with
 * a cached JWKS check every token, three scheduled rotations pass with zero failed
 * sign calls and zero verification failures.
 *
 * Signet runs for real: its background loop polls every 500 ms and runs the
 * scheduler when something is due. JWKS max-age is 1 s and prepublish 2 s (the
 * the default of 2 x max-age, docs/key-lifecycle.md), rotation every 2 s. The verifiers never rescue themselves by
 * refetching on an unknown kid (their cooldown is a minute): they must already hold
 * each new key from a max-age refresh before it signs.
 */

const ROTATIONS = 3
const DEADLINE_MS = 25_000

describe('scheduled rotations seen by app servers', () => {
  let signet: LiveSignet
  let client: SignetClient

  beforeAll(async () => {
    signet = await startLiveSignet({ SIGNET_JWKS_MAX_AGE: '1' })
    await signet.createKeyset({ name: 'sessions', alg: 'ES256', rotationPeriod: 2, prepublish: 2, defaultTtl: 60, maxTtl: 120 })
    client = new SignetClient({ url: signet.url, token: await signet.createClient({ keysets: ['sessions'], scopes: ['sign'] }), keyset: 'sessions' })
  })
  afterAll(async () => {
    await client?.close()
    await signet?.close()
    signet?.watch.assertClean()
  })

  it(`${ROTATIONS} rotations: zero failed sign calls, zero verification failures`, async () => {
    const jwksUrl = `${signet.url}/keysets/sessions/jwks.json`
    const verifier = createVerifier({ jwksUrl, cooldown: 60_000 })
    // Plain jose with a cache as long as the server's max-age, for a second opinion.
    const jose = createRemoteJWKSet(new URL(jwksUrl), { cacheMaxAge: 1000, cooldownDuration: 60_000 })

    const issued: string[] = []
    const kids: string[] = []
    const signFailures: string[] = []
    const verifyFailures: string[] = []
    const started = Date.now()
    let n = 0
    while (kids.length < ROTATIONS + 1 && Date.now() - started < DEADLINE_MS) {
      n++
      let token: string
      try {
        const signed = await client.sign({ sub: `user-${n}` })
        token = signed.token
        if (kids.at(-1) !== signed.kid) kids.push(signed.kid)
      } catch (error) {
        signFailures.push(`${n}: ${(error as Error).message}`)
        continue
      }
      issued.push(token)
      try {
        const { payload } = await verifier.verify(token)
        if (payload.sub !== `user-${n}`) verifyFailures.push(`createVerifier #${n}: answered sub ${String(payload.sub)}`)
      } catch (error) {
        verifyFailures.push(`createVerifier #${n} (key ${kids.length}): ${(error as Error).message}`)
      }
      try {
        await jwtVerify(token, jose, { algorithms: ['ES256'] })
      } catch (error) {
        verifyFailures.push(`jose #${n} (key ${kids.length}): ${(error as Error).message}`)
      }
      await sleep(20)
    }

    expect(signFailures).toEqual([])
    expect(verifyFailures).toEqual([])
    expect(kids.length, `saw ${kids.length - 1} rotations in ${DEADLINE_MS} ms`).toBe(ROTATIONS + 1)
    expect(new Set(kids).size).toBe(kids.length)

    // The rotations were the scheduler's, each key prepublished before it signed.
    const { body } = await signet.admin('GET', '/v1/admin/keysets/sessions/keys')
    const keys = (body.keys ?? body) as { kid: string; state: string; createdAt: string; activatedAt: string | null }[]
    for (const kid of kids.slice(1)) {
      const key = keys.find((k) => k.kid === kid)!
      expect(Date.parse(key.activatedAt!) - Date.parse(key.createdAt), `key ${kid} was published at least prepublish before it signed`).toBeGreaterThanOrEqual(2000)
    }
    expect(keys.filter((k) => k.state === 'retired').map((k) => k.kid)).toEqual(expect.arrayContaining(kids.slice(0, -1)))

    // Every token issued is still verifiable now, by a verifier that starts cold.
    const cold = createVerifier({ jwksUrl, algorithms: ['ES256'] })
    const late: string[] = []
    for (const token of issued) {
      await cold.verify(token).then(
        ({ payload }) => { if (payload.sub !== decodeJwt(token).sub || typeof payload.exp !== 'number') late.push(`answered ${JSON.stringify(payload)}`) },
        (error: Error) => late.push(error.message),
      )
    }
    expect(late).toEqual([])
    expect(issued.length).toBeGreaterThan(ROTATIONS * 5)
  })
})
