import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { open as openEnvelope, seal } from '../../src/crypto/envelope.js'
import { MasterKey } from '../../src/crypto/master-key.js'
import { ConfigError, DecryptionError } from '../../src/errors.js'
import { Pkcs11MasterKey, type Pkcs11MasterKeyOptions } from '../../src/keys/pkcs11/master-key.js'
import { renameSync } from 'node:fs'
import { cliJson, postJson, requireBuild, runCli, startServe, until } from '../cli/helpers.js'
import { createHarness } from '../helpers/harness.js'
import { newMasterKey, tempDir } from '../helpers/temp.js'
import { HSM_SKIP, inspectToken, setupSoftHsm, type SoftHsm } from './softhsm.js'

/**
 * The master key inside a PKCS#11 token (SIGNET_MASTER_KEY_PKCS11, docs/hsm.md), on
 * SoftHSM2: the key's attributes, wrapping and derivation inside the token, init,
 * serve and sign, rewrap between every pair of sources, and a token that is away.
 */
if (HSM_SKIP) {
  describe('master key in a PKCS#11 token', () => {
    it.skip(HSM_SKIP, () => {})
  })
} else {
  describe('master key in a PKCS#11 token', () => {
    let softhsm: SoftHsm
    let token: ReturnType<SoftHsm['initToken']>
    let dir: ReturnType<typeof tempDir>
    const options = (label: string, pin = token.pin): Pkcs11MasterKeyOptions => ({ module: softhsm.module, tokenLabel: token.label, slot: null, pin, label })
    const binding = { kid: 'k1', keyset: 'default', alg: 'ES256' }

    beforeAll(async () => {
      softhsm = setupSoftHsm()
      token = softhsm.initToken('signet-master')
      dir = tempDir('signet-hsm-master-')
      await Pkcs11MasterKey.generate(options('unit'))
    })
    afterAll(() => {
      dir?.remove()
      softhsm?.remove()
    })

    it('generates a sensitive, never-extractable AES-256 key whose value the token refuses to read, and never a second one under the same label', async () => {
      const [object] = inspectToken(softhsm.module, token.label, token.pin).filter((o) => o.label === 'unit')
      expect(object).toMatchObject({ class: 'secret', keyType: 0x1f, sensitive: true, extractable: false, alwaysSensitive: true, neverExtractable: true, sign: true })
      // C_GetAttributeValue(CKA_VALUE): the attack on the key itself.
      expect(object!.privateValueRead).toBe('CKR_ATTRIBUTE_SENSITIVE')
      await expect(Pkcs11MasterKey.generate(options('unit'))).rejects.toThrow(/already holds a key labelled unit/)
    })

    it('wraps data keys inside the token with the same AAD binding, and derives the same keys every time', async () => {
      const key = await Pkcs11MasterKey.open(options('unit'))
      const again = await Pkcs11MasterKey.open(options('unit'))
      try {
        const secret = Buffer.from('a PKCS#8 private key')
        const blob = seal(key, secret, binding)
        expect(openEnvelope(again, blob, binding)).toEqual(secret)
        // Moved to another row, or opened by another master key: refused.
        expect(() => openEnvelope(key, blob, { ...binding, kid: 'k2' })).toThrow(DecryptionError)
        expect(() => openEnvelope(MasterKey.fromBase64(newMasterKey()), blob, binding)).toThrow(DecryptionError)
        const tampered = Buffer.from(blob)
        tampered[30]! ^= 1
        expect(() => openEnvelope(key, tampered, binding)).toThrow(DecryptionError)

        expect(again.idHex).toBe(key.idHex)
        expect(again.matches(key.checkValue())).toBe(true)
        expect(key.deriveKey('row mac')).toHaveLength(32)
        expect(again.deriveKey('row mac')).toEqual(key.deriveKey('row mac'))
        expect(key.deriveKey('audit')).not.toEqual(key.deriveKey('row mac'))
        expect(JSON.stringify({ key })).toBe(JSON.stringify({ key: `[MasterKey pkcs11 ${key.idHex}]` }))
      } finally {
        await key.close()
        await again.close()
      }
      await Pkcs11MasterKey.generate(options('unit-2'))
      const [first, second] = [await Pkcs11MasterKey.open(options('unit')), await Pkcs11MasterKey.open(options('unit-2'))]
      try {
        expect(second.idHex).not.toBe(first.idHex)
        expect(second.deriveKey('row mac')).not.toEqual(first.deriveKey('row mac'))
      } finally {
        await first.close()
        await second.close()
      }
    })

    // PKCS#11 logs in per process: these run with no other key open, as a starting service does.
    it('refuses a missing label, a wrong PIN and a missing module with a ConfigError naming the variable', async () => {
      await expect(Pkcs11MasterKey.open(options('absent'))).rejects.toThrow(/SIGNET_MASTER_KEY_PKCS11=absent: .*no secret key with this label/)
      await expect(Pkcs11MasterKey.open(options('unit', 'wrong-pin'))).rejects.toThrow(/SIGNET_MASTER_KEY_PKCS11=unit: .*refused the PIN/)
      const missing = Pkcs11MasterKey.open({ ...options('unit'), module: '/nonexistent/libmissing.so' })
      await expect(missing).rejects.toBeInstanceOf(ConfigError)
      await expect(missing).rejects.toThrow(/cannot be loaded/)
    })

    it('init, serve and sign; rewrap HSM to software, software to HSM, label to label; the old source is refused after each step', async () => {
      requireBuild()
      const db = join(dir.path, 'signet.db')
      const hsm = (label: string) => ({ ...token.env, SIGNET_DB: db, SIGNET_MASTER_KEY_PKCS11: label })
      const init = await cliJson(['init', '--master-key-pkcs11', 'mk-1'], { ...token.env, SIGNET_DB: db })
      expect(init.masterKeyPkcs11).toBe('mk-1')
      expect(init.masterKey).toBeUndefined()
      const adminToken: string = init.adminToken
      // init never replaces a master key, even for a new database.
      const twice = await runCli(['init', '--master-key-pkcs11', 'mk-1'], { env: { ...token.env, SIGNET_DB: join(dir.path, 'other.db') } })
      expect(twice.code).toBe(1)
      expect(twice.stderr).toContain('already holds a key labelled mk-1')

      const tokens: string[] = []
      let clientToken = ''
      const serveAndSign = async (env: Record<string, string>) => {
        const server = await startServe({ ...env, SIGNET_ADMIN_TOKEN: adminToken })
        try {
          if (!clientToken) clientToken = (await postJson(`${server.url}/v1/admin/clients`, adminToken, { name: 'app', keysets: '*', scopes: ['sign', 'verify'] })).body.token
          const signed = await postJson(`${server.url}/v1/sign`, clientToken, { claims: { sub: `u${tokens.length}` } })
          expect(signed.status, JSON.stringify(signed.body)).toBe(200)
          tokens.push(signed.body.token)
          for (const issued of tokens) expect((await postJson(`${server.url}/v1/verify`, clientToken, { token: issued })).body.valid).toBe(true)
        } finally {
          await server.stop('SIGTERM')
        }
      }
      await serveAndSign(hsm('mk-1'))
      await cliJson(['keys', 'rotate'], hsm('mk-1')) // a key made (wrapped) by a CLI process too

      const software = newMasterKey()
      const toSoftware = await cliJson(['rewrap'], { ...hsm('mk-1'), SIGNET_NEW_MASTER_KEY: software })
      expect(toSoftware.rewrapped).toBeGreaterThanOrEqual(2)
      const stale = await runCli(['keys', 'rotate'], { env: hsm('mk-1') })
      expect(stale.code).toBe(1)
      expect(stale.stderr).toMatch(/SIGNET_MASTER_KEY_PKCS11 is not the master key of this database/)
      await serveAndSign({ SIGNET_DB: db, SIGNET_MASTER_KEY: software })

      const toHsm = await runCli(['rewrap', '--generate'], { env: { ...token.env, SIGNET_DB: db, SIGNET_MASTER_KEY: software, SIGNET_NEW_MASTER_KEY_PKCS11: 'mk-2' } })
      expect(toHsm.code, toHsm.stderr).toBe(0)
      expect(toHsm.stdout).toContain('SIGNET_MASTER_KEY_PKCS11=mk-2')
      expect((await runCli(['keys', 'rotate'], { env: { SIGNET_DB: db, SIGNET_MASTER_KEY: software } })).code).toBe(1)
      await serveAndSign(hsm('mk-2'))

      const labelToLabel = await runCli(['rewrap', '--generate', '--json'], { env: { ...hsm('mk-2'), SIGNET_NEW_MASTER_KEY_PKCS11: 'mk-3' } })
      expect(labelToLabel.code, labelToLabel.stderr).toBe(0)
      expect(JSON.parse(labelToLabel.stdout).alreadyDone).toBe(false)
      expect((await runCli(['keys', 'rotate'], { env: hsm('mk-2') })).code).toBe(1)
      await serveAndSign(hsm('mk-3'))
      expect(inspectToken(softhsm.module, token.label, token.pin).filter((o) => o.class === 'secret' && o.label.startsWith('mk-')).every((o) => o.extractable === false)).toBe(true)
    })

    it('refuses to start without the token, with a wrong PIN or label, or with two master keys, and changes nothing', async () => {
      requireBuild()
      const db = join(dir.path, 'away.db')
      await cliJson(['init', '--master-key-pkcs11', 'away'], { ...token.env, SIGNET_DB: db })
      const env = { ...token.env, SIGNET_DB: db, SIGNET_MASTER_KEY_PKCS11: 'away' }
      const state = async () => ({ audit: (await cliJson(['audit', 'verify'], env)).events, keys: (await cliJson(['keys', 'list'], env)).keys })
      const before = await state()
      const cases: [Record<string, string>, RegExp][] = [
        [{ SIGNET_PKCS11_TOKEN_LABEL: 'not-plugged-in' }, /SIGNET_MASTER_KEY_PKCS11=away: the master key cannot be used: the token is not present/],
        [{ SIGNET_PKCS11_PIN: 'wrong-pin' }, /SIGNET_MASTER_KEY_PKCS11=away: the master key cannot be used: the token refused the PIN/],
        [{ SIGNET_PKCS11_MODULE: '/nonexistent/libmissing.so' }, /SIGNET_MASTER_KEY_PKCS11=away: the master key cannot be used: the PKCS#11 module cannot be loaded/],
        [{ SIGNET_MASTER_KEY_PKCS11: 'no-such-label' }, /SIGNET_MASTER_KEY_PKCS11=no-such-label: the token holds no secret key with this label/],
        [{ SIGNET_MASTER_KEY: newMasterKey() }, /SIGNET_MASTER_KEY \(or SIGNET_MASTER_KEY_FILE\) and SIGNET_MASTER_KEY_PKCS11 are both set/],
      ]
      for (const [extra, message] of cases) {
        for (const command of [['serve'], ['keys', 'rotate']]) {
          const result = await runCli(command, { env: { ...env, SIGNET_PORT: '0', ...extra } })
          expect(result.code, `${command.join(' ')} ${message}`).toBe(1)
          expect(result.stderr, String(message)).toMatch(message)
          expect(result.stderr).not.toContain(token.pin)
        }
      }
      // A rewrap to a label that is not there changes nothing either.
      const rewrap = await runCli(['rewrap'], { env: { ...env, SIGNET_NEW_MASTER_KEY_PKCS11: 'not-generated' } })
      expect(rewrap.code).toBe(1)
      expect(rewrap.stderr).toMatch(/no secret key with this label/)
      expect(await state()).toEqual(before)
    })

    it('a token gone while running: loaded keys sign on, and what needs the master key answers 503 and changes nothing', async () => {
      await Pkcs11MasterKey.generate(options('running'))
      const h = await createHarness({ env: { ...token.env, SIGNET_MASTER_KEY_PKCS11: 'running' } })
      try {
        const client = (await h.createClient({ scopes: ['sign'] })).token
        const sign = () => h.request('POST', '/v1/sign', { token: client, body: { claims: { sub: 'u' } } })
        expect((await sign()).statusCode).toBe(200)
        const keys = async () => (await h.admin('GET', '/v1/admin/keysets/default/keys')).json().keys.length as number
        const before = await keys()
        const away = `${softhsm.tokenDir}.away`
        renameSync(softhsm.tokenDir, away)
        try {
          // A new key must be wrapped inside the token: refused (once the module notices) until it is back.
          const { value: refused } = await until(async () => {
            const answer = await h.admin('POST', '/v1/admin/keysets/default/rotate', { mode: 'immediate' })
            return answer.statusCode === 201 ? undefined : answer
          })
          expect(refused.statusCode, refused.body).toBe(503)
          expect(refused.json()).toMatchObject({ code: 'hsm_unavailable' })
          expect(refused.json().detail).toMatch(/^the HSM master key could not/)
          // Refused again, and nothing was written.
          const count = await keys()
          expect(count).toBeGreaterThanOrEqual(before)
          expect((await h.admin('POST', '/v1/admin/keysets/default/rotate', { mode: 'immediate' })).statusCode).toBe(503)
          expect(await keys()).toBe(count)
          // The key loaded before keeps signing from memory.
          expect((await sign()).statusCode).toBe(200)
        } finally {
          renameSync(away, softhsm.tokenDir)
        }
      } finally {
        await h.close()
      }
    })

    // SoftHSM2 answers CKR_GENERAL_ERROR once its token is back until the module is
    // initialized again: that error, too, must lead to a (rate-limited) module reset.
    it('a token gone while running heals when the token returns', async () => {
      await Pkcs11MasterKey.generate(options('healing'))
      const h = await createHarness({ env: { ...token.env, SIGNET_MASTER_KEY_PKCS11: 'healing' } })
      try {
        const client = (await h.createClient({ scopes: ['sign'] })).token
        const sign = () => h.request('POST', '/v1/sign', { token: client, body: { claims: { sub: 'u' } } })
        const rotate = () => h.admin('POST', '/v1/admin/keysets/default/rotate', { mode: 'immediate' })
        const away = `${softhsm.tokenDir}.away`
        renameSync(softhsm.tokenDir, away)
        try {
          await until(async () => ((await rotate()).statusCode === 201 ? undefined : true))
        } finally {
          renameSync(away, softhsm.tokenDir)
        }
        const { value: rotated } = await until(async () => {
          const answer = await rotate()
          return answer.statusCode === 201 ? answer : undefined
        }, 30_000, 250)
        expect((await sign()).json().kid).toBe(rotated.json().kid)
      } finally {
        await h.close()
      }
    })
  })
}
