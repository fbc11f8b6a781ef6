import type { Command } from 'commander'
import { localAction } from '../admin-action.js'
import { printLines } from '../output.js'

export function registerRewrap(program: Command): void {
  program
    .command('rewrap')
    .description('re-encrypt every private key under the new master key (SIGNET_NEW_MASTER_KEY or SIGNET_NEW_MASTER_KEY_PKCS11), in one transaction (stop the server first)')
    .option('--generate', 'first generate SIGNET_NEW_MASTER_KEY_PKCS11 inside the token (refused if the label exists)')
    .option('--force', 'run even though a server is running on the database (it is sealed until restarted with the new key)')
    .option('--json', 'print the result as JSON')
    .action(localAction('it re-encrypts the stored keys', async (options: { generate?: boolean; force?: boolean }) => {
      const { auditSinkFor } = await import('../../audit/recorder.js')
      const { systemClock } = await import('../../clock.js')
      const { ConfigError } = await import('../../errors.js')
      const { isDatabaseMasterKey, MASTER_KEY_CHECK, requireMasterKeySource, wrongMasterKey } = await import('../../keys/master-key-check.js')
      const { masterKeyVariable, openMasterKey, pkcs11MasterKeyOptions } = await import('../../keys/master-key-source.js')
      const { rewrapMasterKey } = await import('../../ops/rewrap.js')
      const { cliActor, commandLogger, openExisting, readConfig } = await import('../context.js')
      const config = readConfig()
      requireMasterKeySource(config, ' by signet rewrap: the key the database is under now')
      if (!config.newMasterKey && config.newMasterKeyPkcs11 === null) {
        throw new ConfigError('SIGNET_NEW_MASTER_KEY (or SIGNET_NEW_MASTER_KEY_FILE, or SIGNET_NEW_MASTER_KEY_PKCS11) is required by signet rewrap; make one with: openssl rand -base64 32')
      }
      if (config.masterKeyPkcs11 !== null && config.masterKeyPkcs11 === config.newMasterKeyPkcs11) {
        throw new ConfigError('SIGNET_NEW_MASTER_KEY_PKCS11 names the same key as SIGNET_MASTER_KEY_PKCS11: generate a new one with signet init --master-key-pkcs11 on another database, or a key of your HSM tools')
      }
      if (options.generate && config.newMasterKeyPkcs11 === null) throw new ConfigError('--generate needs SIGNET_NEW_MASTER_KEY_PKCS11: the label of the key to generate in the token')
      // The new source, as the server must be started with it afterwards.
      const newSource = config.newMasterKeyPkcs11 !== null ? `SIGNET_MASTER_KEY_PKCS11=${config.newMasterKeyPkcs11}` : 'SIGNET_MASTER_KEY set to the new key'

      // Either key may live in the HSM; both are opened before the database is touched.
      const current = await openMasterKey(config, 'current')
      if (options.generate) {
        const { Pkcs11MasterKey } = await import('../../keys/pkcs11/master-key.js')
        await Pkcs11MasterKey.generate(pkcs11MasterKeyOptions(config.pkcs11!, config.newMasterKeyPkcs11!)).catch(async (error: unknown) => {
          await current.close()
          throw error
        })
      }
      let result
      try {
        const next = await openMasterKey(config, 'new')
        try {
          const from = current.masterKey!
          const to = next.masterKey!
          const storage = await openExisting(config, { migrate: false, checkMasterKey: false })
          try {
            // Checked before the schema is touched: a wrong key changes nothing.
            const check = (await storage.getMeta(MASTER_KEY_CHECK))!
            if (!isDatabaseMasterKey(from, check) && !isDatabaseMasterKey(to, check)) {
              const toVariable = config.newMasterKeyPkcs11 !== null ? 'SIGNET_NEW_MASTER_KEY_PKCS11' : 'SIGNET_NEW_MASTER_KEY'
              throw wrongMasterKey(masterKeyVariable(config), toVariable)
            }
            // A server running on the old key would be sealed by the rewrap, silently for its callers.
            const { runningServer } = await import('../../ops/presence.js')
            const server = options.force ? null : await runningServer(storage, config)
            if (server) throw new ConfigError(`a server is running on this database (${server}): stop it first, or pass --force to rewrap anyway and seal it until it restarts with the new key; nothing was changed`)
            await storage.migrate()
            const logger = commandLogger()
            const auditSink = auditSinkFor(config.auditFile, logger)
            result = await rewrapMasterKey(storage, from, to, { clock: systemClock, actor: cliActor(), auditSink })
          } finally {
            await storage.close()
          }
        } finally {
          await next.close()
        }
      } finally {
        await current.close()
      }
      return { result, newSource }
    }, {
      json: ({ result }) => result,
      text: ({ result, newSource }) => {
        if (result.alreadyDone) {
          printLines('Nothing to do: this database is already under the new master key (an earlier rewrap completed).', `Start Signet with ${newSource}.`)
          return
        }
        printLines(
          `Re-encrypted ${result.rewrapped} private keys under the new master key (id ${result.masterKeyId}), in one transaction.`,
          `Start Signet with ${newSource}: the old key no longer opens this database.`,
          'A server still running with the old key now reports itself sealed until it is restarted with the new key.',
        )
      },
    }))
}
