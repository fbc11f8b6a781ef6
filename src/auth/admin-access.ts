import { Forbidden } from '../errors.js'
import type { Principal } from './authenticate.js'
import type { ClientGuard } from './clients.js'

/**
 * What an admin may manage (docs/clients.md#scoped-admins). The bootstrap admin
 * token and admin clients with keysets `*` manage everything. An admin client with
 * a list of keysets manages only those keysets, and only clients whose keysets
 * are all in its list; it never manages issuers or clients with `*`.
 */

/** Whether the principal is an unrestricted admin: the bootstrap token, or keysets `*`. */
export function isFullAdmin(principal: Principal): boolean {
  return principal.kind === 'admin' || principal.client.keysets === '*'
}

/**
 * 403 unless the principal is an unrestricted admin. For actions no keyset list
 * can bound: managing workload-identity issuers, or clients with keysets `*`.
 */
export function requireFullAdmin(principal: Principal, action: string): void {
  if (!isFullAdmin(principal)) throw new Forbidden(`only an admin with keysets * (or the admin token) may ${action}`)
}

/** Whether the principal manages the keyset `name`. */
export function managesKeyset(principal: Principal, name: string): boolean {
  return isFullAdmin(principal) || (principal.kind === 'client' && (principal.client.keysets as string[]).includes(name))
}

/** 403 unless the principal manages the keyset `name` (whether or not it exists). */
export function requireKeysetAccess(principal: Principal, name: string): void {
  if (!managesKeyset(principal, name)) throw new Forbidden(`this admin client does not manage keyset ${name}`)
}

/** Whether the principal manages a client that names `keysets`. */
export function managesClientKeysets(principal: Principal, keysets: string[] | '*'): boolean {
  if (isFullAdmin(principal)) return true
  return keysets !== '*' && keysets.every((name) => managesKeyset(principal, name))
}

function requireClientKeysets(principal: Principal, keysets: string[] | '*'): void {
  if (keysets === '*') requireFullAdmin(principal, 'manage clients with keysets *')
  if (!managesClientKeysets(principal, keysets)) throw new Forbidden('this admin client may manage only clients whose keysets are all in its own list')
}

/**
 * The check the admin routes add to a client change (ClientService): the client as
 * it was and as it will be must both be within the principal's keysets.
 */
export function clientGuardFor(principal: Principal): ClientGuard {
  return (before, after) => {
    if (before) requireClientKeysets(principal, before.keysets)
    if (after) requireClientKeysets(principal, after.keysets)
  }
}
