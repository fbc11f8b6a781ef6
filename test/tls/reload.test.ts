import { X509Certificate } from 'node:crypto'
import { mkdirSync, renameSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { connect } from 'node:tls'
import { Agent } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { tempDir } from '../helpers/harness.js'
import { startLiveSignet, type LiveSignet } from '../helpers/live-server.js'
import { LeakWatch } from '../helpers/secrets.js'
import { until } from '../cli/helpers.js'
import { issue, makeCa, type Issued } from './certs.js'

/**
 * TLS files rotated on disk are picked up without a restart, as cert-manager and a
 * Kubernetes secret volume rotate them: the volume's files are symlinks into
 * `..data`, itself a symlink swapped by a rename to a new timestamped directory.
 */

/** The SHA-256 fingerprint of the certificate a new connection to `url` is shown. */
function servedFingerprint(url: string): Promise<string> {
  const { hostname, port } = new URL(url)
  return new Promise((resolve, reject) => {
    const socket = connect({ host: hostname, port: Number(port), rejectUnauthorized: false }, () => {
      const fingerprint = socket.getPeerX509Certificate()?.fingerprint256 ?? ''
      socket.destroy()
      resolve(fingerprint)
    })
    socket.once('error', reject)
  })
}

const fingerprintOf = (issued: Issued) => new X509Certificate(issued.certPem).fingerprint256

describe('TLS reload', () => {
  const dir = tempDir()
  const volume = join(dir.path, 'tls')
  const watch = new LeakWatch()
  let server: LiveSignet
  let first: Issued
  let version = 0

  /** Writes a certificate and key into a new directory and swaps `..data` to it in one rename. */
  const rotate = (cert: string, key: string) => {
    const target = `v${++version}`
    mkdirSync(join(volume, target))
    writeFileSync(join(volume, target, 'tls.crt'), cert)
    writeFileSync(join(volume, target, 'tls.key'), key, { mode: 0o600 })
    symlinkSync(target, join(volume, '..data_tmp'))
    renameSync(join(volume, '..data_tmp'), join(volume, '..data'))
  }
  const newServerCert = (name: string) => {
    const ca = makeCa(`${name} CA`)
    const issued = issue(ca, [{ shortName: 'CN', value: 'localhost' }], 'server')
    watch.secret(`the TLS key of ${name}`, issued.keyPem.split('\n')[1]!)
    return { ...issued, caPem: ca.certPem }
  }
  const both = async () => [await servedFingerprint(server.url), await servedFingerprint(server.publicUrl!)]

  beforeAll(async () => {
    mkdirSync(volume)
    first = newServerCert('first')
    rotate(first.certPem, first.keyPem)
    symlinkSync('..data/tls.crt', join(volume, 'tls.crt'))
    symlinkSync('..data/tls.key', join(volume, 'tls.key'))
    server = await startLiveSignet({
      SIGNET_PUBLIC_PORT: '0',
      SIGNET_TLS_CERT_FILE: join(volume, 'tls.crt'),
      SIGNET_TLS_KEY_FILE: join(volume, 'tls.key'),
    }, { watch, dir: dir.path })
  })

  afterAll(async () => {
    await server?.close()
    watch.assertClean()
    dir.remove()
  })

  it('a rotated certificate is served to new connections on both listeners, without a restart', async () => {
    expect(await both()).toEqual([fingerprintOf(first), fingerprintOf(first)])
    const second = newServerCert('second')
    rotate(second.certPem, second.keyPem)
    await until(async () => ((await both()).every((fingerprint) => fingerprint === fingerprintOf(second)) ? true : undefined), 5000)
    // It is a working certificate: a client trusting only the new CA is served.
    const health = await fetch(`${server.publicUrl}/healthz`, { dispatcher: new Agent({ connect: { ca: second.caPem } }) } as RequestInit)
    expect(health.status).toBe(200)
    const reloaded = server.logs.map((line) => JSON.parse(line)).find((line) => line.msg === 'TLS certificate reloaded')
    expect(reloaded.level).toBe(30)
    expect(reloaded.certificate.fingerprint256).toBe(fingerprintOf(second))
  })

  it('a new pair whose key does not match is logged at error and the current certificate kept; a good pair after it is taken', async () => {
    const current = await servedFingerprint(server.url)
    const third = newServerCert('third')
    const fourth = newServerCert('fourth')
    rotate(third.certPem, fourth.keyPem) // the key of another certificate
    const refused = await until(async () => server.logs.map((line) => JSON.parse(line)).find((line) => /cannot be used/.test(line.msg)), 5000)
    expect(refused.value.level).toBe(50)
    expect(refused.value.err.message).toMatch(/SIGNET_TLS_CERT_FILE and SIGNET_TLS_KEY_FILE cannot be used together/)
    expect(await both()).toEqual([current, current])
    // Fixed by the next rotation.
    rotate(third.certPem, third.keyPem)
    await until(async () => ((await both()).every((fingerprint) => fingerprint === fingerprintOf(third)) ? true : undefined), 5000)
  })

  it('files rewritten in place (no symlinks) are picked up too; an unreadable file keeps the current certificate', async () => {
    const inPlace = join(dir.path, 'plain')
    mkdirSync(inPlace)
    const fifth = newServerCert('fifth')
    writeFileSync(join(inPlace, 'tls.crt'), fifth.certPem)
    writeFileSync(join(inPlace, 'tls.key'), fifth.keyPem)
    // Point the volume's files at plain files that are then rewritten in place.
    renameSync(join(inPlace, 'tls.crt'), join(volume, 'tls.crt.new'))
    renameSync(join(inPlace, 'tls.key'), join(volume, 'tls.key.new'))
    renameSync(join(volume, 'tls.key.new'), join(volume, 'tls.key'))
    renameSync(join(volume, 'tls.crt.new'), join(volume, 'tls.crt'))
    await until(async () => ((await servedFingerprint(server.url)) === fingerprintOf(fifth) ? true : undefined), 5000)
    const sixth = newServerCert('sixth')
    writeFileSync(join(volume, 'tls.key'), sixth.keyPem)
    writeFileSync(join(volume, 'tls.crt'), sixth.certPem)
    await until(async () => ((await servedFingerprint(server.url)) === fingerprintOf(sixth) ? true : undefined), 5000)
    const refusals = () => server.logs.filter((line) => line.includes('cannot be used')).length
    const before = refusals()
    writeFileSync(join(volume, 'tls.crt'), 'not a certificate')
    await until(async () => (refusals() > before ? true : undefined), 5000)
    expect(await servedFingerprint(server.url)).toBe(fingerprintOf(sixth))
  })
})

describe('TLS reload of the client CA (mutual TLS)', () => {
  it('a rotated SIGNET_TLS_CLIENT_CA_FILE decides which client certificates new connections accept', async () => {
    const dir = tempDir()
    const watch = new LeakWatch()
    const serverCa = makeCa('server CA')
    const serverCert = issue(serverCa, [{ shortName: 'CN', value: 'localhost' }], 'server')
    const oldClientCa = makeCa('old client CA')
    const newClientCa = makeCa('new client CA')
    const oldClient = issue(oldClientCa, [{ shortName: 'CN', value: 'app' }], 'client')
    const newClient = issue(newClientCa, [{ shortName: 'CN', value: 'app' }], 'client')
    for (const issued of [serverCa, serverCert, oldClientCa, newClientCa, oldClient, newClient]) watch.secret('a TLS private key', issued.keyPem.split('\n')[1]!)
    const file = (name: string, content: string) => {
      writeFileSync(join(dir.path, name), content)
      return join(dir.path, name)
    }
    const server = await startLiveSignet({
      SIGNET_TLS_CERT_FILE: file('tls.crt', serverCert.certPem),
      SIGNET_TLS_KEY_FILE: file('tls.key', serverCert.keyPem),
      SIGNET_TLS_CLIENT_CA_FILE: file('client-ca.crt', oldClientCa.certPem),
    }, { watch, dir: dir.path })
    /** Whether a new connection presenting `client` is let through the handshake and answered. */
    const accepted = async (client: Issued) => {
      const agent = new Agent({ connect: { ca: serverCa.certPem, cert: client.certPem, key: client.keyPem } })
      try {
        return (await fetch(`${server.url}/healthz`, { dispatcher: agent } as RequestInit)).status === 200
      } catch {
        return false
      } finally {
        await agent.close()
      }
    }
    try {
      expect([await accepted(oldClient), await accepted(newClient)]).toEqual([true, false])
      file('client-ca.crt', newClientCa.certPem)
      await until(async () => ((await accepted(newClient)) ? true : undefined), 5000)
      expect(await accepted(oldClient)).toBe(false)
    } finally {
      await server.close()
      watch.assertClean()
      dir.remove()
    }
  })
})
