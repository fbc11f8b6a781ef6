import { readdirSync, readFileSync } from 'node:fs'

/**
 * CPU time (ms) and resident memory (bytes) of a server, read from /proc: the
 * process and every process under it (the workers of SIGNET_WORKERS), added up.
 */
export interface ProcessSample {
  cpuMs: number
  /** CPU time (ms) of the main threads alone (each process's event loop). */
  mainThreadCpuMs: number
  /** The largest resident set of one process of the tree. */
  rssBytes: number
  at: number
}

const TICKS_PER_SECOND = 100 // USER_HZ on Linux

/** CPU time (ms) used so far, from a /proc stat file (a process's or one thread's). */
export function cpuMsOf(statPath: string): number {
  const stat = readFileSync(statPath, 'utf8')
  // Fields after the command name, which is in parentheses and may hold spaces.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS_PER_SECOND
}

/** `pid` and its descendants, from /proc/PID/task/TID/children. */
function processTree(pid: number): number[] {
  const tree = [pid]
  for (let i = 0; i < tree.length; i++) {
    const id = tree[i]!
    try {
      for (const task of readdirSync(`/proc/${id}/task`)) {
        const children = readFileSync(`/proc/${id}/task/${task}/children`, 'utf8').trim()
        if (children) tree.push(...children.split(' ').map(Number))
      }
    } catch {
      // The process ended meanwhile.
    }
  }
  return tree
}

function sampleOne(pid: number): Omit<ProcessSample, 'at'> | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8')
    const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0)
    return {
      cpuMs: cpuMsOf(`/proc/${pid}/stat`),
      // A process's main thread has the process's id: in Node, the event loop.
      mainThreadCpuMs: cpuMsOf(`/proc/${pid}/task/${pid}/stat`),
      rssBytes: rssKb * 1024,
    }
  } catch {
    return null
  }
}

export function sampleProcess(pid: number): ProcessSample | null {
  const root = sampleOne(pid)
  if (!root) return null
  const all = [root, ...processTree(pid).slice(1).map(sampleOne).filter((one) => one !== null)]
  return {
    cpuMs: all.reduce((sum, one) => sum + one.cpuMs, 0),
    mainThreadCpuMs: all.reduce((sum, one) => sum + one.mainThreadCpuMs, 0),
    rssBytes: Math.max(...all.map((one) => one.rssBytes)),
    at: Date.now(),
  }
}

/**
 * Samples a process every 200 ms while `work` runs: peak RSS and average CPU (% of
 * one core) of the whole process and of its main thread; and the CPU this process
 * (the load generator) used meanwhile.
 */
export async function watchProcess<T>(pid: number, work: () => Promise<T>): Promise<{ result: T; peakRssMb: number; cpuPercent: number; mainThreadCpuPercent: number; ownCpuPercent: number }> {
  const ownBefore = process.cpuUsage()
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
    const own = process.cpuUsage(ownBefore)
    const percent = (used: (sample: ProcessSample) => number) =>
      first && last && last.at > first.at ? ((used(last) - used(first)) / (last.at - first.at)) * 100 : 0
    const ownCpuPercent = first && last && last.at > first.at ? ((own.user + own.system) / 1000 / (last.at - first.at)) * 100 : 0
    return {
      result,
      peakRssMb: peak / 1024 / 1024,
      cpuPercent: percent((sample) => sample.cpuMs),
      mainThreadCpuPercent: percent((sample) => sample.mainThreadCpuMs),
      ownCpuPercent,
    }
  } finally {
    clearInterval(timer)
  }
}
