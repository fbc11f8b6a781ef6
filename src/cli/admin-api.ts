import type { Command } from 'commander'
import { UsageError } from './args.js'
import type { Config } from '../config.js'
import type { RotationMode } from '../keys/service.js'
import type { ClientInput, ClientPatch, ImportInput, IssuerInput, KeysetInput, KeysetPatch } from '../schemas/index.js'
import type { presentAuditEvent, presentClient, presentIssuer, presentKey, presentKeyset } from '../present.js'

/**
 * What the admin commands do, in the shapes of the admin API's requests (src/schemas,
 * checked by the commands with schemas/validate.ts) and answers (the
 * routes of routes/admin.ts). Two implementations: on the database directly (admin-local.ts:
 * the services the server uses) and over HTTP (admin-remote.ts: SIGNET_URL or
 * --url with an admin token). Each command is written once, against this seam.
 */

export type KeysetView = ReturnType<typeof presentKeyset>
export type KeyView = ReturnType<typeof presentKey>
export type ClientView = ReturnType<typeof presentClient>
export type IssuerView = ReturnType<typeof presentIssuer>
export type AuditEventView = ReturnType<typeof presentAuditEvent>
export interface AuditPage {
  events: AuditEventView[]
  /** The id to pass as `after` for the next page; null on the last page. */
  next: number | null
}
export interface JwksView {
  document: { keys: Record<string, unknown>[] }
  /** Seconds a verifier may cache the JWK Set (its Cache-Control max-age). */
  maxAge: number
}
/** The answer of GET /v1/admin/audit/verify: id 0 is a fault in the chain's head or marker, not in an event. */
export interface AuditVerifyView {
  intact: boolean
  events: number
  problems: { id: number; reason: string }[]
}

export interface AdminApi {
  /** `local` (the database) or `remote` (the admin API of a running Signet). */
  readonly mode: 'local' | 'remote'
  /** The keyset a command uses when it names none: SIGNET_DEFAULT_KEYSET, or `default` remotely. */
  readonly defaultKeyset: string
  listKeysets(): Promise<KeysetView[]>
  getKeyset(name: string): Promise<KeysetView>
  createKeyset(input: KeysetInput): Promise<KeysetView>
  updateKeyset(name: string, patch: KeysetPatch): Promise<KeysetView>
  listKeys(keyset: string): Promise<KeyView[]>
  rotate(keyset: string, mode: RotationMode): Promise<KeyView>
  revoke(kid: string, reason: string): Promise<KeyView>
  importKey(keyset: string, input: ImportInput): Promise<KeyView>
  createClient(input: ClientInput): Promise<ClientView & { token?: string }>
  listClients(): Promise<ClientView[]>
  revokeClient(id: string): Promise<ClientView>
  updateClient(id: string, patch: ClientPatch): Promise<ClientView>
  listIssuers(): Promise<IssuerView[]>
  createIssuer(input: IssuerInput): Promise<IssuerView>
  removeIssuer(name: string): Promise<IssuerView>
  listAudit(after: number, limit: number): Promise<AuditPage>
  jwks(keyset: string): Promise<JwksView>
}

/** Commands that work on the database only; with --url they say so, and `why`, instead of running. */
export function refuseUrl(command: Command, why: string): void {
  if (command.optsWithGlobals<{ url?: string }>().url !== undefined) {
    throw new UsageError(`${command.name()} needs the database (SIGNET_DB or SIGNET_DATABASE_URL) on this machine: ${why}, not through --url`)
  }
}

/**
 * The API a command uses: remote when --url or SIGNET_URL is given (then only the
 * admin token is needed), else the database of SIGNET_DB / SIGNET_DATABASE_URL.
 */
export async function adminApi(command: Command): Promise<AdminApi> {
  const { readConfig } = await import('./context.js')
  const config = readConfig() // once: reading it takes the secrets out of process.env
  const remote = await remoteAdminApi(command, config)
  if (remote !== null) return remote
  const { LocalAdminApi } = await import('./admin-local.js')
  return new LocalAdminApi(config)
}

/** The admin API of a running Signet when --url or SIGNET_URL names one, else null (local mode). */
export async function remoteAdminApi(command: Command, config: Config): Promise<import('./admin-remote.js').RemoteAdminApi | null> {
  const flag = command.optsWithGlobals<{ url?: string }>().url
  const url = flag ?? config.url
  if (url === null) return null
  const { RemoteAdminApi } = await import('./admin-remote.js')
  return RemoteAdminApi.connect(url, flag !== undefined ? '--url' : 'SIGNET_URL', config)
}
