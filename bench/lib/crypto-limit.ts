import { availableParallelism } from 'node:os'
import { Worker } from 'node:worker_threads'
import { algSpec, signatureOptions, type Alg } from '../../src/crypto/algorithms.js'
import { generateKeyPair } from '../../src/crypto/keygen.js'

/**
 * The crypto limit of this machine: signatures per second of `alg` over the same
 * signing input with node:crypto on every core at once (one worker per core),
 * with no HTTP and no JSON. Every worker is started and has its key ready before
 * any begins, and each times its own loop, so start-up does not lower the limit.
 * Also the CPU time of one signature (µs), from each worker's own thread CPU time:
 * the cost of the signature alone, against which a server's CPU per token is set.
 * With `threads` below the core count, what one signature costs when fewer cores work.
 */
export async function cryptoLimit(alg: Alg, signingInput: string, durationMs: number, threads = availableParallelism()): Promise<{ perSecond: number; cpuUsPerSignature: number }> {
  const spec = algSpec(alg)
  const { privateKey } = await generateKeyPair(alg, 2048)
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' })
  const workers = Array.from({ length: threads }, () => new Worker(new URL('../crypto-worker.mjs', import.meta.url), {
    workerData: { pem, hash: spec.hash, signatureOptions: signatureOptions(alg), input: signingInput, durationMs },
  }))
  const next = (worker: Worker) => new Promise<unknown>((resolve, reject) => {
    worker.once('message', resolve)
    worker.once('error', reject)
  })
  try {
    await Promise.all(workers.map(next))
    const results = await Promise.all(workers.map((worker) => {
      const done = next(worker)
      worker.postMessage('go')
      return done as Promise<{ count: number; elapsedMs: number; cpuUs: number }>
    }))
    return {
      perSecond: results.reduce((sum, r) => sum + r.count / (r.elapsedMs / 1000), 0),
      cpuUsPerSignature: results.reduce((sum, r) => sum + r.cpuUs, 0) / results.reduce((sum, r) => sum + r.count, 0),
    }
  } finally {
    await Promise.all(workers.map((worker) => worker.terminate()))
  }
}
