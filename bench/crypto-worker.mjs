// One worker of the crypto-limit measurement: signs the same input in a loop for a
// fixed time with node:crypto, as Signet does, and reports how many signatures it
// made, in how long and with how much CPU time of its own thread (the CPU of the
// signature alone). It prepares its key first and waits for the word to start, so
// key parsing and thread start-up are not counted as signing time.
import { createPrivateKey, sign } from 'node:crypto'
import { parentPort, workerData } from 'node:worker_threads'

// signatureOptions: Signet's own for the algorithm (src/crypto/algorithms.ts), PSS padding included.
const { pem, hash, signatureOptions, input, durationMs } = workerData
const key = createPrivateKey(pem)
const data = Buffer.from(input)
const options = { key, ...signatureOptions }
sign(hash, data, options)

parentPort.once('message', () => {
  const cpuBefore = process.threadCpuUsage()
  const started = performance.now()
  const end = started + durationMs
  let count = 0
  while (performance.now() < end) {
    for (let i = 0; i < 20; i++) sign(hash, data, options)
    count += 20
  }
  const elapsedMs = performance.now() - started
  const cpu = process.threadCpuUsage(cpuBefore)
  parentPort.postMessage({ count, elapsedMs, cpuUs: cpu.user + cpu.system })
})
parentPort.postMessage('ready')
