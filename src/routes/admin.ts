import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { requireScope } from '../auth/authenticate.js'
import { clientGuardFor, isFullAdmin, managesClientKeysets, managesKeyset, requireFullAdmin, requireKeysetAccess } from '../auth/admin-access.js'
import {
  auditAnswer, auditQuery, auditVerifyAnswer, clientAnswer, clientListAnswer, createClientBody, createIssuerBody, createKeysetBody, errors, idParams, issuerAnswer,
  issuerListAnswer, keyAnswer, importKeyBody, keyListAnswer, keysetAnswer, keysetListAnswer, kidParams, nameParams, patchClientBody, patchIssuerBody,
  patchKeysetBody, revokeBody, rotateBody,
} from '../schemas/index.js'
import { presentAuditPage, presentClient, presentIssuer, presentKey, presentKeyset } from '../present.js'
import { authenticatedRoutes, type AuthenticatedRoutesOptions } from './authenticated.js'

/**
 * The admin API (docs/api.md): keysets, keys, clients, workload-token issuers
 * and the audit log. Every
 * change is audited in the same transaction that makes it, before the answer.
 * An admin client with a list of keysets sees and changes only those keysets and
 * the clients within them (auth/admin-access.ts); a refusal changes nothing.
 */
export async function adminRoutes(instance: FastifyInstance, { signet, auth }: AuthenticatedRoutesOptions): Promise<void> {
  const app = authenticatedRoutes(instance, auth, (principal) => requireScope(principal, 'admin'))
  const actor = (request: { principal: { actor: string } | null }) => request.principal!.actor

  /** For routes whose body may be left out: no body means `{}`, so its defaults apply. */
  const bodyIsOptional = (request: FastifyRequest, _reply: FastifyReply, done: () => void) => {
    request.body ??= {}
    done()
  }

  /** Whether a keyset publishes x5c, from the view the last change refreshed. */
  const publishesCertificates = (name: string): boolean => signet.keystore.keyset(name)?.keyset.x5c ?? false

  const keysetOut = (keyset: Parameters<typeof presentKeyset>[0], activeKid: string | null) =>
    presentKeyset(keyset, activeKid, signet.keys.prepublishOf(keyset))

  app.get('/v1/admin/keysets', { schema: { response: { 200: keysetListAnswer, ...errors(401, 403, 503) } } }, async (request) => {
    const list = (await signet.keys.listKeysets()).filter(({ keyset }) => managesKeyset(request.principal!, keyset.name))
    return { keysets: list.map(({ keyset, activeKid }) => keysetOut(keyset, activeKid)) }
  })

  app.post('/v1/admin/keysets', {
    schema: { body: createKeysetBody, response: { 201: keysetAnswer, ...errors(400, 401, 403, 409, 503) } },
  }, async (request, reply) => {
    requireKeysetAccess(request.principal!, request.body.name)
    const { keyset, key } = await signet.keys.createKeyset(request.body, actor(request))
    return reply.code(201).send(keysetOut(keyset, key.kid))
  })

  app.get('/v1/admin/keysets/:name', {
    schema: { params: nameParams, response: { 200: keysetAnswer, ...errors(401, 403, 404, 503) } },
  }, async (request) => {
    requireKeysetAccess(request.principal!, request.params.name)
    const { keyset, activeKid } = await signet.keys.getKeyset(request.params.name)
    return keysetOut(keyset, activeKid)
  })

  app.patch('/v1/admin/keysets/:name', {
    schema: { params: nameParams, body: patchKeysetBody, response: { 200: keysetAnswer, ...errors(400, 401, 403, 404, 503) } },
  }, async (request) => {
    requireKeysetAccess(request.principal!, request.params.name)
    await signet.keys.updateKeyset(request.params.name, request.body, actor(request))
    const { keyset, activeKid } = await signet.keys.getKeyset(request.params.name)
    return keysetOut(keyset, activeKid)
  })

  app.get('/v1/admin/keysets/:name/keys', {
    schema: { params: nameParams, response: { 200: keyListAnswer, ...errors(401, 403, 404, 503) } },
  }, async (request) => {
    requireKeysetAccess(request.principal!, request.params.name)
    const { keyset, keys } = await signet.keys.listKeys(request.params.name)
    return { keys: keys.map((key) => presentKey(key, keyset.x5c)) }
  })

  app.post('/v1/admin/keysets/:name/rotate', {
    schema: { params: nameParams, body: rotateBody, response: { 201: keyAnswer, ...errors(400, 401, 403, 404, 503) } },
    preValidation: bodyIsOptional,
  }, async (request, reply) => {
    requireKeysetAccess(request.principal!, request.params.name)
    const key = await signet.keys.rotate(request.params.name, request.body?.mode ?? 'scheduled', actor(request))
    return reply.code(201).send(presentKey(key, publishesCertificates(key.keyset)))
  })

  app.post('/v1/admin/keysets/:name/import', {
    schema: { params: nameParams, body: importKeyBody, response: { 201: keyAnswer, ...errors(400, 401, 403, 404, 409, 413, 503) } },
  }, async (request, reply) => {
    requireKeysetAccess(request.principal!, request.params.name)
    // Loaded at the first import, as by the CLI: node-forge (PKCS#12, PEM) is not part of a start.
    const { importKey } = await import('../keys/import.js')
    const key = await importKey({ keys: signet.keys, software: signet.backends.software }, request.params.name, request.body, actor(request))
    return reply.code(201).send(presentKey(key, publishesCertificates(key.keyset)))
  })

  app.post('/v1/admin/keys/:kid/revoke', {
    schema: { params: kidParams, body: revokeBody, response: { 200: keyAnswer, ...errors(400, 401, 403, 404, 409, 503) } },
  }, async (request) => {
    // A key's keyset never changes, so checking before the revocation is enough.
    if (!isFullAdmin(request.principal!)) requireKeysetAccess(request.principal!, (await signet.keys.getKey(request.params.kid)).keyset)
    const key = await signet.keys.revoke(request.params.kid, request.body.reason, actor(request))
    return presentKey(key, publishesCertificates(key.keyset))
  })

  app.post('/v1/admin/clients', {
    schema: { body: createClientBody, response: { 201: clientAnswer, ...errors(400, 401, 403, 404, 409, 503) } },
  }, async (request, reply) => {
    const { client, token } = await signet.clients.create(request.body, actor(request), clientGuardFor(request.principal!))
    return reply.code(201).send({ ...presentClient(client), ...(token === null ? {} : { token }) })
  })

  app.get('/v1/admin/clients', { schema: { response: { 200: clientListAnswer, ...errors(401, 403, 503) } } }, async (request) => ({
    clients: (await signet.clients.list()).filter((client) => managesClientKeysets(request.principal!, client.keysets)).map(presentClient),
  }))

  app.patch('/v1/admin/clients/:id', {
    schema: { params: idParams, body: patchClientBody, response: { 200: clientAnswer, ...errors(400, 401, 403, 404, 409, 503) } },
  }, async (request) => presentClient(await signet.clients.update(request.params.id, request.body, actor(request), clientGuardFor(request.principal!))))

  app.delete('/v1/admin/clients/:id', {
    schema: { params: idParams, response: { 200: clientAnswer, ...errors(401, 403, 404, 409, 503) } },
  }, async (request) => presentClient(await signet.clients.revoke(request.params.id, actor(request), clientGuardFor(request.principal!))))

  // Issuers are trusted for every keyset's clients: only the admin token or a `*` admin manages them.
  // A route onRequest hook runs after the authentication hook, and before the body is read.
  const issuerAdmin = { onRequest: async (request: FastifyRequest) => requireFullAdmin(request.principal!, 'manage issuers') }

  app.get('/v1/admin/issuers', { ...issuerAdmin, schema: { response: { 200: issuerListAnswer, ...errors(401, 403, 503) } } }, async () => ({
    issuers: (await signet.issuers.list()).map(presentIssuer),
  }))

  app.post('/v1/admin/issuers', {
    ...issuerAdmin,
    schema: { body: createIssuerBody, response: { 201: issuerAnswer, ...errors(400, 401, 403, 409, 503) } },
  }, async (request, reply) => reply.code(201).send(presentIssuer(await signet.issuers.create(request.body, actor(request)))))

  app.get('/v1/admin/issuers/:name', {
    ...issuerAdmin,
    schema: { params: nameParams, response: { 200: issuerAnswer, ...errors(401, 403, 404, 503) } },
  }, async (request) => presentIssuer(await signet.issuers.get(request.params.name)))

  app.patch('/v1/admin/issuers/:name', {
    ...issuerAdmin,
    schema: { params: nameParams, body: patchIssuerBody, response: { 200: issuerAnswer, ...errors(400, 401, 403, 404, 409, 503) } },
  }, async (request) => presentIssuer(await signet.issuers.update(request.params.name, request.body, actor(request))))

  app.delete('/v1/admin/issuers/:name', {
    ...issuerAdmin,
    schema: { params: nameParams, response: { 200: issuerAnswer, ...errors(401, 403, 404, 409, 503) } },
  }, async (request) => presentIssuer(await signet.issuers.remove(request.params.name, actor(request))))

  app.get('/v1/admin/audit', {
    schema: { querystring: auditQuery, response: { 200: auditAnswer, ...errors(400, 401, 403, 503) } },
  }, async (request) => {
    const { after, limit } = request.query
    return presentAuditPage(await signet.storage.listAudit(after, limit), limit)
  })

  app.get('/v1/admin/audit/verify', { schema: { response: { 200: auditVerifyAnswer, ...errors(401, 403, 503) } } }, async () => {
    const check = await signet.checkAuditLog()
    // id: the audit event at fault, or 0 when the fault is in a meta row (the head or the marker).
    const problems = check.failures.map((failure) => ({ id: failure.table === 'audit' ? Number(failure.id) : 0, reason: failure.table === 'audit' ? failure.reason : `${failure.id}: ${failure.reason}` }))
    return { intact: problems.length === 0, events: check.events, problems }
  })
}
