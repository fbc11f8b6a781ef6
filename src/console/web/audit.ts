import { ApiError, type AdminApi } from './api.js'
import { h, replace } from './dom.js'
import type { AuditEvent } from './model.js'
import { when } from './ui.js'

/** Events per page. */
export const AUDIT_PAGE = 50

interface ChainState {
  intact: boolean
  events: number
  problems: { id: number; reason: string }[]
}

/**
 * The Audit panel: the hash chain's state, then the log a page at a time (oldest
 * first, as GET /v1/admin/audit pages it; ids count up from 1). It opens on the
 * newest page.
 */
export async function auditPanel(api: AdminApi, panel: HTMLElement, after?: number): Promise<void> {
  let chain: ChainState | null = null
  try {
    chain = await api.get<ChainState>('/v1/admin/audit/verify')
  } catch (error) {
    if (!(error instanceof ApiError && error.routeMissing)) throw error
  }
  const start = after ?? Math.max(0, (chain?.events ?? 0) - AUDIT_PAGE)
  const { events, next } = await api.get<{ events: AuditEvent[]; next: number | null }>(`/v1/admin/audit?after=${start}&limit=${AUDIT_PAGE}`)
  const now = Date.now()
  const go = (to: number) => () => void auditPanel(api, panel, to).then(() => panel.querySelector<HTMLElement>('h2')?.focus())

  replace(panel,
    h('h2', { tabindex: -1 }, 'Audit log'),
    chain === null
      ? h('p', { class: 'notice' }, 'This Signet cannot check the chain from the console (no /v1/admin/audit/verify).')
      : chain.intact
        ? h('p', { class: 'chain ok' }, `Hash chain intact: ${chain.events} events, each chained to the one before.`)
        : h('div', { class: 'chain broken', role: 'alert' }, h('p', {}, `Hash chain BROKEN (${chain.events} events check out before the break):`),
          h('ul', {}, chain.problems.map((problem) => h('li', {}, `event ${problem.id}: ${problem.reason}`)))),
    h('nav', { class: 'pager', 'aria-label': 'Audit pages' },
      h('button', { type: 'button', disabled: start === 0, onclick: go(0) }, 'Oldest'),
      h('button', { type: 'button', disabled: start === 0, onclick: go(Math.max(0, start - AUDIT_PAGE)) }, 'Older'),
      h('span', {}, events.length > 0 ? `events ${events[0]!.id}–${events[events.length - 1]!.id}${chain ? ` of ${chain.events}` : ''}` : 'no events'),
      h('button', { type: 'button', disabled: next === null, onclick: go(next ?? start) }, 'Newer'),
      h('button', { type: 'button', onclick: go(Math.max(0, (chain?.events ?? start) - AUDIT_PAGE)) }, 'Newest'),
    ),
    h('table', { class: 'audit' },
      h('caption', {}, 'Audit events, oldest first'),
      h('thead', {}, h('tr', {}, ['id', 'when', 'actor', 'action', 'target', 'details'].map((title) => h('th', { scope: 'col' }, title)))),
      h('tbody', {}, events.map((event) => h('tr', { 'data-event': event.id },
        h('td', {}, String(event.id)),
        h('td', {}, when(event.at, now)),
        h('td', {}, event.actor),
        h('td', {}, h('code', { class: 'action' }, event.action)),
        h('td', {}, h('code', { class: 'kid' }, event.target)),
        h('td', {}, h('code', { class: 'details' }, JSON.stringify(event.details))),
      ))),
    ),
  )
}
