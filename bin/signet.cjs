#!/usr/bin/env node
'use strict'
// The `signet` command. Every signature is made on libuv's thread pool
// (src/crypto/jws.ts), so the pool gets one thread per core instead of libuv's 4,
// which on a 2-core machine made signing threads and the event loop fight for the
// cores (npm run bench). It must be set before the pool starts, and loading ES
// modules starts it, so this small CommonJS file does it first. An explicit
// UV_THREADPOOL_SIZE wins.
const { MEMORY_FLAGS, THREAD_POOL_SIZE } = require('./serving-defaults.cjs')
process.env.UV_THREADPOOL_SIZE ??= THREAD_POOL_SIZE
// Two V8 heap limits hold the resident memory of a serving process down under batch
// load (README, Performance):
// - the young generation (semi-space), which Node 24 sizes from the machine's memory
//   (64 MB a semi-space on 24 GiB), grows under batch load and stays resident; at
//   16 MB a semi-space a batch load cost 4% less CPU per token than at 8 MB, for
//   5 MB more RSS (at 32 MB, 30 MB more);
// - the old generation may grow to up to 4 times what is live after a full GC. A
//   batch's objects outlive a few young collections, are promoted and die there:
//   a 91 MB heap for 28 MB live. A fixed growth of 1.5 times kept the peak RSS of a
//   batch load at 144-159 MB instead of 203-225 MB, at the same CPU per token.
// V8 reads --max-semi-space-size only when the heap is set up, so setting it from
// here at run time does nothing (measured: new space stayed at 128 MB). The serving
// commands therefore re-exec this same process (same pid, no child) with the flags,
// once, leaving out any that the command line or NODE_OPTIONS already names (Node
// allows --max-semi-space-size in NODE_OPTIONS, not --heap-growing-percent).
// Not when a parent talks to this process over an IPC channel (a supervisor's
// fork()): execve would close it. Not under Node's permission model without
// --allow-child-process, which refuses execve: the process then runs as it is.
// Cluster workers (SIGNET_WORKERS) inherit the flags with the primary's execArgv.
const serving = ['serve', 'dev'].includes(process.argv[2])
const named = (flag) => {
  const name = flag.slice(0, flag.indexOf('='))
  return process.execArgv.some((arg) => arg.startsWith(name)) || (process.env.NODE_OPTIONS ?? '').includes(name)
}
const missing = MEMORY_FLAGS.filter((flag) => !named(flag))
const canReexec = typeof process.execve === 'function' && typeof process.send !== 'function' && process.permission?.has('child') !== false
if (serving && missing.length > 0 && canReexec) {
  process.execve(process.execPath, [process.execPath, ...missing, ...process.execArgv, __filename, ...process.argv.slice(2)], process.env)
}
import('../dist/cli/index.js')
