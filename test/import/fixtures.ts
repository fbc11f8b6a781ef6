import { execFileSync } from 'node:child_process'
import { generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import forge from 'node-forge'
import type { LeakWatch } from '../helpers/secrets.js'

/**
 * Key material to import, generated at test time: every secret part is registered
 * with the LeakWatch so the leak scan looks for it in answers and logs.
 */
export class Material {
  constructor(readonly watch: LeakWatch) {}

  /**
   * Registers a secret text, and for a PEM its base64 body in one piece. (Single PEM
   * lines are not registered: some lines of a private key PEM hold only the public
   * modulus, which x5c certificates rightly publish. The leak watch's markers catch
   * any "PRIVATE KEY" PEM in a text.)
   */
  secret(label: string, value: string): string {
    this.watch.secret(label, value)
    const body = value.split(/\r?\n/).filter((line) => !line.startsWith('-----') && !line.includes(':') && line.length > 0).join('')
    if (body !== value) this.watch.secret(`${label} (base64 body)`, body)
    return value
  }

  /**
   * Registers the truly private parts of a key: its private JWK members (base64url,
   * base64 and hex) and its whole PKCS#8 in base64.
   */
  privateKey(label: string, key: KeyObject): KeyObject {
    let jwk: Record<string, string> = {}
    try {
      jwk = key.export({ format: 'jwk' }) as Record<string, string>
    } catch {
      // RSA-PSS keys have no JWK form; their PKCS#8 is registered below.
    }
    for (const member of ['d', 'p', 'q', 'dp', 'dq', 'qi']) {
      const value = jwk[member]
      if (!value) continue
      const bytes = Buffer.from(value, 'base64url')
      this.watch.secret(`${label} member ${member}`, value)
      this.watch.secret(`${label} member ${member} (base64)`, bytes.toString('base64').replace(/=+$/, ''))
      this.watch.secret(`${label} member ${member} (hex)`, bytes.toString('hex'))
    }
    this.watch.secret(`${label} PKCS#8`, key.export({ format: 'der', type: 'pkcs8' }).toString('base64'))
    return key
  }

  rsa(bits = 2048): KeyObject {
    return this.privateKey(`an RSA-${bits} key`, generateKeyPairSync('rsa', { modulusLength: bits }).privateKey)
  }

  ec(curve: 'prime256v1' | 'secp384r1' | 'secp521r1'): KeyObject {
    return this.privateKey(`an EC ${curve} key`, generateKeyPairSync('ec', { namedCurve: curve }).privateKey)
  }

  ed25519(): KeyObject {
    return this.privateKey('an Ed25519 key', generateKeyPairSync('ed25519').privateKey)
  }

  pem(key: KeyObject, type: 'pkcs8' | 'pkcs1' | 'sec1', passphrase?: string): string {
    const options = passphrase
      ? { format: 'pem' as const, type, cipher: 'aes-256-cbc', passphrase }
      : { format: 'pem' as const, type }
    return this.secret(`a ${type} PEM`, key.export(options as never) as string)
  }

  passphrase(): string {
    return this.secret('a passphrase', `pass-${randomBytes(12).toString('base64url')}`)
  }

  privateJwk(key: KeyObject): Record<string, string> {
    return key.export({ format: 'jwk' }) as Record<string, string>
  }

  /** A PKCS#12 file (base64) made with node-forge: an RSA key, its self-signed certificate, AES-256 or legacy 3DES. */
  pkcs12Rsa(key: KeyObject, password: string, algorithm: 'aes256' | '3des' = 'aes256'): string {
    const forgeKey = forge.pki.privateKeyFromPem(key.export({ format: 'pem', type: 'pkcs1' }) as string) as forge.pki.rsa.PrivateKey
    const certificate = forge.pki.createCertificate()
    certificate.publicKey = forge.pki.setRsaPublicKey(forgeKey.n, forgeKey.e)
    certificate.serialNumber = '01'
    certificate.validity.notBefore = new Date(Date.now() - 60_000)
    certificate.validity.notAfter = new Date(Date.now() + 86_400_000)
    certificate.setSubject([{ name: 'commonName', value: 'import test' }])
    certificate.setIssuer([{ name: 'commonName', value: 'import test' }])
    certificate.sign(forgeKey, forge.md.sha256.create())
    const asn1 = forge.pkcs12.toPkcs12Asn1(forgeKey, [certificate], password, { algorithm })
    return this.secret('a PKCS#12 file', Buffer.from(forge.asn1.toDer(asn1).getBytes(), 'binary').toString('base64'))
  }

  /** A PKCS#12 file holding only a certificate (no key), made with node-forge. */
  pkcs12CertificateOnly(key: KeyObject, password: string): string {
    const forgeKey = forge.pki.privateKeyFromPem(key.export({ format: 'pem', type: 'pkcs1' }) as string) as forge.pki.rsa.PrivateKey
    const certificate = forge.pki.createCertificate()
    certificate.publicKey = forge.pki.setRsaPublicKey(forgeKey.n, forgeKey.e)
    certificate.serialNumber = '02'
    certificate.validity.notBefore = new Date(Date.now() - 60_000)
    certificate.validity.notAfter = new Date(Date.now() + 86_400_000)
    certificate.setSubject([{ name: 'commonName', value: 'certificate only' }])
    certificate.setIssuer([{ name: 'commonName', value: 'certificate only' }])
    certificate.sign(forgeKey, forge.md.sha256.create())
    const asn1 = forge.pkcs12.toPkcs12Asn1(null, [certificate], password, { algorithm: 'aes256' })
    return Buffer.from(forge.asn1.toDer(asn1).getBytes(), 'binary').toString('base64')
  }

  /**
   * A PKCS#12 file as OpenSSL 3 makes it by default (PBES2 with AES-256-CBC,
   * PBKDF2 with HMAC-SHA256, a SHA-256 MAC), around an EC key; null without openssl.
   */
  pkcs12WithOpenssl(key: KeyObject, password: string): string | null {
    const dir = mkdtempSync(join(tmpdir(), 'signet-p12-'))
    try {
      writeFileSync(join(dir, 'key.pem'), key.export({ format: 'pem', type: 'pkcs8' }) as string, { mode: 0o600 })
      execFileSync('openssl', ['req', '-x509', '-new', '-key', join(dir, 'key.pem'), '-subj', '/CN=import test', '-days', '1', '-out', join(dir, 'cert.pem')], { stdio: 'ignore' })
      execFileSync('openssl', ['pkcs12', '-export', '-inkey', join(dir, 'key.pem'), '-in', join(dir, 'cert.pem'), '-out', join(dir, 'bundle.p12'), '-passout', 'stdin'], { input: `${password}\n`, stdio: ['pipe', 'ignore', 'ignore'] })
      return this.secret('an OpenSSL PKCS#12 file', readFileSync(join(dir, 'bundle.p12')).toString('base64'))
    } catch {
      return null
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }
}
