import { Option, type Command } from 'commander'
import { ALGORITHMS } from '../../crypto/algorithms.js'
import { list, UsageError, wholeNumber } from '../args.js'
import { printJson, printLines, printTable, shortTime } from '../output.js'
import { commandGroup } from '../group.js'

type Presented = ReturnType<typeof import('../../routes/present.js').presentIssuer>

function printIssuers(issuers: Presented[]): void {
  printTable(issuers, [
    { header: 'name', value: (i) => i.name },
    { header: 'issuer', value: (i) => i.issuer },
    { header: 'keys', value: (i) => i.jwksUri ?? `static: ${i.jwks?.keys.length ?? 0} key(s)` },
    { header: 'audiences', value: (i) => i.audiences.join(',') },
    { header: 'algorithms', value: (i) => i.algorithms.join(',') },
    { header: 'max lifetime', value: (i) => i.maxTokenLifetime },
    { header: 'ca', value: (i) => (i.caCertificate ? 'custom' : null) },
    { header: 'created', value: (i) => shortTime(i.createdAt) },
  ])
}

/**
 * An issuer row carries authority and is authenticated under the master key
 * (docs/security.md), so adding or removing one goes through Signet and needs the
 * master key. A running server sees the change within its poll interval
 * (docs/workload-identity.md).
 */
async function withIssuers<T>(command: string, work: (issuers: import('../../identity/issuers.js').IssuerService) => Promise<T>): Promise<T> {
  const { readConfig, withSignet } = await import('../context.js')
  return withSignet(readConfig(), command, (signet) => work(signet.issuers))
}

/** Reads a file named by an option, naming the option when it cannot. */
async function readOptionFile(option: string, path: string): Promise<string> {
  const { readFileSync } = await import('node:fs')
  try {
    return readFileSync(path, 'utf8')
  } catch (error) {
    throw new UsageError(`${option}: cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`)
  }
}

export function registerIssuers(program: Command): void {
  const issuers = commandGroup(program, 'issuers', 'add, list and remove trusted workload-token issuers (Kubernetes, SPIRE, GitHub Actions, OIDC)')

  issuers
    .command('add')
    .description('trust an issuer of workload tokens; clients bound to it need no bearer token')
    .argument('<name>', 'a name for it, e.g. prod-cluster (keyset name rules)')
    .requiredOption('--issuer <iss>', 'the exact iss of its tokens, e.g. https://kubernetes.default.svc.cluster.local')
    .option('--jwks-uri <url>', 'where its JWK Set is fetched (https, or http to a loopback address)')
    .option('--jwks-file <path>', 'a static JWK Set instead, e.g. the output of kubectl get --raw /openid/v1/jwks')
    .option('--audiences <values>', 'accepted aud values, comma-separated', list, ['signet'])
    .addOption(new Option('--algorithms <algs>', `accepted algorithms, comma-separated (default RS256,ES256; one of ${ALGORITHMS.join(', ')})`).argParser(list))
    .option('--max-token-lifetime <seconds>', 'longest accepted lifetime from iat (or nbf) to exp (default 3600)', wholeNumber(1))
    .option('--ca-file <path>', 'PEM of the CA that signs the JWKS endpoint certificate')
    .option('--json', 'print the issuer as JSON')
    .action(async (name: string, options: { issuer: string; jwksUri?: string; jwksFile?: string; audiences: string[]; algorithms?: string[]; maxTokenLifetime?: number; caFile?: string; json?: boolean }) => {
      const { checkNewIssuer } = await import('../../identity/issuer-policy.js')
      const { presentIssuer } = await import('../../routes/present.js')
      const { cliActor } = await import('../context.js')
      if ((options.jwksUri === undefined) === (options.jwksFile === undefined)) throw new UsageError('issuers add: give exactly one of --jwks-uri and --jwks-file')
      let jwks: unknown
      if (options.jwksFile !== undefined) {
        try {
          jwks = JSON.parse(await readOptionFile('--jwks-file', options.jwksFile))
        } catch (error) {
          if (error instanceof UsageError) throw error
          throw new UsageError(`--jwks-file: ${options.jwksFile} is not JSON`)
        }
      }
      const input = {
        name,
        issuer: options.issuer,
        audiences: options.audiences,
        ...(options.jwksUri !== undefined ? { jwksUri: options.jwksUri } : { jwks }),
        ...(options.algorithms ? { algorithms: options.algorithms } : {}),
        ...(options.maxTokenLifetime !== undefined ? { maxTokenLifetime: options.maxTokenLifetime } : {}),
        ...(options.caFile !== undefined ? { caCertificate: await readOptionFile('--ca-file', options.caFile) } : {}),
      }
      checkNewIssuer(input) // bad input fails before the database is opened
      const issuer = presentIssuer(await withIssuers('issuers add', (service) => service.create(input, cliActor())))
      if (options.json) printJson(issuer)
      else {
        printIssuers([issuer])
        printLines('', `Bind a client to it: signet clients create <name> --identity ${issuer.name}:<subject>`)
      }
    })

  issuers
    .command('list')
    .description('list trusted issuers')
    .option('--json', 'print the list as JSON')
    .action(async (options: { json?: boolean }) => {
      const { presentIssuer } = await import('../../routes/present.js')
      const { readConfig, withStorage } = await import('../context.js')
      // migrate: a database made before issuers existed gets its (empty) table.
      const list = (await withStorage(readConfig(), (storage) => storage.transaction((tx) => tx.listIssuers()), { migrate: true })).map(presentIssuer)
      if (options.json) printJson({ issuers: list })
      else printIssuers(list)
    })

  issuers
    .command('remove')
    .description('stop trusting an issuer (refused while live clients are bound to it)')
    .argument('<name>', 'the issuer name')
    .option('--json', 'print the removed issuer as JSON')
    .action(async (name: string, options: { json?: boolean }) => {
      const { presentIssuer } = await import('../../routes/present.js')
      const { cliActor } = await import('../context.js')
      const issuer = presentIssuer(await withIssuers('issuers remove', (service) => service.remove(name, cliActor())))
      if (options.json) printJson(issuer)
      else printLines(`Removed issuer ${issuer.name} (${issuer.issuer}).`)
    })
}
