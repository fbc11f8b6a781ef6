/**
 * Subject patterns of workload identities (docs/workload-identity.md): `*` matches
 * any run of characters (also none), every other character only itself. So
 * `spiffe://example.org/ns/billing/*` matches every workload of that namespace and
 * `system:serviceaccount:billing:api` exactly one service account.
 */

export const WILDCARD = '*'

export function isPattern(subject: string): boolean {
  return subject.includes(WILDCARD)
}

/**
 * Whether `subject` matches `pattern`. Greedy matching that backtracks only to the
 * last `*`: at most O(pattern x subject) steps whatever the input, unlike a regular
 * expression built from the pattern, whose backtracking a crafted subject could
 * make explode.
 */
export function matchesSubject(pattern: string, subject: string): boolean {
  let p = 0
  let s = 0
  let star = -1
  let resume = 0
  while (s < subject.length) {
    if (p < pattern.length && pattern[p] !== WILDCARD && pattern[p] === subject[s]) {
      p++
      s++
    } else if (p < pattern.length && pattern[p] === WILDCARD) {
      star = p++
      resume = s
    } else if (star !== -1) {
      p = star + 1
      s = ++resume
    } else {
      return false
    }
  }
  while (p < pattern.length && pattern[p] === WILDCARD) p++
  return p === pattern.length
}
