import { compileErrors, validate } from '@readme/openapi-parser'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { POLICY_LIMITS } from '../../src/auth/claim-policy.js'
import { ISSUER_LIMITS } from '../../src/identity/issuer-policy.js'
import { MAX_SECONDS } from '../../src/keys/policy.js'
import { KEYSET_NAME_PATTERN } from '../../src/schemas/keyset-name.js'
import { VERIFICATION_CODES } from '../../src/signing/verification-codes.js'
import { createHarness, type Harness } from '../helpers/harness.js'

/**
 * Every route of docs/api.md: method, path (OpenAPI syntax), success status,
 * whether it takes a JSON body, and whether it takes a bearer token.
 */
const API_ROUTES: { method: string; path: string; success: string; body: boolean; auth: boolean }[] = [
  { method: 'get', path: '/.well-known/jwks.json', success: '200', body: false, auth: false },
  { method: 'get', path: '/keysets/{name}/jwks.json', success: '200', body: false, auth: false },
  { method: 'get', path: '/.well-known/openid-configuration', success: '200', body: false, auth: false },
  { method: 'get', path: '/keysets/{name}/.well-known/openid-configuration', success: '200', body: false, auth: false },
  { method: 'get', path: '/healthz', success: '200', body: false, auth: false },
  { method: 'get', path: '/readyz', success: '200', body: false, auth: false },
  { method: 'post', path: '/v1/sign', success: '200', body: true, auth: true },
  { method: 'post', path: '/v1/sign/batch', success: '200', body: true, auth: true },
  { method: 'post', path: '/v1/verify', success: '200', body: true, auth: true },
  { method: 'get', path: '/v1/admin/keysets', success: '200', body: false, auth: true },
  { method: 'post', path: '/v1/admin/keysets', success: '201', body: true, auth: true },
  { method: 'get', path: '/v1/admin/keysets/{name}', success: '200', body: false, auth: true },
  { method: 'patch', path: '/v1/admin/keysets/{name}', success: '200', body: true, auth: true },
  { method: 'get', path: '/v1/admin/keysets/{name}/keys', success: '200', body: false, auth: true },
  { method: 'post', path: '/v1/admin/keysets/{name}/rotate', success: '201', body: true, auth: true },
  { method: 'post', path: '/v1/admin/keys/{kid}/revoke', success: '200', body: true, auth: true },
  { method: 'post', path: '/v1/admin/keysets/{name}/import', success: '201', body: true, auth: true },
  { method: 'post', path: '/v1/admin/clients', success: '201', body: true, auth: true },
  { method: 'get', path: '/v1/admin/clients', success: '200', body: false, auth: true },
  { method: 'patch', path: '/v1/admin/clients/{id}', success: '200', body: true, auth: true },
  { method: 'delete', path: '/v1/admin/clients/{id}', success: '200', body: false, auth: true },
  { method: 'get', path: '/v1/admin/audit', success: '200', body: false, auth: true },
  { method: 'get', path: '/v1/admin/issuers', success: '200', body: false, auth: true },
  { method: 'post', path: '/v1/admin/issuers', success: '201', body: true, auth: true },
  { method: 'get', path: '/v1/admin/issuers/{name}', success: '200', body: false, auth: true },
  { method: 'patch', path: '/v1/admin/issuers/{name}', success: '200', body: true, auth: true },
  { method: 'delete', path: '/v1/admin/issuers/{name}', success: '200', body: false, auth: true },
  { method: 'get', path: '/v1/admin/audit/verify', success: '200', body: false, auth: true },
]

const PROBLEM_REF = '#/components/schemas/Problem'

const LIMIT_KEYWORDS = ['minLength', 'maxLength', 'minItems', 'maxItems', 'minimum', 'maximum', 'pattern', 'minProperties', 'enum']

/** Every schema node under `schema` with its path: properties, items and anyOf branches. */
function* schemaNodes(schema: Record<string, any>, path: string): Generator<[string, Record<string, any>]> {
  yield [path, schema]
  for (const [name, member] of Object.entries((schema.properties ?? {}) as Record<string, any>)) yield* schemaNodes(member, `${path}.${name}`)
  if (schema.items) yield* schemaNodes(schema.items, `${path}[]`)
  for (const [index, branch] of ((schema.anyOf ?? []) as Record<string, any>[]).entries()) yield* schemaNodes(branch, `${path}|${index}`)
}

describe('the OpenAPI document', () => {
  let h: Harness
  let document: Record<string, any>

  beforeAll(async () => {
    h = await createHarness()
    const response = await h.request('GET', '/openapi.json')
    expect(response.statusCode).toBe(200)
    expect(response.headers['content-type']).toMatch(/^application\/json/)
    document = response.json()
  })
  afterAll(async () => {
    h.watch.assertClean()
    await h.close()
  })

  it('is OpenAPI 3.1 and validates against the OpenAPI 3.1 schema', async () => {
    expect(document.openapi).toBe('3.1.0')
    const result = await validate(structuredClone(document))
    expect(result.valid, result.valid ? '' : compileErrors(result)).toBe(true)
    expect(result.specification).toBe('OpenAPI')
  })

  it('gives every operation a unique operationId, and names its server', () => {
    const ids = Object.values(document.paths as Record<string, Record<string, any>>).flatMap((item) => Object.values(item).map((operation) => operation.operationId))
    expect(ids.length).toBe(API_ROUTES.length + 1)
    for (const id of ids) expect(id).toMatch(/^[a-z][A-Za-z]+$/)
    expect(new Set(ids).size).toBe(ids.length)
    expect(document.paths['/v1/sign'].post.operationId).toBe('sign')
    expect(document.servers).toEqual([expect.objectContaining({ url: '/' })])
  })

  it('shows an example of every request body, which its own schema accepts', async () => {
    const { bodyValidator } = await import('../../src/schemas/validate.js')
    for (const route of API_ROUTES.filter((r) => r.body)) {
      const media = document.paths[route.path][route.method].requestBody.content['application/json']
      const name = `${route.method.toUpperCase()} ${route.path}`
      expect(media.example, name).toEqual(expect.any(Object))
      const { errorMessage: _e, ...schema } = media.schema
      expect(bodyValidator.validate(schema, structuredClone(media.example)), `${name}: ${JSON.stringify(bodyValidator.errors)}`).toBe(true)
    }
  })

  it('states every input limit, each with the message a refusal gives', () => {
    const bodies = Object.fromEntries(API_ROUTES.filter((r) => r.body).map((r) => [`${r.method.toUpperCase()} ${r.path}`, document.paths[r.path][r.method].requestBody.content['application/json'].schema]))
    const limits: Record<string, unknown> = {}
    for (const [route, schema] of Object.entries(bodies)) {
      for (const [path, node] of schemaNodes(schema, route)) {
        const own = LIMIT_KEYWORDS.filter((keyword) => keyword in node)
        if (own.length === 0) continue
        expect(node.errorMessage, `${path} (${own.join(', ')}) has a message`).toEqual(expect.any(String))
        limits[path] = Object.fromEntries(own.map((keyword) => [keyword, node[keyword]]))
      }
    }
    const sign = 'POST /v1/sign'
    expect(limits[`${sign}.ttl`]).toEqual({ minimum: 1 })
    expect(limits[`${sign}.claims.jti`]).toEqual({ minLength: 1, maxLength: 256 })
    expect(limits[`${sign}.header.typ`]).toEqual({ minLength: 1, maxLength: 128 })
    expect(limits['POST /v1/sign/batch.items']).toEqual({ minItems: 1, maxItems: 1000 })
    const keyset = 'POST /v1/admin/keysets'
    expect(limits[`${keyset}.name`]).toEqual({ pattern: KEYSET_NAME_PATTERN })
    for (const field of ['defaultTtl', 'maxTtl']) expect(limits[`${keyset}.${field}`]).toEqual({ minimum: 1, maximum: MAX_SECONDS })
    expect(limits[`${keyset}.rotationPeriod`]).toEqual({ minimum: 0, maximum: MAX_SECONDS })
    expect(limits[`${keyset}.issuer|0`]).toEqual({ minLength: 1, maxLength: 2048 })
    expect(limits['POST /v1/admin/keys/{kid}/revoke.reason']).toEqual({ minLength: 1, maxLength: 512 })
    const client = 'POST /v1/admin/clients'
    expect(limits[`${client}.name`]).toEqual({ minLength: 1, maxLength: 128, pattern: '\\S' })
    expect(limits[`${client}.keysets|0`]).toEqual({ minItems: 1, maxItems: 100 })
    expect(limits[`${client}.keysets|0[]`]).toEqual({ pattern: KEYSET_NAME_PATTERN })
    expect(limits[`${client}.identity|0.issuer`]).toEqual({ pattern: KEYSET_NAME_PATTERN })
    expect(limits[`${client}.identity|0.subject`]).toMatchObject({ minLength: 1, maxLength: 1024 })
    expect(limits[`${client}.maxTtl|0`]).toEqual({ minimum: 1, maximum: MAX_SECONDS })
    for (const field of ['audiences', 'subjects', 'requiredClaims'] as const) {
      expect(limits[`${client}.${field}|0`], field).toEqual({ minItems: 1, maxItems: POLICY_LIMITS[field].items })
      expect(limits[`${client}.${field}|0[]`], field).toEqual({ minLength: 1, maxLength: POLICY_LIMITS[field].length })
    }
    expect(limits['PATCH /v1/admin/clients/{id}']).toEqual({ minProperties: 1 })
    const issuer = 'POST /v1/admin/issuers'
    expect(limits[`${issuer}.name`]).toEqual({ pattern: KEYSET_NAME_PATTERN })
    expect(limits[`${issuer}.issuer`]).toMatchObject({ minLength: 1, maxLength: ISSUER_LIMITS.text })
    expect(limits[`${issuer}.audiences`]).toEqual({ minItems: 1, maxItems: ISSUER_LIMITS.audiences })
    expect(limits[`${issuer}.jwks|0.keys`]).toEqual({ minItems: 1, maxItems: ISSUER_LIMITS.keys })
    expect(limits[`${issuer}.maxTokenLifetime`]).toEqual({ minimum: 1, maximum: ISSUER_LIMITS.maxTokenLifetime })
    expect(limits[`${issuer}.caCertificate|0`]).toEqual({ maxLength: ISSUER_LIMITS.caCertificateBytes })

    const audit = (document.paths['/v1/admin/audit'].get.parameters as Record<string, any>[]).find((parameter) => parameter.name === 'limit')
    expect(audit.schema).toMatchObject({ minimum: 1, maximum: 1000, errorMessage: expect.any(String) })
  })

  it('names every verification code /v1/verify can answer, from the one list the client library shares', () => {
    const answer = document.paths['/v1/verify'].post.responses['200'].content['application/json'].schema
    const code = answer.properties.code
    expect(code.enum ?? code.anyOf?.map((choice: { const: string }) => choice.const)).toEqual([...VERIFICATION_CODES])
    for (const name of VERIFICATION_CODES) expect(code.description).toContain(name)
  })

  it('is checked by a validator that does refuse a broken document', async () => {
    const broken = structuredClone(document)
    broken.paths['/v1/sign'].post.responses['200'].content['application/json'].schema = { type: 'no-such-type' }
    delete broken.info
    expect((await validate(broken)).valid).toBe(false)
  })

  it('lists every route of docs/api.md with its request and answer schemas and problem+json errors', () => {
    for (const route of API_ROUTES) {
      const name = `${route.method.toUpperCase()} ${route.path}`
      const operation = document.paths[route.path]?.[route.method]
      expect(operation, name).toBeDefined()
      expect(operation.summary, name).toEqual(expect.any(String))
      expect(operation.tags, name).toHaveLength(1)

      if (route.body) {
        const body = operation.requestBody?.content?.['application/json']?.schema
        expect(body?.type, `${name} request body`).toBe('object')
        expect(Object.keys(body.properties ?? {}).length, `${name} request body members`).toBeGreaterThan(0)
      } else {
        expect(operation.requestBody, name).toBeUndefined()
      }

      const success = operation.responses[route.success]
      expect(success, `${name} ${route.success}`).toBeDefined()
      const media = Object.values(success.content ?? {}) as { schema?: Record<string, unknown> }[]
      expect(media.length, `${name} answer`).toBe(1)
      expect(media[0]!.schema?.type, `${name} answer schema`).toBe('object')

      const errors = Object.entries(operation.responses as Record<string, any>).filter(([status]) => Number(status) >= 400)
      if (route.path !== '/healthz') expect(errors.length, `${name} errors`).toBeGreaterThan(0)
      for (const [status, response] of errors) {
        expect(Object.keys(response.content), `${name} ${status}`).toEqual(['application/problem+json'])
        expect(response.content['application/problem+json'].schema.$ref, `${name} ${status}`).toBe(PROBLEM_REF)
      }
      if (route.auth) {
        expect(operation.security, name).toEqual([{ bearer: [] }])
        expect(operation.responses['401'], `${name} 401`).toBeDefined()
        expect(operation.responses['403'], `${name} 403`).toBeDefined()
      } else {
        expect(operation.security, name).toEqual([])
      }
    }
  })

  it('describes the sign contract, the problem body and the bearer scheme', () => {
    const sign = document.paths['/v1/sign'].post
    const body = sign.requestBody.content['application/json'].schema
    expect(body.required).toEqual(['claims'])
    expect(Object.keys(body.properties).sort()).toEqual(['claims', 'header', 'keyset', 'ttl'])
    expect(sign.responses['200'].content['application/json'].schema.required).toEqual(['token', 'kid', 'alg', 'keyset', 'iat', 'exp', 'jti'])
    for (const status of ['400', '401', '403', '404', '413', '429', '503']) expect(sign.responses[status], status).toBeDefined()

    const problem = document.components.schemas.Problem
    expect(problem.required).toEqual(['type', 'title', 'status', 'detail', 'code'])
    expect(document.components.securitySchemes.bearer).toMatchObject({ type: 'http', scheme: 'bearer' })

    const jwks = document.paths['/.well-known/jwks.json'].get
    expect(Object.keys(jwks.responses['200'].content)).toEqual(['application/jwk-set+json'])
    expect(jwks.responses['304']).toBeDefined()

    // Bodies that may be left out are not marked required.
    expect(document.paths['/v1/admin/keysets/{name}/rotate'].post.requestBody.required).toBe(false)
    expect(document.paths['/v1/admin/keysets'].post.requestBody.required).toBe(true)
  })

  it('documents the API routes and /metrics, and nothing else', () => {
    const documented = Object.entries(document.paths as Record<string, Record<string, unknown>>)
      .flatMap(([path, item]) => Object.keys(item).map((method) => `${method.toUpperCase()} ${path}`))
    // Every API route, plus /metrics, and nothing else (HEAD twins and /openapi.json, /docs are hidden).
    expect(documented.length).toBe(new Set(documented).size)
    expect(new Set(documented)).toEqual(new Set([...API_ROUTES.map((r) => `${r.method.toUpperCase()} ${r.path}`), 'GET /metrics']))
  })

  it('serves the interactive page at /docs, with its assets', async () => {
    const page = await h.request('GET', '/docs')
    expect(page.statusCode).toBe(200)
    expect(page.headers['content-type']).toMatch(/^text\/html/)
    expect(page.body).toContain('swagger-ui')
    const csp = String(page.headers['content-security-policy'])
    expect(csp).toContain("script-src 'self'")
    const css = await h.request('GET', '/docs/static/swagger-ui.css')
    expect(css.statusCode).toBe(200)
    const json = await h.request('GET', '/docs/json')
    expect(json.statusCode).toBe(200)
    expect(json.json().openapi).toBe('3.1.0')
  })
})
