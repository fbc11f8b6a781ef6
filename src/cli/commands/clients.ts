import { InvalidArgumentError, type Command } from 'commander'
import { list, repeatable, UsageError, wholeNumber } from '../args.js'
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
    { header: 'subjects', value: (c) => c.subjects?.join(',') },
    { header: 'required claims', value: (c) => c.requiredClaims?.join(',') },
    { header: 'certificate', value: (c) => c.certificateSubject },
    { header: 'identity', value: (c) => (c.identity ? `${c.identity.issuer}:${c.identity.subject}` : null) },
    { header: 'created', value: (c) => shortTime(c.createdAt) },
    { header: 'revoked', value: (c) => shortTime(c.revokedAt) },
  ])
}

/** `--identity ISSUER:SUBJECT`: the issuer name has no colon, the subject may (system:serviceaccount:ns:name). */
function identityArgument(value: string): { issuer: string; subject: string } {
  const colon = value.indexOf(':')
  if (colon <= 0 || colon === value.length - 1) throw new InvalidArgumentError('must be ISSUER:SUBJECT, e.g. prod-cluster:system:serviceaccount:billing:api')
  return { issuer: value.slice(0, colon), subject: value.slice(colon + 1) }
}

/**
 * Clients need no master key: creating or revoking one touches no private key.
 * The database must exist (signet init, dev or serve made it).
 */
async function clientService() {
  const { auditSinkFor } = await import('../../audit/recorder.js')
  const { ClientService } = await import('../../auth/clients.js')
  const { systemClock } = await import('../../clock.js')
  const { commandLogger, readConfig } = await import('../context.js')
  const config = readConfig()
  const logger = commandLogger()
  const auditSink = auditSinkFor(config.auditFile, logger)
  return { config, make: (storage: import('../../storage/types.js').Storage) => new ClientService({ storage, clock: systemClock, auditSink }) }
}

export function registerClients(program: Command): void {
  const clients = commandGroup(program, 'clients', 'create, list and revoke clients (app servers allowed to sign)')

  clients
    .command('create')
    .description('create a client and print its bearer token, once (none with --identity unless --token)')
    .argument('<name>', 'what the client is, e.g. "billing api"')
    .option('--keysets <names>', 'keysets it may use, comma-separated, or * for all (default: SIGNET_DEFAULT_KEYSET)', list)
    .option('--scopes <scopes>', 'sign, verify, admin, comma-separated', list, ['sign'])
    .option('--audiences <values>', 'allowed aud values, comma-separated (default: any)', list)
    .option('--max-ttl <seconds>', 'longest token lifetime for this client', wholeNumber(1))
    .option('--subject <pattern>', 'a pattern sub must match (* = any run of characters); repeat for more; sub becomes required', repeatable)
    .option('--required-claim <name>', 'a claim every token must carry; repeat for more', repeatable)
    .option('--certificate-subject <dn>', 'bind the client to the subject of its mutual-TLS client certificate, e.g. "CN=billing-api,O=Acme"')
    .option('--identity <issuer:subject>', 'authenticate it by a workload token of that issuer whose sub matches subject (* matches any run), e.g. prod-cluster:system:serviceaccount:billing:api; no bearer token then', identityArgument)
    .option('--token', 'with --identity: also issue a bearer token')
    .option('--token-file <path>', 'write the token to this new file (mode 0600) instead of printing it')
    .option('--json', 'print the client (and its token) as JSON')
    .action(async (name: string, options: { keysets?: string[]; scopes: string[]; audiences?: string[]; maxTtl?: number; subject?: string[]; requiredClaim?: string[]; certificateSubject?: string; identity?: { issuer: string; subject: string }; token?: boolean; tokenFile?: string; json?: boolean }) => {
      if (options.token && !options.identity) throw new UsageError('--token only applies with --identity (a client without one always gets a token)')
      if (options.tokenFile && options.identity && !options.token) throw new UsageError('--token-file: a client with --identity gets no token unless --token asks for one')
      const { closeSync, openSync, rmSync, writeFileSync } = await import('node:fs')
      const { checkClientInput } = await import('../../auth/clients.js')
      const { presentClient } = await import('../../routes/present.js')
      const { cliActor, withStorage } = await import('../context.js')
      const { config, make } = await clientService()
      const input = {
        name,
        keysets: options.keysets ?? [config.defaultKeyset],
        scopes: options.scopes,
        ...(options.audiences ? { audiences: options.audiences } : {}),
        ...(options.maxTtl !== undefined ? { maxTtl: options.maxTtl } : {}),
        ...(options.subject ? { subjects: options.subject } : {}),
        ...(options.requiredClaim ? { requiredClaims: options.requiredClaim } : {}),
        ...(options.certificateSubject !== undefined ? { certificateSubject: options.certificateSubject } : {}),
        ...(options.identity ? { identity: options.identity, token: options.token === true } : {}),
      }
      checkClientInput(input) // bad input fails before anything is written
      // The token file is claimed first, so a client is never made whose token cannot be kept.
      if (options.tokenFile) closeSync(openSync(options.tokenFile, 'wx', 0o600))
      let created
      try {
        created = await withStorage(config, (storage) => make(storage).create(input, cliActor()), { migrate: true })
      } catch (error) {
        if (options.tokenFile) rmSync(options.tokenFile, { force: true })
        throw error
      }
      const client = presentClient(created.client)
      if (created.token === null) {
        if (options.json) printJson(client)
        else printClients([client])
        return
      }
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
    .command('update')
    .description("change a client's policy (a running server uses it within 2 s); the --no- options clear a limit")
    .argument('<id>', 'the client id')
    .option('--keysets <names>', 'keysets it may use, comma-separated, or * for all', list)
    .option('--scopes <scopes>', 'sign, verify, admin, comma-separated', list)
    .option('--audiences <values>', 'allowed aud values, comma-separated', list)
    .option('--no-audiences', 'allow any aud')
    .option('--max-ttl <seconds>', 'longest token lifetime for this client', wholeNumber(1))
    .option('--no-max-ttl', "only the keyset's maxTtl applies")
    .option('--subject <pattern>', 'a pattern sub must match (* = any run of characters); repeat for more; replaces the list', repeatable)
    .option('--no-subjects', 'allow any sub')
    .option('--required-claim <name>', 'a claim every token must carry; repeat for more; replaces the list', repeatable)
    .option('--no-required-claims', 'require no claims')
    .option('--json', 'print the client as JSON')
    .action(async (id: string, options: UpdateOptions) => {
      const { presentClient } = await import('../../routes/present.js')
      const { cliActor, withStorage } = await import('../context.js')
      const patch = clientPatch(options)
      if (Object.keys(patch).length === 0) throw new UsageError('signet clients update: nothing to change (give at least one option, see --help)')
      const { config, make } = await clientService()
      const client = presentClient(await withStorage(config, (storage) => make(storage).update(id, patch, cliActor()), { migrate: true }))
      if (options.json) printJson(client)
      else printClients([client])
    })

  clients
    .command('revoke')
    .description('revoke a client: its token stops working (a running server within 2 s)')
    .argument('<id>', 'the client id')
    .option('--json', 'print the revoked client as JSON')
    .action(async (id: string, options: { json?: boolean }) => {
      const { presentClient } = await import('../../routes/present.js')
      const { cliActor, withStorage } = await import('../context.js')
      const { config, make } = await clientService()
      const client = presentClient(await withStorage(config, (storage) => make(storage).revoke(id, cliActor()), { migrate: true }))
      if (options.json) printJson(client)
      else printClients([client])
    })
}

interface UpdateOptions {
  keysets?: string[]
  scopes?: string[]
  /** A list, or false for --no-audiences (true when neither is given); likewise below. */
  audiences: string[] | boolean
  maxTtl: number | boolean
  subject?: string[]
  subjects: boolean
  requiredClaim?: string[]
  requiredClaims: boolean
  json?: boolean
}

/** The options given, as ClientService.update takes them: false (a --no- option) is null. */
function clientPatch(options: UpdateOptions): import('../../auth/clients.js').ClientPatch {
  const set = (value: unknown) => (value === true ? undefined : value === false ? null : value)
  const patch = {
    keysets: options.keysets,
    scopes: options.scopes,
    audiences: set(options.audiences),
    maxTtl: set(options.maxTtl),
    subjects: options.subject ?? set(options.subjects),
    requiredClaims: options.requiredClaim ?? set(options.requiredClaims),
  }
  if (options.subject && options.subjects === false) throw new UsageError('signet clients update: --subject and --no-subjects contradict each other')
  if (options.requiredClaim && options.requiredClaims === false) throw new UsageError('signet clients update: --required-claim and --no-required-claims contradict each other')
  return Object.fromEntries(Object.entries(patch).filter(([, value]) => value !== undefined))
}
