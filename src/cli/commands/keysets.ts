import { Option, type Command } from 'commander'
import { RSA_BITS } from '../../crypto/algorithms.js'
import type { KeysetView } from '../admin-api.js'
import { algorithm, checkedPatch, duration, durationOrDefault, inFlagTerms } from '../args.js'
import { printLines, printTable, timeAndDistance, type Columns } from '../output.js'
import { adminAction, asList, asRow, checkedAdminAction } from '../admin-action.js'
import { commandGroup } from '../group.js'
import { KEYSET_NAME_PATTERN } from '../../schemas/keyset-name.js'

interface PolicyOptions {
  alg?: string
  rsaBits?: string
  issuer?: string | false
  defaultTtl?: number
  maxTtl?: number
  rotationPeriod?: number
  prepublish?: number | 'default'
  x5c?: boolean
  backend?: string
}

/** The policy options shared by create and update; each maps to a field of the admin API. */
function policyOptions(command: Command, forUpdate: boolean): Command {
  command
    .option('--alg <alg>', forUpdate ? 'algorithm, any case (takes effect at the next rotation)' : 'algorithm, any case (default ES256)', algorithm)
    .addOption(new Option('--rsa-bits <bits>', 'RSA modulus size (RSA algorithms only)').choices(RSA_BITS.map(String)))
    .option('--issuer <iss>', 'stamp this iss into every token')
    .option('--default-ttl <duration>', 'token lifetime when a request gives none (seconds, or 90s, 15m, 12h, 30d)', duration(1))
    .option('--max-ttl <duration>', 'longest token lifetime', duration(1))
    .option('--rotation-period <duration>', 'time between automatic rotations; 0 = manual only', duration(0))
    .option('--prepublish <duration>', 'how long a new key is published before it signs, or "default"', durationOrDefault)
    .option('--x5c', 'also publish a self-signed X.509 certificate per key')
    .option('--json', 'print the result as JSON')
  if (forUpdate) {
    command.option('--no-issuer', 'stop stamping an issuer').option('--no-x5c', 'stop publishing certificates')
  } else {
    command.addOption(new Option('--backend <backend>', 'where private keys live').choices(['software', 'pkcs11']))
  }
  return command
}

/** The options given, as API fields; checked against the API's schema by the caller. */
function policyInput(options: PolicyOptions): Record<string, unknown> {
  const input: Record<string, unknown> = {}
  if (options.alg !== undefined) input.alg = options.alg
  if (options.rsaBits !== undefined) input.rsaBits = Number(options.rsaBits)
  if (options.issuer !== undefined) input.issuer = options.issuer === false ? null : options.issuer
  if (options.defaultTtl !== undefined) input.defaultTtl = options.defaultTtl
  if (options.maxTtl !== undefined) input.maxTtl = options.maxTtl
  if (options.rotationPeriod !== undefined) input.rotationPeriod = options.rotationPeriod
  if (options.prepublish !== undefined) input.prepublish = options.prepublish === 'default' ? null : options.prepublish
  if (options.x5c !== undefined) input.x5c = options.x5c
  if (options.backend !== undefined) input.backend = options.backend
  return input
}

/** The API's field names as the flags that set them, for error messages. */
const POLICY_FLAGS: Record<string, string> = {
  alg: '--alg', rsaBits: '--rsa-bits', issuer: '--issuer', defaultTtl: '--default-ttl', maxTtl: '--max-ttl',
  rotationPeriod: '--rotation-period', prepublish: '--prepublish', x5c: '--x5c', backend: '--backend',
}

const KEYSET_COLUMNS: Columns<KeysetView> = [
  'name', 'alg',
  { header: 'active kid', value: (k) => k.activeKid },
  'issuer',
  { header: 'ttl', value: (k) => `${k.defaultTtl}/${k.maxTtl}` },
  { header: 'rotation', value: (k) => (k.rotationPeriod === 0 ? 'manual' : k.rotationPeriod) },
  'prepublish', 'x5c', 'backend',
]

export function registerKeysets(program: Command): void {
  const keysets = commandGroup(program, 'keysets', 'list, create and change keysets (signing identities)')

  keysets
    .command('list')
    .description('list keysets with their policy and active kid')
    .option('--json', 'print the list as JSON')
    .action(adminAction((api) => api.listKeysets(), asList('keysets', KEYSET_COLUMNS)))

  policyOptions(
    keysets.command('create').description('create a keyset; its first key is active at once').argument('<name>', `keyset name, ${KEYSET_NAME_PATTERN}`),
    false,
  ).action(checkedAdminAction(async (name: string, options: PolicyOptions) => {
    const { createKeysetBody } = await import('../../schemas/index.js')
    const { checkBody } = await import('../../schemas/validate.js')
    // Checked here as the API checks it, so a bad name or value fails before the database or the server is reached.
    return inFlagTerms(POLICY_FLAGS, async () => checkBody(createKeysetBody, { name, ...policyInput(options) }))
  }, (api, input) => inFlagTerms(POLICY_FLAGS, () => api.createKeyset(input)), asRow(KEYSET_COLUMNS)))

  policyOptions(
    keysets.command('update').description('change a keyset\'s policy; a new alg or rsa-bits takes effect at the next rotation').argument('<name>', 'keyset name'),
    true,
  ).action(checkedAdminAction(async (name: string, options: PolicyOptions) => {
    const { patchKeysetBody } = await import('../../schemas/index.js')
    return { name, patch: await checkedPatch('keysets update', POLICY_FLAGS, patchKeysetBody, policyInput(options)) }
  }, async (api, { name, patch }) => ({
    presented: await inFlagTerms(POLICY_FLAGS, () => api.updateKeyset(name, patch)),
    patch,
    // Read only to explain a new algorithm in the text.
    keys: () => api.listKeys(name),
  }), {
    json: ({ presented }) => presented,
    text: async ({ presented, patch, keys }) => {
      printTable([presented], KEYSET_COLUMNS)
      if (patch.alg === undefined && patch.rsaBits === undefined) return
      // The active key keeps signing with its own algorithm until it is replaced.
      const { keysetStatus, nextRotationWords } = await import('../status.js')
      const now = Date.now()
      const status = keysetStatus(presented, await keys(), now)
      // A key made before the change keeps its algorithm: the new one comes with the key after it.
      const older = patch.alg === undefined ? undefined : status.pending.find((key) => key.alg !== presented.alg)
      printLines('', older
        ? `Key ${older.kid} is already pending with ${older.alg} and activates ${older.activatesAt ? timeAndDistance(older.activatesAt, now) : '-'}; ${presented.alg} takes effect at the rotation after it.`
        : `The new algorithm takes effect at the next rotation: ${nextRotationWords(status, now)}.`, `To switch sooner: signet keys rotate ${presented.name} (or --immediate).`)
    },
  }))
}
