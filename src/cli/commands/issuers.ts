import { Option, type Command } from 'commander'
import { ALGORITHMS } from '../../crypto/algorithms.js'
import { list, UsageError, wholeNumber } from '../args.js'
import { CREATED, printLines, printTable, type Columns } from '../output.js'
import { adminAction, asList, checkedAdminAction } from '../admin-action.js'
import { commandGroup } from '../group.js'
import type { IssuerView } from '../admin-api.js'

const ISSUER_COLUMNS: Columns<IssuerView> = [
  'name', 'issuer',
  { header: 'keys', value: (i) => i.jwksUri ?? `static: ${i.jwks?.keys.length ?? 0} key(s)` },
  { header: 'audiences', value: (i) => i.audiences.join(',') },
  { header: 'algorithms', value: (i) => i.algorithms.join(',') },
  { header: 'max lifetime', value: (i) => i.maxTokenLifetime },
  { header: 'ca', value: (i) => (i.caCertificate ? 'custom' : null) },
  CREATED,
]

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
    .action(checkedAdminAction(async (name: string, options: { issuer: string; jwksUri?: string; jwksFile?: string; audiences: string[]; algorithms?: string[]; maxTokenLifetime?: number; caFile?: string }) => {
      const { checkNewIssuer } = await import('../../identity/issuer-policy.js')
      const { createIssuerBody } = await import('../../schemas/index.js')
      const { checkBody } = await import('../../schemas/validate.js')
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
      const given = {
        name,
        issuer: options.issuer,
        audiences: options.audiences,
        ...(options.jwksUri !== undefined ? { jwksUri: options.jwksUri } : { jwks }),
        ...(options.algorithms ? { algorithms: options.algorithms } : {}),
        ...(options.maxTokenLifetime !== undefined ? { maxTokenLifetime: options.maxTokenLifetime } : {}),
        ...(options.caFile !== undefined ? { caCertificate: await readOptionFile('--ca-file', options.caFile) } : {}),
      }
      // Checked as the API checks it: bad input fails before the database (or the server) is reached.
      const input = checkBody(createIssuerBody, given)
      checkNewIssuer(input)
      return input
    }, (api, input) => api.createIssuer(input), {
      json: (issuer) => issuer,
      text: (issuer) => {
        printTable([issuer], ISSUER_COLUMNS)
        printLines('', `Bind a client to it: signet clients create <name> --identity ${issuer.name}:<subject>`)
      },
    }))

  issuers
    .command('list')
    .description('list trusted issuers')
    .option('--json', 'print the list as JSON')
    .action(adminAction((api) => api.listIssuers(), asList('issuers', ISSUER_COLUMNS)))

  issuers
    .command('remove')
    .description('stop trusting an issuer (refused while live clients are bound to it)')
    .argument('<name>', 'the issuer name')
    .option('--json', 'print the removed issuer as JSON')
    .action(adminAction((api, name: string) => api.removeIssuer(name), {
      json: (issuer) => issuer,
      text: (issuer) => printLines(`Removed issuer ${issuer.name} (${issuer.issuer}).`),
    }))
}
