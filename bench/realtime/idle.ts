/**
 * Idle sockets: N authenticated sockets held open on one server instance; server RSS per connection.
 * The same count against the bare Bun.serve and Node Socket.IO baselines. Clients are split over two load
 * processes (each process may hold 20,000 open files here).
 *
 * `--direct=D --groups=G [--group-size=S]`: each user is in D direct chats and G groups of S members (50 by
 * default), so the server holds its delivery index and a topic subscription per socket and group; the
 * baselines' sockets subscribe to the same topics (rooms) as if every conversation had one. Users show their
 * online status (the default setting), so each connect announces them to their partners; `--presence=off`
 * hides it.
 * Usage: bun bench/realtime/idle.ts [--sockets=19500] [--direct=0] [--groups=0] [--group-size=50]
 *        [--presence=on] [--concurrency=200] [--only=native,socket.io,bun-bare,node-sio]
 */
import { existsSync, readFileSync } from "node:fs"
import { loadavg } from "node:os"
import {
  cpuSeconds,
  type Protocol,
  requireOpenFiles,
  round,
  rssBytes,
  rssParts,
  type ServerProcess,
  split,
  startBaselineServer,
  startLoadClient,
  startUrgeServer,
} from "./lib.ts"
import { benchDeps, seedMemberships, seedUsers } from "./seed.ts"

const arg = (name: string, fallback: string) =>
  process.argv.find((a) => a.startsWith(`--${name}=`))?.split("=")[1] ?? fallback
const sockets = Number(arg("sockets", "19500"))
const direct = Number(arg("direct", "0"))
const groups = Number(arg("groups", "0"))
const groupSize = Number(arg("group-size", "50"))
const presence = arg("presence", "on") === "on"
/** Handshakes each load process keeps in flight. */
const concurrency = Number(arg("concurrency", "200"))
const only = arg("only", "native,socket.io,bun-bare,node-sio").split(",") as Protocol[]

/** With BENCH_MEMPROBE set, asks the URGE server where its memory is (memprobe.ts) and returns the answer. */
async function memProbe(server: ServerProcess) {
  const file = process.env.BENCH_MEMPROBE
  if (!file || server.kind !== "urge") return undefined
  const size = () => (existsSync(file) ? readFileSync(file, "utf8").length : 0)
  const before = size()
  process.kill(server.pid, "SIGUSR2")
  for (let i = 0; i < 100 && size() === before; i++) await Bun.sleep(100)
  // BENCH_MEMPROBE_CLASSES=1: also object counts by class from a heap snapshot (slow), into <file>.classes.json.
  if (process.env.BENCH_MEMPROBE_CLASSES) {
    process.kill(server.pid, "SIGUSR1")
    await Bun.sleep(Number(process.env.BENCH_MEMPROBE_CLASSES) * 1000)
  }
  return JSON.parse(readFileSync(file, "utf8").slice(before))
}

/** Connects `sockets` idle sockets of `protocol` and reports the server's RSS growth per connection. */
export async function idleScenario(
  protocol: Protocol,
  count: number,
  memberships = { direct: 0, groups: 0, groupSize: 50, presence: true },
) {
  requireOpenFiles(count)
  let server: ServerProcess
  let specs: { userId: string; token?: string; topics?: string[] }[]
  if (protocol === "native" || protocol === "socket.io") {
    server = await startUrgeServer()
    const deps = benchDeps(server)
    const users = await seedUsers(deps, count, { hidePresence: !memberships.presence })
    if (memberships.direct || memberships.groups) await seedMemberships(deps, users, memberships)
    await deps.close()
    specs = users
  } else {
    server = await startBaselineServer(protocol)
    // The same shape as seedMemberships: a topic per direct pair (i, i + d) and per group of each round.
    const { direct, groups, groupSize } = memberships
    const stride = Math.floor(count / Math.max(1, groups)) + 7
    specs = Array.from({ length: count }, (_, i) => {
      const topics = [`u${i}`]
      for (let d = 1; d <= Math.floor(direct / 2); d++)
        topics.push(`d${d}.${i}`, `d${d}.${(i - d + count) % count}`)
      for (let g = 0; g < groups; g++)
        topics.push(`g${g}.${Math.floor(((i + g * stride) % count) / groupSize)}`)
      return { userId: `u${i}`, topics }
    })
  }
  const clients = [startLoadClient("idle-a"), startLoadClient("idle-b")]
  try {
    await Bun.sleep(1000)
    const rssBefore = rssBytes(server.pid)
    const partsBefore = rssParts(server.pid)
    const probeBefore = await memProbe(server)
    const cpuBefore = cpuSeconds(server.pid)
    const parts = split(specs, clients.length)
    const results = await Promise.all(
      clients.map((client, i) =>
        client.request({ cmd: "connect", protocol, url: server.url, sockets: parts[i]!, concurrency }),
      ),
    )
    const connected = results.reduce((n, r) => n + r.connected, 0)
    const failed = results.reduce((n, r) => n + r.failed, 0)
    const connectMs = Math.max(...results.map((r) => r.ms))
    const cpuConnect = cpuSeconds(server.pid) - cpuBefore
    // Let the connect burst's garbage settle before reading RSS.
    await Bun.sleep(5000)
    const rssAfter = rssBytes(server.pid)
    const partsAfter = rssParts(server.pid)
    const clientRss = await Promise.all(clients.map((c) => c.request({ cmd: "memory" })))
    // BENCH_MEMPROBE (URGE only): where the server's memory is, after the RSS above was read.
    const probe = probeBefore && { before: probeBefore, after: await memProbe(server) }
    const figure = {
      protocol,
      server: server.kind,
      direct: memberships.direct,
      groups: memberships.groups,
      connected,
      failed,
      firstError: results.find((r) => r.firstError)?.firstError,
      connectSeconds: round(connectMs / 1000, 1),
      connectsPerSecond: Math.round((connected * 1000) / connectMs),
      serverCpuMsPerConnect: round((cpuConnect * 1000) / Math.max(1, connected), 3),
      serverRssBeforeMiB: round(rssBefore / 2 ** 20, 1),
      serverRssAfterMiB: round(rssAfter / 2 ** 20, 1),
      serverRssPerConnectionKiB: round((rssAfter - rssBefore) / 1024 / Math.max(1, connected), 2),
      // Of which anonymous (the process's own) and file-backed (SQLite's mapped database pages).
      serverRssAnonPerConnectionKiB: round(
        (partsAfter.anon - partsBefore.anon) / 1024 / Math.max(1, connected),
        2,
      ),
      serverRssFilePerConnectionKiB: round(
        (partsAfter.file - partsBefore.file) / 1024 / Math.max(1, connected),
        2,
      ),
      clientRssMiB: clientRss.map((m) => round(m.rss / 2 ** 20)),
      loadavg: round(loadavg()[0]!, 1),
      probe,
    }
    console.log(JSON.stringify(figure))
    await Promise.all(clients.map((c) => c.request({ cmd: "disconnect" })))
    return figure
  } finally {
    await Promise.all(clients.map((c) => c.stop()))
    await server.stop()
  }
}

if (import.meta.main) {
  console.error(`idle: ${sockets} sockets per server; ${new Date().toISOString()}`)
  for (const protocol of only) await idleScenario(protocol, sockets, { direct, groups, groupSize, presence })
}
