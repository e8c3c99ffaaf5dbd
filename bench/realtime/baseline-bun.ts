/**
 * Baseline: a bare `Bun.serve` WebSocket pub/sub with no application logic (no auth, no database, no hub).
 * `/ws?topics=a,b` subscribes the socket to those topics; a frame `{"event": "publish", "topic", "data", "id"}`
 * is published to the topic's other subscribers as `{"event": "message:received", "data"}` and acknowledged.
 * Usage: bun bench/realtime/baseline-bun.ts <port>
 */
type Data = { topics: string[] }

const port = Number(process.argv[2] ?? 0)
const server = Bun.serve<Data>({
  hostname: "127.0.0.1",
  port,
  fetch(request, server) {
    const url = new URL(request.url)
    if (url.pathname === "/health") return new Response("ok")
    if (url.pathname !== "/ws") return new Response("not found", { status: 404 })
    const topics = (url.searchParams.get("topics") ?? "").split(",").filter(Boolean)
    if (server.upgrade(request, { data: { topics } })) return undefined
    return new Response("upgrade failed", { status: 400 })
  },
  websocket: {
    open(ws) {
      for (const topic of ws.data.topics) ws.subscribe(topic)
    },
    message(ws, message) {
      const frame = JSON.parse(String(message))
      if (frame.event === "publish")
        ws.publish(frame.topic, JSON.stringify({ event: "message:received", data: frame.data }))
      ws.send(JSON.stringify({ event: "ack", id: frame.id }))
    },
    idleTimeout: 120,
  },
})
console.error(`bun-bare baseline on ${server.port}`)
process.on("SIGTERM", () => {
  server.stop(true)
  process.exit(0)
})
export {}
