/**
 * Message scenarios (issue 5, Speed):
 * - `direct`: 1:1 with N sockets connected (N/2 pairs, one DIRECT conversation each), messages at a fixed
 *   rate from random pairs; send-to-receive latency at the recipient, over the WebSocket route and over REST.
 * - `group`: one GROUP of M members, all connected; one member sends at a fixed pace; latency to the last
 *   recipient of each message, deliveries/s and server CPU µs per delivery; then a burst for throughput.
 * Every URGE figure has the baselines of the same run beside it: bare Bun.serve pub/sub and Node Socket.IO.
 *
 * Usage: bun bench/realtime/messages.ts direct [--sockets=10000] [--rate=1000] [--seconds=10]
 *        bun bench/realtime/messages.ts group [--members=1000] [--rate=10] [--count=100] [--burst=20]
 *        [--presence=off|on] (on: members show their online status, so each connect tells the whole group)
 *        [--only=native:ws,native:rest,socket.io:ws,socket.io:rest,bun-bare:ws,node-sio:ws]
 */
import { loadavg } from "node:os"
import {
  cpuSeconds,
  type LoadClient,
  type Protocol,
  requireOpenFiles,
  round,
  rssBytes,
  type ServerProcess,
  startBaselineServer,
  startLoadClient,
  startUrgeServer,
  summarise,
} from "./lib.ts"
import type { ReceiptStats, SendSpec, SocketSpec } from "./client.ts"
import { type BenchUser, benchDeps, seedDirectConversations, seedUsers } from "./seed.ts"

const arg = (name: string, fallback: string) =>
  process.argv.find((a) => a.startsWith(`--${name}=`))?.split("=")[1] ?? fallback

/** A workload variant: protocol of the receiving sockets and how messages are sent. */
export type Variant = { protocol: Protocol; via: "ws" | "rest" }

export const parseVariants = (text: string): Variant[] =>
  text.split(",").map((v) => {
    const [protocol, via] = v.split(":") as [Protocol, "ws" | "rest"]
    return { protocol, via: via ?? "ws" }
  })

async function api(server: ServerProcess, token: string, method: string, path: string, body?: unknown) {
  const res = await fetch(server.url + path, {
    method,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  const text = await res.text()
  if (res.status !== 200) throw new Error(`${method} ${path}: ${res.status} ${text.slice(0, 300)}`)
  return JSON.parse(text)
}

async function startClients(server: ServerProcess, protocol: Protocol, parts: SocketSpec[][]) {
  const clients = parts.map((_, i) => startLoadClient(`load-${i}`))
  const results = await Promise.all(
    clients.map((client, i) =>
      client.request({ cmd: "connect", protocol, url: server.url, sockets: parts[i]!, concurrency: 200 }),
    ),
  )
  const failed = results.reduce((n: number, r: any) => n + r.failed, 0)
  if (failed)
    throw new Error(
      `${failed} sockets failed to connect: ${results.find((r: any) => r.firstError)?.firstError}`,
    )
  return clients
}

async function collect(clients: LoadClient[]): Promise<ReceiptStats[]> {
  return Promise.all(clients.map((c) => c.request<ReceiptStats>({ cmd: "stats" })))
}

/** Waits until `expected` receipts arrived in total (or the timeout). */
async function waitForReceipts(clients: LoadClient[], expected: number, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const stats = await collect(clients)
    const got = stats.reduce((n, s) => n + s.latencies.length, 0)
    if (got >= expected || Date.now() > deadline) return stats
    await Bun.sleep(200)
  }
}

// ---------------------------------------------------------------------------------------------- 1:1

/** 1:1: `sockets` connected (pairs split over the two load clients), `rate` messages/s for `seconds`. */
export async function directScenario(variant: Variant, sockets: number, rate: number, seconds: number) {
  const pairs = Math.floor(sockets / 2)
  const { protocol, via } = variant
  requireOpenFiles(sockets)
  let server: ServerProcess
  // parts[0] holds the first member of each pair, parts[1] the second: every message crosses processes.
  const parts: SocketSpec[][] = [[], []]
  const targets: string[] = []
  if (protocol === "native" || protocol === "socket.io") {
    server = await startUrgeServer()
    const deps = benchDeps(server)
    const users = await seedUsers(deps, pairs * 2)
    const ids = await seedDirectConversations(
      deps,
      Array.from({ length: pairs }, (_, i) => [users[2 * i]!, users[2 * i + 1]!]),
    )
    await deps.close()
    for (let i = 0; i < pairs; i++) {
      parts[0]!.push(users[2 * i]!)
      parts[1]!.push(users[2 * i + 1]!)
      targets.push(ids[i]!)
    }
  } else {
    server = await startBaselineServer(protocol)
    for (let i = 0; i < pairs; i++) {
      parts[0]!.push({ userId: `a${i}`, topics: [`c${i}`] })
      parts[1]!.push({ userId: `b${i}`, topics: [`c${i}`] })
      targets.push(`c${i}`)
    }
  }
  const clients = await startClients(server, protocol, parts)
  try {
    const total = rate * seconds
    // Each client sends half the messages, from random pairs, to the other member (in the other client).
    const plans: SendSpec[][] = [[], []]
    for (let k = 0; k < total; k++) {
      const pair = Math.floor(Math.random() * pairs)
      plans[k % 2]!.push({ from: pair, target: targets[pair]! })
    }
    // Warm-up: a short run at the same rate, not counted.
    await Promise.all(
      clients.map((c, i) =>
        c.request({
          cmd: "send",
          via,
          sends: plans[i]!.slice(0, rate / 2),
          rate: rate / 2,
          firstId: 1e9 + i * 1e6,
        }),
      ),
    )
    await Bun.sleep(500)
    await Promise.all(clients.map((c) => c.request({ cmd: "reset" })))
    const cpuBefore = cpuSeconds(server.pid)
    const clientCpuBefore = clients.map((c) => cpuSeconds(c.pid))
    const started = performance.now()
    const startedAt = Date.now()
    const sent = await Promise.all(
      clients.map((c, i) =>
        c.request({ cmd: "send", via, sends: plans[i]!, rate: rate / 2, firstId: i * 1e7 }),
      ),
    )
    const stats = await waitForReceipts(clients, total, 10_000)
    const elapsed = (performance.now() - started) / 1000
    const cpu = cpuSeconds(server.pid) - cpuBefore
    // The load clients share the 2 cores with the server: their CPU is part of what the latency waits for.
    const clientCpu = clients.reduce((n, c, i) => n + cpuSeconds(c.pid) - clientCpuBefore[i]!, 0)
    const stalls = await server.stalls?.(startedAt, Date.now())
    const latencies = stats.flatMap((s) => s.latencies)
    const figure = {
      scenario: "direct",
      protocol,
      via,
      server: server.kind,
      sockets: pairs * 2,
      rate,
      achievedRate: sent.reduce((n: number, s: any) => n + s.achievedRate, 0),
      messages: total,
      received: latencies.length,
      errors: stats.reduce((n, s) => n + s.errors, 0),
      latencyMs: summarise(latencies),
      ackMs: summarise(stats.flatMap((s) => s.acks)),
      serverCpuPercent: round((cpu / elapsed) * 100, 1),
      serverCpuUsPerMessage: round((cpu * 1e6) / Math.max(1, latencies.length), 1),
      clientCpuPercent: round((clientCpu / elapsed) * 100, 1),
      serverRssMiB: round(rssBytes(server.pid) / 2 ** 20, 1),
      ...(stalls ? { serverStalls: stalls } : {}),
      loadavg: round(loadavg()[0]!, 1),
    }
    console.log(JSON.stringify(figure))
    return figure
  } finally {
    await Promise.all(clients.map((c) => c.request({ cmd: "disconnect" }).catch(() => {})))
    await Promise.all(clients.map((c) => c.stop()))
    await server.stop()
  }
}

// -------------------------------------------------------------------------------------------- group

/** Adds members beyond the API's 1,000 per create (no add-members endpoint yet): rows as the service writes them. */
async function addMembers(server: ServerProcess, conversationId: string, users: BenchUser[]) {
  const deps = benchDeps(server)
  const now = Date.now()
  for (let i = 0; i < users.length; i += 500)
    await deps.database.db
      .insertInto("conversation_members")
      .values(
        users.slice(i, i + 500).map((u) => ({
          conversation_id: conversationId,
          user_id: u.userId,
          role: "MEMBER" as const,
          joined_at: now,
          updated_at: now,
        })),
      )
      .execute()
  await deps.close()
}

/**
 * Group fanout: `members` sockets (one per member) over two load clients; member 0 sends `count` messages at
 * `rate`/s (latency to the last recipient), then `burst` messages at once (deliveries/s at saturation).
 */
export async function groupScenario(
  variant: Variant,
  members: number,
  rate: number,
  count: number,
  burst: number,
  presence: boolean,
) {
  const { protocol, via } = variant
  requireOpenFiles(members)
  let server: ServerProcess
  let specs: SocketSpec[]
  let target: string
  if (protocol === "native" || protocol === "socket.io") {
    server = await startUrgeServer()
    const deps = benchDeps(server)
    const users = await seedUsers(deps, members, { hidePresence: !presence })
    await deps.close()
    const group = await api(server, users[0]!.token, "POST", "/api/conversations", {
      type: "GROUP",
      name: "bench group",
      participant_ids: users.slice(1, 1000).map((u) => u.userId),
    })
    target = group.id
    if (members > 1000) await addMembers(server, target, users.slice(1000))
    specs = users
  } else {
    server = await startBaselineServer(protocol)
    specs = Array.from({ length: members }, (_, i) => ({ userId: `u${i}`, topics: ["g"] }))
    target = "g"
  }
  // The sender (specs[0]) goes to client 0; the members alternate so both clients receive half.
  const parts: SocketSpec[][] = [[], []]
  specs.forEach((spec, i) => parts[i % 2]!.push(spec))
  const cpuBeforeConnect = cpuSeconds(server.pid)
  const connectStarted = performance.now()
  const clients = await startClients(server, protocol, parts)
  const connectSeconds = round((performance.now() - connectStarted) / 1000, 1)
  const connectCpuSeconds = round(cpuSeconds(server.pid) - cpuBeforeConnect, 2)
  const recipients = members - 1
  try {
    const run = async (messages: number, perSecond: number, firstId: number) => {
      await Promise.all(clients.map((c) => c.request({ cmd: "reset" })))
      const cpuBefore = cpuSeconds(server.pid)
      const clientCpuBefore = clients.reduce((t, c) => t + cpuSeconds(c.pid), 0)
      const started = performance.now()
      const sends = Array.from({ length: messages }, () => ({ from: 0, target }))
      const sent = await clients[0]!.request({ cmd: "send", via, sends, rate: perSecond, firstId })
      const stats = await waitForReceipts(clients, messages * recipients, 60_000)
      const cpu = cpuSeconds(server.pid) - cpuBefore
      const clientCpu = clients.reduce((t, c) => t + cpuSeconds(c.pid), 0) - clientCpuBefore
      const received = stats.reduce((n, s) => n + s.latencies.length, 0)
      // Per message: the latest receipt in either client is the last recipient's latency.
      const last = new Map<string, [number, number]>()
      for (const s of stats)
        for (const [id, [n, max]] of Object.entries(s.messages)) {
          const seen = last.get(id) ?? [0, 0]
          last.set(id, [seen[0] + n, Math.max(seen[1], max)])
        }
      const complete = [...last.values()].filter(([n]) => n >= recipients)
      const firstReceipt = Math.min(...stats.map((s) => s.firstReceipt || Infinity))
      const lastReceipt = Math.max(...stats.map((s) => s.lastReceipt))
      const window = (lastReceipt - (performance.timeOrigin + started)) / 1000
      return {
        sent: sent.sent,
        achievedRate: sent.achievedRate,
        received,
        expected: messages * recipients,
        completeMessages: complete.length,
        errors: stats.reduce((n, s) => n + s.errors, 0),
        lastRecipientMs: summarise([...last.values()].map(([, max]) => max)),
        perDeliveryMs: summarise(stats.flatMap((s) => s.latencies)),
        ackMs: summarise(stats.flatMap((s) => s.acks)),
        deliveriesPerSecond: Math.round(received / window),
        serverCpuUsPerDelivery: round((cpu * 1e6) / Math.max(1, received), 2),
        // Both load clients together: decoding and timestamping every receipt (the receiving side's cost).
        clientCpuUsPerDelivery: round((clientCpu * 1e6) / Math.max(1, received), 2),
        firstReceiptAfterMs: round(firstReceipt - (performance.timeOrigin + started), 1),
      }
    }
    // Warm-up, not counted.
    await run(Math.min(5, count), rate, 9e8)
    const paced = await run(count, rate, 0)
    const saturated = burst > 0 ? await run(burst, 100_000, 1e7) : null
    const figure = {
      scenario: "group",
      protocol,
      via,
      server: server.kind,
      members,
      presence,
      connectSeconds,
      connectCpuSeconds,
      rate,
      paced,
      burst: saturated && { messages: burst, ...saturated },
      serverRssMiB: round(rssBytes(server.pid) / 2 ** 20, 1),
      loadavg: round(loadavg()[0]!, 1),
    }
    console.log(JSON.stringify(figure))
    return figure
  } finally {
    await Promise.all(clients.map((c) => c.request({ cmd: "disconnect" }).catch(() => {})))
    await Promise.all(clients.map((c) => c.stop()))
    await server.stop()
  }
}

if (import.meta.main) {
  const which = process.argv[2]
  const variants = parseVariants(
    arg("only", "native:ws,native:rest,socket.io:ws,socket.io:rest,bun-bare:ws,node-sio:ws"),
  )
  console.error(`${which}: ${new Date().toISOString()} ${process.argv.slice(3).join(" ")}`)
  for (const variant of variants) {
    try {
      if (which === "direct")
        await directScenario(
          variant,
          Number(arg("sockets", "10000")),
          Number(arg("rate", "1000")),
          Number(arg("seconds", "10")),
        )
      else if (which === "group")
        await groupScenario(
          variant,
          Number(arg("members", "1000")),
          Number(arg("rate", "10")),
          Number(arg("count", "100")),
          Number(arg("burst", "20")),
          arg("presence", "off") === "on",
        )
      else throw new Error("usage: messages.ts direct|group [--options]")
    } catch (error) {
      console.log(JSON.stringify({ scenario: which, ...variant, error: (error as Error).message }))
    }
  }
}
