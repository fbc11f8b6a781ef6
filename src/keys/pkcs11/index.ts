import { readFileSync } from 'node:fs'
import type { Logger } from 'pino'
import type { Config } from '../../config.js'
import { Pkcs11Backend } from './backend.js'

/**
 * The PKCS#11 backend as the configuration describes it (SIGNET_PKCS11_*). With
 * SIGNET_PKCS11_PIN_FILE the file is read again at each connection attempt, so an
 * operator can fix a wrong PIN without a restart. Changes of the token's state are
 * logged once each: "unavailable" with the reason, then "available again".
 */
export function createPkcs11Backend(settings: NonNullable<Config['pkcs11']>, logger: Logger): Pkcs11Backend {
  const log = logger.child({ component: 'pkcs11' })
  const pin = (): string | null => {
    if (settings.pinFile === null) return settings.pin
    try {
      return readFileSync(settings.pinFile, 'utf8').replace(/\r?\n$/, '')
    } catch {
      return settings.pin
    }
  }
  return new Pkcs11Backend({
    module: settings.module,
    tokenLabel: settings.tokenLabel,
    slot: settings.slot,
    pin,
    onChange: (problem) => {
      if (problem) {
        log.error({ reason: problem.detail }, `the PKCS#11 token is unavailable: ${problem.summary}; keysets with backend pkcs11 cannot sign until it is back`)
      } else {
        log.info('the PKCS#11 token is available again')
      }
    },
    onRefusal: (detail) => log.warn({ reason: detail }, 'the PKCS#11 token refused an operation'),
  })
}
