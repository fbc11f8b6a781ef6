import { randomBytes } from 'node:crypto'
import { Option, type Command } from 'commander'
import { ALGORITHMS } from '../../crypto/algorithms.js'
import { printJson, printLines } from '../output.js'

export function registerInit(program: Command): void {
  program
    .command('init')
    .description('create the database and keyset default; print a new master key and admin token, once')
    .addOption(new Option('--alg <alg>', 'algorithm of keyset default').choices(ALGORITHMS).default('ES256'))
    .option('--json', 'print the result as JSON')
    .action(async (options: { alg: string; json?: boolean }) => {
      const { generateToken } = await import('../../auth/tokens.js')
      const { MasterKey } = await import('../../crypto/masterKey.js')
      const { ConfigError } = await import('../../errors.js')
      const { MASTER_KEY_CHECK } = await import('../../keys/keystore.js')
      const { Signet } = await import('../../runtime.js')
      const { openStorage } = await import('../../storage/open.js')
      const { cliActor, commandLogger, describeDatabase, readConfig } = await import('../context.js')

      const configured = readConfig()
      // A key or token already configured is used, and not printed; otherwise one is made.
      const newMasterKey = configured.masterKey ? null : randomBytes(32).toString('base64')
      const newAdminToken = configured.adminToken ? null : generateToken()
      const config = {
        ...configured,
        masterKey: configured.masterKey ?? MasterKey.fromBase64(newMasterKey!),
        adminToken: configured.adminToken ?? newAdminToken,
      }

      const storage = await openStorage(config)
      let initialised: boolean
      try {
        initialised = (await storage.getMeta(MASTER_KEY_CHECK)) !== null
      } catch (error) {
        await storage.close()
        throw error
      }
      if (initialised) {
        await storage.close()
        throw new ConfigError(`${describeDatabase(config)} is already initialised: signet init never touches an existing database`)
      }
      const signet = await Signet.open({ config, storage, logger: commandLogger(), keystore: false })
      let kid: string
      try {
        const { key } = await signet.keys.createKeyset({ name: config.defaultKeyset, alg: options.alg }, cliActor())
        kid = key.kid
      } finally {
        await signet.close()
      }

      if (options.json) {
        printJson({
          database: describeDatabase(config),
          keyset: config.defaultKeyset,
          alg: options.alg,
          kid,
          ...(newMasterKey ? { masterKey: newMasterKey } : {}),
          ...(newAdminToken ? { adminToken: newAdminToken } : {}),
        })
        return
      }
      printLines(
        `Created ${describeDatabase(config)} with keyset ${config.defaultKeyset} (${options.alg}), active key ${kid}.`,
        '',
        ...(newMasterKey
          ? ['Master key (SIGNET_MASTER_KEY). Shown this once and written nowhere: store it in your secret manager now.', `  ${newMasterKey}`, '']
          : ['Master key: the one in SIGNET_MASTER_KEY.', '']),
        ...(newAdminToken
          ? ['Admin token (SIGNET_ADMIN_TOKEN). Shown this once and written nowhere:', `  ${newAdminToken}`, '']
          : ['Admin token: the one in SIGNET_ADMIN_TOKEN.', '']),
        'Then give both to the service (or use the *_FILE forms) and run: signet serve',
      )
    })
}
