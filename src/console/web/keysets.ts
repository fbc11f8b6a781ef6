import { jwksMaxAge, seg, type AdminApi } from './api.js'
import { h, replace } from './dom.js'
import { ALGORITHMS, type Key, type Keyset } from './model.js'
import { nextRotation } from './schedule.js'
import { absolute, duration, parseDuration } from './time.js'
import { timeline } from './timeline.js'
import { announce, busy, choice, dialogAction, dialogAlert, dialogButtons, fail, field, openDialog, when } from './ui.js'
import { policyWarnings, type PolicyChange } from './warnings.js'

const STATE_LABEL: Record<Key['state'], string> = {
  pending: 'pending', active: 'active', retired: 'retired (still published)', revoked: 'revoked', destroyed: 'destroyed',
}

/** The Keysets panel: per keyset its timeline, its keys, and rotate, revoke and policy actions. */
export async function keysetsPanel(api: AdminApi, panel: HTMLElement): Promise<void> {
  const { keysets } = await api.get<{ keysets: Keyset[] }>('/v1/admin/keysets')
  const withKeys = await Promise.all(keysets.map(async (keyset) => ({ keyset, keys: (await api.get<{ keys: Key[] }>(`/v1/admin/keysets/${seg(keyset.name)}/keys`)).keys })))
  const reload = () => keysetsPanel(api, panel)
  replace(panel,
    h('h2', { tabindex: -1 }, 'Keysets'),
    h('ul', { class: 'legend', 'aria-label': 'Timeline legend' },
      (['pending', 'active', 'retired', 'revoked', 'destroyed'] as const).map((state) => h('li', {}, h('span', { class: `swatch swatch-${state}`, 'aria-hidden': 'true' }), STATE_LABEL[state])),
      h('li', {}, h('span', { class: 'swatch swatch-now', 'aria-hidden': 'true' }), 'now'),
      h('li', {}, h('span', { class: 'swatch swatch-next', 'aria-hidden': 'true' }), 'next rotation'),
      h('li', {}, h('span', { class: 'swatch swatch-planned', 'aria-hidden': 'true' }), 'planned')),
    withKeys.length === 0 ? h('p', {}, 'No keysets yet.') : withKeys.map(({ keyset, keys }) => keysetCard(api, keyset, keys, reload)),
  )
}

function keysetCard(api: AdminApi, keyset: Keyset, keys: Key[], reload: () => Promise<void>): HTMLElement {
  const now = Date.now()
  const next = nextRotation(keyset, keys, now)
  const headingId = `keyset-${keyset.name}`
  const sorted = [...keys].sort((a, b) => Date.parse(b.createdAt) - Date.parse(a.createdAt))

  const rotate = async (button: HTMLButtonElement, mode: 'scheduled' | 'immediate') => busy(button, async () => {
    try {
      const key = await api.post<Key>(`/v1/admin/keysets/${seg(keyset.name)}/rotate`, { mode })
      await reload()
      announce(mode === 'scheduled'
        ? `Keyset ${keyset.name}: key ${key.kid} is pending; it signs from ${absolute(Date.parse(key.activatesAt!))}.`
        : `Keyset ${keyset.name}: key ${key.kid} signs now; the previous key is retired and stays published.`)
    } catch (error) {
      fail(error, `rotate keyset ${keyset.name}`)
    }
  })

  const confirmImmediate = () => openDialog(`Rotate ${keyset.name} now?`, (close) => {
    const go = h('button', { type: 'button', class: 'danger' }, 'Rotate now')
    go.addEventListener('click', () => void rotate(go, 'immediate').then(close))
    return [
      h('p', {}, 'The new key signs at once. A verifier holding a cached JWK Set does not know it until its cache expires (the JWK Set\'s max-age) and rejects its tokens meanwhile. A scheduled rotation, published ', duration(keyset.prepublish), ' ahead, avoids this.'),
      dialogButtons(close, go),
    ]
  })

  const scheduled = h('button', { type: 'button' }, 'Rotate (scheduled)')
  scheduled.addEventListener('click', () => void rotate(scheduled, 'scheduled'))

  return h('article', { class: 'keyset', 'aria-labelledby': headingId, 'data-keyset': keyset.name },
    h('h3', { id: headingId }, keyset.name, ' ', h('span', { class: 'tag' }, keyset.alg), keyset.backend !== 'software' ? h('span', { class: 'tag' }, keyset.backend) : null),
    h('dl', { class: 'facts' },
      h('dt', {}, 'Active key'), h('dd', {}, keyset.activeKid ? h('code', { class: 'active-kid' }, keyset.activeKid) : 'none'),
      h('dt', {}, 'Next rotation'), h('dd', { class: 'next-rotation' }, next
        ? [when(next.activatesAt, now), next.pendingKid
          ? [' — pending key ', h('code', {}, next.pendingKid), ' takes over']
          : [' — a new key is published ', when(next.publishesAt, now)]]
        : 'none: automatic rotation is off (rotationPeriod 0)'),
      h('dt', {}, 'Policy'), h('dd', {},
        `token ttl ${duration(keyset.defaultTtl)} by default, at most ${duration(keyset.maxTtl)}; rotates every ${keyset.rotationPeriod ? duration(keyset.rotationPeriod) : '— (off)'}; new keys published ${duration(keyset.prepublish)} before they sign`,
        keyset.issuer ? `; issuer ${keyset.issuer}` : ''),
    ),
    h('figure', {}, timeline(keyset, keys, next, now)),
    h('div', { class: 'actions' },
      scheduled,
      h('button', { type: 'button', onclick: confirmImmediate }, 'Rotate now…'),
      h('button', { type: 'button', onclick: () => void editPolicy(api, keyset, reload) }, 'Edit policy…'),
    ),
    h('table', { class: 'keys' },
      h('caption', {}, `Keys of ${keyset.name}, newest first`),
      h('thead', {}, h('tr', {}, ['kid', 'state', 'created', 'signs from', 'retired', 'leaves the JWK Set', 'ended', ''].map((title) => h('th', { scope: 'col' }, title)))),
      h('tbody', {}, sorted.map((key) => h('tr', { 'data-kid': key.kid, 'data-state': key.state },
        h('td', {}, h('code', { class: 'kid' }, key.kid)),
        h('td', {}, h('span', { class: `state state-${key.state}` }, STATE_LABEL[key.state])),
        h('td', {}, when(key.createdAt, now)),
        h('td', {}, when(key.activatedAt ?? key.activatesAt, now)),
        h('td', {}, when(key.retiredAt, now)),
        h('td', {}, key.state === 'retired' || key.state === 'destroyed' ? when(key.publishedUntil, now) : when(key.revokedAt, now)),
        h('td', {}, key.state === 'revoked' ? [when(key.revokedAt, now), h('br'), `reason: ${key.revokeReason ?? ''}`] : when(key.destroyedAt, now)),
        h('td', {}, key.state === 'pending' || key.state === 'active' || key.state === 'retired'
          ? h('button', { type: 'button', class: 'danger', 'aria-label': `Revoke key ${key.kid}`, onclick: () => revokeKey(api, key, reload) }, 'Revoke…')
          : null),
      ))),
    ),
  )
}

/** Revocation, confirmed by typing the kid, with a reason (kept in the audit log). */
function revokeKey(api: AdminApi, key: Key, reload: () => Promise<void>): void {
  openDialog(`Revoke key ${key.kid}`, (close) => {
    const kid = field('Type the kid to confirm', { type: 'text', autocomplete: 'off', spellcheck: false, required: true }, `The key leaves the JWK Set now: tokens it signed stop verifying.${key.state === 'active' ? ' A replacement key signs at once.' : ''}`)
    const reason = field('Reason', { type: 'text', required: true, maxlength: 500 }, 'Kept in the audit log.')
    const go = h('button', { type: 'submit', class: 'danger', disabled: true }, 'Revoke key')
    const ready = () => kid.input.value.trim() === key.kid && reason.input.value.trim().length > 0
    const check = () => { go.disabled = !ready() }
    kid.input.addEventListener('input', check)
    reason.input.addEventListener('input', check)
    const problem = dialogAlert()
    const form = h('form', { class: 'stack' }, h('p', {}, 'kid: ', h('code', {}, key.kid)), kid.row, reason.row, problem, dialogButtons(close, go))
    form.addEventListener('submit', (event) => {
      event.preventDefault()
      if (!ready()) return
      void dialogAction(go, close, problem, {
        send: () => api.post(`/v1/admin/keys/${seg(key.kid)}/revoke`, { reason: reason.input.value.trim() }),
        reload,
        done: `Key ${key.kid} is revoked.`,
        doing: `revoke key ${key.kid}`,
      })
    })
    return form
  })
}

/** The policy form: only changed fields are sent; warnings first, then "Save anyway". */
async function editPolicy(api: AdminApi, keyset: Keyset, reload: () => Promise<void>): Promise<void> {
  const maxAge = await jwksMaxAge(keyset.name)
  openDialog(`Policy of ${keyset.name}`, (close) => {
    const durationHint = 'Seconds, or 90s, 15m, 12h, 30d.'
    const alg = choice('Algorithm (from the next rotation)', ALGORITHMS, keyset.alg)
    const issuer = field('Issuer (iss); empty for none', { type: 'text', value: keyset.issuer ?? '' })
    const defaultTtl = field('Default token ttl', { type: 'text', value: String(keyset.defaultTtl), required: true }, durationHint)
    const maxTtl = field('Longest token ttl (maxTtl)', { type: 'text', value: String(keyset.maxTtl), required: true }, durationHint)
    const rotationPeriod = field('Rotation period (0: off)', { type: 'text', value: String(keyset.rotationPeriod), required: true }, durationHint)
    const prepublish = field('Prepublish; empty for the default', { type: 'text', value: String(keyset.prepublish) }, `${durationHint} JWK Set max-age: ${maxAge === null ? 'unknown' : duration(maxAge)}.`)
    const warningList = h('ul', { class: 'warnings', 'aria-live': 'polite' })
    const problem = dialogAlert()
    const save = h('button', { type: 'submit' }, 'Save')
    let warned = ''

    const read = (): PolicyChange | string => {
      const seconds: Record<string, number> = {}
      for (const [name, input] of [['defaultTtl', defaultTtl], ['maxTtl', maxTtl], ['rotationPeriod', rotationPeriod]] as const) {
        const value = parseDuration(input.input.value)
        if (value === null) return `${name} must be a duration such as 600, 90s, 15m, 12h or 30d`
        seconds[name] = value
      }
      const pre = prepublish.input.value.trim() === '' ? null : parseDuration(prepublish.input.value)
      if (pre === null && prepublish.input.value.trim() !== '') return 'prepublish must be a duration such as 3600, 1h or 2d, or empty'
      return { alg: alg.select.value, issuer: issuer.input.value.trim() || null, defaultTtl: seconds.defaultTtl!, maxTtl: seconds.maxTtl!, rotationPeriod: seconds.rotationPeriod!, prepublish: pre }
    }

    const form = h('form', { class: 'stack', novalidate: true }, alg.row, issuer.row, defaultTtl.row, maxTtl.row, rotationPeriod.row, prepublish.row, warningList, problem,
      dialogButtons(close, save))
    form.addEventListener('input', () => {
      warned = ''
      save.textContent = 'Save'
    })
    form.addEventListener('submit', (event) => {
      event.preventDefault()
      const next = read()
      if (typeof next === 'string') {
        replace(warningList, h('li', { class: 'error' }, next))
        return
      }
      const patch: Record<string, unknown> = {}
      for (const name of ['alg', 'issuer', 'defaultTtl', 'maxTtl', 'rotationPeriod', 'prepublish'] as const) {
        if (next[name] !== keyset[name]) patch[name] = next[name]
      }
      if (Object.keys(patch).length === 0) {
        replace(warningList, h('li', {}, 'Nothing changed.'))
        return
      }
      const warnings = policyWarnings(keyset, next, maxAge)
      const signature = JSON.stringify(patch)
      if (warnings.length > 0 && warned !== signature) {
        warned = signature
        replace(warningList, warnings.map((warning) => h('li', { class: 'warning' }, warning)))
        save.textContent = 'Save anyway'
        return
      }
      void dialogAction(save, close, problem, {
        send: () => api.patch(`/v1/admin/keysets/${seg(keyset.name)}`, patch),
        reload,
        done: `Keyset ${keyset.name}: policy saved (${Object.keys(patch).join(', ')}).`,
        doing: `change the policy of ${keyset.name}`,
      })
    })
    return form
  })
}
