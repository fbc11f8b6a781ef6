/**
 * What the OpenAPI document says about each operation beyond its schemas: tag,
 * operationId, summary, and whether it takes a bearer token. Keyed by "METHOD /path" in
 * OpenAPI path syntax. The request and answer schemas come from the routes
 * themselves (src/schemas), so they cannot drift from what the service checks.
 */

export interface OperationText {
  /** Unique across the document: what generated clients name the call. */
  operationId: string
  tag: 'public' | 'signing' | 'admin' | 'operations'
  summary: string
  description?: string
  /** Which token the operation takes; absent: none. */
  auth?: 'client' | 'admin'
  /** The body may be left out (its members all have defaults). */
  optionalBody?: boolean
}

export const TAGS = [
  { name: 'public', description: 'JWK Sets, OpenID discovery and health: no authentication. The only routes of the public listener (SIGNET_PUBLIC_PORT).' },
  { name: 'signing', description: 'Sign and verify tokens: a client bearer token with scope sign or verify.' },
  { name: 'admin', description: 'Keysets, keys, clients, workload-token issuers and the audit log: the admin token or a client with scope admin.' },
  { name: 'operations', description: 'Metrics and this document: internal listener only.' },
]

export const OPERATIONS: Record<string, OperationText> = {
  'GET /.well-known/jwks.json': { operationId: 'getDefaultJwks', tag: 'public', summary: 'JWK Set of the default keyset', description: 'Public keys of the pending, active and retired keys. Strong ETag; 304 on If-None-Match.' },
  'GET /keysets/{name}/jwks.json': { operationId: 'getKeysetJwks', tag: 'public', summary: 'JWK Set of a keyset', description: 'Public keys of the pending, active and retired keys. Strong ETag; 304 on If-None-Match.' },
  'GET /.well-known/openid-configuration': { operationId: 'getDefaultOpenidConfiguration', tag: 'public', summary: 'OpenID discovery of the default keyset', description: '404 when the keyset has no issuer.' },
  'GET /keysets/{name}/.well-known/openid-configuration': { operationId: 'getKeysetOpenidConfiguration', tag: 'public', summary: 'OpenID discovery of a keyset', description: '404 when the keyset has no issuer.' },
  'GET /healthz': { operationId: 'getHealth', tag: 'public', summary: 'Liveness: 200 while the process runs' },
  'GET /readyz': { operationId: 'getReadiness', tag: 'public', summary: 'Readiness: storage answers, master key loaded, every keyset has an active key', description: '503 with a problem body saying why when not ready.' },

  'POST /v1/sign': { operationId: 'sign', tag: 'signing', auth: 'client', summary: 'Sign claims into a JWT', description: 'Scope sign. Signet sets iat, exp, jti and (when the keyset has one) iss.' },
  'POST /v1/sign/batch': { operationId: 'signBatch', tag: 'signing', auth: 'client', summary: 'Sign up to 1000 tokens at once', description: 'Scope sign. Every item is checked before any is signed; a bad item refuses the batch with its index.' },
  'POST /v1/verify': { operationId: 'verify', tag: 'signing', auth: 'client', summary: 'Verify a token against a keyset', description: 'Scope verify. Answers 200 with valid true or false.' },

  'GET /v1/admin/keysets': { operationId: 'listKeysets', tag: 'admin', auth: 'admin', summary: 'List keysets with their policy and active kid' },
  'POST /v1/admin/keysets': { operationId: 'createKeyset', tag: 'admin', auth: 'admin', summary: 'Create a keyset; its first key is active at once' },
  'GET /v1/admin/keysets/{name}': { operationId: 'getKeyset', tag: 'admin', auth: 'admin', summary: 'One keyset' },
  'PATCH /v1/admin/keysets/{name}': { operationId: 'updateKeyset', tag: 'admin', auth: 'admin', summary: 'Change a keyset policy', description: 'A new alg or rsaBits takes effect at the next rotation.' },
  'GET /v1/admin/keysets/{name}/keys': { operationId: 'listKeys', tag: 'admin', auth: 'admin', summary: 'Keys of a keyset with state, timestamps and public JWK' },
  'POST /v1/admin/keysets/{name}/rotate': { operationId: 'rotateKeyset', tag: 'admin', auth: 'admin', optionalBody: true, summary: 'Rotate: scheduled (after prepublish) or immediate', description: 'Without a body: scheduled.' },
  'POST /v1/admin/keysets/{name}/import': { operationId: 'importKey', tag: 'admin', auth: 'admin', summary: 'Import a key (PEM, PKCS#12 or JWK)', description: '409 when its kid exists.' },
  'POST /v1/admin/keys/{kid}/revoke': { operationId: 'revokeKey', tag: 'admin', auth: 'admin', summary: 'Revoke a key; an active key is replaced at once', description: 'The body names the reason, kept in the audit log.' },
  'POST /v1/admin/clients': { operationId: 'createClient', tag: 'admin', auth: 'admin', summary: 'Create a client; its token is shown once', description: 'certificateSubject binds the client to the subject of its mutual-TLS client certificate; identity binds it to a workload identity, and then it gets a token only with token: true. An admin client with a list of keysets may create only clients within that list.' },
  'GET /v1/admin/clients': { operationId: 'listClients', tag: 'admin', auth: 'admin', summary: 'List clients (never their tokens)' },
  'PATCH /v1/admin/clients/{id}': { operationId: 'updateClient', tag: 'admin', auth: 'admin', summary: "Change a client's policy", description: 'keysets, scopes, audiences, maxTtl, subjects, requiredClaims, identity; null clears an optional field. Audited with each change before and after; the running service uses it from the next request. 409 for a revoked client.' },
  'DELETE /v1/admin/clients/{id}': { operationId: 'revokeClient', tag: 'admin', auth: 'admin', summary: 'Revoke a client: its token stops working at once' },
  'GET /v1/admin/issuers': { operationId: 'listIssuers', tag: 'admin', auth: 'admin', summary: 'List trusted workload-token issuers', description: 'The admin token or an admin client with keysets *.' },
  'POST /v1/admin/issuers': { operationId: 'createIssuer', tag: 'admin', auth: 'admin', summary: 'Trust a workload-token issuer (Kubernetes, SPIRE, GitHub Actions, OIDC)', description: 'Exactly one of jwksUri and jwks. 409 when the name or the iss is taken.' },
  'GET /v1/admin/issuers/{name}': { operationId: 'getIssuer', tag: 'admin', auth: 'admin', summary: 'One issuer' },
  'PATCH /v1/admin/issuers/{name}': { operationId: 'updateIssuer', tag: 'admin', auth: 'admin', summary: 'Change an issuer', description: 'Giving jwks drops jwksUri, and the reverse.' },
  'DELETE /v1/admin/issuers/{name}': { operationId: 'removeIssuer', tag: 'admin', auth: 'admin', summary: 'Stop trusting an issuer', description: '409 while live clients are bound to it.' },
  'GET /v1/admin/audit': { operationId: 'listAuditEvents', tag: 'admin', auth: 'admin', summary: 'Audit events, oldest first' },
  'GET /v1/admin/audit/verify': { operationId: 'verifyAuditLog', tag: 'admin', auth: 'admin', summary: 'Check the audit log\'s hash chain', description: 'intact is false when a row was changed, dropped or moved, or rows were removed from its end; problems names the first broken event.' },

  'GET /metrics': { operationId: 'getMetrics', tag: 'operations', summary: 'Prometheus metrics' },
}
