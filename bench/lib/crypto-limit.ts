import { availableParallelism } from 'node:os'
import { Worker } from 'node:worker_threads'
import { algSpec, hashLength, type Alg } from '../../src/crypto/algorithms.js'
import { generateKeyPair } from '../../src/crypto/keygen.js'

/**
 * The crypto limit of this machine: signatures per second of `alg` over the same
 * signing input with node:crypto on every core at once (one worker per core),
 * with no HTTP and no JSON.
 */
export async function cryptoLimit(alg: Alg, signingInput: string, durationMs: number): Promise<{ perSecond: number; threads: number }> {
  const spec = algSpec(alg)
  const { privateKey } = await generateKeyPair(alg, 2048)
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' })
  const threads = availableParallelism()
  const started = Date.now()
  const counts = await Promise.all(
    Array.from({ length: threads }, () =>
      new Promise<number>((resolve, reject) => {
        const worker = new Worker(new URL('../crypto-worker.mjs', import.meta.url), {
          workerData: { pem, hash: spec.hash, pss: spec.pss, saltLength: spec.hash ? hashLength(spec.hash) : 0, input: signingInput, durationMs },
        })
        worker.once('message', resolve)
        worker.once('error', reject)
      }),
    ),
  )
  const elapsed = (Date.now() - started) / 1000
  return { perSecond: counts.reduce((a, b) => a + b, 0) / elapsed, threads }
}
