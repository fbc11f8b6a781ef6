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
import('../dist/cli/index.js')
