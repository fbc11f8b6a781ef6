import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SignetError } from '../../src/errors.js'
import { createClientBody, createIssuerBody, createKeysetBody, patchClientBody, signBatchBody } from '../../src/schemas/index.js'
import { checkBody } from '../../src/schemas/validate.js'
import { createHarness, type Harness } from '../helpers/harness.js'

/** What checkBody (the CLI's check) throws for `body`, as a problem's detail and extra members. */
function refusal(schema: Parameters<typeof checkBody>[0], body: unknown): { detail: string; index?: number } {
  try {
    checkBody(schema, body)
  } catch (error) {
    expect(error).toBeInstanceOf(SignetError)
    const signet = error as SignetError
    expect(signet.code).toBe('invalid_request')
    return { detail: signet.message, ...(signet.extra?.index === undefined ? {} : { index: signet.extra.index as number }) }
  }
  throw new Error(`accepted ${JSON.stringify(body)}`)
}

describe('one validator for the API and the CLI', () => {
  let h: Harness
  beforeAll(async () => {
    h = await createHarness()
  })
  afterAll(async () => {
    await h.close()
  })

  const client = { name: 'billing', keysets: ['default'], scopes: ['sign'] }
  const cases: [string, string, Parameters<typeof checkBody>[0], Record<string, unknown>, RegExp][] = [
    ['POST', '/v1/admin/clients', createClientBody, { ...client, name: 'x'.repeat(129) }, /^name must be a non-empty string of at most 128 characters$/],
    ['POST', '/v1/admin/clients', createClientBody, { ...client, name: '  ' }, /^name must be a non-empty string/],
    ['POST', '/v1/admin/clients', createClientBody, { ...client, keysets: ['Bad!'] }, /^keysets must be "\*" or a list of 1 to 100 keyset names$/],
    ['POST', '/v1/admin/clients', createClientBody, { ...client, keysets: ['a', '*'] }, /^keysets must be/],
    ['POST', '/v1/admin/clients', createClientBody, { ...client, subjects: ['x'.repeat(257)] }, /^subjects must be a list of 1 to 100 patterns of 1 to 256 characters/],
    ['POST', '/v1/admin/clients', createClientBody, { ...client, maxTtl: 0 }, /^maxTtl must be a whole number of seconds from 1 to 315360000$/],
    ['POST', '/v1/admin/clients', createClientBody, { ...client, identity: { issuer: 'k8s', subject: '*' } }, /^identity\.subject must be .*at least one literal character/],
    ['POST', '/v1/admin/clients', createClientBody, { ...client, identity: { issuer: 'k8s' } }, /^identity\.subject is required$/],
    ['POST', '/v1/admin/clients', createClientBody, { ...client, tokn: true }, /^body has an additional member "tokn": it may hold only name, keysets, /],
    ['PATCH', '/v1/admin/clients/any', patchClientBody, {}, /^body must give at least one of keysets, scopes, /],
    ['POST', '/v1/admin/keysets', createKeysetBody, { name: 'Bad Name' }, /^name must match \^\[a-z0-9\]\[a-z0-9_-\]\{0,62\}\$: /],
    ['POST', '/v1/admin/keysets', createKeysetBody, { name: 'ok', maxTtl: 0 }, /^maxTtl must be a whole number of seconds from 1 to/],
    ['POST', '/v1/admin/keysets', createKeysetBody, { name: 'ok', rsaBits: 1024 }, /^rsaBits must be 2048, 3072 or 4096$/],
    ['POST', '/v1/admin/issuers', createIssuerBody, { name: 'k8s', issuer: 'https://k8s', audiences: [], jwksUri: 'https://k8s/jwks' }, /^audiences must be a list of 1 to 100/],
    ['POST', '/v1/admin/issuers', createIssuerBody, { name: 'k8s', issuer: 'https://k8s', audiences: ['signet'], jwksUri: 'not a url' }, /^jwksUri must be an absolute URL of at most 2048 characters/],
  ]

  it.each(cases)('%s %s refuses %j with the message the CLI gives', async (method, path, schema, body, detail) => {
    const cli = refusal(schema, structuredClone(body))
    expect(cli.detail).toMatch(detail)
    const response = await h.request(method, path, { token: h.adminToken, body })
    expect(response.statusCode).toBe(400)
    expect(response.json()).toMatchObject({ code: 'invalid_request', detail: cli.detail })
  })

  it('names the failing item of a batch, with its index, as the handler does', async () => {
    const body = { items: [{ claims: {} }, { claims: {}, ttl: 0 }] }
    expect(refusal(signBatchBody, body)).toEqual({ detail: 'item 1: ttl must be a whole number of seconds, at least 1', index: 1 })
    const token = (await h.createClient({ scopes: ['sign'] })).token
    const response = await h.request('POST', '/v1/sign/batch', { token, body })
    expect(response.json()).toMatchObject({ code: 'invalid_request', index: 1, detail: 'item 1: ttl must be a whole number of seconds, at least 1' })
    expect(refusal(signBatchBody, { items: [{ claims: {} }, 'x'] })).toEqual({ detail: 'item 1: the item must be an object { "claims", "ttl"?, "header"? }', index: 1 })
  })

  it('accepts what the schema allows', () => {
    expect(checkBody(createClientBody, { ...client, keysets: ['*'] }).keysets).toEqual(['*'])
    expect(checkBody(createKeysetBody, { name: 'a-b_c9' }).name).toBe('a-b_c9')
  })
})

describe('the keyset-name rule', () => {
  it('is written once in src', () => {
    const files = (dir: string): string[] => readdirSync(dir, { withFileTypes: true })
      .flatMap((entry) => (entry.isDirectory() ? files(join(dir, entry.name)) : entry.name.endsWith('.ts') ? [join(dir, entry.name)] : []))
    const holders = files('src').filter((file) => readFileSync(file, 'utf8').includes('{0,62}'))
    expect(holders).toEqual([join('src', 'schemas', 'keyset-name.ts')])
  })
})
