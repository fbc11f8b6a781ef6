import { ApiError, seg, type AdminApi } from './api.js'
import { h, replace } from './dom.js'
import type { Issuer } from './model.js'
import { duration, parseDuration } from './time.js'
import { announce, busy, confirmDanger, fail, field, list } from './ui.js'

/**
 * The Issuers panel: trusted workload-identity issuers (docs/console.md). A Signet
 * without the issuer routes says so instead of failing.
 */
export async function issuersPanel(api: AdminApi, panel: HTMLElement): Promise<void> {
  let issuers: Issuer[]
  try {
    const answer = await api.get<{ issuers: Issuer[] } | Issuer[]>('/v1/admin/issuers')
    issuers = Array.isArray(answer) ? answer : answer.issuers
  } catch (error) {
    if (error instanceof ApiError && error.routeMissing) {
      replace(panel, h('h2', { tabindex: -1 }, 'Issuers'), h('p', { class: 'notice' }, 'This Signet has no workload-identity issuers (its admin API has no /v1/admin/issuers).'))
      return
    }
    throw error
  }
  const reload = () => issuersPanel(api, panel)

  const name = field('Name', { type: 'text', required: true, autocomplete: 'off' }, 'Lower-case letters, digits, - and _.')
  const issuer = field('Issuer (the exact iss)', { type: 'text', required: true })
  const jwksUri = field('JWK Set URL', { type: 'url', required: true }, 'https, or http to a loopback address.')
  const audiences = field('Accepted audiences (comma-separated)', { type: 'text', required: true, value: 'signet' })
  const algorithms = field('Algorithms (comma-separated; empty: RS256, ES256)', { type: 'text' })
  const lifetime = field('Longest token lifetime (empty: 1 h)', { type: 'text' }, 'Seconds, or 15m, 1h.')
  const add = h('button', { type: 'submit' }, 'Add issuer')
  const form = h('form', { class: 'stack', 'aria-labelledby': 'add-issuer-title' },
    h('h3', { id: 'add-issuer-title' }, 'New issuer'), name.row, issuer.row, jwksUri.row, audiences.row, algorithms.row, lifetime.row, h('div', { class: 'actions' }, add))
  form.addEventListener('submit', (event) => {
    event.preventDefault()
    const maxTokenLifetime = lifetime.input.value.trim() === '' ? undefined : parseDuration(lifetime.input.value)
    if (maxTokenLifetime === null) return fail('the longest token lifetime must be a duration such as 900, 15m or 1h', 'add the issuer')
    const algs = list(algorithms.input.value)
    void busy(add, async () => {
      try {
        await api.post('/v1/admin/issuers', {
          name: name.input.value.trim(), issuer: issuer.input.value.trim(), jwksUri: jwksUri.input.value.trim(), audiences: list(audiences.input.value),
          ...(algs.length > 0 ? { algorithms: algs } : {}), ...(maxTokenLifetime !== undefined ? { maxTokenLifetime } : {}),
        })
        await reload()
        announce(`Issuer ${name.input.value.trim()} added.`)
      } catch (error) {
        fail(error, 'add the issuer')
      }
    })
  })

  replace(panel,
    h('h2', { tabindex: -1 }, 'Issuers'),
    issuers.length === 0 ? h('p', {}, 'No issuers yet.') : h('table', {},
      h('caption', {}, 'Trusted workload-identity issuers'),
      h('thead', {}, h('tr', {}, ['name', 'issuer', 'JWK Set', 'audiences', 'algorithms', 'max lifetime', ''].map((title) => h('th', { scope: 'col' }, title)))),
      h('tbody', {}, issuers.map((item) => h('tr', { 'data-issuer': item.name },
        h('td', {}, item.name),
        h('td', {}, h('code', {}, item.issuer)),
        h('td', {}, item.jwksUri ? h('code', {}, item.jwksUri) : 'static'),
        h('td', {}, item.audiences.join(', ')),
        h('td', {}, item.algorithms?.join(', ') ?? ''),
        h('td', {}, item.maxTokenLifetime === undefined ? '' : duration(item.maxTokenLifetime)),
        h('td', {}, h('button', { type: 'button', class: 'danger', 'aria-label': `Remove issuer ${item.name}`, onclick: () => removeIssuer(api, item, reload) }, 'Remove…')),
      ))),
    ),
    form,
  )
}

function removeIssuer(api: AdminApi, issuer: Issuer, reload: () => Promise<void>): void {
  confirmDanger(`Remove issuer ${issuer.name}?`, 'Workloads it vouches for can no longer sign in. Signet refuses while live clients are bound to it.', 'Remove issuer', {
    send: () => api.delete(`/v1/admin/issuers/${seg(issuer.name)}`),
    reload,
    done: `Issuer ${issuer.name} removed.`,
    doing: `remove issuer ${issuer.name}`,
  })
}
