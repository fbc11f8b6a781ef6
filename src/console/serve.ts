import { readdirSync, readFileSync, type Dirent } from 'node:fs'
import { extname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance, FastifyReply } from 'fastify'
import { NotFound } from '../errors.js'
import { sendProblem } from '../http/problem.js'
import { CONSOLE_CONTENT_SECURITY_POLICY } from '../plugins/security-headers.js'

/**
 * Where `npm run build` puts the console (src/console/web compiled by its own
 * tsconfig, plus its HTML and CSS): dist/console/web at the package root, reached
 * the same way from src/console (tests) and dist/console (the built server).
 */
export const CONSOLE_FILES_DIR = fileURLToPath(new URL('../../dist/console/web/', import.meta.url))

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
}

/** A console file name: one flat directory, no dots but the extension, no separators. */
const FILE_NAME = /^[a-z0-9-]+\.(?:html|js|css|svg)$/

export interface ConsoleFile {
  body: Buffer
  contentType: string
}

/**
 * The console's files, read once into a fixed map: a request can only name a key
 * of this map, so no path reaches the file system (no traversal).
 */
export function loadConsoleFiles(dir: string): Map<string, ConsoleFile> {
  const files = new Map<string, ConsoleFile>()
  let entries: Dirent[]
  try {
    entries = readdirSync(dir, { withFileTypes: true })
  } catch {
    return files
  }
  // Regular files only: no directories, and no symbolic link leads elsewhere.
  for (const entry of entries) {
    if (entry.isFile() && FILE_NAME.test(entry.name)) {
      files.set(entry.name, { body: readFileSync(join(dir, entry.name)), contentType: CONTENT_TYPES[extname(entry.name)]! })
    }
  }
  return files
}

export interface ConsoleRoutesOptions {
  /** The directory of the built console; CONSOLE_FILES_DIR by default. */
  dir?: string
}

/**
 * GET /console and its files (docs/console.md), on the internal listener only.
 * Every answer here carries the console's Content-Security-Policy instead of the
 * API's "nothing at all".
 */
export async function consoleRoutes(app: FastifyInstance, options: ConsoleRoutesOptions): Promise<void> {
  const files = loadConsoleFiles(options.dir ?? CONSOLE_FILES_DIR)
  if (!files.has('index.html')) app.log.warn({ dir: options.dir ?? CONSOLE_FILES_DIR }, 'the admin console is not built (npm run build): /console answers 404')

  app.addHook('onRequest', (_request, reply, done) => {
    reply.header('content-security-policy', CONSOLE_CONTENT_SECURITY_POLICY)
    done()
  })

  const send = (reply: FastifyReply, name: string) => {
    const file = files.get(name)
    if (!file) return sendProblem(reply, new NotFound(files.size === 0 ? 'the console is not built: run npm run build' : 'no such console file'))
    return reply.type(file.contentType).send(file.body)
  }

  const hidden = { schema: { hide: true } }
  app.get('/console', hidden, (_request, reply) => send(reply, 'index.html'))
  app.get<{ Params: { file: string } }>('/console/:file', hidden, (request, reply) => send(reply, request.params.file === '' ? 'index.html' : request.params.file))
}
