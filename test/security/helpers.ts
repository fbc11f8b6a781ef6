import { expect } from 'vitest'
import type { Harness } from '../helpers/harness.js'

/** Everything stored, to show that a refused request changed nothing. */
export async function storedState(h: Harness): Promise<string> {
  const snapshot = await h.signet.storage.snapshot()
  const audit = await h.signet.storage.listAudit(0, 100_000)
  return JSON.stringify({ snapshot, audit: audit.length, last: audit.at(-1)?.hash ?? null })
}

export interface AnswerLike {
  statusCode: number
  headers: Record<string, unknown>
  body: string
}

/** Asserts a problem+json answer with `status` and `code`, and returns its body. */
export function expectProblem(response: AnswerLike, status: number, code: string): Record<string, unknown> {
  expect(response.statusCode, response.body.slice(0, 300)).toBe(status)
  expect(String(response.headers['content-type'])).toMatch(/^application\/problem\+json/)
  const body = JSON.parse(response.body)
  expect(body).toMatchObject({ status, code })
  for (const member of ['type', 'title', 'detail']) expect(typeof body[member]).toBe('string')
  return body
}

export const b64url = (value: unknown): string =>
  Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url')

