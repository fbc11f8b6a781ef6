import { SignetError } from '../errors.js'
import type { Storage } from '../storage/types.js'
import type { SignetMetrics } from './registry.js'

/**
 * Wraps a Storage so every operation that fails with `storage_unavailable` (the
 * database did not answer or could not complete it) is counted in
 * signet_storage_errors_total by operation. Signet's own refusals that pass
 * through storage (a conflict, a keyset not found inside a transaction) are not
 * storage errors and are not counted. Everything else is passed on untouched.
 */
export function instrumentStorage(storage: Storage, metrics: SignetMetrics): Storage {
  const wrapped = new Map<PropertyKey, unknown>()
  return new Proxy(storage, {
    get(target, property) {
      // The target is the receiver, so getters and #private fields keep working.
      const value = Reflect.get(target, property, target)
      if (typeof value !== 'function') return value
      let wrapper = wrapped.get(property)
      if (!wrapper) {
        const operation = String(property)
        wrapper = (...args: unknown[]) => {
          const result = (value as (...a: unknown[]) => unknown).apply(target, args)
          if (!(result instanceof Promise)) return result
          return result.catch((error: unknown) => {
            if (error instanceof SignetError && error.code === 'storage_unavailable') metrics.storageErrors.inc({ operation })
            throw error
          })
        }
        wrapped.set(property, wrapper)
      }
      return wrapper
    },
  })
}
