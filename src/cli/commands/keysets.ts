import { Option, type Command } from 'commander'
import { ALGORITHMS, RSA_BITS } from '../../crypto/algorithms.js'
import type { Keyset } from '../../keys/model.js'
import type { KeysetPolicyInput } from '../../keys/policy.js'
import { UsageError, secondsOrDefault, wholeNumber } from '../args.js'
import { printJson, printTable } from '../output.js'
import { commandGroup } from '../group.js'

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
  json?: boolean
}

/** The policy options shared by create and update; each maps to a field of the admin API. */
function policyOptions(command: Command, forUpdate: boolean): Command {
  command
    .addOption(new Option('--alg <alg>', forUpdate ? 'algorithm (takes effect at the next rotation)' : 'algorithm (default ES256)').choices(ALGORITHMS))
    .addOption(new Option('--rsa-bits <bits>', 'RSA modulus size (RSA algorithms only)').choices(RSA_BITS.map(String)))
    .option('--issuer <iss>', 'stamp this iss into every token')
    .option('--default-ttl <seconds>', 'token lifetime when a request gives none', wholeNumber(1))
    .option('--max-ttl <seconds>', 'longest token lifetime', wholeNumber(1))
    .option('--rotation-period <seconds>', 'seconds between automatic rotations; 0 = manual only', wholeNumber(0))
    .option('--prepublish <seconds>', 'seconds a new key is published before it signs, or "default"', secondsOrDefault)
    .option('--x5c', 'also publish a self-signed X.509 certificate per key')
    .option('--json', 'print the result as JSON')
  if (forUpdate) {
    command.option('--no-issuer', 'stop stamping an issuer').option('--no-x5c', 'stop publishing certificates')
  } else {
    command.addOption(new Option('--backend <backend>', 'where private keys live').choices(['software', 'pkcs11']))
  }
  return command
}

function policyInput(options: PolicyOptions): KeysetPolicyInput {
  const input: KeysetPolicyInput = {}
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

type Presented = ReturnType<typeof import('../../routes/present.js').presentKeyset>

function printKeysets(keysets: Presented[]): void {
  printTable(keysets, [
    { header: 'name', value: (k) => k.name },
    { header: 'alg', value: (k) => k.alg },
    { header: 'active kid', value: (k) => k.activeKid },
    { header: 'issuer', value: (k) => k.issuer },
    { header: 'ttl', value: (k) => `${k.defaultTtl}/${k.maxTtl}` },
    { header: 'rotation', value: (k) => (k.rotationPeriod === 0 ? 'manual' : k.rotationPeriod) },
    { header: 'prepublish', value: (k) => k.prepublish },
    { header: 'x5c', value: (k) => k.x5c },
    { header: 'backend', value: (k) => k.backend },
  ])
}

export function registerKeysets(program: Command): void {
  const keysets = commandGroup(program, 'keysets', 'list, create and change keysets (signing identities)')

  keysets
    .command('list')
    .description('list keysets with their policy and active kid')
    .option('--json', 'print the list as JSON')
    .action(async (options: { json?: boolean }) => {
      const { effectivePrepublish } = await import('../../keys/policy.js')
      const { presentKeyset } = await import('../../routes/present.js')
      const { readConfig, withStorage } = await import('../context.js')
      const config = readConfig()
      const snapshot = await withStorage(config, (storage) => storage.snapshot())
      const list = snapshot.keysets.map((keyset: Keyset) => presentKeyset(
        keyset,
        snapshot.keys.find((key) => key.keyset === keyset.name && key.state === 'active')?.kid ?? null,
        effectivePrepublish(keyset, config.jwksMaxAge),
      ))
      if (options.json) printJson({ keysets: list })
      else printKeysets(list)
    })

  policyOptions(
    keysets.command('create').description('create a keyset; its first key is active at once').argument('<name>', 'keyset name, ^[a-z0-9][a-z0-9_-]{0,62}$'),
    false,
  ).action(async (name: string, options: PolicyOptions) => {
    const { presentKeyset } = await import('../../routes/present.js')
    const { cliActor, readConfig, withSignet } = await import('../context.js')
    const presented = await withSignet(readConfig(), 'keysets create', async (signet) => {
      const { keyset, key } = await signet.keys.createKeyset({ name, ...policyInput(options) }, cliActor())
      return presentKeyset(keyset, key.kid, signet.keys.prepublishOf(keyset))
    })
    if (options.json) printJson(presented)
    else printKeysets([presented])
  })

  policyOptions(
    keysets.command('update').description('change a keyset\'s policy; a new alg or rsa-bits takes effect at the next rotation').argument('<name>', 'keyset name'),
    true,
  ).action(async (name: string, options: PolicyOptions) => {
    const { presentKeyset } = await import('../../routes/present.js')
    const { cliActor, readConfig, withSignet } = await import('../context.js')
    const patch = policyInput(options)
    if (Object.keys(patch).length === 0) throw new UsageError('signet keysets update: nothing to change (give at least one option, see --help)')
    const presented = await withSignet(readConfig(), 'keysets update', async (signet) => {
      await signet.keys.updateKeyset(name, patch, cliActor())
      const { keyset, activeKid } = await signet.keys.getKeyset(name)
      return presentKeyset(keyset, activeKid, signet.keys.prepublishOf(keyset))
    })
    if (options.json) printJson(presented)
    else printKeysets([presented])
  })
}
