#!/usr/bin/env bun
/**
 * Startup and binary figures: `bun bench/startup.ts [--runs N]` (npm run bench:startup).
 *
 * Builds the binary in several variants into a temp directory and, for each, prints its size, the time from
 * process start to the first 200 of GET /health (a restart: data migrated, native files already extracted;
 * min / median / max over N runs), the same for a first start in an empty directory, the time of
 * `urge --version`, and the idle RSS once the server has settled (sharp loaded).
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { parseArgs } from "node:util"
import { buildBinary } from "../build.ts"

const { values } = parseArgs({
  args: Bun.argv.slice(2),
  options: { runs: { type: "string", default: "10" } },
})
const runs = Number(values.runs)
const repo = resolve(import.meta.dir, "..")
const work = mkdtempSync(join(tmpdir(), "urge-startup-"))

type Variant = { name: string; build: (outfile: string) => Promise<void> }

const variants: Variant[] = [
  {
    name: "plain `bun build --compile` (sharp cannot load)",
    build: async (outfile) => {
      const result = await Bun.build({
        entrypoints: [join(repo, "cli", "main.ts")],
        target: "bun",
        compile: { outfile },
      })
      if (!result.success) throw new Error(result.logs.join("\n"))
    },
  },
  {
    name: "build.ts --no-sharp",
    build: async (outfile) => void (await buildBinary({ outfile, sharp: false })),
  },
  {
    name: "build.ts --no-bytecode",
    build: async (outfile) => void (await buildBinary({ outfile, bytecode: false })),
  },
  {
    name: "build.ts (release: sharp, bytecode)",
    build: async (outfile) => void (await buildBinary({ outfile })),
  },
]

/** A port nobody listens on right now. */
function freePort(): number {
  const server = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } })
  const port = server.port
  server.stop(true)
  return port
}

/** Starts `urge serve` in `dir` and returns ms until the first 200 of /health, with the running process. */
async function startOnce(binary: string, dir: string) {
  const port = freePort()
  const started = performance.now()
  const proc = Bun.spawn([binary, "serve", "--host", "127.0.0.1", "--port", String(port)], {
    cwd: dir,
    env: { PATH: process.env.PATH, HOME: join(dir, "home") },
    stdout: "ignore",
    stderr: "inherit",
  })
  for (;;) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/health`)
      if (res.status === 200) break
    } catch {}
    if (proc.exitCode !== null) throw new Error(`${binary} exited with ${proc.exitCode}`)
    await Bun.sleep(1)
  }
  return { ms: performance.now() - started, proc }
}

async function stop(proc: ReturnType<typeof Bun.spawn>) {
  proc.kill("SIGTERM")
  await proc.exited
}

/** Resident memory in MiB: all of it, and the anonymous part (the rest is file-backed: the binary, libvips). */
const rssMiB = (pid: number) => {
  const status = readFileSync(`/proc/${pid}/status`, "utf8")
  const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN)
  return `${(kb("VmRSS") / 1024).toFixed(0)} MiB (${(kb("RssAnon") / 1024).toFixed(0)} MiB anonymous)`
}

const stats = (xs: number[]) => {
  const sorted = [...xs].sort((a, b) => a - b)
  const median = sorted[Math.floor(sorted.length / 2)]!
  return `${sorted[0]!.toFixed(0)} / ${median.toFixed(0)} / ${sorted.at(-1)!.toFixed(0)}`
}

/** CPU time (user + system) the process has used so far, in ms: less sensitive to a busy machine than wall time. */
const cpuMs = (pid: number) => {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / clockTicks
}
const clockTicks = Number(Bun.spawnSync(["getconf", "CLK_TCK"]).stdout.toString().trim()) || 100

type Figures = {
  size: number
  first: number
  starts: number[]
  cpu: number[]
  version: number[]
  rss: string
}
const figures: Figures[] = []
try {
  // Build every variant, then do a first start of each in an empty directory (database created, migrations,
  // sharp extracted in the background).
  for (const [i, variant] of variants.entries()) {
    const binary = join(work, `urge-${i}`)
    await variant.build(binary)
    const dir = join(work, `run-${i}`)
    mkdirSync(join(dir, "home"), { recursive: true })
    const first = await startOnce(binary, dir)
    await Bun.sleep(1500)
    await stop(first.proc)
    figures.push({
      size: statSync(binary).size / 1024 / 1024,
      first: first.ms,
      starts: [],
      cpu: [],
      version: [],
      rss: "",
    })
    console.error(`built: ${variant.name}`)
  }
  // Restarts, what an operator sees on every later start: variants interleaved, so a busy moment on the
  // machine weighs on all of them alike.
  for (let run = 0; run < runs; run++) {
    for (const [i, f] of figures.entries()) {
      const binary = join(work, `urge-${i}`)
      const dir = join(work, `run-${i}`)
      const { ms, proc } = await startOnce(binary, dir)
      f.cpu.push(cpuMs(proc.pid))
      f.starts.push(ms)
      if (run === runs - 1) {
        await Bun.sleep(2000)
        f.rss = rssMiB(proc.pid)
      }
      await stop(proc)
      const started = performance.now()
      Bun.spawnSync([binary, "--version"], { cwd: dir, env: { HOME: join(dir, "home") } })
      f.version.push(performance.now() - started)
    }
  }
} finally {
  rmSync(work, { recursive: true, force: true })
}

const header = [
  "binary",
  "size",
  "start → first /health 200, ms (min / median / max)",
  "CPU used by then, ms (min / median / max)",
  "first start in an empty dir, ms",
  "`urge --version`, ms (min / median / max)",
  "idle RSS (2 s after start)",
]
console.log(`Startup figures, ${runs} runs each (${process.platform}-${process.arch}, Bun ${Bun.version}):\n`)
console.log(`| ${header.join(" | ")} |`)
console.log(`| ${header.map(() => "---").join(" | ")} |`)
for (const [i, f] of figures.entries())
  console.log(
    `| ${[
      variants[i]!.name,
      `${f.size.toFixed(1)} MiB`,
      stats(f.starts),
      stats(f.cpu),
      f.first.toFixed(0),
      stats(f.version),
      f.rss,
    ].join(" | ")} |`,
  )
