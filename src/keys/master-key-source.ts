import type { Config } from '../config.js'
import type { MasterKey } from '../crypto/master-key.js'

/** A master key as the configuration names it, with what releases it. */
export interface OpenedMasterKey {
  masterKey: MasterKey | null
  close(): Promise<void>
}

const nothingToClose = async () => {}

/**
 * The current (SIGNET_MASTER_KEY / SIGNET_MASTER_KEY_PKCS11) or new
 * (SIGNET_NEW_MASTER_KEY / SIGNET_NEW_MASTER_KEY_PKCS11) master key. A software key
 * is already parsed in the config; a PKCS#11 key is opened in the token here, and
 * a token, PIN or label that fails is a ConfigError naming the variable.
 */
export async function openMasterKey(config: Config, which: 'current' | 'new' = 'current'): Promise<OpenedMasterKey> {
  const software = which === 'current' ? config.masterKey : config.newMasterKey
  const label = which === 'current' ? config.masterKeyPkcs11 : config.newMasterKeyPkcs11
  if (software || label === null || config.pkcs11 === null) return { masterKey: software, close: nothingToClose }
  const { Pkcs11MasterKey } = await import('./pkcs11/master-key.js')
  const masterKey = await Pkcs11MasterKey.open(pkcs11MasterKeyOptions(config.pkcs11, label))
  return { masterKey, close: () => masterKey.close() }
}

/** The SIGNET_PKCS11_* settings for the master key labelled `label`. */
export function pkcs11MasterKeyOptions(settings: NonNullable<Config['pkcs11']>, label: string) {
  return { module: settings.module, tokenLabel: settings.tokenLabel, slot: settings.slot, pin: settings.pin, label }
}

/** How messages name the configured master key. */
export function masterKeyVariable(config: Pick<Config, 'masterKeyPkcs11'>): string {
  return config.masterKeyPkcs11 !== null ? 'SIGNET_MASTER_KEY_PKCS11' : 'SIGNET_MASTER_KEY'
}
