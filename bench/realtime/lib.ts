/**
 * Shared pieces of the realtime benchmarks: starting servers as separate processes, reading their CPU time and
 * RSS from /proc, starting load-client processes, and summarising latencies.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import type { ClientCommand, ClientReply } from "./client.ts"

export const root = resolve(import.meta.dir, "../..")
export const bun = process.execPath
export const benchSecret = "bench-secret-bench-secret-bench-secret"

/** Clock ticks per second of /proc/<pid>/stat (getconf CLK_TCK; 100 on Linux x86_64). */
const clockTicks = 100

/** A server under test: a separate process and where it listens. */
export type ServerProcess = {
  kind: ServerKind
  pid: number
  url: string
  port: number
  dataDir?: string
  /** With BENCH_STALLS=1 (URGE only): the event loop's stalls over 5 ms between two epoch times (stall-probe.ts). */
  stalls?(from: number, to: number): Promise<StallSummary>
  stop(): Promise<void>
}

/** Stalls of the server's event loop in a window: how many, the longest, and where the time went (ms). */
export type StallSummary = {
  count: number
  maxMs: number
  cpuMs: number
  runqueueMs: number
  blockedMs: number
}

/** What a load client speaks to: the URGE server (native /ws or Socket.IO) or a baseline. */
export type ServerKind = "urge" | "bun-bare" | "node-sio"
export type Protocol = "native" | "socket.io" | "bun-bare" | "node-sio"

/** CPU seconds (user + system) the process has used so far. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
  // Fields after the command name (which may contain spaces) start after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
  // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after "pid (comm) ".
  return (Number(fields[11]) + Number(fields[12])) / clockTicks
}

/** Resident set size of the process in bytes (VmRSS). */
export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8")
  const kb = /VmRSS:\s+(\d+) kB/.exec(status)
  return kb ? Number(kb[1]) * 1024 : NaN
}

/**
 * RSS split as the kernel counts it (bytes): anonymous (the process's own memory: heaps, SQLite's page cache)
 * and file-backed (mapped files: SQLite's memory-mapped database pages are the kernel's page cache, shared
 * and reclaimable, yet counted in VmRSS once touched).
 */
export function rssParts(pid: number): { anon: number; file: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8")
  const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN) * 1024
  return { anon: kb("RssAnon"), file: kb("RssFile") + kb("RssShmem") }
}

/** A free TCP port on 127.0.0.1 (taken by a throwaway listener, then released). */
export function freePort(): number {
  const probe = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response() })
  const port = probe.port!
  probe.stop(true)
  return port
}

async function waitForHttp(
  url: string,
  child: { exitCode: number | null },
  what: string,
  timeoutMs = 20_000,
) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${what} exited with ${child.exitCode} before listening`)
    try {
      const res = await fetch(url)
      if (res.status < 500) return
    } catch {}
    if (Date.now() > deadline) throw new Error(`${what} did not answer ${url} within ${timeoutMs} ms`)
    await Bun.sleep(50)
  }
}

/**
 * Starts the real URGE server (`urge serve` from cli/main.ts) in its own process on a temp SQLite database:
 * auth rate limits and the request log off (the bench signs up thousands of users from one IP), everything
 * else as configured by default. `env` adds URGE_* settings.
 */
export async function startUrgeServer(env: Record<string, string> = {}): Promise<ServerProcess> {
  const dataDir = mkdtempSync(join(tmpdir(), "urge-bench-"))
  const port = freePort()
  // BENCH_PROFILE=<dir>: the server writes a CPU profile (markdown) there when it stops.
  const profile = process.env.BENCH_PROFILE
  const flags = profile ? ["--cpu-prof-md", `--cpu-prof-dir=${profile}`] : []
  // BENCH_STALLS=1: the server notes where its event loop stalls (stall-probe.ts).
  const stallsFile = process.env.BENCH_STALLS === "1" ? join(dataDir, "stalls.json") : undefined
  if (stallsFile) flags.push("--preload", join(import.meta.dir, "stall-probe.ts"))
  // BENCH_MEMPROBE=<file>: the server reports where its memory is on SIGUSR2 (memprobe.ts), into that file.
  if (process.env.BENCH_MEMPROBE) flags.push("--preload", join(import.meta.dir, "memprobe.ts"))
  const child = Bun.spawn([bun, ...flags, join(root, "cli/main.ts"), "serve"], {
    cwd: root,
    env: {
      ...process.env,
      URGE_SERVER_HOST: "127.0.0.1",
      URGE_SERVER_PORT: String(port),
      URGE_DATA_DIR: dataDir,
      URGE_DATABASE_URL: "",
      URGE_AUTH_JWT_SECRET: benchSecret,
      URGE_RATE_LIMIT_ENABLED: "false",
      URGE_LOG_REQUESTS: "false",
      URGE_LOG_LEVEL: "warn",
      ...env,
      ...(stallsFile ? { BENCH_STALLS_FILE: stallsFile } : {}),
      // BENCH_SERVER_ENV="K=V K=V": variables for the URGE server only (e.g. BUN_JSC_logGC=1).
      ...Object.fromEntries(
        (process.env.BENCH_SERVER_ENV ?? "")
          .split(" ")
          .filter(Boolean)
          .map((kv) => kv.split("=")),
      ),
    },
    stdout: "inherit",
    stderr: "inherit",
  })
  const url = `http://127.0.0.1:${port}`
  await waitForHttp(`${url}/health`, child, "urge serve")
  return {
    kind: "urge",
    pid: child.pid,
    url,
    port,
    dataDir,
    stalls: stallsFile
      ? async (from, to) => {
          await Bun.sleep(300) // the probe writes every 250 ms
          const all = JSON.parse(readFileSync(stallsFile, "utf8")) as number[][]
          const inside = all.filter(([at, late]) => at - late! >= from && at <= to)
          const sum = (f: (s: number[]) => number) =>
            round(
              inside.reduce((n, s) => n + f(s), 0),
              1,
            )
          return {
            count: inside.length,
            maxMs: round(Math.max(0, ...inside.map((s) => s[1]!)), 1),
            cpuMs: sum((s) => s[2]!),
            runqueueMs: sum((s) => s[3]!),
            blockedMs: sum((s) => Math.max(0, s[1]! + 1 - s[2]! - s[3]!)),
          }
        }
      : undefined,
    async stop() {
      child.kill("SIGTERM")
      const timer = setTimeout(() => child.kill("SIGKILL"), 15_000)
      await child.exited
      clearTimeout(timer)
      rmSync(dataDir, { recursive: true, force: true })
    },
  }
}

/** Starts a baseline server (bare Bun.serve pub/sub, or plain Socket.IO on Node) in its own process. */
export async function startBaselineServer(kind: "bun-bare" | "node-sio"): Promise<ServerProcess> {
  const port = freePort()
  const command =
    kind === "bun-bare"
      ? [bun, join(import.meta.dir, "baseline-bun.ts"), String(port)]
      : ["node", join(import.meta.dir, "baseline-node-sio.mjs"), String(port)]
  const child = Bun.spawn(command, { cwd: root, stdout: "inherit", stderr: "inherit" })
  const url = `http://127.0.0.1:${port}`
  await waitForHttp(`${url}/health`, child, kind)
  return {
    kind,
    pid: child.pid,
    url,
    port,
    async stop() {
      child.kill("SIGTERM")
      const timer = setTimeout(() => child.kill("SIGKILL"), 5_000)
      await child.exited
      clearTimeout(timer)
    },
  }
}

/** A load-client process (client.ts) driven over IPC: one request at a time, one reply each. */
export type LoadClient = {
  pid: number
  request<T = any>(command: ClientCommand): Promise<T>
  stop(): Promise<void>
}

/** Starts a load client in its own Bun process. */
export function startLoadClient(name: string): LoadClient {
  const waiting: ((reply: ClientReply) => void)[] = []
  const child = Bun.spawn([bun, join(import.meta.dir, "client.ts"), name], {
    cwd: root,
    stdout: "inherit",
    stderr: "inherit",
    serialization: "json",
    ipc(message: ClientReply) {
      waiting.shift()?.(message)
    },
  })
  let chain: Promise<unknown> = Promise.resolve()
  return {
    pid: child.pid,
    request<T>(command: ClientCommand) {
      const result = chain.then(
        () =>
          new Promise<T>((resolve, reject) => {
            waiting.push((reply) => (reply.ok ? resolve(reply.result as T) : reject(new Error(reply.error))))
            child.send(command)
          }),
      )
      chain = result.catch(() => {})
      return result
    },
    async stop() {
      child.kill("SIGTERM")
      await child.exited
    },
  }
}

/** The p-th percentile (0..100) of already sorted numbers. */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[index]!
}

/** p50, p99 and max of latencies in ms. */
export function summarise(latencies: number[]) {
  const sorted = Float64Array.from(latencies).sort()
  const list = Array.from(sorted)
  return {
    count: list.length,
    p50: round(percentile(list, 50)),
    p99: round(percentile(list, 99)),
    max: round(list[list.length - 1] ?? NaN),
  }
}

export const round = (n: number, digits = 2) => Math.round(n * 10 ** digits) / 10 ** digits

/** Splits `items` into `parts` nearly equal slices. */
export function split<T>(items: T[], parts: number): T[][] {
  const out: T[][] = Array.from({ length: parts }, () => [])
  items.forEach((item, i) => out[i % parts]!.push(item))
  return out
}

/** Absolute time in ms with sub-ms precision, comparable between processes of this machine. */
export const nowMs = () => performance.timeOrigin + performance.now()

/** The soft limit on open files of this process (the servers and load clients it starts inherit it). */
export function openFileLimit(): number {
  const line = /^Max open files\s+(\S+)/m.exec(readFileSync("/proc/self/limits", "utf8"))
  return line?.[1] === "unlimited" ? Infinity : Number(line?.[1] ?? NaN)
}

/**
 * Fails before any setup when one server could not hold `sockets` connections (plus its database files and
 * listeners): past the limit, accept() fails and the run measures connection errors instead.
 */
export function requireOpenFiles(sockets: number) {
  const limit = openFileLimit()
  if (!(limit >= sockets + 256))
    throw new Error(
      `open-file limit ${limit} is too low for ${sockets} sockets on one server: run \`ulimit -n ${sockets + 1024}\` first`,
    )
}
