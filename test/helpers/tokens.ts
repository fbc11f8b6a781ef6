import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose'

/** Decodes a compact JWS without verifying it. */
export function decodeToken(token: string): { header: Record<string, unknown>; payload: Record<string, unknown>; signature: Buffer } {
  const [header, payload, signature] = token.split('.')
  return {
    header: JSON.parse(Buffer.from(header!, 'base64url').toString()),
    payload: JSON.parse(Buffer.from(payload!, 'base64url').toString()),
    signature: Buffer.from(signature!, 'base64url'),
  }
}

/** Verifies with jose against a JWK Set as a verifier would, at `atMs`. Resolves to true or an error code. */
export async function verifiesWith(token: string, jwks: JSONWebKeySet, atMs: number, algorithms?: string[]): Promise<true | string> {
  try {
    await jwtVerify(token, createLocalJWKSet(jwks), { currentDate: new Date(atMs), ...(algorithms ? { algorithms } : {}) })
    return true
  } catch (error) {
    return (error as { code?: string }).code ?? String(error)
  }
}
