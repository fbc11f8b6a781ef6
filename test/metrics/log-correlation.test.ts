import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseTraceparent } from '../../src/metrics/log-correlation.js'
import { createHarness, type Harness } from '../helpers/harness.js'

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736'
const SPAN_ID = '00f067aa0ba902b7'
const TRACEPARENT = `00-${TRACE_ID}-${SPAN_ID}-01`

describe('parseTraceparent', () => {
  it('takes a well-formed W3C traceparent', () => {
    expect(parseTraceparent(TRACEPARENT)).toEqual({ traceparent: TRACEPARENT, traceId: TRACE_ID, spanId: SPAN_ID })
    // A later version may append fields; only the four known ones are kept.
    expect(parseTraceparent(`01-${TRACE_ID}-${SPAN_ID}-00-extra`)?.traceparent).toBe(`01-${TRACE_ID}-${SPAN_ID}-00`)
  })

  it('refuses malformed, forbidden and all-zero values', () => {
    for (const bad of [
      undefined, '', 'garbage', `00-${TRACE_ID}-${SPAN_ID}`, `00-${TRACE_ID.toUpperCase()}-${SPAN_ID}-01`,
      `ff-${TRACE_ID}-${SPAN_ID}-01`, `00-${'0'.repeat(32)}-${SPAN_ID}-01`, `00-${TRACE_ID}-${'0'.repeat(16)}-01`,
      `00-${TRACE_ID}-${SPAN_ID}-01-extra`, `00-${TRACE_ID}-${SPAN_ID}-01\n{"level":60}`, [TRACEPARENT, TRACEPARENT],
    ]) {
      expect(parseTraceparent(bad as string | undefined), String(bad)).toBeNull()
    }
  })
})

describe('request logs', () => {
  let h: Harness
  let token: string

  beforeAll(async () => {
    h = await createHarness()
    token = (await h.createClient()).token
  })
  afterAll(async () => {
    h.watch.assertClean()
    await h.close()
  })

  const linesOf = (requestId: string) => h.logs.lines.map((line) => JSON.parse(line)).filter((line) => line.reqId === requestId)

  it('carry the caller\'s traceparent on every line of its request, refusals included', async () => {
    const ok = await h.request('POST', '/v1/sign', { token, body: { claims: {} }, headers: { traceparent: TRACEPARENT, 'x-request-id': 'traced-ok' } })
    expect(ok.statusCode).toBe(200)
    const refused = await h.request('POST', '/v1/sign', { token, body: { claims: { exp: 1 } }, headers: { traceparent: TRACEPARENT, 'x-request-id': 'traced-refused' } })
    expect(refused.statusCode).toBe(400)

    const okLines = linesOf('traced-ok')
    const refusedLines = linesOf('traced-refused')
    expect(okLines.length).toBeGreaterThan(0)
    expect(refusedLines.length).toBeGreaterThan(1) // "request refused" and "request"
    for (const line of [...okLines, ...refusedLines]) {
      expect(line).toMatchObject({ traceparent: TRACEPARENT, traceId: TRACE_ID, spanId: SPAN_ID })
    }
  })

  it('carry nothing from a malformed traceparent, and nothing without one', async () => {
    const injected = `00-${TRACE_ID}-${SPAN_ID}-01","level":60,"x":"`
    await h.request('GET', '/healthz', { headers: { traceparent: injected, 'x-request-id': 'traced-bad' } })
    await h.request('GET', '/healthz', { headers: { 'x-request-id': 'untraced' } })
    for (const line of [...linesOf('traced-bad'), ...linesOf('untraced')]) {
      expect(line).not.toHaveProperty('traceparent')
      expect(line).not.toHaveProperty('traceId')
      expect(line.level).toBe(30)
    }
    expect(linesOf('traced-bad').length).toBeGreaterThan(0)
  })
})
