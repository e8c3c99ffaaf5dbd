/**
 * `urge backup create | verify | restore` on the generated SQLite dataset (npm run bench:messaging:generate, or
 * `bun bench/generate-messaging.ts --db sqlite --messages N` for a smaller one), each run as its own CLI
 * process like an operator runs it: wall time and the child's CPU time (user + system), with a plain file copy
 * of the same database in the same run as the baseline (what the disk alone costs).
 *
 *   bun bench/backup.ts [--runs 3]
 */
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { args, sqliteDataPath } from "./lib.ts"

const runs = Number(args().runs ?? 3)
if (!existsSync(sqliteDataPath)) {
  console.error(`no dataset at ${sqliteDataPath}: run bun bench/generate-messaging.ts --db sqlite first`)
  process.exit(1)
}
const work = mkdtempSync(join(tmpdir(), "urge-bench-backup-"))
const dataDir = join(work, "data")
const env = { ...process.env, URGE_DATA_DIR: dataDir, URGE_DATABASE_URL: "" }
const main = join(import.meta.dir, "..", "cli", "main.ts")
const loadavg = () => readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ")

type Sample = { wallMs: number; cpuMs: number }

async function cli(...argv: string[]): Promise<Sample> {
  const started = performance.now()
  const proc = Bun.spawn([process.execPath, main, "backup", ...argv], { env, stdout: "pipe", stderr: "pipe" })
  const [stderr, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited])
  const wallMs = performance.now() - started
  if (code !== 0) throw new Error(`backup ${argv.join(" ")}: ${stderr}`)
  const cpu = proc.resourceUsage()!.cpuTime
  return { wallMs, cpuMs: Number(cpu.user + cpu.system) / 1000 }
}

function copy(from: string, to: string): Sample {
  const started = performance.now()
  const before = process.cpuUsage()
  copyFileSync(from, to)
  const cpu = process.cpuUsage(before)
  return { wallMs: performance.now() - started, cpuMs: (cpu.user + cpu.system) / 1000 }
}

const rows: Record<string, Sample[]> = { "file copy (baseline)": [], create: [], verify: [], restore: [] }
try {
  Bun.spawnSync(["mkdir", "-p", dataDir])
  const live = join(dataDir, "urge.db")
  copyFileSync(sqliteDataPath, live)
  for (let i = 0; i < runs; i++) {
    const out = join(work, `run-${i}.db`)
    rows["file copy (baseline)"]!.push(copy(live, join(work, `copy-${i}.db`)))
    rows.create!.push(await cli("create", "--out", out))
    rows.verify!.push(await cli("verify", out))
    rows.restore!.push(await cli("restore", out))
    rmSync(join(work, `copy-${i}.db`))
  }
  const size = statSync(sqliteDataPath).size
  const backupSize = statSync(join(work, "run-0.db")).size
  console.log(
    `database ${(size / 2 ** 20).toFixed(1)} MiB, backup ${(backupSize / 2 ** 20).toFixed(1)} MiB; ${runs} runs; load average ${loadavg()}`,
  )
  console.log("operation".padEnd(22), "wall ms (min / median)".padEnd(26), "CPU ms (min / median)")
  for (const [name, samples] of Object.entries(rows)) {
    const stat = (pick: (s: Sample) => number) => {
      const sorted = samples.map(pick).sort((a, b) => a - b)
      return `${sorted[0]!.toFixed(0)} / ${sorted[Math.floor(sorted.length / 2)]!.toFixed(0)}`
    }
    console.log(
      name.padEnd(22),
      stat((s) => s.wallMs).padEnd(26),
      stat((s) => s.cpuMs),
    )
  }
} finally {
  rmSync(work, { recursive: true, force: true })
}
