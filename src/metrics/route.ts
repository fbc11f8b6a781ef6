import type { FastifyInstance } from 'fastify'
import type { SignetMetrics } from './registry.js'

/**
 * GET /metrics in the Prometheus text format. Registered on the internal listener
 * only (never on the public one); it needs no token, like most Prometheus
 * targets, so keep the internal listener off public networks (or behind mTLS).
 */
export async function metricsRoute(app: FastifyInstance, options: { metrics: SignetMetrics }): Promise<void> {
  const { metrics } = options
  app.get('/metrics', {
    schema: {
      tags: ['operations'],
      summary: 'Prometheus metrics',
      description: 'Counters, histograms and gauges in the Prometheus text exposition format (version 0.0.4). No authentication; internal listener only.',
      produces: ['text/plain'],
      response: { 200: { type: 'string', description: 'Prometheus text format' } },
    },
  }, async (_request, reply) => {
    const body = await metrics.exposition()
    return reply.type(metrics.contentType).send(body)
  })
}
