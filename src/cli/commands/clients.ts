import type { Command } from 'commander'
import { list, wholeNumber } from '../args.js'
import { printJson, printLines, printTable, shortTime } from '../output.js'
import { commandGroup } from '../group.js'

type Presented = ReturnType<typeof import('../../routes/present.js').presentClient>

function printClients(clients: Presented[]): void {
  printTable(clients, [
    { header: 'id', value: (c) => c.id },
    { header: 'name', value: (c) => c.name },
    { header: 'keysets', value: (c) => (c.keysets === '*' ? '*' : c.keysets.join(',')) },
    { header: 'scopes', value: (c) => c.scopes.join(',') },
    { header: 'audiences', value: (c) => c.audiences?.join(',') },
    { header: 'max ttl', value: (c) => c.maxTtl },
    { header: 'certificate', value: (c) => c.certificateSubject },
    { header: 'created', value: (c) => shortTime(c.createdAt) },
    { header: 'revoked', value: (c) => shortTime(c.revokedAt) },
  ])
}

/**
 * Creating or revoking a client writes a row authenticated under the master key
 * (docs/security.md), so it goes through Signet and needs SIGNET_MASTER_KEY.
 * The database must exist (signet init, dev or serve made it).
 */
async function withClients<T>(command: string, work: (clients: import('../../auth/clients.js').ClientService) => Promise<T>): Promise<T> {
  const { readConfig, withSignet } = await import('../context.js')
  return withSignet(readConfig(), command, (signet) => work(signet.clients))
}

export function registerClients(program: Command): void {
  const clients = commandGroup(program, 'clients', 'create, list and revoke clients (app servers allowed to sign)')

  clients
    .command('create')
    .description('create a client and print its bearer token, once')
    .argument('<name>', 'what the client is, e.g. "billing api"')
    .option('--keysets <names>', 'keysets it may use, comma-separated, or * for all (default: SIGNET_DEFAULT_KEYSET)', list)
    .option('--scopes <scopes>', 'sign, verify, admin, comma-separated', list, ['sign'])
    .option('--audiences <values>', 'allowed aud values, comma-separated (default: any)', list)
    .option('--max-ttl <seconds>', 'longest token lifetime for this client', wholeNumber(1))
    .option('--certificate-subject <dn>', 'bind the client to the subject of its mutual-TLS client certificate, e.g. "CN=billing-api,O=Acme"')
    .option('--token-file <path>', 'write the token to this new file (mode 0600) instead of printing it')
    .option('--json', 'print the client (and its token) as JSON')
    .action(async (name: string, options: { keysets?: string[]; scopes: string[]; audiences?: string[]; maxTtl?: number; certificateSubject?: string; tokenFile?: string; json?: boolean }) => {
      const { closeSync, openSync, rmSync, writeFileSync } = await import('node:fs')
      const { checkClientInput } = await import('../../auth/clients.js')
      const { presentClient } = await import('../../routes/present.js')
      const { cliActor, readConfig } = await import('../context.js')
      const config = readConfig()
      const input = {
        name,
        keysets: options.keysets ?? [config.defaultKeyset],
        scopes: options.scopes,
        ...(options.audiences ? { audiences: options.audiences } : {}),
        ...(options.maxTtl !== undefined ? { maxTtl: options.maxTtl } : {}),
        ...(options.certificateSubject !== undefined ? { certificateSubject: options.certificateSubject } : {}),
      }
      checkClientInput(input) // bad input fails before anything is written
      // The token file is claimed first, so a client is never made whose token cannot be kept.
      if (options.tokenFile) closeSync(openSync(options.tokenFile, 'wx', 0o600))
      let created
      try {
        created = await withClients('clients create', (service) => service.create(input, cliActor()))
      } catch (error) {
        if (options.tokenFile) rmSync(options.tokenFile, { force: true })
        throw error
      }
      const client = presentClient(created.client)
      if (options.tokenFile) {
        writeFileSync(options.tokenFile, `${created.token}\n`, { mode: 0o600 })
        if (options.json) printJson({ ...client, tokenFile: options.tokenFile })
        else printLines(`Created client ${client.id} (${client.name}); its token is in ${options.tokenFile}.`)
        return
      }
      if (options.json) {
        printJson({ ...client, token: created.token })
        return
      }
      printClients([client])
      printLines('', 'Token (shown this once; only its hash is stored):', `  ${created.token}`)
    })

  clients
    .command('list')
    .description('list clients (never their tokens)')
    .option('--json', 'print the list as JSON')
    .action(async (options: { json?: boolean }) => {
      const { presentClient } = await import('../../routes/present.js')
      const { readConfig, withStorage } = await import('../context.js')
      const snapshot = await withStorage(readConfig(), (storage) => storage.snapshot())
      const list = snapshot.clients.map(presentClient)
      if (options.json) printJson({ clients: list })
      else printClients(list)
    })

  clients
    .command('revoke')
    .description('revoke a client: its token stops working (a running server within 2 s)')
    .argument('<id>', 'the client id')
    .option('--json', 'print the revoked client as JSON')
    .action(async (id: string, options: { json?: boolean }) => {
      const { presentClient } = await import('../../routes/present.js')
      const { cliActor } = await import('../context.js')
      const client = presentClient(await withClients('clients revoke', (service) => service.revoke(id, cliActor())))
      if (options.json) printJson(client)
      else printClients([client])
    })
}
