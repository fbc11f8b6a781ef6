import { generateKeyPairSync } from 'node:crypto'
import pino from 'pino'
import { loadConfig } from '../../src/config.js'
import { seal } from '../../src/crypto/envelope.js'
import { toPublicJwk } from '../../src/crypto/jwk.js'
import type { KeyRecord } from '../../src/keys/model.js'
import { Signet } from '../../src/runtime.js'

/**
 * A database with many stored private keys, built fast for tests that need volume
 * (the rewrap crash test: enough rows that a kill lands inside the transaction).
 * Keyset `default` (ES256) is made the usual way; keyset `bulk` (EdDSA) gets
 * `count` real Ed25519 keys in state retired, sealed under the master key exactly
 * as the software backend seals them, inserted through the storage's Tx.
 */
export async function buildBulkDatabase(path: string, masterKey: string, count: number): Promise<void> {
  const config = loadConfig({ SIGNET_MASTER_KEY: masterKey, SIGNET_DB: path })
  const signet = await Signet.open({ config, logger: pino({ level: 'silent' }), createDefaultKeyset: true, keystore: false })
  try {
    await signet.keys.createKeyset({ name: 'bulk', alg: 'EdDSA', rotationPeriod: 0 }, 'test')
    const now = Date.now()
    const keys: KeyRecord[] = []
    for (let i = 0; i < count; i++) {
      const pair = generateKeyPairSync('ed25519')
      const publicJwk = await toPublicJwk(pair.publicKey, 'EdDSA')
      const der = pair.privateKey.export({ type: 'pkcs8', format: 'der' })
      keys.push({
        kid: publicJwk.kid, keyset: 'bulk', alg: 'EdDSA', state: 'retired', publicJwk, certificate: null,
        privateKey: seal(config.masterKey!, der, { kid: publicJwk.kid, keyset: 'bulk', alg: 'EdDSA' }), hsmId: null,
        createdAt: now - 1000, activatesAt: now - 1000, activatedAt: now - 1000, retiredAt: now - 500,
        publishedUntil: now + 365 * 86_400_000, destroyedAt: null, revokedAt: null, revokeReason: null, maxTtlSeen: 3600,
      })
    }
    await signet.storage.transaction(async (tx) => {
      for (const key of keys) await tx.keys.insert(key)
    })
  } finally {
    await signet.close()
  }
}
