import { Ajv } from 'ajv'
import { describe, expect, it } from 'vitest'
import { validatorOnFirstUse } from '../../src/http/compile-on-first-use.js'
import { keysetAnswer } from '../../src/schemas/index.js'
import { createHarness } from '../helpers/harness.js'

/**
 * Route schemas are compiled at a route's first call (src/http/compile-on-first-use.ts),
 * which must change nothing a caller sees: the same refusals, the same answers.
 */
describe('route schemas compiled at first use', () => {
  it('compiles nothing until the first validation, then once, and hands fastify the errors of each call', () => {
    const ajv = new Ajv()
    const compiled: object[] = []
    const compile = ajv.compile.bind(ajv)
    ajv.compile = ((schema: object) => (compiled.push(schema), compile(schema))) as Ajv['compile']
    const schema = { type: 'object', properties: { ttl: { type: 'integer', minimum: 1 } } }
    const validate = validatorOnFirstUse(ajv, schema)
    expect(compiled).toEqual([])

    expect(validate({ ttl: 0 })).toBe(false)
    expect(validate.errors?.[0]).toMatchObject({ instancePath: '/ttl', keyword: 'minimum' })
    expect(validate({ ttl: 5 })).toBe(true)
    expect(validate.errors).toBeNull()
    expect(validate({ ttl: 'x' })).toBe(false)
    expect(validate.errors?.[0]).toMatchObject({ instancePath: '/ttl', keyword: 'type' })
    expect(compiled).toEqual([schema])
  })

  it('refuses a bad body and answers through the route schema on a route called for the first time, in a new app', async () => {
    const h = await createHarness()
    try {
      const bad = await h.admin('POST', '/v1/admin/keysets', { name: 'x1', alg: 'ES256', maxTtl: 0 })
      expect(bad.statusCode).toBe(400)
      expect(bad.json()).toMatchObject({ code: 'invalid_request' })
      expect(bad.json().detail).toMatch(/^maxTtl /)
      const good = await h.admin('POST', '/v1/admin/keysets', { name: 'x1', alg: 'ES256' })
      expect(good.statusCode).toBe(201)
      expect(good.json()).toMatchObject({ name: 'x1', alg: 'ES256' })
      // Serialized by the route's own serializer: no member its answer schema does not name.
      const named = Object.keys(keysetAnswer.properties)
      expect(Object.keys(good.json()).filter((member) => !named.includes(member))).toEqual([])
    } finally {
      await h.close()
    }
  })
})
