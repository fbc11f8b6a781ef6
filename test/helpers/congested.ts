import type { Socket } from 'node:net'

/**
 * A server socket on a congested network: what the server writes stays in the
 * socket's buffer (its low-level writes are held) until open() is called.
 */
export function congested(socket: Socket) {
  const held: (() => void)[] = []
  let flowing = false
  const target = socket as unknown as Record<'_write' | '_writev', (...args: unknown[]) => void>
  for (const method of ['_write', '_writev'] as const) {
    const original = target[method]!.bind(socket)
    target[method] = (...args: unknown[]) => {
      if (flowing) original(...args)
      else held.push(() => original(...args))
    }
  }
  return {
    socket,
    open: () => { flowing = true; for (const write of held.splice(0)) write() },
  }
}
