// Baseline for the realtime bench: a bare Bun.serve WebSocket pub/sub with no application logic (no auth, no
// database, no membership). Every socket subscribes to one topic; a frame from any socket is published to the
// others as is. Prints the port it listens on.
const server = Bun.serve({
  port: 0,
  hostname: "127.0.0.1",
  fetch(request, server) {
    if (server.upgrade(request)) return
    return new Response("upgrade required", { status: 426 })
  },
  websocket: {
    open(ws) {
      ws.subscribe("group")
    },
    message(ws, message) {
      ws.publish("group", message)
    },
  },
})
console.log(JSON.stringify({ port: server.port, pid: process.pid }))
export {}
