import { generateKeyPairSync, randomBytes } from 'node:crypto'
import forge from 'node-forge'

/**
 * Test certificates, made at test time and never written to the repository: a CA,
 * a server certificate for 127.0.0.1, and client certificates. Keys come from
 * node:crypto (fast, native); node-forge assembles and signs the certificates.
 */

export interface Issued {
  certPem: string
  keyPem: string
  /** For issuing more certificates. */
  forgeCert: forge.pki.Certificate
  forgeKey: forge.pki.rsa.PrivateKey
}

export type Attributes = { shortName: string; value: string }[]

function newKey(): { keyPem: string; forgeKey: forge.pki.rsa.PrivateKey; forgePublic: forge.pki.rsa.PublicKey } {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const keyPem = privateKey.export({ format: 'pem', type: 'pkcs1' }).toString()
  return {
    keyPem,
    forgeKey: forge.pki.privateKeyFromPem(keyPem) as forge.pki.rsa.PrivateKey,
    forgePublic: forge.pki.publicKeyFromPem(publicKey.export({ format: 'pem', type: 'spki' }).toString()) as forge.pki.rsa.PublicKey,
  }
}

function certificate(subject: Attributes, issuer: Attributes, publicKey: forge.pki.rsa.PublicKey, extensions: object[]): forge.pki.Certificate {
  const cert = forge.pki.createCertificate()
  cert.publicKey = publicKey
  cert.serialNumber = `01${randomBytes(8).toString('hex')}`
  cert.validity.notBefore = new Date(Date.now() - 60_000)
  cert.validity.notAfter = new Date(Date.now() + 24 * 3600_000)
  cert.setSubject(subject)
  cert.setIssuer(issuer)
  cert.setExtensions(extensions)
  return cert
}

export function makeCa(commonName: string): Issued {
  const key = newKey()
  const name = [{ shortName: 'O', value: 'Signet tests' }, { shortName: 'CN', value: commonName }]
  const cert = certificate(name, name, key.forgePublic, [
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
  ])
  cert.sign(key.forgeKey, forge.md.sha256.create())
  return { certPem: forge.pki.certificateToPem(cert), keyPem: key.keyPem, forgeCert: cert, forgeKey: key.forgeKey }
}

export function issue(ca: Issued, subject: Attributes, use: 'server' | 'client'): Issued {
  const key = newKey()
  const extensions: object[] = [
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    use === 'server' ? { name: 'extKeyUsage', serverAuth: true } : { name: 'extKeyUsage', clientAuth: true },
  ]
  if (use === 'server') extensions.push({ name: 'subjectAltName', altNames: [{ type: 7, ip: '127.0.0.1' }, { type: 2, value: 'localhost' }] })
  const cert = certificate(subject, ca.forgeCert.subject.attributes as Attributes, key.forgePublic, extensions)
  cert.sign(ca.forgeKey, forge.md.sha256.create())
  return { certPem: forge.pki.certificateToPem(cert), keyPem: key.keyPem, forgeCert: cert, forgeKey: key.forgeKey }
}
