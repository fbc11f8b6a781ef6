/** Times and durations as the console shows them: absolute in UTC, and relative to now. */

const UNITS: [name: string, seconds: number][] = [['d', 86_400], ['h', 3600], ['min', 60], ['s', 1]]

/** 2030-01-01T00:00:00Z (ISO 8601, UTC, whole seconds). */
export function absolute(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z')
}

/** "in 3 d", "2 h ago", "now": the largest whole unit, rounded toward zero. */
export function relative(ms: number, now: number): string {
  const seconds = Math.trunc((ms - now) / 1000)
  if (seconds === 0) return 'now'
  const span = Math.abs(seconds)
  const [unit, size] = UNITS.find(([, size]) => span >= size)!
  const amount = `${Math.floor(span / size)} ${unit}`
  return seconds > 0 ? `in ${amount}` : `${amount} ago`
}

/** A duration in seconds for people: 2592000 → "30 d", 5400 → "1 h 30 min", 0 → "0 s". */
export function duration(seconds: number): string {
  if (seconds === 0) return '0 s'
  const parts: string[] = []
  let rest = seconds
  for (const [unit, size] of UNITS) {
    if (rest >= size) {
      parts.push(`${Math.floor(rest / size)} ${unit}`)
      rest %= size
    }
  }
  return parts.join(' ')
}

const DURATION = /^(\d+)\s*(s|m|min|h|d)?$/i
const SUFFIX: Record<string, number> = { s: 1, m: 60, min: 60, h: 3600, d: 86_400 }

/** "90s", "15m", "12h", "30d" or plain seconds ("600") → seconds; null when it is none of these. */
export function parseDuration(text: string): number | null {
  const match = DURATION.exec(text.trim())
  if (!match) return null
  const value = Number(match[1]) * SUFFIX[(match[2] ?? 's').toLowerCase()]!
  return Number.isSafeInteger(value) ? value : null
}

/** An ISO time from the API as epoch milliseconds (null stays null). */
export const epoch = (iso: string | null): number | null => (iso === null ? null : Date.parse(iso))
