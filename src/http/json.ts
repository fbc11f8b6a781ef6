import type { FastifyInstance } from 'fastify'
import { InvalidRequest, UnsupportedMediaType } from '../errors.js'

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false })

/**
 * Deepest nesting of objects and arrays a body may have. Real claims nest a few
 * levels; a cap keeps every later recursive step (serialising, signing, logging)
 * far from the stack limit.
 */
export const MAX_JSON_DEPTH = 64

/** Half of a UTF-16 surrogate pair without its other half. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

/**
 * Checks what JSON.parse lets through silently, on text that already parsed:
 *
 * - a member name repeated in one object: JSON.parse keeps the last value, and two
 *   parsers may disagree on which one a token means, so it is refused;
 * - a number that does not fit a double (`1e400` becomes Infinity, then `null`
 *   once signed; `1e-400` becomes 0): the signed token would not say what the
 *   caller sent;
 * - nesting deeper than MAX_JSON_DEPTH;
 * - a string (name or value) holding NUL, or half of a surrogate pair: `\u0000`
 *   truncates a claim in C-string consumers ("admin\u0000.evil"), some storage
 *   cannot hold it, and a lone surrogate has no UTF-8 form, so either would be
 *   altered or refused somewhere after it was accepted here.
 *
 * One linear pass with an explicit stack, so a hostile body costs O(length).
 * Returns the reason to refuse, or null.
 */
export function findJsonHazard(text: string): string | null {
  // One frame per open object or array: the member names seen (objects only) and
  // whether the next string in that object is a member name.
  const stack: { names: Set<string> | null; expectName: boolean }[] = []
  const length = text.length
  let i = 0
  while (i < length) {
    const char = text.charCodeAt(i)
    if (char === 0x22 /* " */) {
      const start = i
      i++
      let escaped = false
      while (i < length) {
        const c = text.charCodeAt(i)
        if (c === 0x5c /* \ */) {
          escaped = true
          i += 2
          continue
        }
        if (c === 0x22) break
        i++
      }
      i++ // past the closing quote
      // Raw text decoded from UTF-8 cannot hold NUL or a lone surrogate; only escapes can.
      const decoded = escaped ? (JSON.parse(text.slice(start, i)) as string) : null
      if (decoded !== null && (decoded.includes('\u0000') || LONE_SURROGATE.test(decoded))) {
        return 'a string in the body holds NUL or an unpaired surrogate'
      }
      const top = stack[stack.length - 1]
      if (top?.names && top.expectName) {
        // "\u0061" and "a" are the same name.
        const name = decoded ?? text.slice(start + 1, i - 1)
        if (top.names.has(name)) return `the member ${JSON.stringify(name.slice(0, 32))} appears twice in one object`
        top.names.add(name)
        top.expectName = false
      }
      continue
    }
    if (char === 0x7b /* { */ || char === 0x5b /* [ */) {
      if (stack.length >= MAX_JSON_DEPTH) return `the body nests deeper than ${MAX_JSON_DEPTH} levels`
      stack.push({ names: char === 0x7b ? new Set() : null, expectName: char === 0x7b })
      i++
      continue
    }
    if (char === 0x7d /* } */ || char === 0x5d /* ] */) {
      stack.pop()
      i++
      continue
    }
    if (char === 0x2c /* , */) {
      const top = stack[stack.length - 1]
      if (top?.names) top.expectName = true
      i++
      continue
    }
    if (char === 0x2d /* - */ || (char >= 0x30 && char <= 0x39)) {
      const start = i
      while (i < length && /[-+.eE0-9]/.test(text[i]!)) i++
      const literal = text.slice(start, i)
      const value = Number(literal)
      if (!Number.isFinite(value)) return 'a number in the body is too large to represent'
      // 1e-400 parses as 0: a digit other than 0 before the exponent means it was not 0.
      if (value === 0 && /[1-9]/.test(literal.split(/[eE]/)[0]!)) return 'a number in the body is too small to represent: it would become 0'
      continue
    }
    i++ // whitespace, colons, true, false, null
  }
  return null
}

/**
 * The JSON body parser: the bytes must be valid UTF-8 (a lenient decoder would turn
 * bad bytes into U+FFFD and sign something the caller never sent), then fastify's
 * own parser (secure-json-parse) refuses `__proto__` and `constructor.prototype`
 * keys instead of letting them near object prototypes, and findJsonHazard refuses
 * duplicate member names, numbers out of range and deep nesting.
 */
export function installJsonParser(app: FastifyInstance): void {
  const parseJson = app.getDefaultJsonParser('error', 'error')
  app.removeContentTypeParser('application/json')
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
    // No body at all is no body, as without a Content-Type: routes whose body is
    // optional (rotate, revoke) take it, the others refuse it through their schema.
    if ((body as Buffer).length === 0) {
      done(null, undefined)
      return
    }
    if (!declaresUtf8OrNothing(request.headers['content-type'])) {
      done(new UnsupportedMediaType('JSON bodies must be UTF-8: send charset=utf-8 or no charset'), undefined)
      return
    }
    let text: string
    try {
      text = utf8.decode(body as Buffer)
    } catch {
      done(new InvalidRequest('the body is not valid UTF-8'), undefined)
      return
    }
    parseJson(request, text, (error, value) => {
      if (error) {
        // fastify's parser gives one error for both; only prototype poisoning leaves JSON.parse content.
        done(parsesAsJson(text) ? new InvalidRequest('the body may not hold a member named __proto__, nor constructor.prototype') : error, undefined)
        return
      }
      const hazard = findJsonHazard(text)
      if (hazard) done(new InvalidRequest(hazard), undefined)
      else done(null, value)
    })
  })
}

/** A charset parameter, if any, with its value (quoted or not): RFC 8259 section 8.1 allows only UTF-8. */
const CHARSET = /;\s*charset\s*=\s*"?([^";\s]*)"?/i
function declaresUtf8OrNothing(contentType: string | undefined): boolean {
  // Every sign request passes here: a type without parameters needs no regex.
  if (contentType === undefined || !contentType.includes(';')) return true
  const charset = CHARSET.exec(contentType)?.[1]
  return charset === undefined || /^utf-?8$/i.test(charset)
}

function parsesAsJson(text: string): boolean {
  try {
    JSON.parse(text)
    return true
  } catch {
    return false
  }
}
