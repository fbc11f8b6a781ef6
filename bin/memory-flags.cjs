'use strict'
// The V8 memory flags `signet serve` and `signet dev` run with; bin/signet.cjs says
// why. On their own here so that the benchmarks (bench/lib/servers.ts) start their
// reference servers, and Signet under callgrind, with the same flags.
module.exports = ['--max-semi-space-size=16', '--heap-growing-percent=50']
