/**
 * Measuring on a noisy machine. A shared machine's speed drifts by a fifth from
 * one minute to the next, so two rows measured a minute apart do not make a ratio.
 * The rows of a ratio are measured in alternation instead (A B A B A B), a short
 * round each, and the ratio is the median of the per-round ratios: each round's
 * pair saw the same machine.
 */

/** One row of the bench table, and what one round of a measurement gives. */
export interface Sample {
  requestsPerSecond: number
  tokensPerSecond: number | null
  p50Ms: number | null
  p99Ms: number | null
  serverRssMb: number | null
  serverCpuPercent: number | null
  /** CPU of the server's main thread alone: its event loop (HTTP, JSON, logs), not the signing threads. */
  serverEventLoopCpuPercent: number | null
  /** CPU of the bench process meanwhile: autocannon, the load generator, shares the machine's cores. */
  loadGeneratorCpuPercent: number | null
  /**
   * The server's CPU time (all its processes and threads, from /proc) per token it
   * signed, in µs; for a crypto-limit row, the CPU time of one signature alone. It
   * does not depend on how much of the machine the load generator takes.
   */
  cpuUsPerToken: number | null
  /** The server's CPU time per request, in µs (HTTP rows; what a request costs whatever it signs). */
  cpuUsPerRequest: number | null
  errors: number
}

export interface Row extends Sample {
  name: string
  what: string
}

/** Something to measure: a warm-up before its first round, then rounds of `seconds`. */
export interface Probe {
  name: string
  what: string
  warmUp?: () => Promise<void>
  sample: (seconds: number) => Promise<Sample>
}

export interface Measured {
  row: Row
  samples: Sample[]
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

const mean = (values: number[]) => values.reduce((sum, value) => sum + value, 0) / values.length

/** Mean or median of a field over rounds, or null when the probe does not measure it. */
function over(samples: Sample[], field: keyof Sample, how: (values: number[]) => number): number | null {
  const values = samples.map((sample) => sample[field]).filter((value): value is number => value !== null)
  return values.length === samples.length ? how(values) : null
}

/** A probe's row: mean throughput and CPU over its rounds, median p50, the worst round's p99, peak RSS, all errors. */
export function summarise(probe: Probe, samples: Sample[]): Row {
  return {
    name: probe.name,
    what: probe.what,
    requestsPerSecond: mean(samples.map((sample) => sample.requestsPerSecond)),
    tokensPerSecond: over(samples, 'tokensPerSecond', mean),
    p50Ms: over(samples, 'p50Ms', median),
    p99Ms: over(samples, 'p99Ms', (values) => Math.max(...values)),
    serverRssMb: over(samples, 'serverRssMb', (values) => Math.max(...values)),
    serverCpuPercent: over(samples, 'serverCpuPercent', (values) => Math.round(mean(values))),
    serverEventLoopCpuPercent: over(samples, 'serverEventLoopCpuPercent', (values) => Math.round(mean(values))),
    loadGeneratorCpuPercent: over(samples, 'loadGeneratorCpuPercent', (values) => Math.round(mean(values))),
    cpuUsPerToken: over(samples, 'cpuUsPerToken', median),
    cpuUsPerRequest: over(samples, 'cpuUsPerRequest', median),
    errors: samples.reduce((sum, sample) => sum + sample.errors, 0),
  }
}

/**
 * Measures the probes in alternation, `rounds` rounds of `seconds` each, after each
 * one's warm-up. Every other round runs in reverse order (A B, B A, A B, ...), so
 * no probe always follows the same one.
 */
export async function alternate(probes: Probe[], rounds: number, seconds: number): Promise<Measured[]> {
  for (const probe of probes) await probe.warmUp?.()
  const samples: Sample[][] = probes.map(() => [])
  for (let round = 0; round < rounds; round++) {
    const order = [...probes.keys()]
    if (round % 2 === 1) order.reverse()
    for (const i of order) samples[i]!.push(await probes[i]!.sample(seconds))
  }
  return probes.map((probe, i) => ({ row: summarise(probe, samples[i]!), samples: samples[i]! }))
}

/** The median over rounds of `numerator ÷ denominator`, each round's pair measured side by side. */
export function pairedRatio(numerator: Sample[], denominator: Sample[], pick: (sample: Sample) => number | null): { value: number; rounds: number[] } {
  const rounds = numerator.map((sample, i) => (pick(sample) ?? Number.NaN) / (pick(denominator[i]!) ?? Number.NaN))
  const measured = rounds.filter((ratio) => Number.isFinite(ratio))
  return { value: measured.length > 0 ? median(measured) : Number.NaN, rounds }
}
