import { AdminApi, ApiError } from './api.js'
import { auditPanel } from './audit.js'
import { clientsPanel } from './clients.js'
import { issuersPanel } from './issuers.js'
import { keysetsPanel } from './keysets.js'
import { announce, bindStatus, fail } from './ui.js'

/**
 * The Signet admin console (docs/console.md): sign in with an admin token, then
 * one panel at a time. Every action is a call to the admin API.
 */

type Section = 'keysets' | 'clients' | 'issuers' | 'audit'

const PANELS: Record<Section, (api: AdminApi, panel: HTMLElement) => Promise<void>> = {
  keysets: keysetsPanel,
  clients: clientsPanel,
  issuers: issuersPanel,
  audit: auditPanel,
}

const byId = <T extends HTMLElement>(id: string) => document.getElementById(id) as T

const signInSection = byId<HTMLElement>('sign-in')
const signInForm = byId<HTMLFormElement>('sign-in-form')
const tokenInput = byId<HTMLInputElement>('token')
const signInError = byId<HTMLElement>('sign-in-error')
const consoleSection = byId<HTMLElement>('console')
let panel = byId<HTMLElement>('panel')
const signOut = byId<HTMLButtonElement>('sign-out')
const navButtons = [...document.querySelectorAll<HTMLButtonElement>('nav.sections button')]

bindStatus(byId('status'), byId('alert'))

let api: AdminApi | null = null
/** Counts the panels asked for: only the latest may be shown. */
let latest = 0

async function show(section: Section): Promise<void> {
  if (!api) return
  for (const button of navButtons) {
    if (button.dataset.section === section) button.setAttribute('aria-current', 'page')
    else button.removeAttribute('aria-current')
  }
  // The panel is drawn into a fresh element, put in place only if no other panel was
  // asked for meanwhile: a slow panel (keysets on a busy server) must not replace the
  // one chosen after it. Its own reloads draw into the element it was given.
  const asked = ++latest
  const next = panel.cloneNode(false) as HTMLElement
  panel.setAttribute('aria-busy', 'true')
  // What was said about the last panel does not belong to this one.
  announce('')
  try {
    await PANELS[section](api, next)
    if (asked !== latest) return
    panel.replaceWith(next)
    panel = next
    panel.querySelector<HTMLElement>('h2')?.focus()
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return leave('Your token is no longer accepted (401): sign in again.')
    if (asked === latest) fail(error, `load ${section}`)
  } finally {
    if (asked === latest) panel.removeAttribute('aria-busy')
  }
}

function enter(signedIn: AdminApi): void {
  api = signedIn
  signInSection.hidden = true
  consoleSection.hidden = false
  signOut.hidden = false
  void show('keysets')
}

/** Back to the sign-in form; the token is dropped from memory and from the tab. */
function leave(message: string): void {
  api = null
  latest++ // a panel still loading is not shown
  AdminApi.forget()
  panel.replaceChildren()
  consoleSection.hidden = true
  signOut.hidden = true
  signInSection.hidden = false
  signInError.textContent = message
  announce('')
  tokenInput.focus()
}

/** Whether the API accepts the token as an admin's. */
async function check(candidate: AdminApi): Promise<string | null> {
  try {
    await candidate.get('/v1/admin/keysets')
    return null
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return 'This token is not accepted (401). Paste SIGNET_ADMIN_TOKEN, or the token of a client with scope admin.'
    if (error instanceof ApiError && error.status === 403) return 'This token belongs to a client without the admin scope (403).'
    if (error instanceof ApiError && error.status === 429) return 'Too many refused tokens from this address (429): wait a minute.'
    return `Signet did not accept the sign-in: ${error instanceof Error ? error.message : String(error)}`
  }
}

signInForm.addEventListener('submit', (event) => {
  event.preventDefault()
  const token = tokenInput.value.trim()
  if (!token) {
    signInError.textContent = 'Paste a token first.'
    return
  }
  const candidate = new AdminApi(token)
  void check(candidate).then((problem) => {
    if (problem) {
      signInError.textContent = problem
      tokenInput.select()
      return
    }
    tokenInput.value = ''
    signInError.textContent = ''
    candidate.remember()
    enter(candidate)
  })
})

signOut.addEventListener('click', () => leave('Signed out.'))

for (const button of navButtons) {
  button.addEventListener('click', () => void show(button.dataset.section as Section))
}

// A reload keeps the tab's session (sessionStorage), if the token still works.
const restored = AdminApi.restore()
if (restored) {
  void check(restored).then((problem) => (problem ? leave(problem) : enter(restored)))
} else {
  tokenInput.focus()
}
