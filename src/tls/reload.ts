import { statSync } from 'node:fs'
import type { Server } from 'node:https'
import { X509Certificate } from 'node:crypto'
import type { Logger } from 'pino'
import type { Config } from '../config.js'
import { httpsOptions, loadTlsMaterial, type Listener } from './options.js'

/**
 * Reloads the TLS certificate, key and client CA when their files change, without a
 * restart: cert-manager and Kubernetes secret volumes rotate them in place. The
 * files are polled (a stat each) rather than watched, since a secret volume swaps
 * them by renaming a symlink, which inotify watches on the files themselves miss.
 * A change is an other mtime, inode or size of any of them.
 *
 * A changed set is read and checked as at start (the key must match the
 * certificate) before the listeners get it (tls.Server#setSecureContext); new
 * connections then use it, open ones keep theirs. A set that fails the check is
 * logged at error and the listeners keep the one they have; the next change is
 * tried again (a writer that replaces the two files one after the other is
 * picked up once both are in place).
 */

/** How often the files are looked at, in ms. */
export const TLS_POLL_MS = 1000

export interface TlsListener {
  server: Server
  listener: Listener
}

export interface TlsReloader {
  stop(): void
}

function fileVersion(path: string | null): string {
  if (path === null) return ''
  try {
    const info = statSync(path)
    return `${info.mtimeMs}:${info.ino}:${info.size}`
  } catch (error) {
    return `unreadable:${(error as NodeJS.ErrnoException).code ?? ''}`
  }
}

/** What is logged of a certificate: never anything of the key. */
function describeCertificate(pem: Buffer): Record<string, string> {
  try {
    const cert = new X509Certificate(pem)
    return { subject: cert.subject.replaceAll('\n', ', '), validTo: cert.validTo, fingerprint256: cert.fingerprint256 }
  } catch {
    return {}
  }
}

export function reloadTlsOnChange(files: NonNullable<Config['tls']>, listeners: TlsListener[], logger: Logger, intervalMs = TLS_POLL_MS): TlsReloader {
  const versionOfAll = () => [files.certFile, files.keyFile, files.clientCaFile].map(fileVersion).join('|')
  let version = versionOfAll()
  const poll = () => {
    const seen = versionOfAll()
    if (seen === version) return
    version = seen
    let material
    try {
      material = loadTlsMaterial(files)
    } catch (error) {
      logger.error({ err: { message: (error as Error).message } }, 'the TLS files changed but cannot be used: keeping the current certificate')
      return
    }
    for (const { server, listener } of listeners) server.setSecureContext(httpsOptions(material, listener))
    logger.info({ certificate: describeCertificate(material.cert), clientCa: material.clientCa !== null }, 'TLS certificate reloaded')
  }
  const timer = setInterval(poll, intervalMs)
  timer.unref()
  return { stop: () => clearInterval(timer) }
}
