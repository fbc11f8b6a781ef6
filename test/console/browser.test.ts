import { existsSync } from 'node:fs'
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { ManualClock } from '../../src/clock.js'
import { requireBuild } from '../cli/helpers.js'
import { createHarness, type Harness } from '../helpers/harness.js'

/**
 * The admin console in a real browser: Debian's chromium driven by playwright-core.
 * Skipped, saying why, where /usr/bin/chromium is missing (apt-get install chromium).
 * SIGNET_CONSOLE_SCREENSHOT=docs/console.png also saves the README's screenshot.
 */
const CHROMIUM = '/usr/bin/chromium'
const missing = !existsSync(CHROMIUM)

/** A failed load the test itself provokes (a wrong token, a route this branch lacks). */
interface Expected { url: RegExp; status: number }

describe('the admin console in Chromium', () => {
  let h: Harness
  let base: string
  let browser: Browser
  let context: BrowserContext
  let page: Page
  let problems: string[]
  let expected: Expected[]

  beforeAll(async () => {
    if (missing) return
    requireBuild()
    h = await createHarness({ clock: new ManualClock(Date.now()) })
    await h.createKeyset({ name: 'payments', alg: 'ES384', rotationPeriod: 604_800 })
    base = await h.listen()
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    })
  })
  afterAll(async () => {
    if (missing) return
    await browser?.close()
    // No token or key reached a log line.
    h?.watch.assertClean()
    await h?.close()
  })

  beforeEach(async (test) => {
    if (missing) return test.skip(`${CHROMIUM} is missing: apt-get install chromium`)
    problems = []
    expected = []
    context = await browser.newContext({ viewport: { width: 1366, height: 768 } })
    // CSP violations are reported to the page as events; the console also logs them.
    await context.addInitScript(() => {
      document.addEventListener('securitypolicyviolation', (event) => {
        const seen = ((globalThis as any).cspViolations ??= [])
        seen.push(`${event.violatedDirective} blocked ${event.blockedURI}`)
      })
    })
    page = await context.newPage()
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`))
    page.on('console', (message) => {
      if (message.type() !== 'error' && message.type() !== 'warning') return
      const failedLoad = /status of (\d+)/.exec(message.text())
      if (failedLoad && expected.some((e) => e.url.test(message.location().url) && e.status === Number(failedLoad[1]))) return
      problems.push(`console ${message.type()}: ${message.text()} (${message.location().url})`)
    })
  })
  afterEach(async () => {
    if (missing || !page) return
    const violations = await page.evaluate(() => (globalThis as any).cspViolations ?? []).catch(() => [])
    await context.close()
    expect(violations, 'CSP violations').toEqual([])
    expect(problems, 'console errors').toEqual([])
  })

  const signIn = async (token = h.adminToken) => {
    await page.goto(`${base}/console`)
    await page.getByLabel('Admin token').fill(token)
    await page.getByRole('button', { name: 'Sign in' }).click()
  }
  const keyset = (name: string) => page.locator(`article[data-keyset="${name}"]`)
  const keysOf = async (name: string) => (await h.admin('GET', `/v1/admin/keysets/${name}/keys`)).json().keys as { kid: string; state: string; revokeReason: string | null }[]

  /** Where the admin token could have been left behind: none of these may hold it. */
  const assertTokenNotKept = async (token: string) => {
    expect(page.url()).not.toContain(token)
    expect(await page.evaluate(() => JSON.stringify({ ...localStorage }))).not.toContain(token)
    expect(await page.evaluate(() => document.cookie)).toBe('')
    expect(JSON.stringify(await context.cookies())).not.toContain(token)
  }

  it('signs in and shows every keyset, its active kid and its timeline, without keeping the token outside the tab', async () => {
    await signIn()
    const { keysets } = (await h.admin('GET', '/v1/admin/keysets')).json() as { keysets: { name: string; activeKid: string }[] }
    expect(keysets.map((k) => k.name).sort()).toEqual(['default', 'payments'])
    for (const { name, activeKid } of keysets) {
      await expect.poll(() => keyset(name).locator('.active-kid').textContent()).toBe(activeKid)
      expect(await keyset(name).locator(`svg.timeline rect[data-kid="${activeKid}"][data-state="active"]`).count()).toBe(1)
      expect(await keyset(name).locator(`tr[data-kid="${activeKid}"] code.kid`).textContent()).toBe(activeKid)
      expect(await keyset(name).locator('svg.timeline .now').count()).toBe(1)
      // The next rotation is shown, absolute and relative (a 30 d / 7 d period, just begun).
      expect(await keyset(name).locator('dd.next-rotation').textContent()).toMatch(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \(in \d+ d\)/)
    }
    await assertTokenNotKept(h.adminToken)
    // The tab keeps it (sessionStorage): a reload stays signed in.
    await page.reload()
    await expect.poll(() => keyset('default').locator('.active-kid').count()).toBe(1)
    await assertTokenNotKept(h.adminToken)
  })

  it('refuses a wrong token with a clear message and shows no data', async () => {
    expected.push({ url: /\/v1\/admin\/keysets$/, status: 401 })
    await signIn('signet_not-a-real-token-at-all-00000000000000000')
    await expect.poll(() => page.locator('#sign-in-error').textContent()).toContain('not accepted (401)')
    expect(await page.locator('#console').isHidden()).toBe(true)
    expect(await page.locator('article.keyset').count()).toBe(0)
    expect(await page.evaluate(() => sessionStorage.length)).toBe(0)
  })

  it('accepts the token of a client with scope admin, and refuses one without it', async () => {
    expected.push({ url: /\/v1\/admin\/keysets$/, status: 403 })
    const signer = await h.createClient({ name: 'signer-only', scopes: ['sign'] })
    await signIn(signer.token)
    await expect.poll(() => page.locator('#sign-in-error').textContent()).toContain('without the admin scope (403)')
    expect(await page.locator('#console').isHidden()).toBe(true)
    const admin = await h.createClient({ name: 'ops-admin', scopes: ['admin'] })
    await page.getByLabel('Admin token').fill(admin.token)
    await page.getByRole('button', { name: 'Sign in' }).click()
    await expect.poll(() => keyset('default').count()).toBe(1)
    await assertTokenNotKept(admin.token)
  })

  it('signs in with the keyboard alone', async () => {
    await page.goto(`${base}/console`)
    // The token field has focus on load; Enter submits.
    await page.keyboard.type(h.adminToken)
    await page.keyboard.press('Enter')
    await expect.poll(() => keyset('default').count()).toBe(1)
    // Every control is labelled: inputs by a label, buttons by their text or aria-label.
    const unlabelled = await page.evaluate(() => [
      ...[...document.querySelectorAll('input, select')].filter((el) => (el as HTMLInputElement).labels?.length === 0 && !el.getAttribute('aria-label')).map((el) => el.outerHTML),
      ...[...document.querySelectorAll('button')].filter((el) => !el.textContent?.trim() && !el.getAttribute('aria-label')).map((el) => el.outerHTML),
    ])
    expect(unlabelled).toEqual([])
  })

  it('does a scheduled rotation from the page and shows the pending key', async () => {
    await signIn()
    await keyset('default').getByRole('button', { name: 'Rotate (scheduled)' }).click()
    await expect.poll(async () => (await keysOf('default')).filter((k) => k.state === 'pending').length).toBe(1)
    const pending = (await keysOf('default')).find((k) => k.state === 'pending')!
    await expect.poll(() => page.locator('#status').textContent()).toContain(pending.kid)
    expect(await keyset('default').locator(`tr[data-kid="${pending.kid}"]`).getAttribute('data-state')).toBe('pending')
    expect(await keyset('default').locator(`svg.timeline rect[data-kid="${pending.kid}"][data-state="pending"]`).count()).toBe(1)
    // The next rotation is now that key's activation.
    expect(await keyset('default').locator('dd.next-rotation').textContent()).toContain(pending.kid)
  })

  it('rotates immediately only after a confirmation', async () => {
    await signIn()
    const before = (await keysOf('payments')).find((k) => k.state === 'active')!
    await keyset('payments').getByRole('button', { name: 'Rotate now…' }).click()
    await page.getByRole('dialog').getByRole('button', { name: 'Rotate now' }).click()
    await expect.poll(async () => (await keysOf('payments')).find((k) => k.kid === before.kid)!.state).toBe('retired')
    const active = (await keysOf('payments')).find((k) => k.state === 'active')!
    await expect.poll(() => keyset('payments').locator('.active-kid').textContent()).toBe(active.kid)
    expect(await keyset('payments').locator(`tr[data-kid="${before.kid}"]`).getAttribute('data-state')).toBe('retired')
  })

  it('revokes a key only once its kid is typed, with a reason', async () => {
    await signIn()
    const active = (await keysOf('payments')).find((k) => k.state === 'active')!
    await keyset('payments').getByRole('button', { name: `Revoke key ${active.kid}` }).click()
    const dialog = page.getByRole('dialog')
    const revoke = dialog.getByRole('button', { name: 'Revoke key' })
    await dialog.getByLabel('Reason').fill('laptop stolen')
    await dialog.getByLabel('Type the kid to confirm').fill(active.kid.slice(0, -1))
    expect(await revoke.isDisabled()).toBe(true)
    // Enter in the form does not get around the disabled button.
    await dialog.getByLabel('Type the kid to confirm').press('Enter')
    expect((await keysOf('payments')).find((k) => k.kid === active.kid)!.state).toBe('active')
    await dialog.getByLabel('Type the kid to confirm').fill(active.kid)
    expect(await revoke.isEnabled()).toBe(true)
    await revoke.click()
    await expect.poll(() => keyset('payments').locator(`tr[data-kid="${active.kid}"]`).getAttribute('data-state')).toBe('revoked')
    const after = await keysOf('payments')
    expect(after.find((k) => k.kid === active.kid)).toMatchObject({ state: 'revoked', revokeReason: 'laptop stolen' })
    // Its replacement signs, and the page says so.
    const replacement = after.find((k) => k.state === 'active')!
    expect(await keyset('payments').locator('.active-kid').textContent()).toBe(replacement.kid)
    expect(await keyset('payments').locator(`svg.timeline [data-kid="${active.kid}"][data-state="revoked"]`).count()).toBe(1)
  })

  it('closes the revoke dialog with Escape, revoking nothing', async () => {
    await signIn()
    const active = (await keysOf('default')).find((k) => k.state === 'active')!
    await keyset('default').getByRole('button', { name: `Revoke key ${active.kid}` }).click()
    await page.getByRole('dialog').getByLabel('Type the kid to confirm').fill(active.kid)
    await page.keyboard.press('Escape')
    expect(await page.getByRole('dialog').count()).toBe(0)
    expect((await keysOf('default')).find((k) => k.kid === active.kid)!.state).toBe('active')
  })

  it('warns before saving a prepublish shorter than twice the JWK Set max-age, then saves when told', async () => {
    await signIn()
    await keyset('default').getByRole('button', { name: 'Edit policy…' }).click()
    const dialog = page.getByRole('dialog')
    await dialog.getByLabel('Prepublish; empty for the default').fill('60')
    await dialog.getByRole('button', { name: 'Save' }).click()
    await expect.poll(() => dialog.locator('ul.warnings').textContent()).toContain('twice the JWK Set\'s max-age')
    expect((await h.admin('GET', '/v1/admin/keysets/default')).json().prepublish).not.toBe(60)
    await dialog.getByRole('button', { name: 'Save anyway' }).click()
    await expect.poll(async () => (await h.admin('GET', '/v1/admin/keysets/default')).json().prepublish).toBe(60)
    expect(await page.getByRole('dialog').count()).toBe(0)
    await h.admin('PATCH', '/v1/admin/keysets/default', { prepublish: null })
  })

  it('says why a policy is refused, in the dialog, and changes nothing', async () => {
    expected.push({ url: /\/v1\/admin\/keysets\/default$/, status: 400 })
    const before = (await h.admin('GET', '/v1/admin/keysets/default')).json()
    await signIn()
    await keyset('default').getByRole('button', { name: 'Edit policy…' }).click()
    const dialog = page.getByRole('dialog')
    // Text that is no duration never reaches the API.
    await dialog.getByLabel('Longest token ttl (maxTtl)').fill('an hour')
    await dialog.getByRole('button', { name: 'Save' }).click()
    await expect.poll(() => dialog.locator('ul.warnings').textContent()).toContain('maxTtl must be a duration')
    // A default ttl above the longest one: the API refuses, the dialog says why.
    await dialog.getByLabel('Longest token ttl (maxTtl)').fill('10m')
    await dialog.getByLabel('Default token ttl').fill('1h')
    await dialog.getByRole('button', { name: 'Save' }).click()
    await expect.poll(() => dialog.getByRole('alert').textContent()).toContain('defaultTtl must not exceed maxTtl (400 invalid_request)')
    expect((await h.admin('GET', '/v1/admin/keysets/default')).json()).toEqual(before)
  })

  it('shows the panel chosen last, even when the one before it answers later', async () => {
    // The sign-in check reads the keysets once; the keysets panel's own read is held back.
    let keysetReads = 0
    await page.route('**/v1/admin/keysets', async (route) => {
      if (++keysetReads > 1) await new Promise((later) => setTimeout(later, 1500))
      await route.continue()
    })
    try {
      await signIn()
      const slowKeysets = page.waitForResponse((response) => response.url().endsWith('/v1/admin/keysets') && keysetReads > 1)
      await page.getByRole('button', { name: 'Clients' }).click()
      await expect.poll(() => page.locator('#panel h2').textContent()).toBe('Clients')
      await slowKeysets
      // The keysets answer came after the clients panel was drawn: it is not shown.
      await page.waitForTimeout(300)
      expect(await page.locator('#panel h2').textContent()).toBe('Clients')
      expect(await page.locator('#panel form.create-client').count()).toBe(1)
      expect(await page.locator('#panel').getAttribute('aria-busy')).toBeNull()
    } finally {
      await page.unroute('**/v1/admin/keysets')
    }
  })

  it('creates a client and shows its token once, with a copy button', async () => {
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: base })
    await signIn()
    await page.getByRole('button', { name: 'Clients' }).click()
    await page.getByLabel('Name').fill('made-in-console')
    await page.getByRole('button', { name: 'Create client' }).click()
    const shown = page.locator('.token-once code.token')
    await expect.poll(() => shown.count()).toBe(1)
    const token = (await shown.textContent())!
    expect(token).toMatch(/^signet_/)
    h.watch.secret('the console-made client token', token)
    // The token signs.
    const signed = await h.request('POST', '/v1/sign', { token, body: { claims: { sub: 'x' } } })
    expect(signed.statusCode).toBe(200)
    await page.getByRole('button', { name: 'Copy token' }).click()
    await expect.poll(() => page.evaluate(() => navigator.clipboard.readText())).toBe(token)
    expect(await page.locator('tr', { hasText: 'made-in-console' }).count()).toBe(1)
    await assertTokenNotKept(token)
    expect(await page.evaluate(() => JSON.stringify({ ...sessionStorage }))).not.toContain(token)
    // Gone once the panel is left, and after a reload.
    await page.getByRole('button', { name: 'Keysets' }).click()
    await page.getByRole('button', { name: 'Clients' }).click()
    await expect.poll(() => page.locator('tr', { hasText: 'made-in-console' }).count()).toBe(1)
    expect(await page.content()).not.toContain(token)
    await page.reload()
    await page.getByRole('button', { name: 'Clients' }).click()
    await expect.poll(() => page.locator('tr', { hasText: 'made-in-console' }).count()).toBe(1)
    expect(await page.content()).not.toContain(token)
  })

  it('changes a client through PATCH /v1/admin/clients/{id}, or says this Signet cannot', async () => {
    const { id } = await h.createClient({ name: 'to-change', scopes: ['sign'] })
    const probe = await h.admin('PATCH', `/v1/admin/clients/${id}`, { scopes: ['sign'] })
    const routeMissing = probe.statusCode === 404 || probe.statusCode === 405
    if (routeMissing) expected.push({ url: new RegExp(`/v1/admin/clients/${id}$`), status: probe.statusCode })
    await signIn()
    await page.getByRole('button', { name: 'Clients' }).click()
    await page.getByRole('button', { name: 'Change client to-change' }).click()
    const dialog = page.getByRole('dialog')
    await dialog.getByLabel('verify').check()
    await dialog.getByLabel(/Allowed audiences/).fill('api, billing')
    await dialog.getByRole('button', { name: 'Save' }).click()
    if (routeMissing) {
      // Until the route exists (another branch adds it), the page says so and changes nothing.
      await expect.poll(() => dialog.getByRole('alert').textContent()).toContain('cannot change clients')
      return
    }
    await expect.poll(async () => ((await h.admin('GET', '/v1/admin/clients')).json().clients as { id: string; scopes: string[]; audiences: string[] | null }[])
      .find((c) => c.id === id)).toMatchObject({ scopes: ['sign', 'verify'], audiences: ['api', 'billing'] })
    expect(await page.getByRole('dialog').count()).toBe(0)
  })

  it('revokes a client', async () => {
    const { id } = await h.createClient({ name: 'to-revoke' })
    await signIn()
    await page.getByRole('button', { name: 'Clients' }).click()
    await page.getByRole('button', { name: 'Revoke client to-revoke' }).click()
    await page.getByRole('dialog').getByRole('button', { name: 'Revoke client' }).click()
    await expect.poll(() => page.locator(`tr[data-client="${id}"]`).getAttribute('class')).toBe('revoked')
    const { clients } = (await h.admin('GET', '/v1/admin/clients')).json() as { clients: { id: string; revokedAt: string | null }[] }
    expect(clients.find((c) => c.id === id)!.revokedAt).not.toBeNull()
  })

  it('shows the audit log, a page at a time, with the chain\'s state', async () => {
    // More events than a page (50) holds.
    for (let i = 0; i < 50; i++) await h.createClient({ name: `batch-${i}` })
    await signIn()
    await page.getByRole('button', { name: 'Audit log' }).click()
    const { events } = (await h.admin('GET', '/v1/admin/audit/verify')).json() as { events: number }
    await expect.poll(() => page.locator('.chain').textContent()).toMatch(/Hash chain intact: \d+ events/)
    // It opens on the newest page, which holds the last event.
    await expect.poll(() => page.locator(`table.audit tr[data-event="${events}"]`).count()).toBe(1)
    expect(await page.locator('table.audit').textContent()).toContain('"name":"batch-49"')
    await page.getByRole('button', { name: 'Oldest' }).click()
    await expect.poll(() => page.locator('table.audit tr[data-event="1"]').count()).toBe(1)
    expect(await page.locator('table.audit').textContent()).toContain('keyset.create')
    await page.getByRole('button', { name: 'Newer' }).click()
    await expect.poll(() => page.locator('table.audit tr[data-event="51"]').count()).toBe(1)
  })

  it('adds and removes a workload-identity issuer, or says this Signet has none', async () => {
    const probe = await h.admin('GET', '/v1/admin/issuers')
    if (probe.statusCode === 404) expected.push({ url: /\/v1\/admin\/issuers$/, status: 404 })
    await signIn()
    await page.getByRole('button', { name: 'Issuers' }).click()
    if (probe.statusCode === 404) {
      // Until the identity work lands (another branch), the panel says so.
      await expect.poll(() => page.locator('#panel .notice').textContent()).toContain('no workload-identity issuers')
      return
    }
    await page.getByLabel('Name').fill('cluster')
    await page.getByLabel('Issuer (the exact iss)').fill('https://kubernetes.default.svc')
    await page.getByLabel('JWK Set URL').fill(`${base}/.well-known/jwks.json`)
    await page.getByRole('button', { name: 'Add issuer' }).click()
    await expect.poll(() => page.locator('tr[data-issuer="cluster"]').count()).toBe(1)
    await page.getByRole('button', { name: 'Remove issuer cluster' }).click()
    await page.getByRole('dialog').getByRole('button', { name: 'Remove issuer' }).click()
    await expect.poll(() => page.locator('tr[data-issuer="cluster"]').count()).toBe(0)
  })

  it('fits a laptop screen (1366 x 768) with no sideways scrolling, keys in every state drawn', async () => {
    // A day of a keyset's life on the server's clock: activations, retirements and destructions.
    const hours = (n: number) => h.clock.advance(n * 3_600_000)
    hours(2)
    await h.signet.tick()
    await h.admin('POST', '/v1/admin/keysets/payments/rotate', { mode: 'immediate' })
    hours(20)
    await h.signet.tick()
    await h.admin('POST', '/v1/admin/keysets/default/rotate', { mode: 'immediate' })
    await h.admin('POST', '/v1/admin/keysets/default/rotate', { mode: 'scheduled' })
    hours(0.5)
    // The browser's now is the server's.
    await page.clock.setFixedTime(h.clock.now())
    await signIn()
    const drawn = (name: string, state: string) => keyset(name).locator(`svg.timeline [data-state="${state}"]`).count()
    await expect.poll(() => drawn('default', 'destroyed')).toBe(1)
    for (const state of ['pending', 'active', 'retired']) expect(await drawn('default', state), state).toBeGreaterThan(0)
    expect(await drawn('payments', 'revoked')).toBe(1)
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(1366)
    const shot = process.env.SIGNET_CONSOLE_SCREENSHOT
    if (shot) await page.screenshot({ path: shot })
  })
})
