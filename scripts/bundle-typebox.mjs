// Build step (npm run build, after tsc): folds the typebox package into
// dist/schemas/index.js, the one module that uses it at run time.
//
// typebox 1.x ships as about 370 small ES modules; Node's loader resolved, read and
// linked each of them, which cost every `signet serve` start and every CLI command
// that checks a body about 100 ms (importing the schemas: 123 ms -> 22-30 ms bundled).
// Only typebox is folded in: Signet's own modules and every other package stay
// imports (each still loaded once, and shared with the rest of dist/), and the source
// keeps importing typebox as usual, so tests and types are unchanged.
// README, "Start-up cost".
import { readdirSync, readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { build } from 'esbuild'

const schemas = 'dist/schemas/index.js'
const entry = resolve(schemas)

/** Another module importing typebox at run time would load a second, unbundled copy. */
const typeboxImport = /\bfrom\s*["']typebox(\/[^"']*)?["']|import\(\s*["']typebox/
for (const file of readdirSync('dist', { recursive: true, encoding: 'utf8' })) {
  if (!file.endsWith('.js') || resolve('dist', file) === entry) continue
  if (typeboxImport.test(readFileSync(join('dist', file), 'utf8'))) {
    throw new Error(`dist/${file} imports typebox at run time: only src/schemas/index.ts may (import type elsewhere)`)
  }
}

/** What the entry imports stays an import, typebox aside; typebox's own modules are folded in. */
const onlyTypeboxFolded = {
  name: 'only-typebox-folded',
  setup(builder) {
    builder.onResolve({ filter: /.*/ }, (args) => {
      if (args.importer !== entry) return undefined
      return /^typebox(\/|$)/.test(args.path) ? undefined : { path: args.path, external: true }
    })
  },
}

await build({
  entryPoints: [schemas],
  outfile: schemas,
  allowOverwrite: true,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node24',
  plugins: [onlyTypeboxFolded],
  // tsc's map of the module is read and carried on, so stack traces still point into src/.
  sourcemap: true,
  logLevel: 'warning',
})
