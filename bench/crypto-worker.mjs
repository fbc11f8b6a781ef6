// One worker of the crypto-limit measurement: signs the same input in a loop for a
// fixed time with node:crypto, as Signet does, and reports how many signatures it
// made and in how long. It prepares its key first and waits for the word to start,
// so key parsing and thread start-up are not counted as signing time.
import { constants, createPrivateKey, sign } from 'node:crypto'
import { parentPort, workerData } from 'node:worker_threads'

const { pem, hash, pss, saltLength, input, durationMs } = workerData
const key = createPrivateKey(pem)
const data = Buffer.from(input)
const options = { key, dsaEncoding: 'ieee-p1363', ...(pss ? { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength } : {}) }
sign(hash, data, options)

parentPort.once('message', () => {
  const started = performance.now()
  const end = started + durationMs
  let count = 0
  while (performance.now() < end) {
    for (let i = 0; i < 20; i++) sign(hash, data, options)
    count += 20
  }
  parentPort.postMessage({ count, elapsedMs: performance.now() - started })
})
parentPort.postMessage('ready')
