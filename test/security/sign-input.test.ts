import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { MAX_JSON_DEPTH, findJsonHazard } from '../../src/http/json.js'
import { MAX_CLAIMS_BYTES } from '../../src/signing/issue.js'
import { createHarness, type Harness } from '../helpers/harness.js'
import { decodeToken } from '../helpers/tokens.js'
import { expectProblem, storedState } from './helpers.js'

/** Properties an attack might have planted on shared prototypes. */
function prototypesAreClean(): boolean {
  const probes = [{}, [], Object.create(Object.prototype)] as Record<string, unknown>[]
  for (const probe of probes) {
    for (const name of ['polluted', 'isAdmin', 'x', 'admin']) if (probe[name] !== undefined) return false
  }
  return Object.getOwnPropertyNames(Object.prototype).every((name) => typeof Object.getOwnPropertyDescriptor(Object.prototype, name)?.value !== 'boolean')
}

/**
 * /v1/sign against hostile input: every refusal is a 4xx problem, changes nothing
 * in storage (the snapshot and the audit log are compared byte for byte) and
 * leaves the service up.
 */
describe('hostile input to /v1/sign', () => {
  let h: Harness
  let signer: string
  let before: string

  beforeAll(async () => {
    h = await createHarness()
    signer = (await h.createClient({ scopes: ['sign', 'verify'] })).token
    before = await storedState(h)
  })
  afterEach(async () => {
    expect(await storedState(h), 'storage changed').toBe(before)
    expect(prototypesAreClean(), 'a prototype was changed').toBe(true)
    expect((await h.request('GET', '/healthz')).statusCode).toBe(200)
  })
  afterAll(async () => {
    await h.watchPrivateKeys()
    h.watch.assertClean()
    await h.close()
  })

  const sign = (body: unknown) => h.request('POST', '/v1/sign', { token: signer, body })
  const signRaw = (payload: string | Buffer, contentType = 'application/json') =>
    h.request('POST', '/v1/sign', { token: signer, payload, headers: { 'content-type': contentType } })

  it.each(['alg', 'kid', 'jwk', 'jku', 'x5u', 'x5c', 'x5t', 'crit', 'b64', 'zip', 'typ2'])('refuses a header that sets %s', async (member) => {
    const value = member === 'crit' ? ['exp'] : member === 'jwk' ? { kty: 'oct', k: 'AAAA' } : member === 'b64' ? false : 'attacker'
    expectProblem(await sign({ claims: {}, header: { [member]: value } }), 400, 'invalid_request')
    expectProblem(await sign({ claims: {}, header: { typ: 'JWT', [member]: value } }), 400, 'invalid_request')
  })

  it('refuses claims over 16 KiB serialised, counting bytes, not characters', async () => {
    // {"pad":"..."} is 10 bytes of framing; "é" is two bytes in UTF-8.
    const fits = { pad: 'x'.repeat(MAX_CLAIMS_BYTES - 10) }
    expect(Buffer.byteLength(JSON.stringify(fits))).toBe(MAX_CLAIMS_BYTES)
    const signed = await sign({ claims: fits })
    expect(signed.statusCode).toBe(200)
    expectProblem(await sign({ claims: { pad: 'x'.repeat(MAX_CLAIMS_BYTES - 9) } }), 413, 'payload_too_large')
    expectProblem(await sign({ claims: { pad: 'é'.repeat((MAX_CLAIMS_BYTES - 10) / 2 + 1) } }), 413, 'payload_too_large')
  })

  it('refuses claims nested 10,000 levels deep, as objects and as arrays, and anything past the depth limit', async () => {
    const depth = 10_000
    const objects = `{"claims":${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}}`
    expect(Buffer.byteLength(objects)).toBeLessThan(64 * 1024) // refused for its depth, not its size
    expectProblem(await signRaw(objects), 400, 'invalid_request')
    expectProblem(await signRaw(`{"claims":{"a":${'['.repeat(depth)}${']'.repeat(depth)}}}`), 400, 'invalid_request')
    // Just past the limit, well under every size limit.
    const past = MAX_JSON_DEPTH - 1
    expectProblem(await signRaw(`{"claims":{"a":${'['.repeat(past)}${']'.repeat(past)}}}`), 400, 'invalid_request')
    // Within it, nesting passes through into the token.
    const within = MAX_JSON_DEPTH - 3
    const ok = await signRaw(`{"claims":{"a":${'['.repeat(within)}${']'.repeat(within)}}}`)
    expect(ok.statusCode, ok.body).toBe(200)
  })

  it('refuses __proto__ claims anywhere, spelled plainly or with escapes, and changes no prototype', async () => {
    for (const payload of [
      '{"claims":{"__proto__":{"isAdmin":true}}}',
      '{"claims":{"a":{"b":{"__proto__":{"polluted":true}}}}}',
      '{"claims":{"\\u005f_proto__":{"polluted":true}}}',
      '{"claims":{},"__proto__":{"polluted":true}}',
      '{"claims":{},"header":{"__proto__":{"alg":"none"}}}',
      '{"claims":{"constructor":{"prototype":{"polluted":true}}}}',
    ]) {
      const response = await signRaw(payload)
      expectProblem(response, 400, 'invalid_request')
      expect(response.json().detail, payload).toBe('the body may not hold a member named __proto__, nor constructor.prototype')
    }
  })

  it('passes constructor and other Object.prototype names through as plain data', async () => {
    const claims = { constructor: 'c', toString: 't', hasOwnProperty: 1, valueOf: [1], prototype: { x: 1 } }
    const response = await sign({ claims })
    expect(response.statusCode, response.body).toBe(200)
    expect(decodeToken(response.json().token).payload).toMatchObject(claims)
  })

  it.each([
    ['1e400 in claims', '{"claims":{"n":1e400}}'],
    ['-1e400 in claims', '{"claims":{"n":-1e400}}'],
    ['1e400 deep in claims', '{"claims":{"a":[1,{"b":[2e400]}]}}'],
    ['ttl 1e400', '{"claims":{},"ttl":1e400}'],
    ['1e-400 in claims, which would become 0', '{"claims":{"n":1e-400}}'],
    ['-0.5e-330 deep in claims', '{"claims":{"a":[{"b":-0.5e-330}]}}'],
  ])('refuses a number that does not fit a double: %s', async (_label, payload) => {
    expectProblem(await signRaw(payload), 400, 'invalid_request')
  })

  it('keeps fractions and integers up to +/-(2^53-1) exactly as sent', async () => {
    const response = await signRaw('{"claims":{"max":9007199254740991,"min":-9007199254740991,"small":-1e-300,"n":12.5,"id":"12345678901234567890","zeros":[0,0.0,0e400,-0.00e-999]}}')
    expect(response.statusCode, response.body).toBe(200)
    expect(decodeToken(response.json().token).payload).toMatchObject({ max: 9007199254740991, min: -9007199254740991, small: -1e-300, n: 12.5, id: '12345678901234567890', zeros: [0, 0, 0, 0] })
  })

  // JSON.parse turns 9007199254740993 into ...992: signing it would put another number in the token.
  it.each([
    ['2^53 + 1', '{"claims":{"id":9007199254740993}}', 'claims.id'],
    ['-2^53', '{"claims":{"a":[1,{"b":-9007199254740992}]}}', 'claims.a[1].b'],
    ['a 20-digit id', '{"claims":{"org":{"ids":[12345678901234567890]}}}', 'claims.org.ids[0]'],
    ['1e21', '{"claims":{"x":1e21}}', 'claims.x'],
    ['1e308', '{"claims":{"big":1e308}}', 'claims.big'],
  ])('refuses an integer beyond +/-(2^53-1) in claims (%s), naming where it is', async (_label, payload, path) => {
    const body = expectProblem(await signRaw(payload), 400, 'invalid_request')
    expect(body.detail).toBe(`${path} is an integer beyond +/-(2^53-1), which a JSON number cannot carry exactly: send it as a string`)
  })

  it('refuses such an integer in any item of a batch, naming the item, and signs none', async () => {
    const payload = '{"items":[{"claims":{"n":1}},{"claims":{"deep":{"n":[9007199254740993]}}}]}'
    const response = await h.request('POST', '/v1/sign/batch', { token: signer, payload, headers: { 'content-type': 'application/json' } })
    const body = expectProblem(response, 400, 'invalid_request')
    expect(body).toMatchObject({ index: 1, detail: 'item 1: claims.deep.n[0] is an integer beyond +/-(2^53-1), which a JSON number cannot carry exactly: send it as a string' })
  })

  it.each([
    ['"600"', '"600"', 'invalid_request'],
    ['1.5', '1.5', 'invalid_request'],
    ['-1', '-1', 'invalid_request'],
    ['0', '0', 'invalid_request'],
    ['2^53', String(2 ** 53), 'ttl_too_long'],
    ['null', 'null', 'invalid_request'],
    ['true', 'true', 'invalid_request'],
    ['[600]', '[600]', 'invalid_request'],
  ])('refuses ttl %s', async (_label, ttl, code) => {
    expectProblem(await signRaw(`{"claims":{},"ttl":${ttl}}`), 400, code)
  })

  it.each([
    ['a repeated claim', '{"claims":{"sub":"alice","sub":"admin"}}'],
    ['a repeated claim spelled with an escape', '{"claims":{"sub":"alice","\\u0073ub":"admin"}}'],
    ['a repeated top-level member', '{"claims":{"sub":"alice"},"claims":{"sub":"admin"}}'],
    ['a repeated ttl', '{"claims":{},"ttl":60,"ttl":3600}'],
    ['a repeated header member', '{"claims":{},"header":{"typ":"JWT","typ":"at+jwt"}}'],
    ['a repeat deep inside', '{"claims":{"a":[{"b":1,"c":{"d":1,"d":2}}]}}'],
  ])('refuses duplicate JSON keys: %s', async (_label, payload) => {
    expectProblem(await signRaw(payload), 400, 'invalid_request')
  })

  it.each([
    ['NUL in a claim value', '{"claims":{"sub":"admin\\u0000.evil.example"}}'],
    ['NUL in a claim name', '{"claims":{"a\\u0000":1}}'],
    ['a lone high surrogate', '{"claims":{"sub":"\\ud800"}}'],
    ['a lone low surrogate', '{"claims":{"sub":"x\\udc00y"}}'],
    ['reversed surrogates', '{"claims":{"sub":"\\udc00\\ud800"}}'],
  ])('refuses %s', async (_label, payload) => {
    expectProblem(await signRaw(payload), 400, 'invalid_request')
  })

  it('accepts escaped characters that are whole: a surrogate pair, an escaped quote, a literal backslash-u', async () => {
    const response = await signRaw('{"claims":{"emoji":"\\ud83d\\udd11","quote":"a\\"b","text":"\\\\u0000"}}')
    expect(response.statusCode, response.body).toBe(200)
    expect(decodeToken(response.json().token).payload).toMatchObject({ emoji: '🔑', quote: 'a"b', text: '\\u0000' })
  })

  it('accepts the same name in different objects', async () => {
    const response = await signRaw('{"claims":{"a":{"x":1},"b":{"x":2},"c":[{"x":3},{"x":4}]}}')
    expect(response.statusCode, response.body).toBe(200)
  })

  it.each([
    ['a lone 0xff byte', Buffer.from([0xff])],
    ['an overlong "/" (0xc0 0xaf)', Buffer.from([0xc0, 0xaf])],
    ['an encoded surrogate (0xed 0xa0 0x80)', Buffer.from([0xed, 0xa0, 0x80])],
    ['a truncated sequence', Buffer.from([0xe2, 0x82])],
    ['a code point past U+10FFFF', Buffer.from([0xf4, 0x90, 0x80, 0x80])],
  ])('refuses invalid UTF-8: %s', async (_label, bytes) => {
    const payload = Buffer.concat([Buffer.from('{"claims":{"sub":"'), bytes, Buffer.from('"}}')])
    expectProblem(await signRaw(payload), 400, 'invalid_request')
  })

  it.each(['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/xml', 'application/octet-stream', 'text/json'])(
    'refuses a body of type %s with 415',
    async (contentType) => {
      expectProblem(await signRaw('{"claims":{}}', contentType), 415, 'unsupported_media_type')
    },
  )

  it.each(['application/json; charset=latin1', 'application/json;charset="ISO-8859-1"', 'application/json; charset=utf-16'])('refuses a JSON body declared in another charset than UTF-8 (%s) with 415', async (contentType) => {
    expectProblem(await signRaw('{"claims":{}}', contentType), 415, 'unsupported_media_type')
  })

  it.each(['application/json; charset=utf-8', 'application/json;charset=UTF-8', 'application/json; charset="utf8"', 'application/json'])('accepts a JSON body declared as %s', async (contentType) => {
    expect((await signRaw('{"claims":{}}', contentType)).statusCode).toBe(200)
  })

  it('applies the same parser to /v1/verify and /v1/sign/batch', async () => {
    const verify = await h.request('POST', '/v1/verify', { token: signer, payload: '{"token":"a.b.c","token":"x.y.z"}', headers: { 'content-type': 'application/json' } })
    expectProblem(verify, 400, 'invalid_request')
    const batch = await h.request('POST', '/v1/sign/batch', { token: signer, payload: '{"items":[{"claims":{"n":1e999}}]}', headers: { 'content-type': 'application/json' } })
    expectProblem(batch, 400, 'invalid_request')
  })
})

describe('findJsonHazard', () => {
  it('finds nothing in ordinary JSON, including names that only look alike', () => {
    for (const text of ['{}', '[]', '"a"', '1', '{"a":1,"b":{"a":2},"c":[{"a":3}]}', '{"a\\"b":1,"a":2}', '{"x":"{\\"x\\":1,\\"x\\":2}"}', '{"a":-0.5e-3,"b":[1,2,3]}']) {
      expect(findJsonHazard(text), text).toBeNull()
    }
  })

  it('names duplicates, numbers out of range and depth', () => {
    expect(findJsonHazard('{"a":1,"a":2}')).toMatch(/twice/)
    expect(findJsonHazard('{"a":1,"\\u0061":2}')).toMatch(/twice/)
    expect(findJsonHazard('[1e400]')).toMatch(/too large/)
    expect(findJsonHazard('[1e-400]')).toMatch(/too small/)
    expect(findJsonHazard('[5E-324,0e-400,-0.0]')).toBeNull()
    expect(findJsonHazard('['.repeat(MAX_JSON_DEPTH + 1) + ']'.repeat(MAX_JSON_DEPTH + 1))).toMatch(/deeper/)
    expect(findJsonHazard('['.repeat(MAX_JSON_DEPTH) + ']'.repeat(MAX_JSON_DEPTH))).toBeNull()
  })
})
