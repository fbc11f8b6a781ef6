import { expect } from 'vitest'

/**
 * Collects every secret a test run handles (master keys, bearer tokens, private key
 * material) and every text the service produced (answers, log lines, errors), and
 * checks that none of the texts holds any of the secrets.
 */
export class LeakWatch {
  readonly secrets = new Map<string, string>()
  readonly texts: string[] = []

  /** Remembers a secret; `label` names it in a failure without printing it. */
  secret(label: string, value: string): string {
    if (value.length >= 8) this.secrets.set(value, label)
    return value
  }

  record(text: string): void {
    this.texts.push(text)
  }

  /** Fails the test naming the secret's label (never the secret) if any text holds one. */
  assertClean(): void {
    const markers = ['PRIVATE KEY', '"d":"', '"p":"', '"q":"', '"dp":"', '"dq":"', '"qi":"']
    for (const text of this.texts) {
      for (const marker of markers) {
        expect(text.includes(marker), `a text holds ${marker}`).toBe(false)
      }
      for (const [value, label] of this.secrets) {
        expect(text.includes(value), `a text holds ${label}`).toBe(false)
      }
    }
  }
}
