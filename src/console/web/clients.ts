import { ApiError, seg, type AdminApi } from './api.js'
import { h, replace } from './dom.js'
import { SCOPES, type Client } from './model.js'
import { duration, parseDuration } from './time.js'
import { announce, busy, checkboxes, confirmDanger, dialogAction, dialogAlert, dialogButtons, fail, field, list, openDialog, when } from './ui.js'

/** What a client form gives: the fields of POST and PATCH /v1/admin/clients. */
interface ClientFields {
  keysets: string[] | '*'
  scopes: string[]
  audiences: string[] | null
  maxTtl: number | null
}

/** The keyset, scope, audience and ttl fields shared by the create and change forms. */
function clientFields(current?: Client) {
  const keysets = field('Keysets (comma-separated, or * for all)', { type: 'text', value: current ? (current.keysets === '*' ? '*' : current.keysets.join(', ')) : '*', required: true })
  const scopes = checkboxes('Scopes', SCOPES, current?.scopes ?? ['sign'])
  const audiences = field('Allowed audiences (comma-separated; empty: any)', { type: 'text', value: current?.audiences?.join(', ') ?? '' })
  const maxTtl = field('Longest token ttl (empty: the keyset\'s)', { type: 'text', value: current?.maxTtl ?? '' }, 'Seconds, or 90s, 15m, 12h, 30d.')
  const read = (): ClientFields | string => {
    const named = list(keysets.input.value)
    const ttl = maxTtl.input.value.trim() === '' ? null : parseDuration(maxTtl.input.value)
    if (ttl === null && maxTtl.input.value.trim() !== '') return 'the longest token ttl must be a duration such as 600, 15m or 1h, or empty'
    const audienceList = list(audiences.input.value)
    return {
      keysets: named.length === 1 && named[0] === '*' ? '*' : named,
      scopes: scopes.values(),
      audiences: audienceList.length > 0 ? audienceList : null,
      maxTtl: ttl,
    }
  }
  return { rows: [keysets.row, scopes.row, audiences.row, maxTtl.row], read }
}

/** The Clients panel: list, create (token shown once), change and revoke. */
export async function clientsPanel(api: AdminApi, panel: HTMLElement): Promise<void> {
  const { clients } = await api.get<{ clients: Client[] }>('/v1/admin/clients')
  const reload = () => clientsPanel(api, panel)
  const now = Date.now()
  // Where a new client's token appears, once: re-rendering the panel drops it.
  const shownOnce = h('div', { class: 'once' })

  const name = field('Name', { type: 'text', required: true, maxlength: 200, autocomplete: 'off' })
  const fields = clientFields()
  const create = h('button', { type: 'submit' }, 'Create client')
  const form = h('form', { class: 'stack create-client', 'aria-labelledby': 'create-client-title' },
    h('h3', { id: 'create-client-title' }, 'New client'), name.row, fields.rows, h('div', { class: 'actions' }, create))
  form.addEventListener('submit', (event) => {
    event.preventDefault()
    const values = fields.read()
    if (typeof values === 'string') return fail(values, 'create the client')
    void busy(create, async () => {
      try {
        const created = await api.post<Client & { token?: string }>('/v1/admin/clients', { name: name.input.value.trim(), ...values })
        await reload()
        if (created.token) showToken(panel.querySelector('.once')!, created)
        announce(`Client ${created.name} created.${created.token ? ' Copy its token now: it is shown once.' : ''}`)
      } catch (error) {
        fail(error, 'create the client')
      }
    })
  })

  replace(panel,
    h('h2', { tabindex: -1 }, 'Clients'),
    shownOnce,
    h('table', { class: 'clients' },
      h('caption', {}, 'Clients (tokens are never shown again after creation)'),
      h('thead', {}, h('tr', {}, ['name', 'id', 'scopes', 'keysets', 'audiences', 'max ttl', 'created', 'revoked', ''].map((title) => h('th', { scope: 'col' }, title)))),
      h('tbody', {}, clients.map((client) => h('tr', { 'data-client': client.id, class: client.revokedAt ? 'revoked' : '' },
        h('td', {}, client.name),
        h('td', {}, h('code', {}, client.id)),
        h('td', {}, client.scopes.join(', ')),
        h('td', {}, client.keysets === '*' ? 'all' : client.keysets.join(', ')),
        h('td', {}, client.audiences?.join(', ') ?? 'any'),
        h('td', {}, client.maxTtl === null ? '—' : duration(client.maxTtl)),
        h('td', {}, when(client.createdAt, now)),
        h('td', {}, when(client.revokedAt, now)),
        h('td', { class: 'row-actions' }, client.revokedAt ? null : [
          h('button', { type: 'button', 'aria-label': `Change client ${client.name}`, onclick: () => changeClient(api, client, reload) }, 'Change…'),
          h('button', { type: 'button', class: 'danger', 'aria-label': `Revoke client ${client.name}`, onclick: () => revokeClient(api, client, reload) }, 'Revoke…'),
        ]),
      ))),
    ),
    form,
  )
}

/** The new token with a copy button; it lives only in this element. */
function showToken(place: HTMLElement, client: Client & { token?: string }): void {
  const copy = h('button', { type: 'button' }, 'Copy token')
  const copied = h('span', { role: 'status' })
  copy.addEventListener('click', () => {
    navigator.clipboard.writeText(client.token!).then(
      () => { copied.textContent = 'Copied.' },
      () => { copied.textContent = 'Copying is not allowed here: select the token and copy it.' },
    )
  })
  replace(place, h('section', { class: 'token-once', 'aria-labelledby': 'token-once-title' },
    h('h3', { id: 'token-once-title' }, `Token of ${client.name}: shown once`),
    h('p', {}, 'Store it now (a secret manager, the app\'s environment). Signet keeps only its hash: it cannot show it again.'),
    h('p', {}, h('code', { class: 'token', tabindex: 0 }, client.token!)),
    h('div', { class: 'actions' }, copy, h('button', { type: 'button', onclick: () => place.replaceChildren() }, 'I have stored it'), copied),
  ))
  copy.focus()
}

function changeClient(api: AdminApi, client: Client, reload: () => Promise<void>): void {
  openDialog(`Change client ${client.name}`, (close) => {
    const fields = clientFields(client)
    const problem = dialogAlert()
    const save = h('button', { type: 'submit' }, 'Save')
    const form = h('form', { class: 'stack' }, fields.rows, problem, dialogButtons(close, save))
    form.addEventListener('submit', (event) => {
      event.preventDefault()
      const values = fields.read()
      if (typeof values === 'string') return fail(values, 'change the client', problem)
      void dialogAction(save, close, problem, {
        send: () => api.patch(`/v1/admin/clients/${seg(client.id)}`, values),
        reload,
        done: `Client ${client.name} changed.`,
        doing: 'change the client',
        explain: (error) => error instanceof ApiError && error.routeMissing
          ? 'this Signet cannot change clients (PATCH /v1/admin/clients/{id} is missing): revoke and create instead'
          : error,
      })
    })
    return form
  })
}

function revokeClient(api: AdminApi, client: Client, reload: () => Promise<void>): void {
  confirmDanger(`Revoke client ${client.name}?`, 'Its token stops working at once. This cannot be undone.', 'Revoke client', {
    send: () => api.delete(`/v1/admin/clients/${seg(client.id)}`),
    reload,
    done: `Client ${client.name} is revoked: its token no longer works.`,
    doing: `revoke client ${client.name}`,
  })
}
