import { AuditedChanges, type Audit, type AuditedChangeOptions } from '../audit/recorder.js'
import type { MasterKey } from '../crypto/master-key.js'
import { Conflict, InvalidRequest, KeyNotFound, KeysetNotFound, Sealed } from '../errors.js'
import { isDatabaseMasterKey, MASTER_KEY_CHECK, REKEYED_DATABASE } from './master-key-check.js'
import type { Tx } from '../storage/types.js'
import type { Backends, NewKey } from './backend.js'
import { activate, activeKey, nextPending, planDue, revoke, writeOrder, type Changes } from './lifecycle.js'
import type { KeyRecord, Keyset } from './model.js'
import type { KeysetInput, KeysetPatch } from '../schemas/index.js'
import { effectivePrepublish, newKeyset, patchKeyset } from './policy.js'

export type RotationMode = 'scheduled' | 'immediate'

export interface KeyServiceOptions extends AuditedChangeOptions {
  backends: Backends
  jwksMaxAge: number
  /**
   * The master key new private keys are sealed under. A change is refused (503
   * sealed) when the database now belongs to another master key (a rewrap by
   * another process): a key made now could not be opened after a restart.
   */
  masterKey?: MasterKey | null
}

/**
 * Keysets and keys: creation, policy changes, rotation, revocation and the
 * scheduled lifecycle. Every change runs in one storage transaction that re-reads
 * what it changes, so the server, the CLI and other replicas can all write
 * without stepping on each other, and each change is audited in that transaction.
 *
 * Key generation is slow for RSA, so keys are generated before the transaction
 * opens; a key made for a change that turns out not to be needed is discarded.
 */
export class KeyService {
  readonly #changes: AuditedChanges
  readonly #backends: Backends
  readonly #jwksMaxAge: number
  readonly #masterKey: MasterKey | null

  constructor(options: KeyServiceOptions) {
    this.#changes = new AuditedChanges(options)
    this.#backends = options.backends
    this.#jwksMaxAge = options.jwksMaxAge
    this.#masterKey = options.masterKey ?? null
  }

  async #transact<T>(work: (tx: Tx, audit: Audit) => Promise<T>): Promise<T> {
    return this.#changes.apply(async (tx, audit) => {
      if (this.#masterKey && !isDatabaseMasterKey(this.#masterKey, await tx.getMeta(MASTER_KEY_CHECK))) {
        throw new Sealed(`${REKEYED_DATABASE}: restart with the new master key; nothing was changed`)
      }
      return work(tx, audit)
    })
  }

  prepublishOf(keyset: Keyset): number {
    return effectivePrepublish(keyset, this.#jwksMaxAge)
  }

  async listKeysets(): Promise<{ keyset: Keyset; activeKid: string | null }[]> {
    return this.#changes.read(async (tx) => {
      const keys = await tx.keys.list()
      return (await tx.keysets.list()).map((keyset) => ({
        keyset,
        activeKid: keys.find((key) => key.keyset === keyset.name && key.state === 'active')?.kid ?? null,
      }))
    })
  }

  async getKeyset(name: string): Promise<{ keyset: Keyset; activeKid: string | null }> {
    return this.#changes.read(async (tx) => {
      const keyset = await requireKeyset(tx, name)
      return { keyset, activeKid: activeKey(await tx.keys.list(name))?.kid ?? null }
    })
  }

  /** A keyset and its keys, read together. */
  async listKeys(name: string): Promise<{ keyset: Keyset; keys: KeyRecord[] }> {
    return this.#changes.read(async (tx) => ({ keyset: await requireKeyset(tx, name), keys: await tx.keys.list(name) }))
  }

  async getKey(kid: string): Promise<KeyRecord> {
    const key = await this.#changes.read((tx) => tx.keys.get(kid))
    if (!key) throw new KeyNotFound(`no key ${kid}`)
    return key
  }

  /** Creates a keyset with its first key, active at once (docs/api.md, POST /v1/admin/keysets). */
  async createKeyset(input: KeysetInput, actor: string): Promise<{ keyset: Keyset; key: KeyRecord }> {
    const now = this.#changes.clock.now()
    const keyset = newKeyset(input, now)
    const fresh = await this.#backends[keyset.backend].generate(keyset)
    try {
      return await this.#transact(async (tx, audit) => {
        if (await tx.keysets.get(keyset.name)) throw new Conflict(`keyset ${keyset.name} exists`)
        await tx.keysets.insert(keyset)
        const key = { ...pendingKey(fresh, now, keyset.maxTtl), activatesAt: now }
        await tx.keys.insert(key)
        const changes = activate(keyset, [key], key.kid, now)
        await this.#write(tx, audit, changes, actor, keyset.name)
        await audit({ actor, action: 'keyset.create', target: keyset.name, details: { ...publicPolicy(keyset), kid: key.kid } })
        return { keyset, key: changes.updated.get(key.kid)! }
      })
    } catch (error) {
      await this.#discard(keyset, fresh)
      throw error
    }
  }

  /** Creates the keyset if it does not exist (`signet serve` on an empty database). */
  async ensureKeyset(input: KeysetInput, actor: string): Promise<boolean> {
    const { name } = input
    const exists = await this.#changes.read(async (tx) => (await tx.keysets.get(name)) !== null)
    if (exists) return false
    try {
      await this.createKeyset(input, actor)
      return true
    } catch (error) {
      if (error instanceof Conflict) return false // another process made it first
      throw error
    }
  }

  /** Changes a keyset's policy; a new alg or rsaBits takes effect at the next rotation. */
  async updateKeyset(name: string, patch: KeysetPatch, actor: string): Promise<Keyset> {
    return this.#transact(async (tx, audit) => {
      const current = await requireKeyset(tx, name)
      const next = patchKeyset(current, patch, this.#changes.clock.now())
      await tx.keysets.update(next)
      const active = activeKey(await tx.keys.list(name))
      if (active && next.maxTtl > active.maxTtlSeen) {
        // A longer maxTtl while a key signs extends how long that key stays published.
        await tx.keys.update({ ...active, maxTtlSeen: next.maxTtl })
      }
      await audit({ actor, action: 'keyset.update', target: name, details: { before: publicPolicy(current), after: publicPolicy(next) } })
      return next
    })
  }

  /**
   * Adds a key to the keyset: `scheduled` publishes it as pending and activates it
   * after prepublish; `immediate` activates it now and retires the active key.
   */
  async rotate(name: string, mode: RotationMode, actor: string): Promise<KeyRecord> {
    const keyset = await this.#changes.read((tx) => requireKeyset(tx, name))
    const fresh = await this.#backends[keyset.backend].generate(keyset)
    return this.#addKey(keyset, fresh, mode, actor, 'key.rotate')
  }

  /** Adds an existing key pair (bring your own key), made by the keyset's backend. */
  async addImportedKey(keyset: Keyset, fresh: NewKey, mode: RotationMode, actor: string): Promise<KeyRecord> {
    return this.#addKey(keyset, fresh, mode, actor, 'key.import')
  }

  async #addKey(keyset: Keyset, fresh: NewKey, mode: RotationMode, actor: string, action: string): Promise<KeyRecord> {
    try {
      return await this.#transact(async (tx, audit) => {
        const current = await requireKeyset(tx, keyset.name)
        if (await tx.keys.get(fresh.kid)) throw new Conflict(`key ${fresh.kid} exists`)
        const now = this.#changes.clock.now()
        const activatesAt = mode === 'immediate' ? now : now + this.prepublishOf(current) * 1000
        const key = { ...pendingKey(fresh, now, current.maxTtl), activatesAt }
        await tx.keys.insert(key)
        await audit({ actor, action, target: key.kid, details: { keyset: current.name, alg: key.alg, mode } })
        if (mode === 'scheduled') {
          await audit({ actor, action: 'key.state', target: key.kid, details: { keyset: current.name, from: null, to: 'pending', activatesAt: key.activatesAt } })
          return key
        }
        const keys = await tx.keys.list(current.name)
        const changes = activate(current, keys, key.kid, now)
        await this.#write(tx, audit, changes, actor, current.name)
        return changes.updated.get(key.kid)!
      })
    } catch (error) {
      await this.#discard(keyset, fresh)
      throw error
    }
  }

  /**
   * Revokes a key: it leaves the JWK Set at once and never signs again. If it was
   * the active key, the next pending key is activated at once, or a new key is made
   * and activated, so signing never stops.
   */
  async revoke(kid: string, reason: string, actor: string): Promise<KeyRecord> {
    if (typeof reason !== 'string' || reason.length > 512) throw new InvalidRequest('reason must be a string of at most 512 characters')
    const before = await this.#changes.read(async (tx) => {
      const key = await tx.keys.get(kid)
      if (!key) return null
      return { key, keyset: (await tx.keysets.get(key.keyset))!, keys: await tx.keys.list(key.keyset) }
    })
    if (!before) throw new KeyNotFound(`no key ${kid}`)
    // A replacement is needed only when the active key goes and nothing is pending.
    const needsReplacement = before.key.state === 'active' && !nextPending(before.keys)
    const replacement = needsReplacement ? await this.#backends[before.keyset.backend].generate(before.keyset) : null
    let used = false
    try {
      const revoked = await this.#transact(async (tx, audit) => {
        const key = await tx.keys.get(kid)
        if (!key) throw new KeyNotFound(`no key ${kid}`)
        if (key.state === 'revoked' || key.state === 'destroyed') throw new Conflict(`key ${kid} is already ${key.state}`)
        const keyset = await requireKeyset(tx, key.keyset)
        const now = this.#changes.clock.now()
        let keys = await tx.keys.list(keyset.name)
        const changes = revoke(keys, kid, reason, now)
        if (key.state === 'active') {
          let successor = nextPending(keys)
          if (!successor && replacement) {
            successor = { ...pendingKey(replacement, now, keyset.maxTtl), activatesAt: now }
            await tx.keys.insert(successor)
            await audit({ actor, action: 'key.rotate', target: successor.kid, details: { keyset: keyset.name, alg: successor.alg, mode: 'immediate', replaces: kid } })
            keys = [...keys, successor]
            used = true
          }
          if (!successor) throw new Conflict('the keyset changed while revoking; try again')
          activate(keyset, keys, successor.kid, now, changes)
        }
        await this.#write(tx, audit, changes, actor, keyset.name, { reason })
        await audit({ actor, action: 'key.revoke', target: kid, details: { keyset: keyset.name, reason } })
        return changes.updated.get(kid)!
      })
      await this.#eraseQuietly(before.keyset, before.key)
      return revoked
    } finally {
      if (replacement && !used) await this.#discard(before.keyset, replacement)
    }
  }

  /**
   * Applies whatever is due at the clock's now for every keyset: activations,
   * retirements, destructions and automatic rotations. Safe to run in several
   * processes at once: each keyset is re-planned inside its own transaction.
   * Returns the number of state changes and keys made.
   */
  async tick(actor = 'scheduler'): Promise<number> {
    const now = this.#changes.clock.now()
    const view = await this.#changes.storage.snapshot()
    let count = 0
    for (const keyset of view.keysets) {
      const keys = view.keys.filter((key) => key.keyset === keyset.name)
      const plan = planDue(keyset, keys, now, this.prepublishOf(keyset))
      if (plan.transitions.length === 0 && plan.newKeyActivatesAt === null && !plan.needsActiveKey) continue
      count += await this.#applyDue(keyset, plan.newKeyActivatesAt !== null || plan.needsActiveKey, actor)
    }
    return count
  }

  async #applyDue(planned: Keyset, needsKey: boolean, actor: string): Promise<number> {
    const fresh = needsKey ? await this.#backends[planned.backend].generate(planned) : null
    let used = false
    const destroyed: KeyRecord[] = []
    try {
      const count = await this.#transact(async (tx, audit) => {
        const keyset = await tx.keysets.get(planned.name)
        if (!keyset) return 0
        const now = this.#changes.clock.now()
        const keys = await tx.keys.list(keyset.name)
        const plan = planDue(keyset, keys, now, this.prepublishOf(keyset))
        await this.#write(tx, audit, plan, actor, keyset.name)
        destroyed.push(...plan.transitions.filter((t) => t.to === 'destroyed').map((t) => plan.updated.get(t.kid)!))
        let made = 0
        if ((plan.newKeyActivatesAt !== null || plan.needsActiveKey) && fresh?.alg === keyset.alg) {
          const activatesAt = plan.needsActiveKey ? now : plan.newKeyActivatesAt!
          const key = { ...pendingKey(fresh, now, keyset.maxTtl), activatesAt }
          await tx.keys.insert(key)
          used = true
          made = 1
          await audit({ actor, action: 'key.rotate', target: key.kid, details: { keyset: keyset.name, alg: key.alg, mode: plan.needsActiveKey ? 'immediate' : 'scheduled' } })
          if (plan.needsActiveKey) {
            await this.#write(tx, audit, activate(keyset, [...keys, key], key.kid, now), actor, keyset.name)
          } else {
            await audit({ actor, action: 'key.state', target: key.kid, details: { keyset: keyset.name, from: null, to: 'pending', activatesAt } })
          }
        }
        return plan.transitions.length + made
      })
      for (const key of destroyed) await this.#eraseQuietly(planned, key)
      return count
    } finally {
      if (fresh && !used) await this.#discard(planned, fresh)
    }
  }

  /** Writes changed keys in an order the one-active index accepts, auditing each state change. */
  async #write(tx: Tx, audit: Audit, changes: Changes, actor: string, keyset: string, extra: Record<string, unknown> = {}): Promise<void> {
    for (const key of writeOrder(changes.updated.values())) await tx.keys.update(key)
    for (const transition of changes.transitions) {
      await audit({ actor, action: 'key.state', target: transition.kid, details: { keyset, from: transition.from, to: transition.to, ...extra } })
    }
  }

  /** Drops the private half of a key that was generated but never stored. */
  async #discard(keyset: Keyset, fresh: NewKey): Promise<void> {
    if (fresh.hsmId) await this.#eraseQuietly(keyset, { ...pendingKey(fresh, 0, 0) })
  }

  async #eraseQuietly(keyset: Keyset, key: KeyRecord): Promise<void> {
    try {
      await this.#backends[keyset.backend].destroy(key)
    } catch {
      // An HSM object left behind holds no published key; the next destroy retries nothing.
    }
  }
}

async function requireKeyset(tx: Tx, name: string): Promise<Keyset> {
  const keyset = await tx.keysets.get(name)
  if (!keyset) throw new KeysetNotFound(`no keyset ${name}`)
  return keyset
}

function pendingKey(fresh: NewKey, now: number, maxTtl: number): KeyRecord {
  return {
    ...fresh,
    state: 'pending',
    createdAt: now,
    activatesAt: null,
    activatedAt: null,
    retiredAt: null,
    publishedUntil: null,
    destroyedAt: null,
    revokedAt: null,
    revokeReason: null,
    maxTtlSeen: maxTtl,
  }
}

/** The policy fields as the audit log records them. */
function publicPolicy(keyset: Keyset): Record<string, unknown> {
  const { createdAt: _c, updatedAt: _u, ...policy } = keyset
  return policy
}
