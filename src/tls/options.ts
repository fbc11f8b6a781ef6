import { readFileSync } from 'node:fs'
import type { ServerOptions } from 'node:https'
import { createSecureContext } from 'node:tls'
import type { Config } from '../config.js'
import { ConfigError } from '../errors.js'

/**
 * HTTPS options of Signet's listeners (SIGNET_TLS_CERT_FILE, SIGNET_TLS_KEY_FILE,
 * SIGNET_TLS_CLIENT_CA_FILE). Both listeners serve the same certificate. With a
 * client CA, the internal listener requires mutual TLS: a client that presents no
 * certificate, or one not signed by that CA, is refused during the handshake,
 * before any HTTP is read. The public listener (JWKS, discovery, health) never
 * asks for a client certificate: verifiers and probes must reach it.
 */

export type Listener = 'internal' | 'public'

function readPem(variable: string, path: string): Buffer {
  try {
    return readFileSync(path)
  } catch (error) {
    throw new ConfigError(`${variable}: cannot read the file it names (${(error as NodeJS.ErrnoException).code ?? 'unreadable'})`)
  }
}

/** The files' contents, checked once at start so a bad file stops the start with a message naming it. */
export interface TlsMaterial {
  key: Buffer
  cert: Buffer
  clientCa: Buffer | null
}

export function loadTlsMaterial(tls: NonNullable<Config['tls']>): TlsMaterial {
  const cert = readPem('SIGNET_TLS_CERT_FILE', tls.certFile)
  const key = readPem('SIGNET_TLS_KEY_FILE', tls.keyFile)
  const clientCa = tls.clientCaFile === null ? null : readPem('SIGNET_TLS_CLIENT_CA_FILE', tls.clientCaFile)
  try {
    createSecureContext({ cert, key })
  } catch (error) {
    // OpenSSL's reason ("key values mismatch", "no start line") names no secret.
    throw new ConfigError(`SIGNET_TLS_CERT_FILE and SIGNET_TLS_KEY_FILE cannot be used together: ${(error as Error).message}`)
  }
  if (clientCa) {
    try {
      createSecureContext({ ca: clientCa })
    } catch (error) {
      throw new ConfigError(`SIGNET_TLS_CLIENT_CA_FILE is not a PEM certificate: ${(error as Error).message}`)
    }
    if (!clientCa.toString('latin1').includes('-----BEGIN CERTIFICATE-----')) {
      throw new ConfigError('SIGNET_TLS_CLIENT_CA_FILE holds no PEM certificate')
    }
  }
  return { key, cert, clientCa }
}

/** Node https.Server options for one listener. */
export function httpsOptions(material: TlsMaterial, listener: Listener): ServerOptions {
  const options: ServerOptions = { key: material.key, cert: material.cert, minVersion: 'TLSv1.2' }
  if (listener === 'internal' && material.clientCa) {
    Object.assign(options, { ca: material.clientCa, requestCert: true, rejectUnauthorized: true })
  }
  return options
}
