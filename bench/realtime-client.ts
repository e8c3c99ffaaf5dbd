// Realtime load client: a separate Bun process that opens many sockets, sends at a fixed rate and timestamps
// sends and receipts on one clock. Reads a JSON spec file (argv[2]) and prints one JSON line of results.
//
// Spec: {url, protocol: "native" | "socket.io" | "baseline", receivers: string[] (tokens), senders: [{token,
// conversationId}], via: "ws" | "rest", messages, rate, expectPerMessage, restUrl?, idleOnly?}
import { io, type Socket } from "socket.io-client"

type Spec = {
  url: string
  protocol: "native" | "socket.io" | "baseline"
  receivers: string[]
  senders: { token: string; conversationId: string }[]
  via: "ws" | "rest"
  messages: number
  rate: number
  expectPerMessage: number
  idleOnly?: boolean
}

const spec: Spec = JSON.parse(await Bun.file(process.argv[2]!).text())
const sendAt = new Map<string, number>()
const arrivals = new Map<string, { count: number; last: number; first: number }>()
let deliveries = 0

const onMessage = (key: string | undefined) => {
  if (!key) return
  const now = performance.now()
  deliveries++
  const a = arrivals.get(key)
  if (a) {
    a.count++
    a.last = now
  } else arrivals.set(key, { count: 1, last: now, first: now })
}
/** The bench marks each message with its key in `content`: "bench:<key>". */
const keyOf = (content: unknown) =>
  typeof content === "string" && content.startsWith("bench:") ? content.slice(6) : undefined

/** The key from a frame's text without parsing all of it (the client must not be the bottleneck). */
const keyIn = (text: string) => {
  const at = text.indexOf('"content":"bench:')
  return at === -1 ? undefined : text.slice(at + 17, text.indexOf('"', at + 17))
}

type Client = { send(conversationId: string, key: string): void; close(): void }

async function openNative(token: string, receive: boolean): Promise<Client> {
  const ws = new WebSocket(`${spec.url.replace(/^http/, "ws")}/ws?token=${encodeURIComponent(token)}`)
  await new Promise<void>((resolve, reject) => {
    ws.onmessage = (e) => {
      const text = String(e.data)
      if (text.startsWith('{"event":"hello"')) return resolve()
      if (!receive || !text.startsWith('{"event":"message:received"')) return
      onMessage(keyIn(text))
    }
    ws.onclose = (e) => reject(new Error(`closed ${e.code} ${e.reason}`))
  })
  return {
    send: (conversationId, key) =>
      ws.send(
        JSON.stringify({
          event: "message:sent",
          data: { conversation_id: conversationId, content: `bench:${key}`, client_message_id: key },
        }),
      ),
    close: () => ws.close(),
  }
}

async function openSocketIo(token: string, receive: boolean): Promise<Client> {
  const socket: Socket = io(spec.url, {
    auth: { token },
    transports: ["websocket"],
    forceNew: true,
    reconnection: false,
  })
  if (receive) socket.on("message:received", (m: { content?: string }) => onMessage(keyOf(m.content)))
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", () => resolve())
    socket.once("connect_error", reject)
  })
  return {
    send: (conversationId, key) =>
      socket.emit("message:sent", { conversationId, content: `bench:${key}`, id: key, type: "TEXT" }),
    close: () => void socket.close(),
  }
}

/** The baseline: a bare Bun.serve pub/sub; the sender's frame is the message, published as is. */
async function openBaseline(_token: string, receive: boolean): Promise<Client> {
  const ws = new WebSocket(`${spec.url.replace(/^http/, "ws")}/`)
  await new Promise<void>((resolve, reject) => {
    ws.onopen = () => resolve()
    ws.onerror = () => reject(new Error("baseline connect failed"))
  })
  if (receive) ws.onmessage = (e) => onMessage(keyIn(String(e.data)))
  return {
    send: (conversationId, key) =>
      ws.send(
        JSON.stringify({
          event: "message:received",
          data: { conversation_id: conversationId, content: `bench:${key}` },
        }),
      ),
    close: () => ws.close(),
  }
}

const open =
  spec.protocol === "native" ? openNative : spec.protocol === "socket.io" ? openSocketIo : openBaseline

// Connect in batches (a burst of thousands of simultaneous handshakes measures the accept queue, not us).
const clients: Client[] = []
const connectStart = performance.now()
for (let i = 0; i < spec.receivers.length; i += 200)
  clients.push(...(await Promise.all(spec.receivers.slice(i, i + 200).map((t) => open(t, true)))))
const connectMs = performance.now() - connectStart
console.error(`client: ${clients.length} sockets connected in ${Math.round(connectMs)} ms`)
const senders = await Promise.all(spec.senders.map((s) => (spec.via === "ws" ? open(s.token, false) : null)))

if (spec.idleOnly) {
  console.log(JSON.stringify({ ready: true, sockets: clients.length, connect_ms: Math.round(connectMs) }))
  // Stay connected until the runner has measured the server, then it kills us.
  await new Promise(() => {})
}

const restSend = async (token: string, conversationId: string, key: string) => {
  const res = await fetch(`${spec.url}/api/messages`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({
      conversation_id: conversationId,
      content: `bench:${key}`,
      client_message_id: key,
    }),
  })
  if (res.status >= 300) throw new Error(`REST send ${res.status}`)
  await res.arrayBuffer()
}

console.log(JSON.stringify({ phase: "sending" }))
// Open-loop sending at the fixed rate (a slow server does not slow the sender down: its latency shows).
const started = performance.now()
const interval = 1000 / spec.rate
const pending: Promise<unknown>[] = []
for (let i = 0; i < spec.messages; i++) {
  const due = started + i * interval
  const wait = due - performance.now()
  if (wait > 1) await Bun.sleep(wait)
  const s = i % spec.senders.length
  const sender = spec.senders[s]!
  const key = `${process.pid}-${i}`
  sendAt.set(key, performance.now())
  if (spec.via === "ws") senders[s]!.send(sender.conversationId, key)
  else pending.push(restSend(sender.token, sender.conversationId, key))
}
await Promise.all(pending)
const deadline = performance.now() + 10_000
while (performance.now() < deadline) {
  let complete = 0
  for (const a of arrivals.values()) if (a.count >= spec.expectPerMessage) complete++
  if (complete >= spec.messages) break
  await Bun.sleep(20)
}
const elapsed = (performance.now() - started) / 1000

const latencies: number[] = []
let incomplete = 0
for (const [key, at] of sendAt) {
  const a = arrivals.get(key)
  if (!a || a.count < spec.expectPerMessage) incomplete++
  else latencies.push(a.last - at)
}
latencies.sort((a, b) => a - b)
const pct = (p: number) =>
  latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]! : NaN
console.log(
  JSON.stringify({
    sockets: clients.length,
    messages: spec.messages,
    incomplete,
    deliveries,
    deliveries_per_s: Math.round(deliveries / elapsed),
    p50_ms: +pct(0.5).toFixed(2),
    p99_ms: +pct(0.99).toFixed(2),
    max_ms: +pct(1).toFixed(2),
    connect_ms: Math.round(connectMs),
  }),
)
for (const c of clients) c.close()
process.exit(0)
