#!/usr/bin/env node
import { CommanderError } from 'commander'
import { SignetError, StorageUnavailable } from '../errors.js'
import { UsageError } from './args.js'
import { buildProgram } from './program.js'

/** Exit status of a command line the parser refused (unknown option, bad value). */
const USAGE_EXIT = 2

/** The message of an error as one line: what scripts and operators see. */
export function oneLine(error: unknown): string {
  let message: string
  if (error instanceof CommanderError) {
    message = error.message.replace(/^error: /, '')
  } else if (error instanceof StorageUnavailable && error.cause instanceof Error) {
    // The driver's reason helps an operator at a terminal (locked, missing, read-only file).
    message = `${error.message}: ${error.cause.message}`
  } else if (error instanceof SignetError) {
    message = `${error.message} (${error.code})`
  } else {
    message = error instanceof Error ? error.message : String(error)
  }
  return message.replace(/\s+/g, ' ').trim()
}

/** One clear line on stderr and a non-zero exit. */
function fail(error: unknown): never {
  if (error instanceof CommanderError && error.exitCode === 0) process.exit(0) // --help, --version
  process.stderr.write(`signet: ${oneLine(error)}\n`)
  process.exit(error instanceof CommanderError || error instanceof UsageError ? USAGE_EXIT : 1)
}

const program = buildProgram()
if (process.argv.length <= 2) {
  // Bare `signet`: the help, on stdout, as a successful answer.
  program.outputHelp()
} else {
  program.parseAsync(process.argv).catch(fail)
}
