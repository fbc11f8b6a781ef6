/**
 * The `signet` package root: what application servers import.
 *
 * @example
 * import { SignetClient, createVerifier } from 'signet'
 *
 * const signet = new SignetClient({ url: 'http://signet:8080', token: process.env.SIGNET_CLIENT_TOKEN! })
 * const { token } = await signet.sign({ sub: 'user-42' })
 * const verifier = createVerifier({ jwksUrl: 'http://signet:8080/.well-known/jwks.json' })
 * const { payload } = await verifier.verify(token)
 */
export { SignetClient, type SignetClientOptions } from './client.js'
export type { TokenProvider } from './token-source.js'
export { createVerifier, type Verifier, type VerifierOptions, type VerifiedToken } from './verifier.js'
export { SignetClientError, VerificationError, type SignetClientErrorFields, type VerificationErrorCode } from './errors.js'
export { VERIFICATION_CODES, type VerificationCode } from '../signing/verification-codes.js'
export type { Claims, SignBatchItem, SignedToken, SignOptions, TokenHeaderInput } from './types.js'
export type { Alg } from '../crypto/algorithms.js'
