import { execFile, spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, describe, expect, it } from 'vitest'
import { childEnv, REPO, waitReady } from './helpers.js'

/**
 * The README as a contract: its quick start is exactly two commands, CI runs the
 * same install and test commands, the configuration table and keys.example cover
 * every variable the code reads, and (acceptance 6) the dev quick start run on a
 * fresh clone starts a service that answers /readyz 200, on which the README's
 * curl walkthrough works as written.
 *
 * `npm ci` needs the registry and cannot run inside `npm test`, and the test half
 * (`npm ci && npm test`) cannot run inside itself: the clone here borrows this
 * checkout's installed node_modules, and .ci/run is the clean-clone run of both.
 */

const readme = readFileSync(join(REPO, 'README.md'), 'utf8')
const run = promisify(execFile)

/** The fenced code blocks of the README section that starts with `heading`. */
function blocks(heading: string): string[] {
  const start = readme.indexOf(`\n${heading}\n`)
  expect(start, heading).toBeGreaterThan(-1)
  const end = readme.indexOf('\n## ', start + heading.length + 1)
  const section = readme.slice(start, end === -1 ? undefined : end)
  return [...section.matchAll(/```(?:sh|bash)\n([\s\S]*?)```/g)].map((m) => m[1]!.trim())
}

/** Every variable src/config.ts accepts: its schema's properties and the _FILE forms of its secrets. */
function configVariables(): { plain: string[]; secretFiles: string[] } {
  const source = readFileSync(join(REPO, 'src/config.ts'), 'utf8')
  const schema = source.slice(source.indexOf('const schema = {'), source.indexOf('} as const'))
  const names = [...schema.matchAll(/^\s+(SIGNET_[A-Z0-9_]+):/gm)].map((m) => m[1]!)
  const secrets = [.../const SECRETS = \[([^\]]*)\]/.exec(source)![1]!.matchAll(/'(SIGNET_[A-Z0-9_]+)'/g)].map((m) => `${m[1]}_FILE`)
  expect(names.length).toBeGreaterThan(15)
  return { plain: names, secretFiles: secrets }
}

describe('README', () => {
  it('starts with exactly two quick-start commands: install and run (dev mode), install and test', () => {
    expect(blocks('## Quick start')).toEqual(['npm ci && npm run dev', 'npm ci && npm test'])
    const scripts = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')).scripts
    expect(scripts.dev).toBe('npm run build && node bin/signet.cjs dev')
    expect(scripts.pretest).toBe('npm run build')
    expect(scripts.test).toMatch(/^vitest run/)
  })

  it('is what .ci/run does: the Debian packages the README names, npm ci, then the README test command', () => {
    const ci = readFileSync(join(REPO, '.ci/run'), 'utf8')
    const lines = ci.split('\n').map((line) => line.trim()).filter((line) => line && !line.startsWith('#'))
    expect(lines[0]).toBe('set -euo pipefail')
    const apt = lines.find((line) => line.startsWith('apt-get install'))!
    expect(lines.indexOf('apt-get update')).toBeLessThan(lines.indexOf(apt))
    const packages = apt.replace('apt-get install -y', '').trim().split(/\s+/)
    expect(packages.sort()).toEqual(['chromium', 'openssl', 'python3-jwt', 'softhsm2'])
    expect(readme).toContain(`apt-get install -y ${['python3-jwt', 'softhsm2', 'openssl', 'chromium'].join(' ')}`)
    expect(lines).toContain('npm ci')
    expect(lines).toContain('export SIGNET_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test')
    expect(lines.at(-1)).toBe('npm test')
    expect(lines.indexOf('npm ci')).toBeLessThan(lines.length - 1)
    expect(readFileSync(join(REPO, '.ci/run'), 'utf8').startsWith('#!/usr/bin/env bash\n')).toBe(true)
  })

  it('documents every configuration variable, in the table and in keys.example', () => {
    const table = readme.slice(readme.indexOf('## Configuration'), readme.indexOf('## Command line'))
    const example = readFileSync(join(REPO, 'keys.example'), 'utf8')
    const { plain, secretFiles } = configVariables()
    for (const variable of plain) expect(table.includes(`\`${variable}\``), `README table: ${variable}`).toBe(true)
    // The table writes a secret's file form as "`NAME` / `_FILE`".
    for (const variable of secretFiles) expect(table.includes(`\`${variable.replace(/_FILE$/, '')}\` / \`_FILE\``), `README table: ${variable}`).toBe(true)
    for (const variable of [...plain, ...secretFiles]) expect(example.includes(`${variable}=`), `keys.example: ${variable}`).toBe(true)
    // keys.example holds no real secret: its values are placeholders or file paths.
    for (const line of example.split('\n').filter((l) => /^#? ?SIGNET_(MASTER_KEY|ADMIN_TOKEN|NEW_MASTER_KEY|PKCS11_PIN)=/.test(l))) {
      expect(line).toMatch(/=REPLACE_WITH_/)
    }
    expect(example).toContain('openssl rand -base64 32')
  })

  it('names every file and folder of src/ in its Layout tree, and nothing that is not there, and every folder of test/', () => {
    const section = readme.slice(readme.indexOf('\n### Layout\n'), readme.indexOf('\n## More documentation'))
    const tree = /```text\n([\s\S]*?)```/.exec(section)![1]!
    // Each line: an indented name (two spaces a level), then what it holds. A folder
    // line may name the files it holds in its description (`sqlite/  ...: index.ts, migrations.ts`).
    const named = new Set<string>()
    const parents: string[] = []
    for (const line of tree.split('\n').filter((l) => l.trim() !== '')) {
      const [, indent, name, description = ''] = /^( *)(\S+)(?: +(.*))?$/.exec(line)!
      const depth = indent!.length / 2
      expect(Number.isInteger(depth) && depth <= parents.length, line).toBe(true)
      parents.length = depth
      const path = [...parents, name!.replace(/\/$/, '')].join('/')
      named.add(path)
      if (name!.endsWith('/')) {
        parents.push(name!.replace(/\/$/, ''))
        for (const [file] of description.matchAll(/\b[\w-]+\.ts\b/g)) named.add(`${path}/${file}`)
      }
    }
    const entries = readdirSync(join(REPO, 'src'), { recursive: true, withFileTypes: true })
      .map((entry) => relative(REPO, join(entry.parentPath, entry.name)).split('\\').join('/'))
      // The console's browser code is named by its folder only.
      .filter((path) => !path.startsWith('src/console/web/'))
    expect([...named].sort()).toEqual(['src', ...entries].sort())
    for (const folder of readdirSync(join(REPO, 'test'), { withFileTypes: true }).filter((entry) => entry.isDirectory())) {
      expect(section, `test/${folder.name}`).toContain(`\`${folder.name}\``)
    }
  })
})

describe('the dev quick start on a fresh clone', () => {
  let clone = ''
  afterAll(() => {
    if (clone) rmSync(clone, { recursive: true, force: true })
  })

  it('starts a service that answers /readyz 200, and the curl walkthrough works on it as written', async () => {
    clone = mkdtempSync(join(tmpdir(), 'signet-clone-'))
    await run('git', ['clone', '--quiet', REPO, clone])
    if (!existsSync(join(clone, 'README.md'))) throw new Error('the clone has no README.md: commit it first')
    symlinkSync(join(REPO, 'node_modules'), join(clone, 'node_modules')) // stands in for `npm ci`
    const command = blocks('## Quick start')[0]!.replace(/^npm ci && /, '')
    expect(command).toBe('npm run dev')

    // Its own process group, so the whole tree (npm, sh, node) is stopped at the end.
    const dev = spawn('sh', ['-c', command], { cwd: clone, env: childEnv({ SIGNET_PORT: '0' }), detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    dev.stdout!.on('data', (chunk) => (stdout += chunk))
    dev.stderr!.on('data', (chunk) => (stderr += chunk))
    const exited = new Promise<number | null>((done) => dev.on('exit', (code) => done(code)))
    try {
      const url = await new Promise<string>((done, fail) => {
        const timer = setInterval(() => {
          const found = /Signet dev server: (http:\/\/\S+)/.exec(stdout)?.[1]
          if (found) {
            clearInterval(timer)
            done(found)
          }
        }, 50)
        void exited.then((code) => {
          clearInterval(timer)
          fail(new Error(`npm run dev exited ${code}: ${stderr.slice(-2000)}`))
        })
      })
      expect(existsSync(join(clone, 'data/dev/master.key'))).toBe(true)
      await waitReady(url)
      expect((await fetch(`${url}/readyz`)).status).toBe(200)
      expect(stdout + stderr).toContain('NOT FOR PRODUCTION')

      const admin = /Admin token: +(signet_\S+)/.exec(stdout)![1]!
      const walkthrough = readme.slice(readme.indexOf('<!-- walkthrough:start -->'), readme.indexOf('<!-- walkthrough:end -->'))
      let script = /```sh\n([\s\S]*?)```/.exec(walkthrough)![1]!
      expect(script).toContain('SIGNET=http://127.0.0.1:8080')
      expect(script).toContain('ADMIN=signet_paste_the_admin_token_here')
      script = script.replace('SIGNET=http://127.0.0.1:8080', `SIGNET=${url}`).replace('ADMIN=signet_paste_the_admin_token_here', `ADMIN=${admin}`)
      const { stdout: out } = await run('bash', ['-c', `set -euo pipefail\n${script}`], { cwd: clone })
      const lines = out.trim().split('\n')
      expect(lines[0]!.split('.')).toHaveLength(3) // the signed JWT
      expect(JSON.parse(lines[1]!).keys.length).toBeGreaterThan(0) // the JWK Set
      const verified = JSON.parse(lines[2]!)
      expect(verified).toMatchObject({ valid: true, payload: { sub: 'user-42', aud: 'api' } })
    } finally {
      if (dev.exitCode === null && dev.pid !== undefined) process.kill(-dev.pid, 'SIGTERM')
      await exited
    }
  })
})
