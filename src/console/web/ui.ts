import { ApiError } from './api.js'
import { h, replace, uid, type Child } from './dom.js'
import { absolute, epoch, relative } from './time.js'

/**
 * Shared pieces of the console: the status line (a live region screen readers
 * announce), times shown both ways, labelled fields and modal dialogs.
 */

let statusLine: HTMLElement | null = null
let alertLine: HTMLElement | null = null

export function bindStatus(status: HTMLElement, alert: HTMLElement): void {
  statusLine = status
  alertLine = alert
}

/** Says what just happened (polite live region); clears any error. */
export function announce(message: string): void {
  if (alertLine) alertLine.textContent = ''
  if (statusLine) statusLine.textContent = message
}

/**
 * Says what went wrong (assertive live region), also in `local` when given: a
 * modal dialog makes the rest of the page inert, live regions included.
 */
export function fail(error: unknown, doing: string, local?: HTMLElement): void {
  const detail = error instanceof ApiError ? `${error.message}${error.status ? ` (${error.status} ${error.code})` : ''}` : String(error)
  const message = `Could not ${doing}: ${detail}`
  if (statusLine) statusLine.textContent = ''
  if (alertLine) alertLine.textContent = message
  if (local) local.textContent = message
}

/** A place in a dialog for its errors, announced at once. */
export const dialogAlert = (): HTMLElement => h('p', { role: 'alert', class: 'error' })

/** A <time> showing an instant in UTC and relative to now; "—" when there is none. */
export function when(iso: string | number | null, now: number = Date.now()): Child {
  const ms = typeof iso === 'number' ? iso : epoch(iso)
  if (ms === null) return h('span', { class: 'none', 'aria-label': 'none' }, '—')
  // The date and the time of day wrap apart, never inside either.
  const [day, clock] = absolute(ms).split('T') as [string, string]
  return h('time', { datetime: new Date(ms).toISOString() }, h('span', { class: 'day' }, day), h('wbr'), h('span', { class: 'clock' }, `T${clock}`), ' ', h('span', { class: 'relative' }, `(${relative(ms, now)})`))
}

/** A labelled input; returns the wrapper and the input. */
export function field(label: string, attrs: Record<string, string | number | boolean | undefined>, hint?: string): { row: HTMLElement; input: HTMLInputElement } {
  const id = uid('field')
  const hintId = hint ? `${id}-hint` : undefined
  const input = h('input', { id, name: id, ...attrs, 'aria-describedby': hintId })
  const row = h('div', { class: 'field' }, h('label', { for: id }, label), input, hint ? h('small', { id: hintId }, hint) : null)
  return { row, input }
}

/** A labelled <select>. */
export function choice(label: string, options: readonly string[], selected: string): { row: HTMLElement; select: HTMLSelectElement } {
  const id = uid('choice')
  const select = h('select', { id }, options.map((option) => h('option', { value: option, selected: option === selected }, option)))
  return { row: h('div', { class: 'field' }, h('label', { for: id }, label), select), select }
}

/** A group of labelled checkboxes. */
export function checkboxes(legend: string, options: readonly string[], checked: readonly string[]): { row: HTMLElement; values: () => string[] } {
  const boxes = options.map((option) => {
    const id = uid('check')
    const input = h('input', { type: 'checkbox', id, value: option, checked: checked.includes(option) })
    return { input, label: h('label', { for: id, class: 'check' }, input, ` ${option}`) }
  })
  const row = h('fieldset', { class: 'field' }, h('legend', {}, legend), boxes.map((box) => box.label))
  return { row, values: () => boxes.filter((box) => box.input.checked).map((box) => box.input.value) }
}

/** "a, b ,c" → ["a","b","c"]; empty → []. */
export const list = (text: string): string[] => text.split(',').map((item) => item.trim()).filter(Boolean)

/**
 * A modal <dialog> (focus is kept inside, Escape closes it). `body` builds the
 * content given a close function; the dialog is removed from the page on close,
 * and focus goes back to where it was.
 */
export function openDialog(title: string, body: (close: () => void, titleId: string) => Child): HTMLDialogElement {
  const titleId = uid('dialog-title')
  const opener = document.activeElement as HTMLElement | null
  const dialog = h('dialog', { 'aria-labelledby': titleId })
  const close = () => dialog.close()
  dialog.addEventListener('close', () => {
    dialog.remove()
    opener?.focus()
  })
  replace(dialog, h('h2', { id: titleId }, title), body(close, titleId))
  document.body.appendChild(dialog)
  dialog.showModal()
  return dialog
}

/** Runs an action with its button disabled meanwhile, so it is not sent twice. */
export async function busy(button: HTMLButtonElement, work: () => Promise<void>): Promise<void> {
  button.disabled = true
  button.setAttribute('aria-busy', 'true')
  try {
    await work()
  } finally {
    button.disabled = false
    button.removeAttribute('aria-busy')
  }
}

/** The buttons that end a dialog: `buttons`, then Cancel. */
export const dialogButtons = (close: () => void, ...buttons: Child[]): HTMLElement =>
  h('div', { class: 'actions' }, buttons, h('button', { type: 'button', onclick: close }, 'Cancel'))

/** What a dialog's action does, and what the page says of it. */
export interface DialogAction {
  /** The request that makes the change. */
  send: () => Promise<unknown>
  /** Renders the panel again, once the dialog is closed. */
  reload: () => Promise<void>
  /** Announced once the change is made. */
  done: string
  /** What a failure says could not be done ("Could not <doing>: …"). */
  doing: string
  /** What a failure shows instead of the error itself (default: the error). */
  explain?: (error: unknown) => unknown
}

/**
 * Runs a dialog's action with `button` busy: sends the request, then closes the
 * dialog, renders the panel again and announces it; a failure is shown in the
 * dialog's `problem` (and the page's alert line), and the dialog stays open.
 */
export function dialogAction(button: HTMLButtonElement, close: () => void, problem: HTMLElement, action: DialogAction): Promise<void> {
  return busy(button, async () => {
    try {
      await action.send()
      close()
      await action.reload()
      announce(action.done)
    } catch (error) {
      fail(action.explain ? action.explain(error) : error, action.doing, problem)
    }
  })
}

/**
 * A dangerous action confirmed in a dialog: `text`, a danger button `confirm` that
 * runs it (dialogAction) and Cancel.
 */
export function confirmDanger(title: string, text: string, confirm: string, action: DialogAction): void {
  openDialog(title, (close) => {
    const problem = dialogAlert()
    const go = h('button', { type: 'button', class: 'danger' }, confirm)
    go.addEventListener('click', () => void dialogAction(go, close, problem, action))
    return [h('p', {}, text), problem, dialogButtons(close, go)]
  })
}
