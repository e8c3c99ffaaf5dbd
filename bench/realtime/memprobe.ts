/**
 * Bench-only preload for the URGE server process (`bun --preload bench/realtime/memprobe.ts cli/main.ts serve`,
 * set by lib.ts when BENCH_MEMPROBE names an output file): on SIGUSR2 it writes where the process's memory is
 * to that file, as JSON lines, without changing the product's code:
 * RSS and JSC heap now; after a full GC; after Bun.shrink(); after SQLite releases its page cache
 * (`PRAGMA shrink_memory` on the connections the server opened), and the most numerous object types.
 * Each step is measured after the previous one, so the differences say what each held.
 */
import { Database } from "bun:sqlite"
import { appendFileSync, readFileSync } from "node:fs"
import { heapStats, memoryUsage } from "bun:jsc"
import { dlopen, FFIType } from "bun:ffi"

// glibc's allocator (whatever in the process uses plain malloc): malloc_trim returns its free pages.
const libc = dlopen("libc.so.6", {
  malloc_trim: { args: [FFIType.u64], returns: FFIType.i32 },
})

const out = process.env.BENCH_MEMPROBE!
const databases: Database[] = []
const exec = Database.prototype.exec
Database.prototype.exec = function (this: Database, ...args: any[]) {
  if (!databases.includes(this)) databases.push(this)
  return (exec as any).apply(this, args)
}

/** RSS of the brk heap (glibc's main arena) and of all other anonymous mappings, KiB (smaps). */
const smaps = () => {
  let heap = 0
  let anon = 0
  let current = ""
  for (const line of readFileSync("/proc/self/smaps", "utf8").split("\n")) {
    if (/^[0-9a-f]+-[0-9a-f]+ /.test(line)) current = line.split(/\s+/)[5] ?? ""
    else if (line.startsWith("Rss:")) {
      const kb = Number(line.split(/\s+/)[1])
      if (current === "[heap]") heap += kb
      else if (current === "") anon += kb
    }
  }
  return { brkHeapKiB: heap, anonKiB: anon }
}
const rssKiB = () => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"))?.[1])
const snapshot = (step: string) => {
  const h = heapStats()
  const m = memoryUsage()
  return {
    step,
    rssKiB: rssKiB(),
    ...smaps(),
    heapSizeKiB: Math.round(h.heapSize / 1024),
    heapCapacityKiB: Math.round(h.heapCapacity / 1024),
    extraKiB: Math.round(h.extraMemorySize / 1024),
    objects: h.objectCount,
    jscCurrentKiB: Math.round(m.current / 1024),
    jscPeakKiB: Math.round(m.peak / 1024),
  }
}

process.on("SIGUSR2", () => {
  const steps = [snapshot("now")]
  Bun.gc(true)
  steps.push(snapshot("after full GC"))
  Bun.shrink()
  Bun.gc(true)
  steps.push(snapshot("after Bun.shrink"))
  for (const db of databases) exec.call(db, "PRAGMA shrink_memory")
  steps.push(snapshot("after sqlite shrink_memory"))
  libc.symbols.malloc_trim(0)
  steps.push(snapshot("after malloc_trim"))
  const counts = Object.entries(heapStats().objectTypeCounts)
    .sort((a, b) => b[1] - a[1])
    .slice(0, 30)
  appendFileSync(out, `${JSON.stringify({ steps, counts })}\n`)
})

// SIGUSR1 (diagnostics): object counts by class name from a heap snapshot, into <file>.classes.json.
process.on("SIGUSR1", () => {
  Bun.gc(true)
  const { generateHeapSnapshotForDebugging } = require("bun:jsc")
  const snapshot = generateHeapSnapshotForDebugging() as { nodes: number[]; nodeClassNames: string[] }
  const counts: Record<string, number> = {}
  // nodes: [id, size, classNameIndex, flags, (labelIndex, cellAddress, wrappedAddress)?] per node.
  const fields = (snapshot as any).type === "GCDebugging" ? 7 : 4
  const sizes: Record<string, number> = {}
  for (let i = 0; i < snapshot.nodes.length; i += fields) {
    const name = snapshot.nodeClassNames[snapshot.nodes[i + 2]!]!
    counts[name] = (counts[name] ?? 0) + 1
    sizes[name] = (sizes[name] ?? 0) + snapshot.nodes[i + 1]!
  }
  // Who points at the objects, arrays and strings: "<referrer class>.<edge name> -> <class>" counts.
  const snap = snapshot as any
  const classOf = new Map<number, string>()
  for (let i = 0; i < snap.nodes.length; i += fields)
    classOf.set(snap.nodes[i], snap.nodeClassNames[snap.nodes[i + 2]])
  const referrers: Record<string, number> = {}
  for (let i = 0; i < snap.edges.length; i += 4) {
    const to = classOf.get(snap.edges[i + 1])
    if (to !== "Object" && to !== "Array" && to !== "string") continue
    const type = snap.edgeTypes[snap.edges[i + 2]]
    const name = type === "Property" || type === "Variable" ? snap.edgeNames[snap.edges[i + 3]] : type
    const key = `${classOf.get(snap.edges[i])}.${name} -> ${to}`
    referrers[key] = (referrers[key] ?? 0) + 1
  }
  appendFileSync(
    `${out}.referrers.json`,
    `${JSON.stringify(
      Object.entries(referrers)
        .sort((x, y) => y[1] - x[1])
        .slice(0, 80),
    )}\n`,
  )
  const top = Object.entries(counts)
    .sort((a, b) => b[1] - a[1])
    .slice(0, 60)
    .map(([k, v]) => [k, v, sizes[k]])
  appendFileSync(`${out}.classes.json`, `${JSON.stringify(top)}\n`)
})
