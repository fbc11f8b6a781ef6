import { createPrivateKey } from 'node:crypto'
import { expect } from 'vitest'
import { open as openEnvelope } from '../../src/crypto/envelope.js'
import type { MasterKey } from '../../src/crypto/master-key.js'

/**
 * Collects every secret a test run handles (master keys, bearer tokens, private key
 * material) and every text the service produced (answers, log lines, errors), and
 * checks that none of the texts holds any of the secrets.
 */
export class LeakWatch {
  readonly secrets = new Map<string, string>()
  readonly texts: string[] = []

  /** Remembers a secret; `label` names it in a failure without printing it. */
  secret(label: string, value: string): string {
    if (value.length >= 8) this.secrets.set(value, label)
    return value
  }

  record(text: string): void {
    this.texts.push(text)
  }

  /** Fails the test naming the secret's label (never the secret) if any text holds one. */
  assertClean(): void {
    const markers = ['PRIVATE KEY', '"d":"', '"p":"', '"q":"', '"dp":"', '"dq":"', '"qi":"']
    for (const text of this.texts) {
      for (const marker of markers) {
        expect(text.includes(marker), `a text holds ${marker}`).toBe(false)
      }
      for (const [value, label] of this.secrets) {
        expect(text.includes(value), `a text holds ${label}`).toBe(false)
      }
    }
  }
}

/** A private key as stored (an envelope bound to its kid, keyset and alg). */
export interface StoredPrivateKey {
  kid: string
  keyset: string
  alg: string
  privateKey: Buffer
}

/** Opens a stored private key: its PKCS#8 DER and its JWK (with the private members). */
export function openStoredKey(masterKey: MasterKey, key: StoredPrivateKey): { der: Buffer; jwk: Record<string, string> } {
  const der = openEnvelope(masterKey, key.privateKey, { kid: key.kid, keyset: key.keyset, alg: key.alg })
  return { der, jwk: createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }).export({ format: 'jwk' }) as Record<string, string> }
}

/** Registers a stored private key's secret JWK members and its PKCS#8 with a leak watch. */
export function watchPrivateKey(watch: LeakWatch, masterKey: MasterKey, key: StoredPrivateKey): void {
  const { der, jwk } = openStoredKey(masterKey, key)
  for (const member of ['d', 'p', 'q', 'dp', 'dq', 'qi']) if (jwk[member]) watch.secret(`private member ${member} of ${key.kid}`, jwk[member]!)
  watch.secret(`the PKCS#8 of ${key.kid}`, der.toString('base64'))
}
