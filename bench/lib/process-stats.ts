import { readFileSync } from 'node:fs'

/** CPU time (ms) and resident memory (bytes) of a process, read from /proc. */
export interface ProcessSample {
  cpuMs: number
  rssBytes: number
  at: number
}

const TICKS_PER_SECOND = 100 // USER_HZ on Linux

export function sampleProcess(pid: number): ProcessSample | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // Fields after the command name, which is in parentheses and may hold spaces.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    const utime = Number(fields[11])
    const stime = Number(fields[12])
    const status = readFileSync(`/proc/${pid}/status`, 'utf8')
    const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0)
    return { cpuMs: ((utime + stime) * 1000) / TICKS_PER_SECOND, rssBytes: rssKb * 1024, at: Date.now() }
  } catch {
    return null
  }
}

/** Samples a process every 200 ms while `work` runs: peak RSS and average CPU (% of one core). */
export async function watchProcess<T>(pid: number, work: () => Promise<T>): Promise<{ result: T; peakRssMb: number; cpuPercent: number }> {
  const first = sampleProcess(pid)
  let peak = first?.rssBytes ?? 0
  const timer = setInterval(() => {
    const sample = sampleProcess(pid)
    if (sample && sample.rssBytes > peak) peak = sample.rssBytes
  }, 200)
  try {
    const result = await work()
    const last = sampleProcess(pid)
    if (last && last.rssBytes > peak) peak = last.rssBytes
    const cpuPercent = first && last && last.at > first.at ? ((last.cpuMs - first.cpuMs) / (last.at - first.at)) * 100 : 0
    return { result, peakRssMb: peak / 1024 / 1024, cpuPercent }
  } finally {
    clearInterval(timer)
  }
}
