/**
 * Preloaded into the URGE server by the realtime bench when BENCH_STALLS=1: finds where the event loop stalls.
 * A 1 ms timer notes each time it fires more than 5 ms late, with what the main thread did meanwhile, from
 * /proc/thread-self/schedstat: time on a CPU (work on the event loop: our code, GC), time waiting for a CPU
 * (other processes and threads had the cores) and the rest, blocked (a syscall: an fsync, a lock). Written to
 * BENCH_STALLS_FILE as [[epoch ms, late ms, cpu ms, runqueue ms], …] every 250 ms. Costs ~0.5 % of a core.
 */
import { readFileSync, writeFileSync } from "node:fs"

const file = process.env.BENCH_STALLS_FILE
if (file) {
  const schedstat = () => readFileSync("/proc/thread-self/schedstat", "utf8").split(" ").map(Number)
  const stalls: number[][] = []
  let last = performance.now()
  let lastStat = schedstat()
  const tick = () => {
    const now = performance.now()
    const stat = schedstat()
    const late = now - last - 1
    if (late > 5) {
      const ms = (ns: number) => Math.round(ns / 1e4) / 100
      stalls.push([
        Date.now(),
        Math.round(late * 100) / 100,
        ms(stat[0]! - lastStat[0]!),
        ms(stat[1]! - lastStat[1]!),
      ])
    }
    last = now
    lastStat = stat
    setTimeout(tick, 1)
  }
  setTimeout(tick, 1)
  setInterval(() => writeFileSync(file, JSON.stringify(stalls)), 250).unref()
}
