import { execFile } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { parse as parseYaml } from 'yaml'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadConfig } from '../../src/config.js'
import { createHarness, newMasterKey, type Harness } from '../helpers/harness.js'
import { cliJson, REPO, requireBuild, runCli } from '../cli/helpers.js'

/**
 * No Docker engine runs on the test machines, so this checks what can be checked
 * without one: the Dockerfile and docker-compose.yml against the code and the tree.
 * Ports, variables and the health-check path they use exist in the code; the
 * runtime user is not root; every COPY source exists and is not excluded by
 * .dockerignore; the bootstrap command and the app server's settings work.
 */

const dockerfile = readFileSync(join(REPO, 'Dockerfile'), 'utf8')
const compose = parseYaml(readFileSync(join(REPO, 'docker-compose.yml'), 'utf8')) as any
const dockerignore = readFileSync(join(REPO, '.dockerignore'), 'utf8').split('\n').map((line) => line.trim()).filter((line) => line && !line.startsWith('#'))

interface Instruction { keyword: string; args: string }
interface Stage { from: string; name: string | null; instructions: Instruction[] }

/** Dockerfile instructions by stage, with continuation lines joined and comments dropped. */
function stages(text: string): Stage[] {
  const logical = text.replace(/\\\n/g, ' ').split('\n').map((line) => line.trim()).filter((line) => line && !line.startsWith('#'))
  const result: Stage[] = []
  for (const line of logical) {
    const [, keyword, args] = /^(\w+)\s+(.*)$/.exec(line) ?? []
    if (!keyword) throw new Error(`cannot read Dockerfile line: ${line}`)
    if (keyword.toUpperCase() === 'FROM') {
      const [, from, name] = /^(\S+)(?:\s+AS\s+(\S+))?/i.exec(args!)!
      result.push({ from: from!, name: name ?? null, instructions: [] })
    } else {
      result.at(-1)!.instructions.push({ keyword: keyword.toUpperCase(), args: args! })
    }
  }
  return result
}

const all = stages(dockerfile)
const final = all.at(-1)!
const find = (stage: Stage, keyword: string) => stage.instructions.filter((i) => i.keyword === keyword)
/** Instructions a stage inherits from the stages it is built FROM, then its own. */
function inherited(stage: Stage, keyword: string): Instruction[] {
  const parent = all.find((s) => s.name === stage.from)
  return [...(parent ? inherited(parent, keyword) : []), ...find(stage, keyword)]
}
/** ENV of a stage (inherited), as a map. */
function envOf(stage: Stage): Record<string, string> {
  const env: Record<string, string> = {}
  for (const instruction of inherited(stage, 'ENV')) {
    for (const [, name, value] of instruction.args.matchAll(/(\w+)=("[^"]*"|\S+)/g)) env[name!] = value!.replace(/^"|"$/g, '')
  }
  return env
}

/** Whether .dockerignore keeps `path` out of the build context (simple patterns: names and globs at the root). */
function ignored(path: string): boolean {
  return dockerignore.some((pattern) => {
    const regex = new RegExp(`^${pattern.replace(/\./g, '\\.').replace(/\*/g, '[^/]*')}(/|$)`)
    return regex.test(path)
  })
}

let harness: Harness
let listening: Promise<string> | null = null
/** The harness listens once for the whole file; health-check scripts fetch from it. */
const listenOnce = () => (listening ??= harness.listen())
beforeAll(async () => {
  harness = await createHarness()
})
afterAll(async () => {
  await harness.close()
})

describe('Dockerfile', () => {
  it('builds in a Node 24 stage and runs on a slim Node 24 image, Signet being the default (last) stage', () => {
    expect(all.length).toBeGreaterThanOrEqual(2)
    const build = all[0]!
    expect(build.from).toMatch(/^node:24(-|$)/)
    expect(build.from).not.toMatch(/slim|alpine/) // has the compilers for native modules
    const runs = find(build, 'RUN').map((i) => i.args).join('\n')
    expect(runs).toMatch(/npm ci/)
    expect(runs).toMatch(/npm run build/)
    expect(runs).toMatch(/npm prune --omit=dev/)
    expect(final.name).toBe('signet')
    const base = all.find((stage) => stage.name === final.from) ?? final
    expect(base.from).toMatch(/^node:24-[\w-]*slim$/)
    // The runtime copies the compiled code and the built node_modules from the build stage.
    const copies = inherited(final, 'COPY').map((i) => i.args)
    expect(copies).toContain(`--from=${build.name} /app/node_modules ./node_modules`)
    expect(copies).toContain(`--from=${build.name} /app/dist ./dist`)
  })

  it('runs as a user that is not root, in every runtime stage', () => {
    for (const stage of all.slice(1)) {
      const users = inherited(stage, 'USER').map((i) => i.args.trim())
      expect(users.length, `stage ${stage.name}`).toBeGreaterThan(0)
      expect(users.at(-1)).not.toMatch(/^(root|0)(:|$)/)
    }
  })

  it('names only COPY sources that exist and are not excluded from the build context', () => {
    for (const stage of all) {
      for (const copy of find(stage, 'COPY')) {
        if (copy.args.includes('--from=')) continue
        const parts = copy.args.split(/\s+/).filter((part) => !part.startsWith('--'))
        for (const source of parts.slice(0, -1)) {
          expect(existsSync(join(REPO, source)), `COPY source ${source}`).toBe(true)
          expect(ignored(source), `COPY source ${source} is excluded by .dockerignore`).toBe(false)
        }
      }
    }
    // And what must never reach the daemon is excluded.
    for (const path of ['.git', 'node_modules', 'dist', 'data', 'secrets', 'keys.env', '.env', 'signet.db']) expect(ignored(path), path).toBe(true)
  })

  it('starts `signet serve` from the compiled CLI, with variables the configuration accepts', async () => {
    requireBuild()
    const entrypoint = JSON.parse(find(final, 'ENTRYPOINT')[0]!.args) as string[]
    const cmd = JSON.parse(find(final, 'CMD')[0]!.args) as string[]
    expect(entrypoint).toEqual(['node', 'bin/signet.cjs'])
    expect(cmd).toEqual(['serve'])
    expect(existsSync(join(REPO, entrypoint[1]!))).toBe(true)
    const env = envOf(final)
    const config = loadConfig({ ...Object.fromEntries(Object.entries(env).filter(([name]) => name.startsWith('SIGNET_'))), SIGNET_MASTER_KEY: newMasterKey() })
    expect(config.host).toBe('0.0.0.0')
    // The database is in the declared volume.
    const volumes = find(final, 'VOLUME').flatMap((i) => JSON.parse(i.args) as string[])
    expect(volumes.some((volume) => config.dbPath.startsWith(`${volume}/`))).toBe(true)
    // The exposed port is the one Signet listens on.
    expect(find(final, 'EXPOSE').map((i) => Number(i.args))).toEqual([config.port])
  })

  it('checks health on /healthz with node -e (no curl or wget), a path the service answers 200', async () => {
    const healthcheck = find(final, 'HEALTHCHECK')
    expect(healthcheck).toHaveLength(1)
    const args = healthcheck[0]!.args
    expect(args).not.toMatch(/\b(curl|wget)\b/)
    const command = JSON.parse(args.slice(args.indexOf('CMD') + 3).trim()) as string[]
    expect(command.slice(0, 2)).toEqual(['node', '-e'])
    const script = command[2]!
    expect(script).toContain('/healthz')
    expect(script).toContain('process.env.SIGNET_PORT')
    expect((await harness.request('GET', '/healthz')).statusCode).toBe(200)

    // The script itself, run with node against a listening Signet: exit 0; against nothing: exit 1.
    const url = new URL(await listenOnce())
    // Asynchronously: the service answering is in this process.
    const run = (port: string) => new Promise<number | null>((done) => {
      execFile(process.execPath, ['-e', script], { env: { PATH: process.env.PATH, SIGNET_PORT: port }, timeout: 10_000 }, (error) => {
        done(error ? ((error as { code?: number }).code ?? null) : 0)
      })
    })
    expect(await run(url.port)).toBe(0)
    expect(await run('1')).toBe(1)
  })

  it('ships the example app server in its own stage, on the port it listens on', () => {
    const app = all.find((stage) => stage.name === 'example-app')!
    expect(app).toBeDefined()
    expect(JSON.parse(find(app, 'CMD')[0]!.args)).toEqual(['node', 'examples/app-server/server.js'])
    expect(envOf(app).PORT).toBe('3000')
    expect(find(app, 'EXPOSE').map((i) => i.args)).toEqual(['3000'])
  })
})

describe('docker-compose.yml', () => {
  const signet = compose.services.signet
  const bootstrap = compose.services.bootstrap
  const app = compose.services['app-server']

  it('runs Signet from the Dockerfile with a named volume, secrets, and no published port', () => {
    expect(signet.build).toEqual({ context: '.', target: 'signet' })
    expect(signet.ports).toBeUndefined()
    expect(signet.expose).toEqual([signet.environment.SIGNET_PORT])
    const [volume, mount] = (signet.volumes[0] as string).split(':')
    expect(Object.keys(compose.volumes)).toContain(volume)
    expect(signet.environment.SIGNET_DB.startsWith(`${mount}/`)).toBe(true)
  })

  it('gives Signet its master key and admin token as Docker secrets through *_FILE variables the configuration reads', () => {
    const env = signet.environment as Record<string, string>
    expect(env.SIGNET_MASTER_KEY).toBeUndefined()
    for (const variable of ['SIGNET_MASTER_KEY_FILE', 'SIGNET_ADMIN_TOKEN_FILE']) {
      const [, name] = /^\/run\/secrets\/(\w+)$/.exec(env[variable]!) ?? []
      expect(signet.secrets, variable).toContain(name)
      expect(compose.secrets[name!].file).toMatch(/^\.\/secrets\//)
    }
    // The same environment, with the secret files made here, is a valid configuration.
    const dir = mkdtempSync(join(tmpdir(), 'signet-compose-'))
    try {
      const local: Record<string, string> = {}
      for (const [name, value] of Object.entries(env)) {
        if (!name.endsWith('_FILE')) local[name] = String(value)
        else {
          const file = join(dir, name)
          writeFileSync(file, name === 'SIGNET_MASTER_KEY_FILE' ? `${newMasterKey()}\n` : `${'x'.repeat(44)}\n`)
          local[name] = file
        }
      }
      const config = loadConfig(local)
      expect(config.masterKey).not.toBeNull()
      expect(config.adminToken).toHaveLength(44)
      expect(config.port).toBe(8080)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('bootstraps the app server\'s client once, with a command that works against a real database', async () => {
    requireBuild()
    expect(bootstrap.depends_on.signet.condition).toBe('service_healthy')
    expect(bootstrap.image).toBe(signet.image)
    const script = bootstrap.command[0] as string
    const tokenFile = /--token-file (\S+)/.exec(script)![1]!
    const tokenVolume = (bootstrap.volumes as string[]).find((v) => tokenFile.startsWith(`${v.split(':')[1]}/`))!
    expect(tokenVolume).toBeDefined()

    // Run the same shell line here, twice, with the paths mapped into a temporary directory.
    const dir = mkdtempSync(join(tmpdir(), 'signet-bootstrap-'))
    try {
      const db = join(dir, 'signet.db')
      const { masterKey } = await cliJson<{ masterKey: string }>(['init'], { SIGNET_DB: db })
      // The service gets the master key as a secret file, as the client row is authenticated under it.
      expect((bootstrap.environment as Record<string, string>).SIGNET_MASTER_KEY_FILE).toBe('/run/secrets/signet_master_key')
      const local = script.replaceAll(tokenFile, join(dir, 'app.token')).replace('node bin/signet.cjs', `node ${join(REPO, 'bin/signet.cjs')}`)
      const { spawnSync } = await import('node:child_process')
      const first = spawnSync('/bin/sh', ['-c', local], { env: { PATH: process.env.PATH, SIGNET_DB: db, SIGNET_MASTER_KEY: masterKey } })
      expect(first.status, first.stderr.toString()).toBe(0)
      const token = readFileSync(join(dir, 'app.token'), 'utf8').trim()
      expect(token).toMatch(/^signet_/)
      expect(statSync(join(dir, 'app.token')).mode & 0o777).toBe(0o600)
      const second = spawnSync('/bin/sh', ['-c', local], { env: { PATH: process.env.PATH, SIGNET_DB: db, SIGNET_MASTER_KEY: masterKey } })
      expect(second.status).toBe(0)
      expect(readFileSync(join(dir, 'app.token'), 'utf8').trim()).toBe(token) // not made again
      const clients = (await runCli(['clients', 'list', '--json'], { env: { SIGNET_DB: db } })).stdout
      expect(JSON.parse(clients).clients).toEqual([expect.objectContaining({ name: 'app-server', scopes: ['sign'] })])
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('runs the example app server against Signet by service name, with settings the app accepts', async () => {
    expect(app.build).toEqual({ context: '.', target: 'example-app' })
    expect(app.depends_on.bootstrap.condition).toBe('service_completed_successfully')
    const env = app.environment as Record<string, string>
    const target = new URL(env.SIGNET_URL!)
    expect(target.hostname).toBe('signet')
    expect(target.port).toBe(signet.environment.SIGNET_PORT)
    expect(app.ports).toEqual([`127.0.0.1:${env.PORT}:${env.PORT}`])
    expect(app.secrets).toContain('demo_password')
    expect(env.DEMO_PASSWORD_FILE).toBe('/run/secrets/demo_password')
    const tokenMount = (app.volumes as string[]).find((v) => env.SIGNET_CLIENT_TOKEN_FILE!.startsWith(`${v.split(':')[1]}/`))
    expect(tokenMount).toMatch(/:ro$/)

    const server = join(REPO, 'examples/app-server/server.js')
    if (!existsSync(server)) {
      console.warn('examples/app-server/server.js is missing: its settings are not checked')
      return
    }
    const { configFromEnv } = (await import(pathToFileURL(server).href)) as { configFromEnv: (env: Record<string, string>) => Record<string, unknown> }
    const dir = mkdtempSync(join(tmpdir(), 'signet-app-env-'))
    try {
      writeFileSync(join(dir, 'token'), 'signet_x\n')
      writeFileSync(join(dir, 'password'), 'pw\n')
      const config = configFromEnv({ ...env, SIGNET_CLIENT_TOKEN_FILE: join(dir, 'token'), DEMO_PASSWORD_FILE: join(dir, 'password') })
      expect(config).toMatchObject({ port: Number(env.PORT), signetUrl: env.SIGNET_URL, clientToken: 'signet_x', demoPassword: 'pw' })
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  /** The services that run Signet itself (the image's default command, serve). */
  const signetServices = () => Object.entries(compose.services as Record<string, any>).filter(([, service]) => service.image === signet.image && !service.entrypoint)

  it('runs every service with a read-only root file system, no capabilities and no privilege escalation', () => {
    for (const [name, service] of Object.entries(compose.services as Record<string, any>)) {
      expect(service.read_only, name).toBe(true)
      expect(service.tmpfs, name).toContain('/tmp')
      expect(service.cap_drop, name).toEqual(['ALL'])
      expect(service.security_opt, name).toContain('no-new-privileges:true')
    }
    // With everything else read-only, a Signet service writes only where its data lives.
    for (const [name, service] of signetServices()) {
      const env = service.environment as Record<string, string>
      if (env.SIGNET_DB) expect((service.volumes as string[]).some((v) => env.SIGNET_DB!.startsWith(`${v.split(':')[1]}/`)), name).toBe(true)
      else expect(env.SIGNET_DATABASE_URL_FILE, name).toBeDefined()
    }
  })

  it('never pulls the local images from a registry: each service using one builds it or says pull_policy never', () => {
    for (const [name, service] of Object.entries(compose.services as Record<string, any>)) {
      if (!/:local$/.test(service.image ?? '')) continue
      expect(service.build !== undefined || service.pull_policy === 'never', name).toBe(true)
    }
    // Each local image is built by at least one service.
    for (const image of new Set(Object.values(compose.services as Record<string, any>).map((s) => s.image).filter((i) => /:local$/.test(i ?? '')))) {
      expect(Object.values(compose.services as Record<string, any>).some((s) => s.image === image && s.build), image).toBe(true)
    }
  })

  it('publishes only the app server, and only on 127.0.0.1', () => {
    for (const [name, service] of Object.entries(compose.services as Record<string, any>)) {
      for (const port of (service.ports ?? []) as string[]) expect(port, name).toMatch(/^127\.0\.0\.1:/)
      if (name !== 'app-server') expect(service.ports, name).toBeUndefined()
    }
  })

  it('checks every Signet service on /readyz with node -e (no curl), a script that tells ready from not', async () => {
    const services = signetServices()
    expect(services.map(([name]) => name).sort()).toEqual(['signet', 'signet-pg-1', 'signet-pg-2'])
    const url = new URL(await listenOnce())
    for (const [name, service] of services) {
      const test = service.healthcheck.test as string[]
      expect(test.slice(0, 3), name).toEqual(['CMD', 'node', '-e'])
      const script = test[3]!
      expect(script).toContain('/readyz')
      expect(script).not.toMatch(/\b(curl|wget)\b/)
      const run = (port: string) => new Promise<number | null>((done) => {
        execFile(process.execPath, ['-e', script], { env: { PATH: process.env.PATH, SIGNET_PORT: port }, timeout: 10_000 }, (error) => {
          done(error ? ((error as { code?: number }).code ?? null) : 0)
        })
      })
      expect(await run(url.port), name).toBe(0)
      expect(await run('1'), name).toBe(1)
    }
  })

  it('has a postgres profile: PostgreSQL and two Signet replicas whose database URL secret points at it', () => {
    const postgres = compose.services.postgres
    expect(postgres.profiles).toEqual(['postgres'])
    expect(postgres.healthcheck.test).toContain('pg_isready')
    const replicas = signetServices().filter(([name]) => name !== 'signet')
    expect(replicas).toHaveLength(2)
    const dir = mkdtempSync(join(tmpdir(), 'signet-compose-pg-'))
    try {
      for (const [name, replica] of replicas) {
        expect(replica.profiles, name).toEqual(['postgres'])
        expect(replica.depends_on.postgres.condition, name).toBe('service_healthy')
        const env = replica.environment as Record<string, string>
        for (const variable of ['SIGNET_DATABASE_URL_FILE', 'SIGNET_MASTER_KEY_FILE', 'SIGNET_ADMIN_TOKEN_FILE']) {
          const [, secret] = /^\/run\/secrets\/(\w+)$/.exec(env[variable]!) ?? []
          expect(replica.secrets, `${name} ${variable}`).toContain(secret)
          expect(compose.secrets[secret!].file).toMatch(/^\.\/secrets\//)
        }
        // The URL the README's line writes, with the replica's environment, is a valid configuration for PostgreSQL.
        const urlFile = join(dir, 'url')
        writeFileSync(urlFile, `postgres://${postgres.environment.POSTGRES_USER}:pw@postgres:5432/${postgres.environment.POSTGRES_DB}`)
        const keyFile = join(dir, 'key')
        writeFileSync(keyFile, `${newMasterKey()}\n`)
        const config = loadConfig({ ...env, SIGNET_DATABASE_URL_FILE: urlFile, SIGNET_MASTER_KEY_FILE: keyFile, SIGNET_ADMIN_TOKEN_FILE: keyFile })
        expect(new URL(config.databaseUrl!).hostname).toBe('postgres')
        expect(config.host).toBe('0.0.0.0')
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
    // The two replicas start one after the other: the first makes the schema and keyset default.
    expect(compose.services['signet-pg-2'].depends_on['signet-pg-1'].condition).toBe('service_healthy')
    expect(readFileSync(join(REPO, 'README.md'), 'utf8')).toContain('--profile postgres')
  })
})
