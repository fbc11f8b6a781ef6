#!/usr/bin/env node
'use strict'
// The `signet` command. Every signature is made on libuv's thread pool
// (src/crypto/jws.ts), so the pool gets one thread per core instead of libuv's 4,
// which on a 2-core machine made signing threads and the event loop fight for the
// cores (npm run bench). It must be set before the pool starts, and loading ES
// modules starts it, so this small CommonJS file does it first. An explicit
// UV_THREADPOOL_SIZE wins.
const { availableParallelism } = require('node:os')
process.env.UV_THREADPOOL_SIZE ??= String(Math.max(2, availableParallelism()))
// The young generation (semi-space), which Node 24 sizes from the machine's memory,
// grows to tens of MB under batch load; capped at 16 MB a process under batch load
// held about 240 MB instead of 300 MB, at no measured cost in throughput (README,
// Performance). Set before the CLI loads; an explicit --max-semi-space-size wins.
if (!process.execArgv.some((arg) => arg.startsWith('--max-semi-space-size')) && !/--max-semi-space-size/.test(process.env.NODE_OPTIONS ?? '')) {
  require('node:v8').setFlagsFromString('--max-semi-space-size=16')
}
import('../dist/cli/index.js')
