/**
 * Another process for the storage contract: opens the storage the JSON config in
 * argv[2] names (as the CLI would, through openStorage) and runs argv[3]
 * read-modify-write increments of the meta counter `counter`, each also auditing
 * the value it read. `node --import tsx increment-worker.ts '<config>' <count>`
 */
import { openStorage, type StorageConfig } from '../../src/storage/open.js'
import { increment } from './increment.js'

const config = JSON.parse(process.argv[2]!) as StorageConfig
const count = Number(process.argv[3])
const storage = await openStorage(config)
try {
  for (let i = 0; i < count; i++) await increment(storage, `process ${process.pid}`)
} finally {
  await storage.close()
}
