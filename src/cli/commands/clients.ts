import type { Command } from 'commander'
import type { AdminApi, ClientView } from '../admin-api.js'
import { UsageError, duration, inFlagTerms, list } from '../args.js'
import { printJson, printLines, printTable, shortTime } from '../output.js'
import { commandGroup } from '../group.js'

/** The API's field names as the flags that set them, for error messages. */
const CLIENT_FLAGS: Record<string, string> = {
  keysets: '--keysets', scopes: '--scopes', audiences: '--audiences', maxTtl: '--max-ttl', certificateSubject: '--certificate-subject',
}

function printClients(clients: ClientView[]): void {
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
 * The client a command names: by id, or by a name only one live client has. A name
 * several live clients share is refused with their ids, so nothing is guessed.
 */
async function findClient(api: AdminApi, idOrName: string): Promise<ClientView> {
  const clients = await api.listClients()
  const byId = clients.find((client) => client.id === idOrName)
  if (byId) return byId
  const named = clients.filter((client) => client.name === idOrName && client.revokedAt === null)
  if (named.length === 1) return named[0]!
  if (named.length > 1) throw new UsageError(`${named.length} live clients are named ${JSON.stringify(idOrName)}: give one of their ids: ${named.map((client) => client.id).join(', ')}`)
  const { ClientNotFound } = await import('../../errors.js')
  throw new ClientNotFound(`no client with id or live client named ${JSON.stringify(idOrName)} (see signet clients list)`)
}

export function registerClients(program: Command): void {
  const clients = commandGroup(program, 'clients', 'create, list, change and revoke clients (app servers allowed to sign)')

  clients
    .command('create')
    .description('create a client and print its bearer token, once')
    .argument('<name>', 'what the client is, e.g. "billing api"')
    .option('--keysets <names>', 'keysets it may use, comma-separated, or * for all (default: SIGNET_DEFAULT_KEYSET)', list)
    .option('--scopes <scopes>', 'sign, verify, admin, comma-separated', list, ['sign'])
    .option('--audiences <values>', 'allowed aud values, comma-separated (default: any)', list)
    .option('--max-ttl <duration>', 'longest token lifetime for this client (seconds, or 90s, 15m, 12h, 30d)', duration(1))
    .option('--certificate-subject <dn>', 'bind the client to the subject of its mutual-TLS client certificate, e.g. "CN=billing-api,O=Acme"')
    .option('--token-file <path>', 'write the token to this new file (mode 0600) instead of printing it')
    .option('--json', 'print the client (and its token) as JSON')
    .action(async (name: string, options: { keysets?: string[]; scopes: string[]; audiences?: string[]; maxTtl?: number; certificateSubject?: string; tokenFile?: string; json?: boolean }, command: Command) => {
      const { rmSync } = await import('node:fs')
      const { checkClientInput } = await import('../../auth/clients.js')
      const { adminApi } = await import('../admin-api.js')
      const { claimSecretFile, writeSecretFile } = await import('../files.js')
      const api = await adminApi(command)
      const input = {
        name,
        keysets: options.keysets ?? [api.defaultKeyset],
        scopes: options.scopes,
        ...(options.audiences ? { audiences: options.audiences } : {}),
        ...(options.maxTtl !== undefined ? { maxTtl: options.maxTtl } : {}),
        ...(options.certificateSubject !== undefined ? { certificateSubject: options.certificateSubject } : {}),
      }
      await inFlagTerms(CLIENT_FLAGS, async () => checkClientInput(input)) // bad input fails before anything is written
      // The token file is claimed first, so a client is never made whose token cannot be kept.
      if (options.tokenFile) claimSecretFile(options.tokenFile, '--token-file')
      let created
      try {
        created = await inFlagTerms(CLIENT_FLAGS, () => api.createClient(input))
      } catch (error) {
        if (options.tokenFile) rmSync(options.tokenFile, { force: true })
        throw error
      }
      const { token, ...client } = created
      if (options.tokenFile) {
        writeSecretFile(options.tokenFile, token)
        if (options.json) printJson({ ...client, tokenFile: options.tokenFile })
        else printLines(`Created client ${client.id} (${client.name}); its token is in ${options.tokenFile}.`)
        return
      }
      if (options.json) {
        printJson({ ...client, token })
        return
      }
      printClients([client])
      printLines('', 'Token (shown this once; only its hash is stored):', `  ${token}`)
    })

  clients
    .command('list')
    .description('list clients (never their tokens)')
    .option('--json', 'print the list as JSON')
    .action(async (options: { json?: boolean }, command: Command) => {
      const { adminApi } = await import('../admin-api.js')
      const list = await (await adminApi(command)).listClients()
      if (options.json) printJson({ clients: list })
      else printClients(list)
    })

  clients
    .command('update')
    .description('change a client\'s keysets, scopes, audiences or max ttl; its token stays the same')
    .argument('<client>', 'the client id, or the name of exactly one live client')
    .option('--keysets <names>', 'keysets it may use, comma-separated, or * for all', list)
    .option('--scopes <scopes>', 'sign, verify, admin, comma-separated', list)
    .option('--audiences <values>', 'allowed aud values, comma-separated', list)
    .option('--any-audience', 'allow any aud value again')
    .option('--max-ttl <duration>', 'longest token lifetime for this client (seconds, or 90s, 15m, 12h, 30d)', duration(1))
    .option('--json', 'print the changed client as JSON')
    // The client-policy flags (subjects, required claims, identity) join here with their routes.
    .action(async (idOrName: string, options: { keysets?: string[]; scopes?: string[]; audiences?: string[]; anyAudience?: boolean; maxTtl?: number; json?: boolean }, command: Command) => {
      const { adminApi } = await import('../admin-api.js')
      if (options.audiences && options.anyAudience) throw new UsageError('--audiences and --any-audience exclude each other')
      const patch: Record<string, unknown> = {
        ...(options.keysets ? { keysets: options.keysets.length === 1 && options.keysets[0] === '*' ? '*' : options.keysets } : {}),
        ...(options.scopes ? { scopes: options.scopes } : {}),
        ...(options.audiences ? { audiences: options.audiences } : {}),
        ...(options.anyAudience ? { audiences: null } : {}),
        ...(options.maxTtl !== undefined ? { maxTtl: options.maxTtl } : {}),
      }
      if (Object.keys(patch).length === 0) throw new UsageError('signet clients update: nothing to change (give at least one option, see --help)')
      const api = await adminApi(command)
      const target = await findClient(api, idOrName)
      const client = await inFlagTerms(CLIENT_FLAGS, () => api.updateClient(target.id, patch))
      if (options.json) printJson(client)
      else printClients([client])
    })

  clients
    .command('revoke')
    .description('revoke a client: its token stops working (a running server within 2 s)')
    .argument('<client>', 'the client id, or the name of exactly one live client')
    .option('--json', 'print the revoked client as JSON')
    .action(async (idOrName: string, options: { json?: boolean }, command: Command) => {
      const { adminApi } = await import('../admin-api.js')
      const api = await adminApi(command)
      const client = await api.revokeClient((await findClient(api, idOrName)).id)
      if (options.json) printJson(client)
      else printClients([client])
    })
}
