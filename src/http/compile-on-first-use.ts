import { SerializerSelector } from '@fastify/fast-json-stringify-compiler'
import type { Ajv, ValidateFunction } from 'ajv'
import type { FastifyServerOptions } from 'fastify'

/**
 * Route schemas are compiled when a route is first called, not when the app starts.
 * Compiling every route's validator (ajv) and answer serializer (fast-json-stringify)
 * cost each start about 220 ms of CPU (profiled), mostly for admin routes a serving process may
 * never see, and a start is what `signet serve`, every worker and every restart pays.
 * The first call of a route pays its own compile instead (a few ms, once per process).
 * README, "Start-up cost".
 */

/** A validator function as fastify calls it: it reads `errors` off the function after a false result. */
export type RouteValidator = ((data: unknown) => boolean) & { errors?: ValidateFunction['errors'] }

/** `ajv.compile(schema)` at the first validation (ajv caches by schema, so once per process). */
export function validatorOnFirstUse(ajv: Ajv, schema: object): RouteValidator {
  let compiled: ValidateFunction | undefined
  const validate: RouteValidator = (data) => {
    compiled ??= ajv.compile(schema)
    const valid = compiled(data)
    validate.errors = compiled.errors
    return valid
  }
  return validate
}

type SerializerFactory = ReturnType<typeof SerializerSelector>

/** Fastify's own serializer compiler (fast-json-stringify), building each route's serializer at its first answer. */
export const serializersOnFirstUse: NonNullable<NonNullable<FastifyServerOptions['schemaController']>['compilersFactory']> = {
  buildSerializer: ((externalSchemas, options) => {
    const compile = SerializerSelector()(externalSchemas, options)
    return (route) => {
      let serialize: ((data: unknown) => string) | undefined
      return (data: unknown) => (serialize ??= compile(route))(data)
    }
  }) as SerializerFactory,
}
