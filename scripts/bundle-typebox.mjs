// Build step (npm run build, after tsc): folds the typebox package into
// dist/schemas/index.js, the one module that calls it at run time.
//
// typebox 1.x ships as about 370 small ES modules; Node's loader resolved, read and
// linked each of them, which cost every `signet serve` start and every CLI command
// that checks a body about 100 ms (importing the schemas: 123 ms -> 22 ms bundled).
// Only typebox is folded in: Signet's own modules stay external (each is still
// loaded once, and shared with the rest of dist/), and the source keeps importing
// typebox as usual, so tests and types are unchanged. README, "Start-up cost".
import { resolve } from 'node:path'
import { build } from 'esbuild'

const schemas = 'dist/schemas/index.js'
const entry = resolve(schemas)

/** The entry's relative imports are Signet's own modules: left as imports. */
const signetModulesExternal = {
  name: 'signet-modules-external',
  setup(builder) {
    builder.onResolve({ filter: /^\.\.?\// }, (args) => (args.importer === entry ? { path: args.path, external: true } : undefined))
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
  plugins: [signetModulesExternal],
  // tsc's map of the module is read and carried on, so stack traces still point into src/.
  sourcemap: true,
  logLevel: 'warning',
})
