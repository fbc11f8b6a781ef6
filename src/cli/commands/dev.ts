import type { Command } from 'commander'
import { localAction, show } from '../admin-action.js'
import { printLines } from '../output.js'
import { createHeldLogger } from '../../logger.js'
import { DEV_DATA_DIR } from '../../ops/dev-state.js'

const WARNING = [
  '!!! DEVELOPMENT MODE - NOT FOR PRODUCTION !!!',
  '!!! The master key and tokens below are kept in plain files next to the database.',
  '!!! Anyone who can read that directory can sign tokens as this service.',
]

/** A shell-ready line that signs a token with the dev client. */
function curlLine(url: string, clientToken: string): string {
  return `curl -s -X POST ${url}/v1/sign -H 'Authorization: Bearer ${clientToken}' -H 'Content-Type: application/json' -d '{"claims":{"sub":"user-42"}}'`
}

export function registerDev(program: Command): void {
  program
    .command('dev')
    .description('development mode: a working service in one command, data and dev secrets under ./data/dev (not for production)')
    .option('--data-dir <dir>', 'where the dev database and dev secrets live', DEV_DATA_DIR)
    .option('--json', 'print the dev details as one JSON line before the logs')
    .action(localAction('it runs a server on its own data', async (options: { dataDir: string; json?: boolean }) => {
      const { loadConfig } = await import('../../config.js')
      const { hashToken } = await import('../../auth/tokens.js')
      const { runServer } = await import('../../server.js')
      const { devEnvironment, loadDevState, readDevClientToken, saveDevClientToken } = await import('../../ops/dev-state.js')

      const state = loadDevState(options.dataDir)
      const { env, ignored } = devEnvironment(state, process.env)
      const config = loadConfig(env)
      // With --json, the JSON line comes first on stdout: logs wait until it is out.
      const { logger, release } = createHeldLogger(config.logLevel)
      if (!options.json) release()
      const started = runServer(config, logger, { onListening: async ({ signet, url }) => {
        // Said once it runs, so a failed start still ends with one line on stderr.
        process.stderr.write(`${WARNING.join('\n')}\n`)
        if (ignored.length > 0) process.stderr.write(`signet dev: ignoring ${ignored.join(', ')}: dev mode uses its own database and secrets in ${state.dataDir}\n`)
        // Reuse the saved dev client while it is live; else make one and save its token.
        let clientToken = readDevClientToken(state)
        if (clientToken === null || !signet.keystore.clientByTokenHash(hashToken(clientToken))) {
          const created = await signet.clients.create({ name: 'dev client', keysets: '*', scopes: ['sign', 'verify'] }, 'dev')
          clientToken = created.token! // a client without an identity always gets one
          saveDevClientToken(state, clientToken)
        }
        const curl = curlLine(url, clientToken)
        // What points other signet commands at this data, on the database or through the API.
        const cliEnv = {
          database: { SIGNET_DB: state.dbPath, SIGNET_MASTER_KEY_FILE: state.masterKeyFile },
          api: { SIGNET_URL: url, SIGNET_ADMIN_TOKEN_FILE: state.adminTokenFile },
        }
        const exports = (vars: Record<string, string>) => `  export ${Object.entries(vars).map(([name, value]) => `${name}=${value}`).join(' ')}`
        await show(options, { url, dataDir: state.dataDir, masterKey: state.masterKey, adminToken: state.adminToken, clientToken, curl, cliEnv, production: false }, {
          json: (details) => details,
          text: () => printLines(
            '',
            ...WARNING,
            '',
            `Signet dev server: ${url}   (data and dev secrets: ${state.dataDir})`,
            `Master key:   ${state.masterKey}   (dev only: never reuse it; a real one comes from openssl rand -base64 32)`,
            `Admin token:  ${state.adminToken}`,
            `Client token: ${clientToken}   (scopes sign, verify; every keyset)`,
            '',
            'Sign a token:',
            `  ${curl}`,
            `Public keys:  curl -s ${url}/.well-known/jwks.json`,
            `Readiness:    curl -s ${url}/readyz`,
            '',
            'Point other signet commands (keys list, status, ...) at this server:',
            exports(cliEnv.api),
            'or at its database, with the server stopped or running:',
            exports(cliEnv.database),
            '',
          ),
        })
        release() // with --json, the logs waited until the JSON line was out
      } })
      // A failed start: its log lines matter more than the order.
      await started.catch((error: unknown) => {
        release()
        throw error
      })
    }))
}
