import type { Config } from '../config.js'
import { jwksDocument, publishedKeys } from '../keys/jwks.js'
import type { Keyset } from '../keys/model.js'
import { effectivePrepublish } from '../keys/policy.js'
import type { RotationMode } from '../keys/service.js'
import type {
  ClientInput, ClientPatch, ImportInput, IssuerInput, KeysetInput, KeysetPatch,
} from '../schemas/index.js'
import { presentAuditPage, presentClient, presentIssuer, presentKey, presentKeyset } from '../present.js'
import type { AdminApi, AuditPage, ClientView, IssuerView, JwksView, KeysetView, KeyView } from './admin-api.js'
import { cliActor, readKeyset, withSignet, withStorage } from './context.js'

/**
 * The admin commands on the database directly, with the services the server uses.
 * Reads need neither the master key nor a migration; changes to keys need the
 * master key (withSignet); clients need none (they touch no private key). A
 * running server sees each change within a poll interval. No route stands in
 * front of the services here: the commands check every body against the admin
 * route's own schema (schemas/validate.ts) before they call this, as they do
 * before a remote call.
 */
export class LocalAdminApi implements AdminApi {
  readonly mode = 'local'
  readonly defaultKeyset: string
  readonly #config: Config

  constructor(config: Config) {
    this.#config = config
    this.defaultKeyset = config.defaultKeyset
  }

  #present(keyset: Keyset, activeKid: string | null): KeysetView {
    return presentKeyset(keyset, activeKid, effectivePrepublish(keyset, this.#config.jwksMaxAge))
  }

  async listKeysets(): Promise<KeysetView[]> {
    const snapshot = await withStorage(this.#config, (storage) => storage.snapshot())
    return snapshot.keysets.map((keyset) => this.#present(keyset, snapshot.keys.find((key) => key.keyset === keyset.name && key.state === 'active')?.kid ?? null))
  }

  async getKeyset(name: string): Promise<KeysetView> {
    const { keyset, keys } = await readKeyset(this.#config, name)
    return this.#present(keyset, keys.find((key) => key.state === 'active')?.kid ?? null)
  }

  async createKeyset(input: KeysetInput): Promise<KeysetView> {
    return withSignet(this.#config, 'keysets create', async (signet) => {
      const { keyset, key } = await signet.keys.createKeyset(input, cliActor())
      return presentKeyset(keyset, key.kid, signet.keys.prepublishOf(keyset))
    })
  }

  async updateKeyset(name: string, patch: KeysetPatch): Promise<KeysetView> {
    return withSignet(this.#config, 'keysets update', async (signet) => {
      await signet.keys.updateKeyset(name, patch, cliActor())
      const { keyset, activeKid } = await signet.keys.getKeyset(name)
      return presentKeyset(keyset, activeKid, signet.keys.prepublishOf(keyset))
    })
  }

  async listKeys(name: string): Promise<KeyView[]> {
    const { keyset, keys } = await readKeyset(this.#config, name)
    return keys.map((key) => presentKey(key, keyset.x5c))
  }

  async rotate(keyset: string, mode: RotationMode): Promise<KeyView> {
    return presentKey(await withSignet(this.#config, 'keys rotate', (signet) => signet.keys.rotate(keyset, mode, cliActor())))
  }

  async revoke(kid: string, reason: string): Promise<KeyView> {
    return presentKey(await withSignet(this.#config, 'keys revoke', (signet) => signet.keys.revoke(kid, reason, cliActor())))
  }

  async importKey(keyset: string, input: ImportInput): Promise<KeyView> {
    const { importKey } = await import('../keys/import.js')
    return presentKey(await withSignet(this.#config, 'keys import', (signet) =>
      importKey({ keys: signet.keys, software: signet.backends.software }, keyset, input, cliActor())))
  }

  /**
   * A client row is authenticated under the master key (docs/security.md), so
   * changes to clients go through Signet and need the master key too.
   */
  async #clients<T>(command: string, work: (service: import('../auth/clients.js').ClientService) => Promise<T>): Promise<T> {
    return withSignet(this.#config, command, (signet) => work(signet.clients))
  }

  async createClient(input: ClientInput): Promise<ClientView & { token?: string }> {
    const { client, token } = await this.#clients('clients create', (service) => service.create(input, cliActor()))
    return { ...presentClient(client), ...(token === null ? {} : { token }) }
  }

  async listClients(): Promise<ClientView[]> {
    const snapshot = await withStorage(this.#config, (storage) => storage.snapshot())
    return snapshot.clients.map(presentClient)
  }

  async revokeClient(id: string): Promise<ClientView> {
    return presentClient(await this.#clients('clients revoke', (service) => service.revoke(id, cliActor())))
  }

  async updateClient(id: string, patch: ClientPatch): Promise<ClientView> {
    return presentClient(await this.#clients('clients update', (service) => service.update(id, patch, cliActor())))
  }

  async listIssuers(): Promise<IssuerView[]> {
    // migrate: a database made before issuers existed gets its (empty) table.
    return (await withStorage(this.#config, (storage) => storage.transaction((tx) => tx.issuers.list()), { migrate: true })).map(presentIssuer)
  }

  /** An issuer row carries authority and is sealed under the master key too (docs/security.md). */
  async createIssuer(input: IssuerInput): Promise<IssuerView> {
    return presentIssuer(await withSignet(this.#config, 'issuers add', (signet) => signet.issuers.create(input, cliActor())))
  }

  async removeIssuer(name: string): Promise<IssuerView> {
    return presentIssuer(await withSignet(this.#config, 'issuers remove', (signet) => signet.issuers.remove(name, cliActor())))
  }

  async listAudit(after: number, limit: number): Promise<AuditPage> {
    return presentAuditPage(await withStorage(this.#config, (storage) => storage.listAudit(after, limit)), limit)
  }

  async jwks(name: string): Promise<JwksView> {
    const { keyset, keys } = await readKeyset(this.#config, name)
    const document = JSON.parse(jwksDocument(publishedKeys(keys), keyset.x5c).body.toString('utf8')) as JwksView['document']
    return { document, maxAge: this.#config.jwksMaxAge }
  }
}
