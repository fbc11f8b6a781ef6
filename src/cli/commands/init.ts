import { randomBytes } from 'node:crypto'
import type { Command } from 'commander'
import type { Alg } from '../../crypto/algorithms.js'
import type { Config } from '../../config.js'
import { localAction } from '../admin-action.js'
import { algorithm } from '../args.js'
import { printLines } from '../output.js'

export function registerInit(program: Command): void {
  program
    .command('init')
    .description('create the database and keyset default; print a new master key and admin token, once')
    .option('--alg <alg>', 'algorithm of keyset default, any case', algorithm, 'ES256')
    .option('--master-key-file <path>', 'write the new master key to this new file (mode 0600) instead of printing it; give it to Signet as SIGNET_MASTER_KEY_FILE')
    .option('--master-key-pkcs11 <label>', 'generate the master key inside the PKCS#11 token (SIGNET_PKCS11_*) under this label, instead of printing one')
    .option('--json', 'print the result as JSON')
    .action(localAction('it creates the database', async (options: { alg: Alg; masterKeyFile?: string; masterKeyPkcs11?: string }) => {
      const { generateToken } = await import('../../auth/tokens.js')
      const { MasterKey } = await import('../../crypto/master-key.js')
      const { ConfigError } = await import('../../errors.js')
      const { MASTER_KEY_CHECK } = await import('../../keys/master-key-check.js')
      const { Signet } = await import('../../runtime.js')
      const { openStorage } = await import('../../storage/open.js')
      const { cliActor, commandLogger, describeDatabase, readConfig } = await import('../context.js')

      const configured = readConfig()
      const hsmLabel = options.masterKeyPkcs11 ?? null
      const hsmProblem = hsmLabel !== null ? hsmInitProblem(configured, hsmLabel) : null
      if (hsmProblem) throw new ConfigError(hsmProblem)
      // A key or token already configured is used, and not printed; otherwise one is made.
      const newMasterKey = configured.masterKey || hsmLabel !== null || configured.masterKeyPkcs11 !== null ? null : randomBytes(32).toString('base64')
      const newAdminToken = configured.adminToken ? null : generateToken()
      if (options.masterKeyFile !== undefined && !newMasterKey) {
        const { UsageError } = await import('../args.js')
        throw new UsageError('--master-key-file writes a new master key, but SIGNET_MASTER_KEY is set: this database will use that one')
      }
      const config = {
        ...configured,
        masterKey: configured.masterKey ?? (newMasterKey ? MasterKey.fromBase64(newMasterKey) : null),
        masterKeyPkcs11: hsmLabel ?? configured.masterKeyPkcs11,
        adminToken: configured.adminToken ?? newAdminToken,
      }

      const { rmSync } = await import('node:fs')
      const { claimSecretFile, writeSecretFile } = await import('../files.js')
      // Written before the database is made, so nothing is ever encrypted under a key that was not kept;
      // removed again if the database is not made.
      if (options.masterKeyFile !== undefined) {
        claimSecretFile(options.masterKeyFile, '--master-key-file')
        writeSecretFile(options.masterKeyFile, newMasterKey!)
      }
      const dropKeyFile = () => options.masterKeyFile !== undefined && rmSync(options.masterKeyFile, { force: true })
      const storage = await openStorage(config).catch((error: unknown) => {
        dropKeyFile()
        throw error
      })
      let initialised: boolean
      try {
        initialised = (await storage.getMeta(MASTER_KEY_CHECK)) !== null
      } catch (error) {
        await storage.close()
        dropKeyFile()
        throw error
      }
      if (initialised) {
        await storage.close()
        dropKeyFile()
        throw new ConfigError(`${describeDatabase(config)} is already initialised: signet init never touches an existing database`)
      }
      if (hsmLabel !== null) {
        const { Pkcs11MasterKey } = await import('../../keys/pkcs11/master-key.js')
        const { pkcs11MasterKeyOptions } = await import('../../keys/master-key-source.js')
        try {
          await Pkcs11MasterKey.generate(pkcs11MasterKeyOptions(config.pkcs11!, hsmLabel))
        } catch (error) {
          await storage.close()
          throw error
        }
      }
      const signet = await Signet.open({ config, storage, logger: commandLogger(), keystore: false })
      let kid: string
      try {
        const { key } = await signet.keys.createKeyset({ name: config.defaultKeyset, alg: options.alg }, cliActor())
        kid = key.kid
      } finally {
        await signet.close()
      }
      const shownKey = options.masterKeyFile === undefined ? newMasterKey : null
      const made = {
        database: describeDatabase(config),
        keyset: config.defaultKeyset,
        alg: options.alg,
        kid,
        ...(shownKey ? { masterKey: shownKey } : {}),
        ...(options.masterKeyFile !== undefined ? { masterKeyFile: options.masterKeyFile } : {}),
        ...(config.masterKeyPkcs11 !== null ? { masterKeyPkcs11: config.masterKeyPkcs11 } : {}),
        ...(newAdminToken ? { adminToken: newAdminToken } : {}),
      }
      return { made, generatedInToken: hsmLabel !== null }
    }, {
      json: ({ made }) => made,
      text: ({ made, generatedInToken }) => printLines(
        `Created ${made.database} with keyset ${made.keyset} (${made.alg}), active key ${made.kid}.`,
        '',
        ...(made.masterKeyFile !== undefined
          ? [`Master key: written to ${made.masterKeyFile} (mode 0600); give it to Signet as SIGNET_MASTER_KEY_FILE and keep a copy in your secret manager.`, '']
          : made.masterKey
          ? ['Master key (SIGNET_MASTER_KEY). Shown this once and written nowhere: store it in your secret manager now.', `  ${made.masterKey}`, '']
          : generatedInToken
            ? [`Master key: generated inside the PKCS#11 token as ${made.masterKeyPkcs11} (sensitive, never extractable). Start the service with SIGNET_MASTER_KEY_PKCS11=${made.masterKeyPkcs11}.`, '']
            : [made.masterKeyPkcs11 !== undefined ? `Master key: ${made.masterKeyPkcs11} in the PKCS#11 token.` : 'Master key: the one in SIGNET_MASTER_KEY.', '']),
        ...(made.adminToken
          ? ['Admin token (SIGNET_ADMIN_TOKEN). Shown this once and written nowhere:', `  ${made.adminToken}`, '']
          : ['Admin token: the one in SIGNET_ADMIN_TOKEN.', '']),
        'Then give both to the service (or use the *_FILE forms) and run: signet serve',
      ),
    }))
}

/** Why --master-key-pkcs11 cannot be used with this configuration: it needs the token's settings, and no other master key. */
function hsmInitProblem(config: Config, label: string): string | null {
  if (config.masterKey) return '--master-key-pkcs11 and SIGNET_MASTER_KEY (or SIGNET_MASTER_KEY_FILE) are both given: keep one'
  if (config.masterKeyPkcs11 !== null && config.masterKeyPkcs11 !== label) {
    return `--master-key-pkcs11 ${label} and SIGNET_MASTER_KEY_PKCS11=${config.masterKeyPkcs11} name different keys: keep one`
  }
  if (config.pkcs11 === null) return '--master-key-pkcs11 needs SIGNET_PKCS11_MODULE (and SIGNET_PKCS11_TOKEN_LABEL or SIGNET_PKCS11_SLOT, SIGNET_PKCS11_PIN)'
  return null
}
