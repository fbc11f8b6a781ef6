import { s, uid } from './dom.js'
import type { Key, Keyset } from './model.js'
import { lifeOf, type NextRotation } from './schedule.js'
import { absolute, epoch, relative } from './time.js'

const WIDTH = 1000
const LANE = 24
const TOP = 22
const LABEL = 120
const BOTTOM = 22

/** Older keys that left the JWK Set still drawn, besides every published one. */
const PAST_KEYS = 3

/** A marker's label above the lanes, on the side of its line that has room. */
function label(at: number, text: string): SVGTextElement {
  const right = at > WIDTH * 0.6
  return s('text', { x: right ? at - 4 : at + 4, y: 12, class: `marker-label${right ? ' end' : ''}` }, text)
}

/** The keys the strip shows: every published key, then the most recent others. */
export function keysToDraw(keys: Key[]): Key[] {
  const published = keys.filter((key) => key.state === 'pending' || key.state === 'active' || key.state === 'retired')
  const past = keys
    .filter((key) => key.state === 'revoked' || key.state === 'destroyed')
    .sort((a, b) => epoch(b.createdAt)! - epoch(a.createdAt)!)
    .slice(0, PAST_KEYS)
  return [...published, ...past].sort((a, b) => epoch(a.createdAt)! - epoch(b.createdAt)!)
}

/**
 * The keyset's keys as an SVG strip, one lane per key: pending, active and
 * retired stretches (a planned end is dashed), revocation and destruction as
 * marks, "now" and the next rotation as vertical lines. The keys table beside it
 * carries the same facts as text; the strip's description summarises them.
 */
export function timeline(keyset: Keyset, keys: Key[], next: NextRotation | null, now: number): SVGSVGElement {
  const drawn = keysToDraw(keys)
  const lives = drawn.map((key) => ({ key, ...lifeOf(key, next) }))
  const times = [now, next?.activatesAt ?? now]
  for (const life of lives) {
    for (const span of life.spans) times.push(span.from, span.to ?? now)
    for (const mark of life.marks) times.push(mark.at)
  }
  const first = Math.min(...times)
  const last = Math.max(...times)
  const pad = Math.max((last - first) * 0.05, 60_000)
  const start = first - pad
  const end = last + pad
  const x = (ms: number) => LABEL + ((ms - start) / (end - start)) * (WIDTH - LABEL - 10)
  const height = TOP + Math.max(lives.length, 1) * LANE + BOTTOM
  const titleId = uid('timeline-title')
  const descId = uid('timeline-desc')

  const active = keys.find((key) => key.state === 'active')
  const summary = [
    active ? `Active key ${active.kid} since ${absolute(epoch(active.activatedAt)!)}.` : 'No active key.',
    ...keys.filter((key) => key.state === 'pending').map((key) => `Pending key ${key.kid} activates ${absolute(epoch(key.activatesAt)!)}.`),
    ...keys.filter((key) => key.state === 'retired').map((key) => `Retired key ${key.kid} leaves the JWK Set ${absolute(epoch(key.publishedUntil)!)}.`),
    next ? `Next rotation ${absolute(next.activatesAt)}.` : 'No rotation scheduled.',
  ].join(' ')

  const lanes = lives.map((life, index) => {
    const y = TOP + index * LANE
    return s('g', { class: 'lane' },
      s('text', { x: 4, y: y + 15, class: 'kid-label' }, life.key.kid.slice(0, 14), s('title', {}, life.key.kid)),
      life.spans.map((span) => {
        const from = x(span.from)
        const to = x(span.to ?? end)
        return s('rect', {
          x: from, y: y + 4, width: Math.max(to - from, 3), height: LANE - 8, rx: 3,
          class: `span span-${span.state}${span.planned ? ' planned' : ''}`,
          'data-kid': span.kid, 'data-state': span.state,
        }, s('title', {}, `${span.kid}: ${span.state} from ${absolute(span.from)}${span.to === null ? '' : ` to ${absolute(span.to)}${span.planned ? ' (planned)' : ''}`}`))
      }),
      life.marks.map((mark) => s('path', {
        d: `M ${x(mark.at)} ${y + 3} l 6 9 l -6 9 l -6 -9 z`,
        class: `mark mark-${mark.state}`, 'data-kid': mark.kid, 'data-state': mark.state,
      }, s('title', {}, `${mark.kid}: ${mark.state} ${absolute(mark.at)}`))),
    )
  })

  const bottom = height - BOTTOM
  return s('svg', {
    class: 'timeline', viewBox: `0 0 ${WIDTH} ${height}`, role: 'img', 'aria-labelledby': `${titleId} ${descId}`,
    'data-keyset': keyset.name, preserveAspectRatio: 'xMinYMin meet',
  },
  s('title', { id: titleId }, `Key timeline of keyset ${keyset.name}`),
  s('desc', { id: descId }, summary),
  lanes,
  s('line', { x1: LABEL, x2: WIDTH - 10, y1: bottom, y2: bottom, class: 'axis' }),
  s('text', { x: LABEL, y: height - 6, class: 'axis-label' }, absolute(start).slice(0, 16).replace('T', ' ')),
  s('text', { x: WIDTH - 10, y: height - 6, class: 'axis-label end' }, absolute(end).slice(0, 16).replace('T', ' ')),
  next ? s('g', { class: 'next-rotation' },
    s('line', { x1: x(next.activatesAt), x2: x(next.activatesAt), y1: 14, y2: bottom }),
    s('title', {}, `next rotation ${absolute(next.activatesAt)} (${relative(next.activatesAt, now)})`),
  ) : null,
  s('g', { class: 'now' },
    s('line', { x1: x(now), x2: x(now), y1: 14, y2: bottom }),
    label(x(now), 'now'),
  ),
  )
}
