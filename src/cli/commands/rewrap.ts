import type { Command } from 'commander'
import { printJson, printLines } from '../output.js'

export function registerRewrap(program: Command): void {
  program
    .command('rewrap')
    .description('re-encrypt every private key under SIGNET_NEW_MASTER_KEY, in one transaction (stop the server first)')
    .option('--force', 'run even though a server is running on the database (it is sealed until restarted with the new key)')
    .option('--json', 'print the result as JSON')
    .action(async (options: { json?: boolean; force?: boolean }, command: Command) => {
      const { refuseUrl } = await import('../admin-api.js')
      refuseUrl(command, 'rewrap', 'it re-encrypts the stored keys')
      const { auditSinkFor } = await import('../../audit/recorder.js')
      const { systemClock } = await import('../../clock.js')
      const { ConfigError } = await import('../../errors.js')
      const { MASTER_KEY_CHECK } = await import('../../keys/keystore.js')
      const { rewrapMasterKey } = await import('../../ops/rewrap.js')
      const { cliActor, commandLogger, openExisting, readConfig } = await import('../context.js')
      const config = readConfig()
      const from = config.masterKey
      const to = config.newMasterKey
      if (!from) throw new ConfigError('SIGNET_MASTER_KEY (or SIGNET_MASTER_KEY_FILE) is required by signet rewrap: the key the database is under now')
      if (!to) throw new ConfigError('SIGNET_NEW_MASTER_KEY (or SIGNET_NEW_MASTER_KEY_FILE) is required by signet rewrap; make one with: openssl rand -base64 32')

      const storage = await openExisting(config, { migrate: false, checkMasterKey: false })
      let result
      try {
        // Checked before the schema is touched: a wrong key changes nothing.
        const check = (await storage.getMeta(MASTER_KEY_CHECK))!
        if (!from.matches(check) && !to.matches(check)) {
          throw new ConfigError('neither SIGNET_MASTER_KEY nor SIGNET_NEW_MASTER_KEY is the master key of this database: nothing was changed')
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

      if (options.json) {
        printJson(result)
        return
      }
      if (result.alreadyDone) {
        printLines('Nothing to do: this database is already under the new master key (an earlier rewrap completed).', 'Start Signet with SIGNET_MASTER_KEY set to the new key.')
        return
      }
      printLines(
        `Re-encrypted ${result.rewrapped} private keys under the new master key (id ${result.masterKeyId}), in one transaction.`,
        'Start Signet with SIGNET_MASTER_KEY set to the new key: the old key no longer opens this database.',
        'A server still running with the old key now reports itself sealed until it is restarted with the new key.',
      )
    })
}
