/**
 * Realtime bench: the real server (`urge serve`, its own process) against a separate Bun load client
 * (bench/realtime-client.ts) that timestamps sends and receipts, with a bare Bun.serve pub/sub
 * (bench/baseline-bun.ts) doing the same fanout as the baseline.
 *
 * Run: bun bench/realtime.ts [scenario…]   scenarios: group1k group10k direct idle   (default: all)
 * Seeds users, sessions and conversations straight into a fresh SQLite database (the sign-up flow would
 * take minutes for 10,000 users), signs their access tokens with the server's secret, then measures.
 * Figures: latency from send to the last recipient (p50/p99), deliveries/s, server CPU µs per delivery,
 * server RSS per idle connection.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { signAccessToken } from "../src/auth/tokens.ts"
import { loadConfig } from "../src/config.ts"
import { migrateUp } from "../src/db/migrate.ts"
import { createDeps } from "../src/deps.ts"
import { createLogger } from "../src/logger.ts"

const root = join(import.meta.dir, "..")
const bun = process.execPath
const secret = "bench-secret-bench-secret-bench-secret"
const scenarios = process.argv.slice(2).length
  ? process.argv.slice(2)
  : ["group1k", "group10k", "direct", "idle"]

/** Seconds of CPU (user + system) a process has used, from /proc. */
const cpuSeconds = (pid: number) => {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")
  return (Number(fields[11]) + Number(fields[12])) / 100
}
const rssKiB = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1])

type World = { dir: string; tokens: string[]; ids: string[] }

/** A fresh data directory with `users` users (each with a live session) and their access tokens. */
async function seed(
  users: number,
  conversations: (ids: string[]) => { type: "DIRECT" | "GROUP"; members: string[] }[],
) {
  const dir = mkdtempSync(join(tmpdir(), "urge-rt-bench-"))
  const config = loadConfig({ env: {}, overrides: { "data.dir": dir, "auth.jwt_secret": secret } })
  const deps = createDeps(config, { logger: createLogger("error") })
  const db = deps.database.db
  await migrateUp(db)
  const now = Date.now()
  const ids: string[] = []
  const tokens: string[] = []
  const userRows = []
  const sessionRows = []
  for (let i = 0; i < users; i++) {
    const id = Bun.randomUUIDv7()
    const sid = Bun.randomUUIDv7()
    ids.push(id)
    userRows.push({
      id,
      phone_number: `+1999${String(i).padStart(7, "0")}`,
      display_name: `u${i}`,
      created_at: now,
      updated_at: now,
    })
    sessionRows.push({
      id: sid,
      user_id: id,
      refresh_token_hash: crypto.randomUUID(),
      refresh_salt: crypto.randomUUID(),
      created_at: now,
      last_used_at: now,
      expires_at: now + 86_400_000,
    })
    tokens.push(signAccessToken(secret, { sub: id, role: "REGULAR", sid }, now, 3600))
  }
  for (let i = 0; i < users; i += 500) {
    await db
      .insertInto("users")
      .values(userRows.slice(i, i + 500))
      .execute()
    await db
      .insertInto("user_sessions")
      .values(sessionRows.slice(i, i + 500))
      .execute()
  }
  const conversationIds: string[] = []
  for (const c of conversations(ids)) {
    const id = Bun.randomUUIDv7()
    conversationIds.push(id)
    await db
      .insertInto("conversations")
      .values({
        id,
        type: c.type,
        name: c.type === "GROUP" ? "bench" : null,
        created_by: c.members[0]!,
        direct_key: c.type === "DIRECT" ? [...c.members].sort().join(":") : null,
        created_at: now,
        updated_at: now,
      } as never)
      .execute()
    const rows = c.members.map((user_id, k) => ({
      conversation_id: id,
      user_id,
      role: c.type === "GROUP" && k === 0 ? "FOUNDER" : "MEMBER",
      joined_at: now,
      updated_at: now,
    }))
    for (let i = 0; i < rows.length; i += 500)
      await db
        .insertInto("conversation_members")
        .values(rows.slice(i, i + 500) as never)
        .execute()
  }
  await deps.close()
  return { world: { dir, tokens, ids } as World, conversationIds }
}

/** Starts `urge serve` on the seeded data and resolves with its URL and pid. */
async function serve(world: World) {
  const port = 20000 + Math.floor(Math.random() * 20000)
  const child = Bun.spawn(
    [bun, join(root, "cli/main.ts"), "serve", "--port", String(port), "--host", "127.0.0.1"],
    {
      env: {
        ...process.env,
        URGE_DATA_DIR: world.dir,
        URGE_AUTH_JWT_SECRET: secret,
        URGE_LOG_LEVEL: "warn",
        URGE_LOG_REQUESTS: "false",
        URGE_RATE_LIMIT_ENABLED: "false",
      },
      stdout: "inherit",
      stderr: "inherit",
    },
  )
  const url = `http://127.0.0.1:${port}`
  for (let i = 0; i < 200; i++) {
    try {
      if ((await fetch(`${url}/health`)).ok)
        return { url, pid: child.pid, stop: () => (child.kill(), child.exited) }
    } catch {}
    await Bun.sleep(50)
  }
  throw new Error("server did not start")
}

async function baseline() {
  const child = Bun.spawn([bun, join(import.meta.dir, "baseline-bun.ts")], { stdout: "pipe" })
  const reader = child.stdout.getReader()
  const line = new TextDecoder().decode((await reader.read()).value)
  const { port } = JSON.parse(line)
  return { url: `http://127.0.0.1:${port}`, pid: child.pid, stop: () => (child.kill(), child.exited) }
}

/** Runs the load client with a spec; measures the server's CPU over the sending phase only. */
async function load(server: { url: string; pid: number }, spec: Record<string, unknown>) {
  const file = join(tmpdir(), `urge-rt-spec-${process.pid}-${Math.random().toString(36).slice(2)}.json`)
  writeFileSync(file, JSON.stringify({ url: server.url, ...spec }))
  const child = Bun.spawn([bun, join(import.meta.dir, "realtime-client.ts"), file], {
    stdout: "pipe",
    stderr: "inherit",
  })
  const reader = child.stdout.getReader()
  let out = ""
  let cpuBefore = 0
  for (;;) {
    const chunk = await reader.read()
    if (chunk.done) break
    out += new TextDecoder().decode(chunk.value)
    if (!cpuBefore && out.includes('"phase":"sending"')) cpuBefore = cpuSeconds(server.pid)
  }
  rmSync(file, { force: true })
  const result = JSON.parse(out.trim().split("\n").at(-1)!)
  const cpu = cpuSeconds(server.pid) - cpuBefore
  result.server_cpu_s = +cpu.toFixed(2)
  if (result.deliveries) result.server_cpu_us_per_delivery = +((cpu * 1e6) / result.deliveries).toFixed(1)
  return result
}

const report: Record<string, unknown> = {}

async function groupFanout(
  members: number,
  messages: number,
  rate: number,
  protocols = ["native", "socket.io"],
) {
  const { world, conversationIds } = await seed(members + 1, (ids) => [{ type: "GROUP", members: ids }])
  const [groupId] = conversationIds as [string]
  const spec = (protocol: string) => ({
    protocol,
    receivers: world.tokens.slice(1),
    senders: [{ token: world.tokens[0], conversationId: groupId }],
    via: "ws",
    messages,
    rate,
    expectPerMessage: members,
  })
  const results: Record<string, unknown> = {}
  for (const protocol of protocols) {
    const server = await serve(world)
    results[protocol] = await load(server, spec(protocol))
    console.error(protocol, JSON.stringify(results[protocol]))
    await server.stop()
  }
  const base = await baseline()
  results["bun pub/sub baseline"] = await load(base, spec("baseline"))
  await base.stop()
  rmSync(world.dir, { recursive: true, force: true })
  return results
}

async function direct(pairs: number, messages: number, rate: number) {
  const { world, conversationIds } = await seed(pairs * 2, (ids) =>
    Array.from({ length: pairs }, (_, i) => ({
      type: "DIRECT" as const,
      members: [ids[2 * i]!, ids[2 * i + 1]!],
    })),
  )
  // Every socket is connected; 100 of the pairs talk (senders round-robin), the other side receives.
  const talking = Math.min(100, pairs)
  const spec = (via: string) => ({
    protocol: "native",
    receivers: world.tokens.filter((_, i) => i % 2 === 1 || i >= 2 * talking),
    senders: Array.from({ length: talking }, (_, i) => ({
      token: world.tokens[2 * i],
      conversationId: conversationIds[i],
    })),
    via,
    messages,
    rate,
    expectPerMessage: 1,
  })
  const results: Record<string, unknown> = {}
  for (const via of ["ws", "rest"]) {
    const server = await serve(world)
    results[`native, send over ${via}`] = await load(server, spec(via))
    await server.stop()
  }
  rmSync(world.dir, { recursive: true, force: true })
  return results
}

async function idle(sockets: number) {
  const { world } = await seed(sockets, () => [])
  const server = await serve(world)
  await Bun.sleep(500)
  const before = rssKiB(server.pid)
  const file = join(tmpdir(), `urge-rt-idle-${process.pid}.json`)
  writeFileSync(
    file,
    JSON.stringify({
      url: server.url,
      protocol: "native",
      receivers: world.tokens,
      senders: [],
      via: "ws",
      messages: 0,
      rate: 1,
      expectPerMessage: 0,
      idleOnly: true,
    }),
  )
  const child = Bun.spawn([bun, join(import.meta.dir, "realtime-client.ts"), file], {
    stdout: "pipe",
    stderr: "inherit",
  })
  const reader = child.stdout.getReader()
  let out = ""
  while (!out.includes("\n")) out += new TextDecoder().decode((await reader.read()).value)
  const ready = JSON.parse(out.trim())
  Bun.gc?.(true)
  await Bun.sleep(2000)
  const after = rssKiB(server.pid)
  child.kill()
  await server.stop()
  rmSync(file, { force: true })
  rmSync(world.dir, { recursive: true, force: true })
  return {
    sockets: ready.sockets,
    connect_ms: ready.connect_ms,
    server_rss_before_mib: +(before / 1024).toFixed(1),
    server_rss_after_mib: +(after / 1024).toFixed(1),
    kib_per_connection: +((after - before) / ready.sockets).toFixed(2),
  }
}

for (const scenario of scenarios) {
  const started = performance.now()
  if (scenario === "group1k")
    report["group fanout, 1,000 members, 100 messages at 5/s"] = await groupFanout(1000, 100, 5)
  if (scenario === "group10k")
    // Socket.IO is left out at this size: 10,000 socket.io-client instances in one load process measure the client.
    report["group fanout, 10,000 members, 30 messages at 1/s"] = await groupFanout(10_000, 30, 1, ["native"])
  if (scenario === "direct")
    report["1:1, 10,000 sockets connected, 5,000 messages at 1,000/s"] = await direct(5000, 5000, 1000)
  if (scenario === "idle") report["idle sockets"] = await idle(19_500)
  console.error(`${scenario} done in ${((performance.now() - started) / 1000).toFixed(1)} s`)
}
console.log(JSON.stringify(report, null, 2))
