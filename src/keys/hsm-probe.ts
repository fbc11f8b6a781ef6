import type { Backends } from './backend.js'
import type { Keyset } from './model.js'

/**
 * HSM probing for the keystore: backends that can fail (PKCS#11) check or
 * reconnect their device at each poll, and a keyset whose active key the device
 * could not open is reloaded once the device is back, so it recovers by itself.
 */

/** What probing needs to know of a built keyset (a LiveKeyset). */
export interface KeysetOnDevice {
  readonly keyset: Pick<Keyset, 'backend'>
  readonly activeKid: string | null
  readonly signer: unknown
  readonly signerError: { readonly code: string } | null
}

/** Lets every backend that can fail check or reconnect its device; the backend spaces its own attempts. */
export async function probeBackends(backends: Backends): Promise<void> {
  for (const backend of new Set(Object.values(backends))) await backend.probe?.()
}

/**
 * The first reason a backend that some keyset uses gives for not working (an HSM
 * away), or null. A configured HSM no keyset uses yet is only logged (by its probe).
 */
export function backendProblem(backends: Backends, keysets: Iterable<KeysetOnDevice>): string | null {
  const used = new Set([...keysets].map((live) => backends[live.keyset.backend]))
  for (const backend of used) {
    const reason = backend.unavailableReason?.()
    if (reason) return reason
  }
  return null
}

/**
 * Whether some keyset's active key could not be opened because its device was
 * away, and the device is back: reloading it now would give it a signer. A keyset
 * whose device is still away is not counted (reloading would change nothing).
 */
export function waitingForDevice(backends: Backends, keysets: Iterable<KeysetOnDevice>): boolean {
  return [...keysets].some((live) => live.activeKid !== null && !live.signer && live.signerError?.code === 'hsm_unavailable' &&
    !backends[live.keyset.backend].unavailableReason?.())
}
