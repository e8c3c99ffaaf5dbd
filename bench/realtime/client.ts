/**
 * Load client: a separate Bun process, driven over IPC by the scenario scripts (lib.ts `startLoadClient`).
 * It opens many authenticated sockets of one protocol, sends messages on a schedule (WebSocket event or REST),
 * and timestamps every receipt. Each message's content carries its id, its send time and its sender, so a
 * receipt in any client process gives a latency without correlation (same machine, same clock).
 *
 * Protocols: `native` (URGE /ws), `socket.io` (URGE /socket.io/, socket.io-client configured like the app),
 * `bun-bare` (baseline-bun.ts), `node-sio` (baseline-node-sio.mjs).
 */
import { io, type Socket } from "socket.io-client"
import type { Protocol } from "./lib.ts"

/** One socket to open: who it is, its token (URGE) and its topics (baselines subscribe explicitly). */
export type SocketSpec = { userId: string; token?: string; topics?: string[] }

/** One message to send: from this client's socket `from` to a conversation (URGE) or topic (baselines). */
export type SendSpec = { from: number; target: string }

export type ClientCommand =
  | { cmd: "connect"; protocol: Protocol; url: string; sockets: SocketSpec[]; concurrency?: number }
  | {
      cmd: "send"
      /** ws: the protocol's send event; rest: POST /api/messages with the sender's token (URGE only). */
      via: "ws" | "rest"
      sends: SendSpec[]
      /** Messages per second (open loop: sent on schedule whatever the replies). */
      rate: number
      /** Message ids start here (unique across client processes). */
      firstId: number
      /** Bytes of filler text in each message besides the marker. */
      padding?: number
    }
  | { cmd: "reset" }
  | { cmd: "stats" }
  | { cmd: "disconnect" }
  | { cmd: "memory" }

export type ClientReply = { ok: true; result: unknown } | { ok: false; error: string }

/** Per message: how many of this client's sockets got it and the latest receipt's latency. */
export type ReceiptStats = {
  /** id → [receipts, max latency ms, min latency ms] */
  messages: Record<string, [number, number, number]>
  /** Every receipt's latency (ms, rounded to 0.01). */
  latencies: number[]
  /** send → ack (ws) or HTTP response (rest), ms. */
  acks: number[]
  errors: number
  firstReceipt: number
  lastReceipt: number
}

const now = () => performance.timeOrigin + performance.now()
const marker = "b|"

type Conn = {
  spec: SocketSpec
  send(event: string, data: Record<string, unknown>, onAck: () => void): void
  close(): void
}

let conns: Conn[] = []
let url = ""
let protocol: Protocol = "native"
let stats: ReceiptStats = emptyStats()

function emptyStats(): ReceiptStats {
  return { messages: {}, latencies: [], acks: [], errors: 0, firstReceipt: 0, lastReceipt: 0 }
}

/** A receipt of `content` (our marker format) by socket `self`. */
function receipt(content: unknown, self: string) {
  const at = now()
  if (typeof content !== "string" || !content.startsWith(marker)) return
  const [, id, sentAt, sender] = content.split("|", 4)
  if (sender === self) return
  const latency = at - Number(sentAt)
  const entry = stats.messages[id!]
  if (entry) {
    entry[0]++
    if (latency > entry[1]) entry[1] = latency
    if (latency < entry[2]) entry[2] = latency
  } else stats.messages[id!] = [1, latency, latency]
  stats.latencies.push(Math.round(latency * 100) / 100)
  if (!stats.firstReceipt) stats.firstReceipt = at
  stats.lastReceipt = at
}

/** The content string out of a native frame without parsing all of it (the client must keep up with 10k sockets). */
function contentOfFrame(frame: string): string | undefined {
  if (!frame.includes('"message:received"')) return undefined
  const start = frame.indexOf('"content":"b|')
  if (start === -1) return undefined
  const from = start + '"content":"'.length
  return frame.slice(from, frame.indexOf('"', from))
}

function openNative(spec: SocketSpec, bare: boolean): Promise<Conn> {
  const query = bare
    ? `topics=${encodeURIComponent((spec.topics ?? []).join(","))}`
    : `token=${encodeURIComponent(spec.token!)}`
  const ws = new WebSocket(`${url.replace(/^http/, "ws")}/ws?${query}`)
  const acks = new Map<number, () => void>()
  let nextId = 1
  return new Promise((resolve, reject) => {
    const conn: Conn = {
      spec,
      send(event, data, onAck) {
        const id = nextId++
        acks.set(id, onAck)
        ws.send(JSON.stringify(bare ? { event, data, id, topic: data.target } : { event, data, id }))
      },
      close: () => ws.close(),
    }
    let ready = false
    ws.onmessage = (e) => {
      const frame = String(e.data)
      if (!ready) {
        if (!bare && frame.includes('"event":"hello"')) {
          ready = true
          resolve(conn)
        } else if (frame.includes('"event":"error"')) reject(new Error(frame))
        return
      }
      const content = contentOfFrame(frame)
      if (content !== undefined) return receipt(content, spec.userId)
      if (frame.startsWith('{"event":"ack"') || frame.startsWith('{"event":"error"')) {
        const parsed = JSON.parse(frame)
        if (parsed.event === "error") {
          stats.errors++
          if (stats.errors <= 3) console.error(`client: ${frame.slice(0, 300)}`)
        }
        acks.get(parsed.id)?.()
        acks.delete(parsed.id)
      }
    }
    ws.onopen = () => {
      if (bare) {
        ready = true
        resolve(conn)
      }
    }
    ws.onerror = () => reject(new Error("websocket error"))
    ws.onclose = (e) => {
      if (!ready) reject(new Error(`closed ${e.code} ${e.reason}`))
    }
  })
}

function openSocketIo(spec: SocketSpec, baseline: boolean): Promise<Conn> {
  // As the URGE app configures it (CONTRACT §3), except reconnection: a bench must see failures, not retries.
  const socket: Socket = io(url, {
    auth: baseline ? undefined : { token: spec.token },
    query: baseline ? { topics: (spec.topics ?? []).join(",") } : undefined,
    transports: ["websocket", "polling"],
    reconnection: false,
    timeout: 60_000,
    forceNew: true,
  })
  return new Promise((resolve, reject) => {
    socket.on("message:received", (data: { content?: unknown }) => receipt(data?.content, spec.userId))
    socket.once("connect", () =>
      resolve({
        spec,
        send(event, data, onAck) {
          socket.emit(event, data, (reply: { ok?: boolean } | undefined) => {
            if (reply && reply.ok === false) {
              stats.errors++
              if (stats.errors <= 3) console.error(`client: ${JSON.stringify(reply).slice(0, 300)}`)
            }
            onAck()
          })
        },
        close: () => void socket.close(),
      }),
    )
    socket.once("connect_error", (error) => reject(error))
  })
}

function open(spec: SocketSpec): Promise<Conn> {
  switch (protocol) {
    case "native":
      return openNative(spec, false)
    case "bun-bare":
      return openNative(spec, true)
    case "socket.io":
      return openSocketIo(spec, false)
    case "node-sio":
      return openSocketIo(spec, true)
  }
}

async function connectAll(specs: SocketSpec[], concurrency: number) {
  const started = now()
  let next = 0
  let failed = 0
  let firstError = ""
  const opened: Conn[] = new Array(specs.length)
  const worker = async () => {
    while (next < specs.length) {
      const index = next++
      try {
        opened[index] = await open(specs[index]!)
      } catch (error) {
        failed++
        firstError ||= (error as Error).message
      }
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
  conns = opened.filter(Boolean)
  return { connected: conns.length, failed, firstError, ms: Math.round(now() - started) }
}

async function sendAll(command: Extract<ClientCommand, { cmd: "send" }>) {
  const { sends, rate, firstId, via } = command
  const padding = "x".repeat(command.padding ?? 0)
  const started = now()
  let sent = 0
  let acked = 0
  let allAcked: () => void
  const done = new Promise<void>((resolve) => (allAcked = resolve))
  const sendOne = (index: number) => {
    const spec = sends[index]!
    const conn = conns[spec.from]!
    const sentAt = now()
    const content = `${marker}${firstId + index}|${sentAt}|${conn.spec.userId}|${padding}`
    const onAck = () => {
      stats.acks.push(Math.round((now() - sentAt) * 100) / 100)
      if (++acked === sends.length) allAcked()
    }
    if (via === "rest") {
      fetch(`${url}/api/messages`, {
        method: "POST",
        headers: { authorization: `Bearer ${conn.spec.token}`, "content-type": "application/json" },
        body: JSON.stringify({
          conversation_id: spec.target,
          content,
          message_type: "TEXT",
          client_message_id: `bench-${firstId + index}`,
        }),
      }).then(
        async (res) => {
          if (res.status !== 200) {
            stats.errors++
            if (stats.errors <= 3) console.error(`client: REST ${res.status} ${await res.text()}`)
          } else await res.arrayBuffer()
          onAck()
        },
        (error) => {
          stats.errors++
          if (stats.errors <= 3) console.error(`client: REST ${(error as Error).message}`)
          onAck()
        },
      )
    } else if (protocol === "native" || protocol === "socket.io")
      conn.send(
        "message:sent",
        {
          conversation_id: spec.target,
          conversationId: spec.target,
          content,
          message_type: "TEXT",
          messageType: "TEXT",
          client_message_id: `bench-${firstId + index}`,
          clientMessageId: `bench-${firstId + index}`,
        },
        onAck,
      )
    else conn.send("publish", { target: spec.target, content, senderId: conn.spec.userId }, onAck)
  }
  // Open loop: every millisecond, send what the schedule says is due by now.
  await new Promise<void>((resolve) => {
    const tick = () => {
      const due = Math.min(sends.length, Math.floor(((now() - started) * rate) / 1000) + 1)
      while (sent < due) sendOne(sent++)
      if (sent >= sends.length) {
        clearInterval(timer)
        resolve()
      }
    }
    const timer = setInterval(tick, 1)
    tick()
  })
  const sendMs = now() - started
  await Promise.race([done, Bun.sleep(30_000)])
  return { sent, acked, sendMs: Math.round(sendMs), achievedRate: Math.round((sent * 1000) / sendMs) }
}

process.on("message", async (command: ClientCommand) => {
  try {
    let result: unknown
    switch (command.cmd) {
      case "connect":
        protocol = command.protocol
        url = command.url
        result = await connectAll(command.sockets, command.concurrency ?? 100)
        break
      case "send":
        result = await sendAll(command)
        break
      case "reset":
        stats = emptyStats()
        result = null
        break
      case "stats":
        result = stats
        break
      case "memory":
        result = { rss: process.memoryUsage().rss }
        break
      case "disconnect":
        for (const conn of conns) conn.close()
        conns = []
        result = null
        break
    }
    process.send!({ ok: true, result } satisfies ClientReply)
  } catch (error) {
    process.send!({ ok: false, error: (error as Error).stack ?? String(error) } satisfies ClientReply)
  }
})

process.on("SIGTERM", () => process.exit(0))
