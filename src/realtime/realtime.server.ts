import type { Server, ServerWebSocket, WebSocketHandler } from "bun"
import type { Deps } from "../deps.ts"
import { createClientEvents } from "./realtime.events.ts"
import { closeCodes, createHub } from "./realtime.hub.ts"
import { messagingResume } from "./realtime.messaging.ts"
import { createNativeProtocol, type NativeSocketData } from "./realtime.native.ts"
import { createSocketIoProtocol } from "./realtime.socketio.ts"

type AnySocket = ServerWebSocket<any>

/**
 * Both realtime protocols on the HTTP server's port. `handleRequest` takes `/ws` and `/socket.io/` before
 * Elysia routes anything; `websocket` is the server's one WebSocket handler and sends each connection to its
 * owner by what its upgrade put in `ws.data`: the native protocol, the Socket.IO engine, or (for a route
 * Elysia itself upgraded) Elysia's own per-socket callbacks.
 */
export function createRealtime(deps: Deps) {
  const hub = createHub(deps, crypto.randomUUID())
  const events = createClientEvents(deps, hub)
  const native = createNativeProtocol(deps, hub, events, messagingResume(deps))
  const socketIo = createSocketIoProtocol(deps, hub, events)
  const engineSockets = new Set<AnySocket>()

  const isEngine = (ws: AnySocket) => !!ws.data?.transport
  const isNative = (ws: AnySocket): ws is ServerWebSocket<NativeSocketData> => ws.data?.native === true

  const websocket: WebSocketHandler<any> = {
    open(ws) {
      if (isNative(ws)) return native.open(ws)
      if (isEngine(ws)) {
        engineSockets.add(ws)
        return socketIo.engine.onWebSocketOpen(ws)
      }
      ws.data?.open?.(ws)
    },
    message(ws, message) {
      if (isNative(ws)) return void native.message(ws, message)
      if (isEngine(ws)) return socketIo.engine.onWebSocketMessage(ws, message)
      ws.data?.message?.(ws, message)
    },
    close(ws, code, reason) {
      if (isNative(ws)) return native.close(ws)
      if (isEngine(ws)) {
        engineSockets.delete(ws)
        return socketIo.engine.onWebSocketClose(ws, code, reason)
      }
      ws.data?.close?.(ws, code, reason)
    },
    drain(ws) {
      if (!isNative(ws) && !isEngine(ws)) ws.data?.drain?.(ws)
    },
    // Bun pings a quiet socket before this and closes it if the pong does not come (native keep-alive);
    // Socket.IO's own heartbeat (ping_interval) keeps its sockets busier than this.
    idleTimeout: Math.min(960, Math.max(30, deps.config.realtime.ping_interval * 2)),
    sendPings: true,
    maxPayloadLength: 1024 * 1024,
    // Twice realtime.send_buffer_limit: a socket there is a slow consumer. One-by-one sends check before
    // writing; a topic publish that Bun drops for a socket reports it, and that socket is closed with 4429.
    backpressureLimit: deps.config.realtime.send_buffer_limit * 2,
    closeOnBackpressureLimit: false,
  }

  return {
    hub,
    websocket,
    /** Starts the bus (and learns who is online elsewhere). */
    start: () => hub.start(),

    /** The realtime paths; undefined lets Elysia route the request. */
    handleRequest(request: Request, server: Server<unknown>): Promise<Response> | undefined {
      const url = request.url
      const pathStart = url.indexOf("/", url.indexOf("//") + 2)
      const queryStart = url.indexOf("?", pathStart)
      const path = queryStart === -1 ? url.slice(pathStart) : url.slice(pathStart, queryStart)
      if (path === "/ws") return native.upgrade(request, server)
      if (path === "/socket.io/" || path === "/socket.io") return socketIo.handle(request, server)
      return undefined
    },

    /** Graceful stop: every socket gets 1001 going-away (clients reconnect elsewhere), presence goes offline. */
    async stop() {
      // Native sockets are the hub's (each registers on open, or is closed at once while stopping).
      for (const connection of hub.connections())
        if (connection.protocol === "native") connection.close(closeCodes.goingAway, "server.shutting_down")
      for (const ws of engineSockets) ws.close(closeCodes.goingAway, "server.shutting_down")
      socketIo.close()
      await hub.close()
    },
  }
}
