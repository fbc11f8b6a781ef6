import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

/**
 * SoftHSM2 for tests: a token directory per test file, made through SOFTHSM2_CONF
 * and softhsm2-util. Without the module or the tool the HSM tests skip, saying so.
 * SIGNET_TEST_SOFTHSM_MODULE names the module where it is not in a Debian path.
 */
const CANDIDATES = [
  process.env.SIGNET_TEST_SOFTHSM_MODULE,
  '/usr/lib/softhsm/libsofthsm2.so',
  '/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so',
  '/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so',
  '/usr/local/lib/softhsm/libsofthsm2.so',
].filter((path): path is string => typeof path === 'string' && path.length > 0)

export const SOFTHSM_MODULE: string | null = CANDIDATES.find((path) => existsSync(path)) ?? null

function hasUtil(): boolean {
  try {
    execFileSync('softhsm2-util', ['--version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

export const HSM_SKIP: string | null = SOFTHSM_MODULE === null
  ? 'SoftHSM2 is not installed (no libsofthsm2.so; apt-get install softhsm2, or set SIGNET_TEST_SOFTHSM_MODULE): PKCS#11 tests skipped'
  : !hasUtil()
    ? 'softhsm2-util is not on PATH: PKCS#11 tests skipped'
    : null

if (HSM_SKIP) console.warn(HSM_SKIP)

export interface SoftHsm {
  module: string
  /** The directory SoftHSM keeps its tokens in (directories.tokendir). */
  tokenDir: string
  /** Initialises a token and returns the SIGNET_PKCS11_* variables that open it. */
  initToken(label: string): { label: string; pin: string; env: Record<string, string> }
  remove(): void
}

/**
 * A fresh SoftHSM configuration for this test process. It sets SOFTHSM2_CONF in the
 * environment, which SoftHSM reads at C_Initialize: make every token before the
 * first Signet opens the module.
 */
export function setupSoftHsm(): SoftHsm {
  if (!SOFTHSM_MODULE) throw new Error(HSM_SKIP ?? 'no SoftHSM')
  const root = mkdtempSync(join(tmpdir(), 'signet-softhsm-'))
  const tokenDir = join(root, 'tokens')
  mkdirSync(tokenDir)
  const conf = join(root, 'softhsm2.conf')
  writeFileSync(conf, `directories.tokendir = ${tokenDir}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`)
  process.env.SOFTHSM2_CONF = conf
  return {
    module: SOFTHSM_MODULE,
    tokenDir,
    initToken(label: string) {
      const pin = randomBytes(6).toString('hex')
      const soPin = randomBytes(6).toString('hex')
      execFileSync('softhsm2-util', ['--init-token', '--free', '--label', label, '--pin', pin, '--so-pin', soPin], { env: { ...process.env, SOFTHSM2_CONF: conf }, stdio: 'ignore' })
      return { label, pin, env: { SIGNET_PKCS11_MODULE: SOFTHSM_MODULE!, SIGNET_PKCS11_TOKEN_LABEL: label, SIGNET_PKCS11_PIN: pin } }
    },
    remove() {
      rmSync(root, { recursive: true, force: true })
    },
  }
}

/** The slot id SoftHSM gave the token labelled `label` (softhsm2-util --show-slots). */
export function softHsmSlotId(label: string): number {
  const output = execFileSync('softhsm2-util', ['--show-slots'], { encoding: 'utf8' })
  for (const block of output.split(/^Slot /m).slice(1)) {
    const labelMatch = /^\s*Label:\s*(.*?)\s*$/m.exec(block)
    if (labelMatch?.[1] === label) return Number(/^(\d+)/.exec(block)![1])
  }
  throw new Error(`no SoftHSM slot holds token ${label}`)
}

export interface TokenObject {
  class: 'private' | 'public' | 'secret' | 'other'
  /** CKA_ID, hex. */
  id: string
  label: string
  keyType: number
  sensitive?: boolean
  extractable?: boolean
  alwaysSensitive?: boolean
  neverExtractable?: boolean
  sign?: boolean
  /** The CKR_ code the token gave when asked for the private or secret value (CKA_VALUE or CKA_PRIVATE_EXPONENT). */
  privateValueRead?: string
}

const INSPECTOR = fileURLToPath(new URL('./inspect-token.cjs', import.meta.url))

/**
 * Every object of a token, read through the PKCS#11 API by a separate process (an
 * auditor's view: its own C_Initialize, its own login), as JSON.
 */
export function inspectToken(module: string, label: string, pin: string): TokenObject[] {
  const output = execFileSync(process.execPath, [INSPECTOR, module, label], {
    env: { ...process.env },
    input: pin,
    encoding: 'utf8',
  })
  return JSON.parse(output) as TokenObject[]
}
