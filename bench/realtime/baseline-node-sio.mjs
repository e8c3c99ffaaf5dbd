/**
 * Baseline: a plain Socket.IO server on Node with no application logic (no auth, no database).
 * The handshake query `topics=a,b` joins those rooms; `publish` ({target, ...}) is emitted to the room's other
 * sockets as `message:received` and acknowledged.
 * Usage: node bench/realtime/baseline-node-sio.mjs <port>
 */
import { createServer } from "node:http"
import { Server } from "socket.io"

const port = Number(process.argv[2] ?? 0)
const http = createServer((req, res) => {
  if (req.url === "/health") return res.end("ok")
  // Socket.IO answers its own path; anything else is 404.
  if (!req.url?.startsWith("/socket.io/")) {
    res.statusCode = 404
    res.end()
  }
})
const io = new Server(http, { serveClient: false, transports: ["websocket", "polling"] })
io.on("connection", (socket) => {
  const topics = String(socket.handshake.query.topics ?? "")
    .split(",")
    .filter(Boolean)
  for (const topic of topics) socket.join(topic)
  socket.on("publish", (data, ack) => {
    socket.to(data.target).emit("message:received", data)
    if (typeof ack === "function") ack({ ok: true })
  })
})
http.listen(port, "127.0.0.1", () => console.error(`node-sio baseline on ${port}`))
process.on("SIGTERM", () => {
  io.close()
  process.exit(0)
})
