import { InvalidArgumentError, type Command } from 'commander'
import type { AdminApi, ClientView } from '../admin-api.js'
import { UsageError, checkedPatch, duration, inFlagTerms, list, repeatable } from '../args.js'
import { CREATED, printLines, printTable, shortTime, type Columns } from '../output.js'
import { adminAction, asList, asRow, checkedAdminAction, type Shown } from '../admin-action.js'
import { commandGroup } from '../group.js'

/** The API's field names as the flags that set them, for error messages. */
const CLIENT_FLAGS: Record<string, string> = {
  keysets: '--keysets', scopes: '--scopes', audiences: '--audiences', maxTtl: '--max-ttl', certificateSubject: '--certificate-subject',
  subjects: '--subject', requiredClaims: '--required-claim', identity: '--identity',
}

const CLIENT_COLUMNS: Columns<ClientView> = [
  'id', 'name',
  { header: 'keysets', value: (c) => (c.keysets === '*' ? '*' : c.keysets.join(',')) },
  { header: 'scopes', value: (c) => c.scopes.join(',') },
  { header: 'audiences', value: (c) => c.audiences?.join(',') },
  { header: 'max ttl', value: (c) => c.maxTtl },
  { header: 'subjects', value: (c) => c.subjects?.join(',') },
  { header: 'required claims', value: (c) => c.requiredClaims?.join(',') },
  { header: 'certificate', value: (c) => c.certificateSubject },
  { header: 'identity', value: (c) => (c.identity ? `${c.identity.issuer}:${c.identity.subject}` : null) },
  CREATED,
  { header: 'revoked', value: (c) => shortTime(c.revokedAt) },
]

/** A new client: its token is printed, or written to --token-file, or there is none (--identity without --token). */
const CREATED_CLIENT: Shown<{ client: ClientView; token?: string; tokenFile?: string }> = {
  json: ({ client, token, tokenFile }) => (tokenFile !== undefined ? { ...client, tokenFile } : token !== undefined ? { ...client, token } : client),
  text: ({ client, token, tokenFile }) => {
    if (tokenFile !== undefined) return printLines(`Created client ${client.id} (${client.name}); its token is in ${tokenFile}.`)
    printTable([client], CLIENT_COLUMNS)
    if (token !== undefined) printLines('', 'Token (shown this once; only its hash is stored):', `  ${token}`)
  },
}

/** `--identity ISSUER:SUBJECT`: the issuer name has no colon, the subject may (system:serviceaccount:ns:name). */
function identityArgument(value: string): { issuer: string; subject: string } {
  const colon = value.indexOf(':')
  if (colon <= 0 || colon === value.length - 1) throw new InvalidArgumentError('must be ISSUER:SUBJECT, e.g. prod-cluster:system:serviceaccount:billing:api')
  return { issuer: value.slice(0, colon), subject: value.slice(colon + 1) }
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
    .description('create a client and print its bearer token, once (none with --identity unless --token)')
    .argument('<name>', 'what the client is, e.g. "billing api"')
    .option('--keysets <names>', 'keysets it may use, comma-separated, or * for all (default: SIGNET_DEFAULT_KEYSET)', list)
    .option('--scopes <scopes>', 'sign, verify, admin, comma-separated', list, ['sign'])
    .option('--audiences <values>', 'allowed aud values, comma-separated (default: any)', list)
    .option('--max-ttl <duration>', 'longest token lifetime for this client (seconds, or 90s, 15m, 12h, 30d)', duration(1))
    .option('--subject <pattern>', 'a pattern sub must match (* = any run of characters); repeat for more; sub becomes required', repeatable)
    .option('--required-claim <name>', 'a claim every token must carry; repeat for more', repeatable)
    .option('--certificate-subject <dn>', 'bind the client to the subject of its mutual-TLS client certificate, e.g. "CN=billing-api,O=Acme"')
    .option('--identity <issuer:subject>', 'authenticate it by a workload token of that issuer whose sub matches subject (* matches any run), e.g. prod-cluster:system:serviceaccount:billing:api; no bearer token then', identityArgument)
    .option('--token', 'with --identity: also issue a bearer token')
    .option('--token-file <path>', 'write the token to this new file (mode 0600) instead of printing it')
    .option('--json', 'print the client (and its token) as JSON')
    .action(checkedAdminAction((name: string, options: CreateOptions) => {
      if (options.token && !options.identity) throw new UsageError('--token only applies with --identity (a client without one always gets a token)')
      if (options.tokenFile && options.identity && !options.token) throw new UsageError('--token-file: a client with --identity gets no token unless --token asks for one')
      return { name, options }
    }, async (api, { name, options }) => {
      const { rmSync } = await import('node:fs')
      const { clientFields } = await import('../../auth/clients.js')
      const { createClientBody } = await import('../../schemas/index.js')
      const { checkBody } = await import('../../schemas/validate.js')
      const { claimSecretFile, writeSecretFile } = await import('../files.js')
      const given = {
        name,
        keysets: options.keysets ?? [api.defaultKeyset],
        scopes: options.scopes,
        ...(options.audiences ? { audiences: options.audiences } : {}),
        ...(options.maxTtl !== undefined ? { maxTtl: options.maxTtl } : {}),
        ...(options.subject ? { subjects: options.subject } : {}),
        ...(options.requiredClaim ? { requiredClaims: options.requiredClaim } : {}),
        ...(options.certificateSubject !== undefined ? { certificateSubject: options.certificateSubject } : {}),
        ...(options.identity ? { identity: options.identity, token: options.token === true } : {}),
      }
      // Checked as the API checks it: bad input fails before anything is written.
      const input = await inFlagTerms(CLIENT_FLAGS, async () => {
        const checked = checkBody(createClientBody, given)
        clientFields(checked)
        return checked
      })
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
      // An identity-bound client without --token: nothing secret to show.
      if (token === undefined) return { client }
      if (!options.tokenFile) return { client, token }
      writeSecretFile(options.tokenFile, token)
      return { client, tokenFile: options.tokenFile }
    }, CREATED_CLIENT))

  clients
    .command('list')
    .description('list clients (never their tokens)')
    .option('--json', 'print the list as JSON')
    .action(adminAction((api) => api.listClients(), asList('clients', CLIENT_COLUMNS)))

  clients
    .command('update')
    .description("change a client's policy (a running server uses it within 2 s); its token stays the same; the --no- options clear a limit")
    .argument('<client>', 'the client id, or the name of exactly one live client')
    .option('--keysets <names>', 'keysets it may use, comma-separated, or * for all', list)
    .option('--scopes <scopes>', 'sign, verify, admin, comma-separated', list)
    .option('--audiences <values>', 'allowed aud values, comma-separated', list)
    .option('--no-audiences', 'allow any aud')
    .option('--max-ttl <duration>', 'longest token lifetime for this client (seconds, or 90s, 15m, 12h, 30d)', duration(1))
    .option('--no-max-ttl', "only the keyset's maxTtl applies")
    .option('--subject <pattern>', 'a pattern sub must match (* = any run of characters); repeat for more; replaces the list', repeatable)
    .option('--no-subjects', 'allow any sub')
    .option('--required-claim <name>', 'a claim every token must carry; repeat for more; replaces the list', repeatable)
    .option('--no-required-claims', 'require no claims')
    .option('--identity <issuer:subject>', 'bind it to this workload identity instead', identityArgument)
    .option('--no-identity', 'unbind it from its workload identity')
    .option('--json', 'print the changed client as JSON')
    .action(checkedAdminAction(async (idOrName: string, options: UpdateOptions) => {
      const { patchClientBody } = await import('../../schemas/index.js')
      return { idOrName, patch: await checkedPatch('clients update', CLIENT_FLAGS, patchClientBody, clientPatch(options)) }
    }, async (api, { idOrName, patch }) => {
      const target = await findClient(api, idOrName)
      return inFlagTerms(CLIENT_FLAGS, () => api.updateClient(target.id, patch))
    }, asRow(CLIENT_COLUMNS)))

  clients
    .command('revoke')
    .description('revoke a client: its token stops working (a running server within 2 s)')
    .argument('<client>', 'the client id, or the name of exactly one live client')
    .option('--json', 'print the revoked client as JSON')
    .action(adminAction(async (api, idOrName: string) => api.revokeClient((await findClient(api, idOrName)).id), asRow(CLIENT_COLUMNS)))
}

interface CreateOptions {
  keysets?: string[]
  scopes: string[]
  audiences?: string[]
  maxTtl?: number
  subject?: string[]
  requiredClaim?: string[]
  certificateSubject?: string
  identity?: { issuer: string; subject: string }
  token?: boolean
  tokenFile?: string
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
  /** The binding, or false for --no-identity (true when neither is given). */
  identity: { issuer: string; subject: string } | boolean
}

/** The options given, as API fields: false (a --no- option) is null. Checked against the API's schema by the caller. */
function clientPatch(options: UpdateOptions): Record<string, unknown> {
  const set = (value: unknown) => (value === true ? undefined : value === false ? null : value)
  const patch = {
    keysets: options.keysets,
    scopes: options.scopes,
    audiences: set(options.audiences),
    maxTtl: set(options.maxTtl),
    subjects: options.subject ?? set(options.subjects),
    requiredClaims: options.requiredClaim ?? set(options.requiredClaims),
    identity: set(options.identity),
  }
  if (options.subject && options.subjects === false) throw new UsageError('signet clients update: --subject and --no-subjects contradict each other')
  if (options.requiredClaim && options.requiredClaims === false) throw new UsageError('signet clients update: --required-claim and --no-required-claims contradict each other')
  return Object.fromEntries(Object.entries(patch).filter(([, value]) => value !== undefined))
}
