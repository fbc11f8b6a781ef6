import { Ajv, type ErrorObject, type Options } from 'ajv'
import addFormats from 'ajv-formats'
import type { Static, TSchema } from 'typebox'
import { batchItemError, InvalidRequest, type SignetError } from '../errors.js'

/**
 * The validators of the request schemas (src/schemas), shared by the HTTP routes
 * and the CLI, so both refuse the same input with the same words.
 *
 * Bodies are validated without type coercion, so "600" is not a ttl and 1.5 is not
 * an integer; query strings and path parameters arrive as text and are coerced.
 * `verbose` keeps the failing schema on each error, so the refusal can quote the
 * field's own `errorMessage`.
 */
const OPTIONS: Options = { useDefaults: true, removeAdditional: false, allErrors: false, strict: false, verbose: true }

function withFormats(ajv: Ajv): Ajv {
  addFormats.default(ajv)
  return ajv
}

export const bodyValidator = withFormats(new Ajv({ ...OPTIONS, coerceTypes: false }))
export const textValidator = withFormats(new Ajv({ ...OPTIONS, coerceTypes: true }))

/** Longest unknown member name quoted back in a refusal. */
const QUOTED = 64

/** `/identity/subject` as ["identity", "subject"] (JSON pointer, RFC 6901). */
const pointerSegments = (pointer: string): string[] =>
  pointer.split('/').slice(1).map((segment) => segment.replace(/~1/g, '/').replace(/~0/g, '~'))

const isIndex = (segment: string): boolean => /^\d+$/.test(segment)

/**
 * The refusal for the first error ajv found: `field message`, where field is the
 * member's path without list indexes (`identity.subject`, `subjects`) and message
 * is the schema's `errorMessage` when it has one (every limit does). A bad item of
 * a batch (`/items/N/...`) is named `item N:` and carries `index`.
 */
export function validationError(errors: readonly ErrorObject[] | null | undefined, where: string): SignetError {
  const error = errors?.[0]
  if (!error) return new InvalidRequest(`${where} is invalid`)
  let segments = pointerSegments(error.instancePath)
  let root = where
  let index: number | undefined
  if (where === 'body' && segments[0] === 'items' && isIndex(segments[1] ?? '')) {
    index = Number(segments[1])
    root = 'the item'
    segments = segments.slice(2)
  }
  const named = segments.filter((segment) => !isIndex(segment))
  const field = named.length === 0 ? root : named.join('.')
  const schema = (error.parentSchema ?? {}) as { errorMessage?: unknown; properties?: Record<string, unknown> }
  let message: string
  if (error.keyword === 'required') {
    const missing = String(error.params.missingProperty)
    message = `${named.length === 0 ? '' : `${field}.`}${missing} is required`
  } else if (error.keyword === 'additionalProperties') {
    const member = JSON.stringify(String(error.params.additionalProperty).slice(0, QUOTED))
    message = `${field} has an additional member ${member}: it may hold only ${Object.keys(schema.properties ?? {}).join(', ')}`
  } else {
    message = `${field} ${typeof schema.errorMessage === 'string' ? schema.errorMessage : (error.message ?? 'is invalid')}`
  }
  const refusal = new InvalidRequest(message)
  return index === undefined ? refusal : batchItemError(refusal, index)
}

/**
 * `value` checked against a request body schema, as the API checks it (defaults
 * filled in); else the InvalidRequest the API would answer. The CLI checks what it
 * is about to send or store with this.
 */
export function checkBody<T extends TSchema>(schema: T, value: unknown): Static<T> {
  // ajv keeps what it compiled per schema object: a second call costs a lookup.
  const validate = bodyValidator.compile(schema)
  if (!validate(value)) throw validationError(validate.errors, 'body')
  return value as Static<T>
}
