import underPressure from '@fastify/under-pressure'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { Overloaded, type SignetError } from '../errors.js'

export interface LoadSheddingOptions {
  /** Requests being answered at once before new ones get 503 (SIGNET_MAX_IN_FLIGHT); 0 = no cap. */
  maxInFlight: number
  /** Mean event-loop delay in ms above which requests get 503 (SIGNET_MAX_EVENT_LOOP_DELAY_MS); 0 = off. */
  maxEventLoopDelayMs: number
}

/** Seconds a shed client is asked to wait (Retry-After). */
export const SHED_RETRY_AFTER_SECONDS = 1
/** Paths never shed: liveness must answer while the service is busy. */
const EXEMPT = new Set(['/healthz'])
/** How often the event-loop delay is sampled. */
const SAMPLE_INTERVAL_MS = 500

/** 503 `overloaded`: the request was refused before any work, so retrying later is safe. */
export function overloaded(detail: string): SignetError {
  return new Overloaded(detail, { retryAfter: SHED_RETRY_AFTER_SECONDS })
}

/**
 * Sheds load before any work is done (before authentication, body parsing or
 * signing), so an overloaded service answers a cheap 503 with Retry-After instead
 * of queueing until every client times out:
 *
 * - @fastify/under-pressure watches the event-loop delay; past the threshold,
 *   requests are refused until the next sample shows the loop has caught up;
 * - a cap on requests in flight bounds the work queued behind slow signers (RSA on
 *   the thread pool, an HSM) when many clients connect at once.
 *
 * `/healthz` is exempt from both: it proves the process is alive, busy or not.
 */
async function loadShedding(app: FastifyInstance, options: LoadSheddingOptions): Promise<void> {
  // From the raw path: fastify's routeOptions builds a new object on every read.
  const isExempt = (request: FastifyRequest) => {
    const query = request.url.indexOf('?')
    return EXEMPT.has(query < 0 ? request.url : request.url.slice(0, query))
  }

  if (options.maxEventLoopDelayMs > 0) {
    await app.register(underPressure, {
      maxEventLoopDelay: options.maxEventLoopDelayMs,
      sampleInterval: SAMPLE_INTERVAL_MS,
      // A rejected promise goes to the error handler: a problem+json 503 with Retry-After.
      // An infinite delay means no sample at all: one long block (a garbage collection,
      // a slow start-up) spanned the whole window. The loop is free again, so serve.
      pressureHandler: (request, _reply, _type, value) =>
        isExempt(request) || value === undefined || !Number.isFinite(value)
          ? undefined
          : Promise.reject(overloaded('the service is overloaded; retry shortly')),
    })
  }

  if (options.maxInFlight > 0) {
    const max = options.maxInFlight
    let inFlight = 0
    app.addHook('onRequest', (request, reply, done) => {
      if (isExempt(request)) return done()
      if (inFlight >= max) return done(overloaded('too many requests in progress; retry shortly'))
      inFlight++
      // 'close' comes once the answer is sent or the client went away, whichever is first;
      // 'finish' covers injected requests. Either releases the slot, once.
      let released = false
      const release = () => {
        if (released) return
        released = true
        inFlight--
      }
      reply.raw.once('close', release)
      reply.raw.once('finish', release)
      done()
    })
  }
}

export const loadSheddingPlugin = fp(loadShedding, { name: 'signet-load-shedding', fastify: '5.x' })
