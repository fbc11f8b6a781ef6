import { createPublicKey, type KeyObject } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { calculateJwkThumbprint, type JWK } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { tempDir } from '../helpers/harness.js'
import { LeakWatch } from '../helpers/secrets.js'
import { cliJson, requireBuild, runCli, type CliResult } from '../cli/helpers.js'
import { Material } from './fixtures.js'

/**
 * `signet keys import`: the built binary against a database made by `signet init`,
 * as an operator would run it. Secrets come from files, never the command line.
 */
describe('signet keys import', () => {
  const dir = tempDir('signet-import-cli-')
  const watch = new LeakWatch()
  const material = new Material(watch)
  const outputs: CliResult[] = []
  let env: Record<string, string>

  const file = (name: string, content: string | Buffer) => {
    const path = join(dir.path, name)
    writeFileSync(path, content, { mode: 0o600 })
    return path
  }
  const run = async (args: string[]) => {
    const result = await runCli(args, { env })
    outputs.push(result)
    return result
  }
  const thumbprintOf = (key: KeyObject) => calculateJwkThumbprint(createPublicKey(key).export({ format: 'jwk' }) as JWK, 'sha256')

  beforeAll(async () => {
    requireBuild()
    const db = join(dir.path, 'signet.db')
    const init = await cliJson<{ masterKey: string; adminToken: string }>(['init'], { SIGNET_DB: db })
    watch.secret('the master key', init.masterKey)
    watch.secret('the admin token', init.adminToken)
    env = { SIGNET_DB: db, SIGNET_MASTER_KEY: init.masterKey }
    await cliJson(['keysets', 'create', 'rs', '--alg', 'RS256'], env)
  })

  afterAll(() => dir.remove())

  it('imports a PEM into the default keyset as pending, its kid the thumbprint', async () => {
    const key = material.ec('prime256v1')
    const result = await run(['keys', 'import', file('ec.pem', material.pem(key, 'sec1')), '--json'])
    expect(result.code, result.stderr).toBe(0)
    const imported = JSON.parse(result.stdout)
    expect(imported).toMatchObject({ keyset: 'default', state: 'pending', alg: 'ES256', kid: await thumbprintOf(key) })
    const listed = await cliJson<{ keys: { kid: string }[] }>(['keys', 'list'], env)
    expect(listed.keys.map((k) => k.kid)).toContain(imported.kid)
  })

  it('imports an encrypted PEM with --passphrase-file, active at once with --immediate', async () => {
    const key = material.rsa()
    const passphrase = material.passphrase()
    const result = await run(['keys', 'import', file('rsa.pem', material.pem(key, 'pkcs8', passphrase)), 'rs', '--passphrase-file', file('pass', `${passphrase}\n`), '--immediate', '--json'])
    expect(result.code, result.stderr).toBe(0)
    expect(JSON.parse(result.stdout)).toMatchObject({ keyset: 'rs', state: 'active', kid: await thumbprintOf(key) })
  })

  it('imports a PKCS#12 file (binary) and a JWK file, the format guessed from the content', async () => {
    const rsa = material.rsa()
    const password = material.passphrase()
    const p12 = Buffer.from(material.pkcs12Rsa(rsa, password), 'base64')
    const fromP12 = await run(['keys', 'import', file('bundle.p12', p12), 'rs', '--passphrase-file', file('p12pass', password), '--json'])
    expect(fromP12.code, fromP12.stderr).toBe(0)
    expect(JSON.parse(fromP12.stdout).kid).toBe(await thumbprintOf(rsa))

    const ec = material.ec('prime256v1')
    const fromJwk = await run(['keys', 'import', file('key.jwk', JSON.stringify(material.privateJwk(ec))), '--json'])
    expect(fromJwk.code, fromJwk.stderr).toBe(0)
    expect(JSON.parse(fromJwk.stdout).kid).toBe(await thumbprintOf(ec))
  })

  it('refuses with one line and a non-zero exit: wrong passphrase, weak key, duplicate, bad format, missing file, a JWK that is not an object', async () => {
    const oneLine = (result: CliResult, pattern: RegExp) => {
      expect(result.code).not.toBe(0)
      expect(result.stderr.trimEnd().split('\n')).toHaveLength(1)
      expect(result.stderr).toMatch(pattern)
    }
    const key = material.ec('prime256v1')
    const passphrase = material.passphrase()
    const encrypted = file('enc.pem', material.pem(key, 'pkcs8', passphrase))
    oneLine(await run(['keys', 'import', encrypted, '--passphrase-file', file('wrong', 'nope')]), /wrong passphrase \(invalid_request\)/)
    oneLine(await run(['keys', 'import', encrypted]), /send its passphrase/)

    const { generateKeyPairSync } = await import('node:crypto')
    const weak = material.privateKey('an RSA-1024 key', generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey)
    oneLine(await run(['keys', 'import', file('weak.pem', material.pem(weak, 'pkcs8')), 'rs']), /at least 2048 bits/)

    const twice = file('twice.pem', material.pem(material.ec('prime256v1'), 'pkcs8'))
    expect((await run(['keys', 'import', twice])).code).toBe(0)
    oneLine(await run(['keys', 'import', twice]), /exists \(conflict\)/)

    oneLine(await run(['keys', 'import', twice, '--format', 'der']), /--format must be pem, pkcs12 or jwk/)
    oneLine(await run(['keys', 'import', join(dir.path, 'missing.pem')]), /cannot read the key file/)
    // The body is checked before the configuration is read: a bad configuration is not what it reports.
    const badConfig = { ...env, SIGNET_PORT: 'not-a-port' }
    const notAnObject = await runCli(['keys', 'import', file('list.jwk', '[1]'), '--format', 'jwk'], { env: badConfig })
    outputs.push(notAnObject)
    oneLine(notAnObject, /jwk must be a JSON Web Key object/)
  })

  it('prints no key material, passphrase or password', () => {
    for (const output of outputs) {
      watch.record(output.stdout)
      watch.record(output.stderr)
    }
    watch.assertClean()
  })
})
