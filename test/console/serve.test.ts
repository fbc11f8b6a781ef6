import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CONSOLE_FILES_DIR, loadConsoleFiles } from '../../src/console/serve.js'
import { CONSOLE_CONTENT_SECURITY_POLICY } from '../../src/plugins/security-headers.js'
import { createHarness, tempDir, type Harness } from '../helpers/harness.js'
import { parseHead, rawExchange } from '../helpers/raw-http.js'
import { requireBuild } from '../cli/helpers.js'

describe('GET /console (the built admin console)', () => {
  let h: Harness
  let base: string

  beforeAll(async () => {
    requireBuild()
    h = await createHarness()
    base = await h.listen()
  })
  afterAll(async () => {
    h.watch.assertClean()
    await h.close()
  })

  it('serves the page, its scripts and its styles with their types and the console CSP', async () => {
    for (const [path, type] of [['/console', 'text/html'], ['/console/', 'text/html'], ['/console/main.js', 'text/javascript'], ['/console/console.css', 'text/css']] as const) {
      const response = await h.request('GET', path)
      expect(response.statusCode, path).toBe(200)
      expect(response.headers['content-type'], path).toBe(`${type}; charset=utf-8`)
      expect(response.headers['content-security-policy'], path).toBe(CONSOLE_CONTENT_SECURITY_POLICY)
      expect(response.headers['x-content-type-options']).toBe('nosniff')
      expect(response.headers['x-frame-options']).toBe('DENY')
    }
    const page = (await h.request('GET', '/console')).body
    expect(page).toContain('<script type="module" src="/console/main.js"></script>')
  })

  it('has a policy with no inline script or style, no other origin and no framing', () => {
    const directives = Object.fromEntries(CONSOLE_CONTENT_SECURITY_POLICY.split('; ').map((d) => [d.split(' ')[0], d.split(' ').slice(1).join(' ')]))
    expect(directives['script-src']).toBe("'self'")
    expect(directives['style-src']).toBe("'self'")
    expect(directives['default-src']).toBe("'self'")
    expect(directives['frame-ancestors']).toBe("'none'")
    expect(CONSOLE_CONTENT_SECURITY_POLICY).not.toMatch(/unsafe-inline|unsafe-eval|https?:|\*/)
  })

  it('loads nothing from another origin and has no inline script or style', async () => {
    const page = (await h.request('GET', '/console')).body
    expect(page).not.toMatch(/(?:src|href)="(?:https?:)?\/\//)
    expect(page).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/)
    expect(page).not.toMatch(/<style|style="/)
  })

  it('keeps the API\'s own policy (nothing at all) on every other route', async () => {
    const response = await h.admin('GET', '/v1/admin/keysets')
    expect(response.headers['content-security-policy']).toBe("default-src 'none';frame-ancestors 'none'")
  })

  it('answers 404 to a file it does not have, and to every traversal attempt, without reading outside its files', async () => {
    for (const path of [
      '/console/nothing.js', '/console/serve.js', '/console/..%2F..%2Fpackage.json', '/console/%2e%2e%2fpackage.json',
      '/console/..%5c..%5cpackage.json', '/console/.%2Fmain.js', '/console/tsconfig.json', '/console/MAIN.JS',
      '/console/main.ts', '/console/%2Fetc%2Fpasswd',
    ]) {
      const response = await h.request('GET', path)
      expect(response.statusCode, path).toBe(404)
      expect(response.headers['content-type'], path).toBe('application/problem+json')
      expect(response.body, path).not.toContain('"name": "signet"')
    }
    // A NUL byte in a path segment is refused before any route runs.
    expect((await h.request('GET', '/console/main.js%00.html')).statusCode).toBe(400)
    // Sent raw: no client normalises the dots away.
    for (const path of ['/console/../package.json', '/console/../../package.json', '/console/./../../../etc/passwd', '/console//etc/passwd']) {
      const answer = await rawExchange(base, `GET ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`)
      const [head, body] = answer.split('\r\n\r\n')
      expect(parseHead(head!).status, path).toBe(404)
      expect(body, path).not.toMatch(/"name": "signet"|root:x:0/)
    }
  })

  it('reads only flat, plainly named html, js, css and svg files from its directory', () => {
    const dir = tempDir()
    try {
      writeFileSync(join(dir.path, 'index.html'), '<!doctype html>')
      writeFileSync(join(dir.path, 'app.js'), '')
      for (const name of ['.hidden.js', 'secret.txt', 'a.b.js', 'README.md', 'App.js']) writeFileSync(join(dir.path, name), 'x')
      mkdirSync(join(dir.path, 'sub.js'))
      symlinkSync(join(dir.path, 'secret.txt'), join(dir.path, 'linked.js'))
      expect([...loadConsoleFiles(dir.path).keys()].sort()).toEqual(['app.js', 'index.html'])
      expect(loadConsoleFiles(join(dir.path, 'missing')).size).toBe(0)
    } finally {
      dir.remove()
    }
  })

  it('is built into dist/console/web by npm run build', () => {
    const files = loadConsoleFiles(CONSOLE_FILES_DIR)
    expect([...files.keys()]).toEqual(expect.arrayContaining(['index.html', 'main.js', 'console.css', 'api.js']))
  })

  it('needs no token to load the page (it holds no data), while the API it calls does', async () => {
    expect((await h.request('GET', '/console')).statusCode).toBe(200)
    expect((await h.request('GET', '/v1/admin/audit/verify')).statusCode).toBe(401)
  })
})

describe('GET /v1/admin/audit/verify', () => {
  let h: Harness

  beforeAll(async () => {
    h = await createHarness()
    await h.admin('POST', '/v1/admin/keysets/default/rotate', { mode: 'scheduled' })
    await h.createClient()
  })
  afterAll(async () => {
    await h.close()
  })

  it('says the chain is intact and counts its events', async () => {
    const events = (await h.signet.storage.listAudit(0, 1000)).length
    const response = await h.admin('GET', '/v1/admin/audit/verify')
    expect(response.statusCode).toBe(200)
    expect(response.json()).toEqual({ intact: true, events, problems: [] })
  })

  it('names the event that was edited in the database', async () => {
    const sqlite = new Database(join(h.dir, 'signet.db'))
    try {
      sqlite.prepare("UPDATE audit SET actor = 'mallory' WHERE id = 2").run()
    } finally {
      sqlite.close()
    }
    const response = await h.admin('GET', '/v1/admin/audit/verify')
    expect(response.statusCode).toBe(200)
    const body = response.json()
    expect(body.intact).toBe(false)
    expect(body.problems).toEqual([{ id: 2, reason: expect.stringContaining('changed') }])
  })

  it('refuses a client without the admin scope', async () => {
    const { token } = await h.createClient({ scopes: ['sign'] })
    const response = await h.request('GET', '/v1/admin/audit/verify', { token })
    expect(response.statusCode).toBe(403)
    expect(response.json().code).toBe('forbidden')
  })
})
