/**
 * A strict parser of the Prometheus text exposition format (version 0.0.4), for
 * tests: every line must be a HELP, a TYPE or a sample of a declared family, so a
 * malformed exposition fails the test instead of being skipped.
 * https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format
 */

export interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

export interface Family {
  name: string
  type: 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped'
  help: string
  samples: Sample[]
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*'
const LABEL = '[a-zA-Z_][a-zA-Z0-9_]*'
const SAMPLE = new RegExp(`^(${NAME})(?:\\{(.*)\\})? (\\S+)(?: (-?\\d+))?$`)
const LABEL_PAIR = new RegExp(`^(${LABEL})="((?:[^"\\\\\\n]|\\\\[\\\\"n])*)"`)

/** Values as Prometheus reads them (Go's ParseFloat): Inf and NaN in any case. */
function parseValue(text: string, line: string): number {
  if (/^\+?inf(inity)?$/i.test(text)) return Infinity
  if (/^-inf(inity)?$/i.test(text)) return -Infinity
  if (/^nan$/i.test(text)) return NaN
  if (!/^-?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+)$/.test(text)) throw new Error(`bad sample value in: ${line}`)
  return Number(text)
}

function parseLabels(text: string, line: string): Record<string, string> {
  const labels: Record<string, string> = {}
  let rest = text
  while (rest.length > 0) {
    const match = LABEL_PAIR.exec(rest)
    if (!match) throw new Error(`bad labels in: ${line}`)
    const [whole, name, raw] = match as unknown as [string, string, string]
    if (name in labels) throw new Error(`label ${name} repeated in: ${line}`)
    labels[name] = raw.replace(/\\(.)/g, (_m, c: string) => (c === 'n' ? '\n' : c))
    rest = rest.slice(whole.length)
    if (rest.startsWith(',')) rest = rest.slice(1)
    else if (rest.length > 0) throw new Error(`bad label separator in: ${line}`)
  }
  return labels
}

/** The family a sample belongs to: its own name, or a histogram/summary base name. */
function familyOf(families: Map<string, Family>, sample: string): Family | undefined {
  const direct = families.get(sample)
  if (direct) return direct
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (!sample.endsWith(suffix)) continue
    const family = families.get(sample.slice(0, -suffix.length))
    if (family && (family.type === 'histogram' || (family.type === 'summary' && suffix !== '_bucket'))) return family
  }
  return undefined
}

export function parsePrometheus(text: string): Map<string, Family> {
  const families = new Map<string, Family>()
  if (!text.endsWith('\n')) throw new Error('the exposition must end with a newline')
  for (const line of text.split('\n')) {
    if (line === '') continue
    if (line.startsWith('# HELP ')) {
      const [, name, help = ''] = /^# HELP (\S+) ?(.*)$/.exec(line) ?? []
      if (!name || !new RegExp(`^${NAME}$`).test(name)) throw new Error(`bad HELP: ${line}`)
      const family = families.get(name) ?? { name, type: 'untyped', help: '', samples: [] }
      family.help = help
      families.set(name, family)
      continue
    }
    if (line.startsWith('# TYPE ')) {
      const [, name, type] = /^# TYPE (\S+) (counter|gauge|histogram|summary|untyped)$/.exec(line) ?? []
      if (!name || !type) throw new Error(`bad TYPE: ${line}`)
      const family = families.get(name) ?? { name, type: 'untyped', help: '', samples: [] }
      if (family.samples.length > 0) throw new Error(`TYPE after samples: ${line}`)
      family.type = type as Family['type']
      families.set(name, family)
      continue
    }
    if (line.startsWith('#')) continue
    const match = SAMPLE.exec(line)
    if (!match) throw new Error(`bad sample line: ${line}`)
    const [, name, labelText, valueText] = match as unknown as [string, string, string | undefined, string]
    const family = familyOf(families, name)
    if (!family) throw new Error(`sample of an undeclared family: ${line}`)
    family.samples.push({ name, labels: labelText ? parseLabels(labelText, line) : {}, value: parseValue(valueText, line) })
  }
  return families
}

/** The value of one sample whose labels include `labels`; 0 when there is none, as Prometheus reads a missing counter. */
export function sampleValue(families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number {
  const family = familyOf(families, name)
  if (!family) throw new Error(`no metric family for ${name}`)
  const matches = family.samples.filter((sample) => sample.name === name && Object.entries(labels).every(([key, value]) => sample.labels[key] === value))
  if (matches.length > 1) throw new Error(`${name} ${JSON.stringify(labels)} matches ${matches.length} samples: give more labels`)
  return matches[0]?.value ?? 0
}

/** The sum over every sample of `name` whose labels include `labels`. */
export function sampleSum(families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number {
  const family = familyOf(families, name)
  if (!family) throw new Error(`no metric family for ${name}`)
  return family.samples
    .filter((sample) => sample.name === name && Object.entries(labels).every(([key, value]) => sample.labels[key] === value))
    .reduce((total, sample) => total + sample.value, 0)
}
