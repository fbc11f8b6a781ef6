import { mkdirSync, readdirSync, readFileSync, renameSync, symlinkSync, writeFileSync } from 'node:fs'
import { basename, join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createHarness, newMasterKey, tempDir, type Harness } from '../helpers/harness.js'
import { LeakWatch } from '../helpers/secrets.js'
import { verifiesWith } from '../helpers/tokens.js'
import { HSM_SKIP, inspectToken, setupSoftHsm, softHsmSlotId, type SoftHsm } from './softhsm.js'

/** The token's reconnection interval (Pkcs11Token retryMs default) plus a margin. */
const RETRY_MS = 1000


if (HSM_SKIP) {
  describe('pkcs11 backend on SoftHSM2: faults', () => {
    it.skip(HSM_SKIP, () => {})
  })
} else {
  describe('pkcs11 backend on SoftHSM2: faults', () => {
    let softhsm: SoftHsm
    let token: ReturnType<SoftHsm['initToken']>
    let dir: ReturnType<typeof tempDir>
    const masterKey = newMasterKey()
    const watch = new LeakWatch()
    let h: Harness | null = null
    let client: string

    /** Opens Signet on the same database with other PKCS#11 settings. */
    async function open(env: Record<string, string>): Promise<Harness> {
      await h?.close()
      h = await createHarness({ dir: dir.path, masterKey, env, watch, createDefaultKeyset: true })
      return h
    }

    const sign = (keyset: string) => h!.request('POST', '/v1/sign', { token: client, body: { keyset, claims: { sub: 'u' } } })

    /** Polls as the background loop would until `check` holds, or fails after `ms`. */
    async function until(check: () => Promise<boolean>, ms = 5000): Promise<void> {
      const deadline = Date.now() + ms
      for (;;) {
        await h!.signet.keystore.poll()
        if (await check()) return
        if (Date.now() > deadline) throw new Error('the service did not recover in time')
        await sleep(100)
      }
    }

    /** The HSM keyset answers 503 hsm_unavailable, the software keyset signs, /readyz says why. */
    async function expectHsmDown(): Promise<void> {
      const refused = await sign('hsm')
      expect(refused.statusCode, refused.body).toBe(503)
      expect(refused.headers['content-type']).toContain('application/problem+json')
      expect(refused.json()).toMatchObject({ code: 'hsm_unavailable', status: 503 })
      const ready = await h!.request('GET', '/readyz')
      expect(ready.statusCode).toBe(503)
      expect(ready.json()).toMatchObject({ code: 'hsm_unavailable' })
      expect(ready.json().detail).toMatch(/PKCS#11 token is unavailable/)
      const software = await sign('default')
      expect(software.statusCode, software.body).toBe(200)
      // Verifiers are not affected: the JWK Set is served from storage.
      const jwks = await h!.request('GET', '/keysets/hsm/jwks.json')
      expect(jwks.statusCode).toBe(200)
      expect(jwks.json().keys.length).toBeGreaterThan(0)
    }

    /** Signing through the HSM works again and its token verifies; /readyz is 200. */
    async function expectHsmBack(): Promise<void> {
      await until(async () => (await sign('hsm')).statusCode === 200)
      const answer = (await sign('hsm')).json()
      const jwks = (await h!.request('GET', '/keysets/hsm/jwks.json')).json()
      expect(await verifiesWith(answer.token, jwks, h!.clock.now())).toBe(true)
      await until(async () => (await h!.request('GET', '/readyz')).statusCode === 200)
    }

    const logText = () => h!.logs.lines.join('')

    beforeAll(async () => {
      softhsm = setupSoftHsm()
      token = softhsm.initToken('signet-faults')
      // A second token, so that a configuration naming neither label nor slot is ambiguous.
      softhsm.initToken('signet-other')
      watch.secret('the PKCS#11 PIN', token.pin)
      dir = tempDir()
      await open(token.env)
      await h!.createKeyset({ name: 'hsm', alg: 'ES256', backend: 'pkcs11' })
      client = (await h!.createClient({ scopes: ['sign'] })).token
    })

    afterAll(async () => {
      await h?.close()
      dir?.remove()
      softhsm?.remove()
    })

    /** Moves the token away as a pulled device would vanish; returns how to put it back. */
    function removeToken(what: 'the token store' | "the token's own directory"): () => void {
      const path = what === 'the token store' ? softhsm.tokenDir : join(softhsm.tokenDir, tokenSubdirectory())
      // Outside the token store: SoftHSM would find a token directory under any name inside it.
      const away = `${softhsm.tokenDir}-${basename(path)}.away`
      renameSync(path, away)
      return () => renameSync(away, path)
    }

    /** SoftHSM keeps each token in a directory named by its UUID; find ours by its label. */
    function tokenSubdirectory(): string {
      const match = readdirSync(softhsm.tokenDir).find((name) => readFileSync(join(softhsm.tokenDir, name, 'token.object')).includes(Buffer.from(token.label)))
      if (!match) throw new Error('no token directory')
      return match
    }

    it.each(['the token store', "the token's own directory"] as const)('a token removed while running (%s moved away): 503 for its keysets only, then recovery when it returns', async (what) => {
      expect((await sign('hsm')).statusCode).toBe(200)
      // A pending key to revoke while the token is away.
      const pending = (await h!.admin('POST', '/v1/admin/keysets/hsm/rotate', { mode: 'scheduled' })).json()
      const restore = removeToken(what)
      try {
        // Noticed at the next call that fails, or at the next health check (every retry interval):
        // SoftHSM may still sign from memory for a moment after its directory is gone.
        await until(async () => (await sign('hsm')).statusCode === 503)
        await expectHsmDown()
        expect(logText()).toMatch(/PKCS#11 token is unavailable/)
        // Still down on later polls while the token is away.
        await sleep(RETRY_MS + 100)
        await h!.signet.keystore.poll()
        await expectHsmDown()
        // A revocation still takes the key out of the JWK Set at once.
        const revoked = await h!.admin('POST', `/v1/admin/keys/${pending.kid}/revoke`, { reason: 'while away' })
        expect(revoked.statusCode, revoked.body).toBe(200)
        expect((await h!.request('GET', '/keysets/hsm/jwks.json')).json().keys.map((k: { kid: string }) => k.kid)).not.toContain(pending.kid)
      } finally {
        restore()
      }
      await sleep(RETRY_MS + 100)
      await expectHsmBack()
      expect(logText()).toMatch(/PKCS#11 token is available again/)
      // The deletion missed while the token was away is done once it is back.
      const id = Buffer.from(pending.kid, 'base64url').toString('hex')
      await until(async () => !inspectToken(softhsm.module, token.label, token.pin).some((object) => object.id === id))
    })

    it('a wrong PIN: the service starts and says so, refuses only the HSM keysets, never resends that PIN, and recovers when the PIN file is fixed', async () => {
      const pinFile = join(dir.path, 'pin')
      writeFileSync(pinFile, 'not-the-pin\n', { mode: 0o600 })
      const { SIGNET_PKCS11_PIN: _pin, ...env } = token.env
      await open({ ...env, SIGNET_PKCS11_PIN_FILE: pinFile })
      expect(logText()).toMatch(/the token refused the PIN/)
      await expectHsmDown()
      await sleep(RETRY_MS + 100)
      await h!.signet.keystore.poll()
      // The second attempt did not send the refused PIN again.
      expect(logText()).toMatch(/not sent again/)
      await expectHsmDown()

      writeFileSync(pinFile, `${token.pin}\n`, { mode: 0o600 })
      await sleep(RETRY_MS + 100)
      await expectHsmBack()
    })

    it('a missing module: the service starts and says so, refuses only the HSM keysets, and recovers when the module appears', async () => {
      const libDir = join(dir.path, 'lib')
      mkdirSync(libDir)
      const modulePath = join(libDir, 'libsofthsm2.so')
      await open({ ...token.env, SIGNET_PKCS11_MODULE: modulePath })
      expect(logText()).toMatch(/the PKCS#11 module cannot be loaded/)
      await expectHsmDown()

      symlinkSync(softhsm.module, modulePath)
      await sleep(RETRY_MS + 100)
      await expectHsmBack()
    })

    it('SIGNET_PKCS11_SLOT picks the token by its slot id, without a label', async () => {
      const { SIGNET_PKCS11_TOKEN_LABEL: _label, ...env } = token.env
      await open({ ...env, SIGNET_PKCS11_SLOT: String(softHsmSlotId(token.label)) })
      const response = await sign('hsm')
      expect(response.statusCode, response.body).toBe(200)
      expect((await h!.request('GET', '/readyz')).statusCode).toBe(200)
    })

    it('neither label nor slot with two tokens present: not ready, saying the choice is ambiguous', async () => {
      const { SIGNET_PKCS11_TOKEN_LABEL: _label, ...env } = token.env
      await open(env)
      await expectHsmDown()
      expect((await h!.request('GET', '/readyz')).json().detail).toMatch(/ambiguous/)
    })

    it('creating a pkcs11 keyset while the HSM is away is refused with 503 and changes nothing', async () => {
      await open({ ...token.env, SIGNET_PKCS11_MODULE: join(dir.path, 'nowhere.so') })
      const before = (await h!.admin('GET', '/v1/admin/keysets')).json().keysets.length
      const response = await h!.admin('POST', '/v1/admin/keysets', { name: 'later', backend: 'pkcs11' })
      expect(response.statusCode).toBe(503)
      expect(response.json().code).toBe('hsm_unavailable')
      expect((await h!.admin('GET', '/v1/admin/keysets')).json().keysets.length).toBe(before)
    })

    it('no answer or log line holds the PIN or a private key', async () => {
      await h!.watchPrivateKeys()
      watch.assertClean()
    })
  })
}
