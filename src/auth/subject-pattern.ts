/**
 * Subject patterns of a client's claim policy (docs/clients.md): `*` matches any
 * run of characters, possibly empty; every other character matches itself, so
 * `.`, `+`, `(` or `\` are literal. Matching is a left-to-right scan for each
 * literal piece (no backtracking, no regular expression), so its cost is bounded
 * by the lengths of the subject and the pattern, whatever the pattern holds.
 */
export interface SubjectPattern {
  readonly source: string
  matches(subject: string): boolean
}

/** Splits a pattern into its literal pieces once, for repeated matching. */
export function compileSubjectPattern(source: string): SubjectPattern {
  const pieces = source.split('*')
  if (pieces.length === 1) return { source, matches: (subject) => subject === source }
  const head = pieces[0]!
  const tail = pieces[pieces.length - 1]!
  const middle = pieces.slice(1, -1).filter((piece) => piece.length > 0)
  const fixed = head.length + tail.length
  return {
    source,
    matches(subject) {
      if (subject.length < fixed || !subject.startsWith(head) || !subject.endsWith(tail)) return false
      // The leftmost place of each piece leaves the most room for the next one, so
      // a greedy scan finds a match whenever one exists.
      const end = subject.length - tail.length
      let at = head.length
      for (const piece of middle) {
        const found = subject.indexOf(piece, at)
        if (found === -1 || found + piece.length > end) return false
        at = found + piece.length
      }
      return true
    },
  }
}
