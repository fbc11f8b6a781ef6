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
// The young generation (semi-space), which Node 24 sizes from the machine's memory
// (64 MB a semi-space on 24 GiB), grows under batch load and stays resident. V8
// reads --max-semi-space-size only when the heap is set up, so setting it from here
// at run time does nothing (measured: new space stayed at 128 MB). The serving
// commands therefore re-exec this same process (same pid, no child) with the flag,
// once, unless it or NODE_OPTIONS already names one. README, Performance.
// Not when a parent talks to this process over an IPC channel (a supervisor's
// fork()): execve would close it. Not under Node's permission model without
// --allow-child-process, which refuses execve: the process then runs as it is.
const SEMI_SPACE_FLAG = '--max-semi-space-size=8'
const serving = ['serve', 'dev'].includes(process.argv[2])
const semiSpaceGiven = process.execArgv.some((arg) => arg.startsWith('--max-semi-space-size')) || /--max-semi-space-size/.test(process.env.NODE_OPTIONS ?? '')
const canReexec = typeof process.execve === 'function' && typeof process.send !== 'function' && process.permission?.has('child') !== false
if (serving && !semiSpaceGiven && canReexec) {
  process.execve(process.execPath, [process.execPath, SEMI_SPACE_FLAG, ...process.execArgv, __filename, ...process.argv.slice(2)], process.env)
}
import('../dist/cli/index.js')
