'use strict'
// What `signet serve` and `signet dev` run with, beside their own settings; bin/signet.cjs
// says why. On their own here so that the benchmarks (bench/lib/servers.ts) start their
// reference servers, and Signet under callgrind, with the same.
const { availableParallelism } = require('node:os')

/** V8's memory flags. */
const MEMORY_FLAGS = ['--max-semi-space-size=16', '--heap-growing-percent=50']

/** libuv's thread pool, which signs: one thread per core (at least 2) instead of libuv's 4. */
const THREAD_POOL_SIZE = String(Math.max(2, availableParallelism()))

module.exports = { MEMORY_FLAGS, THREAD_POOL_SIZE }
