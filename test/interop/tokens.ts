import { execFile } from 'node:child_process'
import { createPublicKey } from 'node:crypto'
import { promisify } from 'node:util'

/** Helpers shared by the interop tests: tampering, DER conversion, tool detection. */

export const run = promisify(execFile)

export const ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'] as const
export type Alg = (typeof ALGORITHMS)[number]

/** The keyset name used for an algorithm in these tests. */
export const keysetFor = (alg: string): string => alg.toLowerCase()

export interface TokenSet {
  valid: string
  /** The payload changed after signing (a claim flipped), signature kept. */
  tamperedPayload: string
  /** One bit of the signature flipped. */
  tamperedSignature: string
}

export function tamper(token: string): TokenSet {
  const [header, payload, signature] = token.split('.') as [string, string, string]
  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'))
  const forged = Buffer.from(JSON.stringify({ ...claims, sub: 'attacker', admin: true })).toString('base64url')
  const bytes = Buffer.from(signature, 'base64url')
  bytes[bytes.length >> 1]! ^= 0x10
  return { valid: token, tamperedPayload: `${header}.${forged}.${signature}`, tamperedSignature: `${header}.${payload}.${bytes.toString('base64url')}` }
}

/**
 * A JWS ECDSA signature (R||S, RFC 7518 section 3.4) as the DER SEQUENCE of two
 * INTEGERs that OpenSSL expects.
 */
export function ecdsaRawToDer(raw: Buffer): Buffer {
  const half = raw.length / 2
  const integer = (bytes: Buffer): Buffer => {
    let start = 0
    while (start < bytes.length - 1 && bytes[start] === 0) start++
    let value = bytes.subarray(start)
    if (value[0]! & 0x80) value = Buffer.concat([Buffer.from([0]), value])
    return Buffer.concat([Buffer.from([0x02, value.length]), value])
  }
  const body = Buffer.concat([integer(raw.subarray(0, half)), integer(raw.subarray(half))])
  const length = body.length < 0x80 ? Buffer.from([body.length]) : Buffer.from([0x81, body.length])
  return Buffer.concat([Buffer.from([0x30]), length, body])
}

/** SPKI PEM of a public JWK (what openssl reads). */
export function jwkToPem(jwk: Record<string, unknown>): string {
  return createPublicKey({ key: jwk as never, format: 'jwk' }).export({ type: 'spki', format: 'pem' }) as string
}

/** Why a command-line tool cannot be used, or null when it can. */
export async function missingTool(file: string, args: string[], what: string): Promise<string | null> {
  try {
    await run(file, args, { timeout: 20_000 })
    return null
  } catch {
    return what
  }
}

/** Verifies tokens with PyJWT's PyJWKClient in one /usr/bin/python3 process. */
const PYJWT_SCRIPT = `
import json, sys
import jwt
from jwt import PyJWKClient
request = json.load(sys.stdin)
client = PyJWKClient(request["jwksUrl"])
results = []
for token in request["tokens"]:
    try:
        key = client.get_signing_key_from_jwt(token)
        claims = jwt.decode(token, key.key, algorithms=[request["alg"]], audience=request["audience"])
        results.append({"ok": True, "sub": claims.get("sub")})
    except Exception as error:
        results.append({"ok": False, "error": type(error).__name__})
print(json.dumps(results))
`

export interface PyJwtResult {
  ok: boolean
  sub?: string
  error?: string
}

export async function verifyWithPyJwt(jwksUrl: string, alg: string, audience: string, tokens: string[]): Promise<PyJwtResult[]> {
  const child = execFile('/usr/bin/python3', ['-c', PYJWT_SCRIPT], { timeout: 30_000 })
  const output = new Promise<string>((resolve, reject) => {
    let stdout = ''
    let stderr = ''
    child.stdout!.on('data', (chunk) => { stdout += chunk })
    child.stderr!.on('data', (chunk) => { stderr += chunk })
    child.on('error', reject)
    child.on('close', (code) => (code === 0 ? resolve(stdout) : reject(new Error(`python exited ${code}: ${stderr.slice(0, 500)}`))))
  })
  child.stdin!.end(JSON.stringify({ jwksUrl, alg, audience, tokens }))
  return JSON.parse(await output) as PyJwtResult[]
}
