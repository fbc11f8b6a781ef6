import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { loadConfig, MAX_WORKERS, SCHEMA_KEYWORDS, urlHost, VARIABLE_RULES } from '../../src/config.js'
import { ConfigError } from '../../src/errors.js'
import { tempDir } from '../helpers/harness.js'

const masterKey = randomBytes(32).toString('base64')

describe('configuration', () => {
  const dir = tempDir()
  afterAll(() => dir.remove())

  it('has the defaults of docs/configuration.md', () => {
    const config = loadConfig({ SIGNET_MASTER_KEY: masterKey })
    expect(config).toMatchObject({ dbPath: './data/signet.db', host: '127.0.0.1', port: 8080, defaultKeyset: 'default', jwksMaxAge: 300, logLevel: 'info', publicPort: null, databaseUrl: null, adminToken: null, tls: null, workers: 1 })
  })

  it('ignores variables that are not SIGNET_*, and SIGNET_TEST_* ones', () => {
    expect(() => loadConfig({ SIGNET_MASTER_KEY: masterKey, HOME: '/root', SIGNET_TEST_DATABASE_URL: 'postgres://x' })).not.toThrow()
  })

  it.each([
    [{ SIGNET_PROT: '80' }, /SIGNET_PROT is not a Signet variable/],
    [{ SIGNET_PORT: 'eighty' }, /SIGNET_PORT must be a whole number/],
    [{ SIGNET_PORT: '1e3' }, /SIGNET_PORT must be a whole number/],
    [{ SIGNET_PORT: '8080 ' }, /SIGNET_PORT must be a whole number/],
    [{ SIGNET_JWKS_MAX_AGE: '0x10' }, /SIGNET_JWKS_MAX_AGE must be a whole number/],
    [{ SIGNET_PORT: '70000' }, /SIGNET_PORT must be <= 65535/],
    [{ SIGNET_JWKS_MAX_AGE: '-5' }, /SIGNET_JWKS_MAX_AGE must be a whole number/],
    [{ SIGNET_LOG_LEVEL: 'loud' }, /SIGNET_LOG_LEVEL must be equal to one of/],
    [{ SIGNET_DEFAULT_KEYSET: 'Bad Name' }, /SIGNET_DEFAULT_KEYSET must match pattern/],
    [{ SIGNET_ADMIN_TOKEN: 'short' }, /SIGNET_ADMIN_TOKEN must NOT have fewer than 32 characters/],
    [{ SIGNET_ADMIN_TOKEN: `${'t'.repeat(40)}\n` }, /SIGNET_ADMIN_TOKEN must match pattern "\^\[!-~\]\+\$"/],
    [{ SIGNET_ADMIN_TOKEN: `${'t'.repeat(20)} ${'t'.repeat(20)}` }, /SIGNET_ADMIN_TOKEN must match pattern/],
    [{ SIGNET_DATABASE_URL: 'mysql://x' }, /SIGNET_DATABASE_URL must match pattern/],
    [{ SIGNET_DATABASE_POOL_SIZE: '0' }, /SIGNET_DATABASE_POOL_SIZE must be >= 1$/],
    [{ SIGNET_DB: '' }, /SIGNET_DB must NOT have fewer than 1 characters/],
    [{ SIGNET_PKCS11_MODULE: '/x.so', SIGNET_MASTER_KEY: undefined, SIGNET_MASTER_KEY_PKCS11: 'k'.repeat(129) }, /SIGNET_MASTER_KEY_PKCS11 must NOT have more than 128 characters/],
    [{ SIGNET_PUBLIC_URL: 'ftp://signet' }, /SIGNET_PUBLIC_URL must match pattern/],
    [{ SIGNET_MASTER_KEY: 'c2hvcnQ=' }, /SIGNET_MASTER_KEY must be 32 random bytes in base64/],
    [{ SIGNET_TLS_CERT_FILE: '/x.pem' }, /SIGNET_TLS_KEY_FILE is required/],
    [{ SIGNET_PORT: '9000', SIGNET_PUBLIC_PORT: '9000' }, /SIGNET_PUBLIC_PORT must differ/],
    [{ SIGNET_HOST: 'not a host!' }, /SIGNET_HOST must be an IP address or a host name/],
    [{ SIGNET_HOST: '256.256.256.256' }, /SIGNET_HOST must be an IP address or a host name/],
    [{ SIGNET_HOST: '10.0.0' }, /SIGNET_HOST must be an IP address or a host name/],
    [{ SIGNET_HOST: 'exa mple' }, /SIGNET_HOST must be an IP address or a host name/],
    [{ SIGNET_HOST: 'http://127.0.0.1' }, /SIGNET_HOST must be an IP address or a host name/],
    [{ SIGNET_HOST: '127.0.0.1:8080' }, /SIGNET_HOST must be an IP address or a host name/],
    [{ SIGNET_HOST: '-signet' }, /SIGNET_HOST must be an IP address or a host name/],
    [{ SIGNET_HOST: '' }, /SIGNET_HOST/],
    [{ SIGNET_WORKERS: '0' }, /SIGNET_WORKERS must be auto or a whole number from 1 to/],
    [{ SIGNET_WORKERS: 'all' }, /SIGNET_WORKERS must be auto or a whole number from 1 to/],
    [{ SIGNET_WORKERS: 'AUTO' }, /SIGNET_WORKERS must be auto or a whole number from 1 to/],
    [{ SIGNET_WORKERS: '2.5' }, /SIGNET_WORKERS must be auto or a whole number from 1 to/],
    [{ SIGNET_WORKERS: '-1' }, /SIGNET_WORKERS must be auto or a whole number from 1 to/],
    [{ SIGNET_WORKERS: '' }, /SIGNET_WORKERS must be auto or a whole number from 1 to/],
    [{ SIGNET_WORKERS: String(MAX_WORKERS + 1) }, /SIGNET_WORKERS must be auto or a whole number from 1 to/],
  ])('refuses %j naming the variable', (env, message) => {
    expect(() => loadConfig({ SIGNET_MASTER_KEY: masterKey, ...env })).toThrow(ConfigError)
    expect(() => loadConfig({ SIGNET_MASTER_KEY: masterKey, ...env })).toThrow(message)
  })

  it('checks every rule it declares: each variable is a string or an integer and uses only the keywords the checker applies to its type', () => {
    for (const [name, rule] of Object.entries(VARIABLE_RULES) as [string, { type: string }][]) {
      expect(Object.keys(SCHEMA_KEYWORDS), name).toContain(rule.type)
      const known: readonly string[] = SCHEMA_KEYWORDS[rule.type as keyof typeof SCHEMA_KEYWORDS]
      expect(Object.keys(rule).filter((keyword) => !known.includes(keyword)), name).toEqual([])
    }
  })

  it('counts lengths in code points and fills in each default as its type', () => {
    // 128 characters of which two are astral: 130 UTF-16 units, still 128 characters.
    const label = (ascii: number) => ({ SIGNET_PKCS11_MODULE: '/x.so', SIGNET_MASTER_KEY: undefined, SIGNET_MASTER_KEY_PKCS11: `${'k'.repeat(ascii)}😀😀` })
    expect(() => loadConfig(label(126))).not.toThrow(/more than 128 characters/)
    expect(() => loadConfig(label(127))).toThrow(/SIGNET_MASTER_KEY_PKCS11 must NOT have more than 128 characters/)
    const config = loadConfig({ SIGNET_MASTER_KEY: masterKey })
    expect([typeof config.port, typeof config.databasePoolSize, typeof config.dbPath]).toEqual(['number', 'number', 'string'])
  })

  it.each(['127.0.0.1', '0.0.0.0', '::', '::1', 'fe80::1', 'localhost', 'signet', 'signet.internal', 'signet-1.svc.cluster.local', 'host.example.'])('takes SIGNET_HOST=%s', (host) => {
    expect(loadConfig({ SIGNET_MASTER_KEY: masterKey, SIGNET_HOST: host }).host).toBe(host)
  })

  it('takes SIGNET_WORKERS as a count, or auto for one per core', () => {
    expect(loadConfig({ SIGNET_MASTER_KEY: masterKey, SIGNET_WORKERS: '4' }).workers).toBe(4)
    expect(loadConfig({ SIGNET_MASTER_KEY: masterKey, SIGNET_WORKERS: String(MAX_WORKERS) }).workers).toBe(MAX_WORKERS)
    expect(loadConfig({ SIGNET_MASTER_KEY: masterKey, SIGNET_WORKERS: 'auto' }).workers).toBe(availableParallelism())
  })

  it('writes an IPv6 SIGNET_HOST in brackets where it goes into a URL', () => {
    expect(urlHost('::1')).toBe('[::1]')
    expect(urlHost('fe80::1%eth0')).toBe('[fe80::1%25eth0]')
    expect(urlHost('127.0.0.1')).toBe('127.0.0.1')
    expect(urlHost('signet.internal')).toBe('signet.internal')
  })

  it('reads *_FILE secrets, and refuses both forms at once or an unreadable file, without echoing secrets', () => {
    const keyFile = join(dir.path, 'master.key')
    const tokenFile = join(dir.path, 'admin.token')
    const token = randomBytes(24).toString('hex')
    writeFileSync(keyFile, `${masterKey}\n`)
    writeFileSync(tokenFile, token)
    const config = loadConfig({ SIGNET_MASTER_KEY_FILE: keyFile, SIGNET_ADMIN_TOKEN_FILE: tokenFile })
    expect(config.adminToken).toBe(token)
    expect(config.masterKey?.matches(loadConfig({ SIGNET_MASTER_KEY: masterKey }).masterKey!.checkValue())).toBe(true)
    expect(() => loadConfig({ SIGNET_MASTER_KEY: masterKey, SIGNET_MASTER_KEY_FILE: keyFile })).toThrow(/both set/)
    expect(() => loadConfig({ SIGNET_ADMIN_TOKEN_FILE: join(dir.path, 'missing') })).toThrow(/SIGNET_ADMIN_TOKEN_FILE: cannot read the file it names \(ENOENT\)/)
    // An empty file is named as such, not as a token too short or a key not in base64.
    for (const [variable, content] of [['SIGNET_MASTER_KEY_FILE', ''], ['SIGNET_ADMIN_TOKEN_FILE', '\n']]) {
      const empty = join(dir.path, `empty-${variable}`)
      writeFileSync(empty, content!)
      expect(() => loadConfig({ SIGNET_MASTER_KEY: undefined, [variable!]: empty }), variable).toThrow(`${variable}: the file it names is empty`)
    }
    // One newline at the end is the file's; a second is the token's, which no Bearer header can carry.
    writeFileSync(tokenFile, `${token}\n\n`)
    expect(() => loadConfig({ SIGNET_ADMIN_TOKEN_FILE: tokenFile })).toThrow(/SIGNET_ADMIN_TOKEN must match pattern/)
    try {
      loadConfig({ SIGNET_MASTER_KEY: masterKey.slice(0, 20) })
    } catch (error) {
      expect((error as Error).message).not.toContain(masterKey.slice(0, 20))
    }
  })
})

describe('secrets leave process.env once read', () => {
  const SECRET_VARIABLES = ['SIGNET_MASTER_KEY', 'SIGNET_ADMIN_TOKEN', 'SIGNET_PKCS11_PIN', 'SIGNET_NEW_MASTER_KEY', 'SIGNET_DATABASE_URL']
  const dir = tempDir()
  const saved = { ...process.env }
  afterAll(() => {
    for (const name of Object.keys(process.env)) if (name.startsWith('SIGNET_') && !(name in saved)) delete process.env[name]
    Object.assign(process.env, saved)
    dir.remove()
  })

  it('deletes each secret value from process.env, so a child process started afterwards never sees it; *_FILE paths stay', () => {
    const adminFile = join(dir.path, 'admin-token')
    const adminToken = randomBytes(24).toString('hex')
    writeFileSync(adminFile, adminToken)
    const secrets = {
      SIGNET_MASTER_KEY: masterKey,
      SIGNET_NEW_MASTER_KEY: randomBytes(32).toString('base64'),
      SIGNET_PKCS11_PIN: 'pin-1234-5678',
      SIGNET_DATABASE_URL: 'postgres://signet:db-password@127.0.0.1/signet',
    }
    Object.assign(process.env, secrets, { SIGNET_ADMIN_TOKEN_FILE: adminFile, SIGNET_PKCS11_MODULE: '/nonexistent/module.so' })
    const config = loadConfig()
    expect(config.masterKey).not.toBeNull()
    expect(config.adminToken).toBe(adminToken)
    expect(config.pkcs11?.pin).toBe(secrets.SIGNET_PKCS11_PIN)
    expect(config.databaseUrl).toBe(secrets.SIGNET_DATABASE_URL)
    for (const name of SECRET_VARIABLES) expect(process.env[name], name).toBeUndefined()
    expect(process.env.SIGNET_ADMIN_TOKEN_FILE).toBe(adminFile)
    expect(process.env.SIGNET_PKCS11_MODULE).toBe('/nonexistent/module.so')

    const childEnvironment = execFileSync(process.execPath, ['-e', 'process.stdout.write(JSON.stringify(process.env))'], { encoding: 'utf8' })
    for (const value of [...Object.values(secrets), adminToken]) expect(childEnvironment).not.toContain(value)
    delete process.env.SIGNET_ADMIN_TOKEN_FILE
    delete process.env.SIGNET_PKCS11_MODULE
  })

  it('deletes them even when the configuration is refused', () => {
    Object.assign(process.env, { SIGNET_MASTER_KEY: masterKey, SIGNET_PORT: 'eighty' })
    expect(() => loadConfig()).toThrow(/SIGNET_PORT/)
    expect(process.env.SIGNET_MASTER_KEY).toBeUndefined()
    delete process.env.SIGNET_PORT
  })

  it('leaves an environment object the caller passes as it is, so it can be read again', () => {
    const env = { SIGNET_MASTER_KEY: masterKey, SIGNET_ADMIN_TOKEN: randomBytes(24).toString('hex') }
    process.env.SIGNET_MASTER_KEY = masterKey
    expect(loadConfig(env).adminToken).toBe(env.SIGNET_ADMIN_TOKEN)
    expect(loadConfig(env).masterKey?.idHex).toBe(loadConfig(env).masterKey?.idHex)
    expect(env.SIGNET_MASTER_KEY).toBe(masterKey)
    expect(process.env.SIGNET_MASTER_KEY).toBe(masterKey)
    delete process.env.SIGNET_MASTER_KEY
  })

  it('refuses a software and an HSM master key at once, naming both, and an HSM key without a module', () => {
    expect(() => loadConfig({ SIGNET_MASTER_KEY: masterKey, SIGNET_MASTER_KEY_PKCS11: 'mk', SIGNET_PKCS11_MODULE: '/m.so' })).toThrow('SIGNET_MASTER_KEY (or SIGNET_MASTER_KEY_FILE) and SIGNET_MASTER_KEY_PKCS11 are both set: keep one')
    expect(() => loadConfig({ SIGNET_NEW_MASTER_KEY: masterKey, SIGNET_NEW_MASTER_KEY_PKCS11: 'mk', SIGNET_PKCS11_MODULE: '/m.so' })).toThrow(/SIGNET_NEW_MASTER_KEY .* and SIGNET_NEW_MASTER_KEY_PKCS11 are both set/)
    expect(() => loadConfig({ SIGNET_MASTER_KEY_PKCS11: 'mk' })).toThrow(/SIGNET_MASTER_KEY_PKCS11 needs SIGNET_PKCS11_MODULE/)
    expect(loadConfig({ SIGNET_MASTER_KEY_PKCS11: 'mk', SIGNET_PKCS11_MODULE: '/m.so' })).toMatchObject({ masterKey: null, masterKeyPkcs11: 'mk', newMasterKeyPkcs11: null })
  })
})
