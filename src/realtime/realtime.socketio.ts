import { Server as Engine } from "@socket.io/bun-engine"
import type { Server as BunServer, ServerWebSocket } from "bun"
import { Server as SocketIOServer, type Socket } from "socket.io"
import { bearerToken, verifyAccessToken } from "../auth/auth.plugin.ts"
import type { Deps } from "../deps.ts"
import { type ClientEventHandler, errorPayload, field } from "./realtime.events.ts"
import { closeCodes, type Connection, type Hub, type OutgoingEvent } from "./realtime.hub.ts"
import { createTopics } from "./realtime.topics.ts"

type SocketData = {
  auth: { userId: string; sessionId: string }
  lease: { userId: string; released: boolean }
  connection?: Connection
}

/** Packets waiting in a polling client's engine buffer before it counts as over the send-buffer limit. */
const pollingPacketLimit = 1000

/**
 * What the app expects on Socket.IO where the native payload differs (CONTRACT §3): `message:delivered`,
 * `user:online` and `user:offline` carry the bare id string.
 */
function socketIoPayload(event: OutgoingEvent): unknown {
  switch (event.name) {
    case "message:delivered":
      return field(event.data, "message_id", "messageId") ?? event.data.id
    case "user:online":
    case "user:offline":
      return event.data.user_id
    default:
      return event.data
  }
}

/** The engine's view of a Socket.IO connection (the parts the fast paths use). */
type EngineConn = {
  writeBuffer: unknown[]
  transport: { name: string; socket?: ServerWebSocket<unknown> }
  on(event: "upgrade", listener: () => void): void
}

/**
 * Socket.IO v4 for the existing app at `/socket.io/` (websocket and polling transports, through
 * @socket.io/bun-engine). `auth.token` is checked in a middleware: a bad token or an ended session is a
 * `connect_error` with `data.code`; an expired token of a live session is accepted (the app reconnects with
 * the token it first had, CONTRACT A4).
 */
export function createSocketIoProtocol(deps: Deps, hub: Hub, events: Map<string, ClientEventHandler>) {
  const { logger, config } = deps
  const limit = config.realtime.send_buffer_limit
  const origins = config.server.cors_origins
  const engine = new Engine({
    path: "/socket.io/",
    pingInterval: config.realtime.ping_interval * 1000,
    pingTimeout: 20_000,
    maxHttpBufferSize: 1e6,
    ...(origins.length ? { cors: { origin: origins.includes("*") ? true : origins } } : {}),
  })
  const io = new SocketIOServer({ serveClient: false })
  io.bind(engine as never)
  let server: BunServer<unknown> | undefined

  /** The Socket.IO packets of an event, encoded once for every socket. */
  const packetsOf = (event: OutgoingEvent) =>
    ((event.encoded ??= {}).socketIo ??= io.encoder.encode({
      type: 2, // EVENT
      nsp: "/",
      data: [event.name, socketIoPayload(event)],
    }) as unknown[])

  // Sockets on the websocket transport take conversation events from topics: the WebSocket frames are the
  // Engine.IO "message" packets ("4" + the Socket.IO packet), exactly what the engine would write per socket.
  const topics = createTopics({
    prefix: "socket.io:",
    frames: (event) =>
      ((event.encoded ??= {}).socketIoFrames ??= packetsOf(event).map((packet) =>
        typeof packet === "string" ? "4" + packet : (packet as Uint8Array),
      )),
    socketOf: (connection) => {
      const transport = (connection as Connection & { conn: EngineConn }).conn.transport
      return transport.name === "websocket" ? transport.socket : undefined
    },
    server: () => server,
    connections: () => hub.connections(),
    limit,
    timeoutMs: config.realtime.slow_consumer_timeout * 1000,
    logger,
  })
  hub.useTopics(topics)

  io.use(async (socket, next) => {
    const token =
      (typeof socket.handshake.auth?.token === "string" && socket.handshake.auth.token) ||
      (typeof socket.handshake.query?.token === "string" && socket.handshake.query.token) ||
      bearerToken(socket.handshake.headers.authorization ?? null)
    try {
      if (!token) throw Object.assign(new Error("Not authenticated"), { code: "auth.missing_token" })
      const principal = await verifyAccessToken(deps, token, { allowExpired: true })
      const lease = await hub.attach(principal.userId)
      socket.data = {
        auth: { userId: principal.userId, sessionId: principal.sessionId },
        lease,
      } as SocketData
      // Gone before `connection`: give the lease back.
      socket.conn.once("close", () => hub.release(lease))
      next()
    } catch (error) {
      const payload =
        (error as { code?: string }).code === "auth.missing_token"
          ? { code: "auth.missing_token", detail: "Not authenticated", status: 401 }
          : errorPayload(error)
      if (payload.status >= 500)
        logger.error("realtime: handshake failed", { error: (error as Error).message })
      next(Object.assign(new Error(payload.detail), { data: { code: payload.code, detail: payload.detail } }))
    }
  })

  io.on("connection", (socket: Socket) => {
    const { auth, lease } = socket.data as SocketData
    let overSince: number | null = null
    const conn = socket.conn as unknown as EngineConn
    const connection: Connection & { conn: EngineConn } = {
      conn,
      id: socket.id,
      userId: auth.userId,
      sessionId: auth.sessionId,
      protocol: "socket.io",
      send(event) {
        const over =
          conn.transport.name === "websocket"
            ? (conn.transport.socket?.getBufferedAmount() ?? 0) / limit
            : conn.writeBuffer.length / pollingPacketLimit
        if (over > 0.5 && event.volatile) return
        if (over > 1) {
          const now = Date.now()
          overSince ??= now
          if (over > 2 || now - overSince > config.realtime.slow_consumer_timeout * 1000) {
            logger.warn("realtime: slow consumer disconnected", {
              user_id: auth.userId,
              protocol: "socket.io",
            })
            return connection.close(closeCodes.slowConsumer, "realtime.slow_consumer")
          }
        } else overSince = null
        // Encoded once per event for every Socket.IO socket (socket.emit would stringify per socket), and
        // written the way Socket.IO's own broadcast writes pre-encoded packets.
        const packets = packetsOf(event)
        if (socket.conn.readyState === "open")
          (socket.client as unknown as { writeToEngine(p: unknown[], o: object): void }).writeToEngine(
            packets,
            {},
          )
      },
      close(code, reason) {
        if (code === closeCodes.goingAway || code === closeCodes.slowConsumer) {
          // Transport-level close: the client reconnects by itself (a Socket.IO disconnect would stop it).
          const transport = (
            socket.conn as unknown as { transport: { socket?: { close(c: number, r: string): void } } }
          ).transport
          if (transport.socket) transport.socket.close(code, reason)
          else socket.conn.close()
        } else {
          // Session ended: a server-side disconnect, so the client does not reconnect with a dead token.
          socket.emit("error", {
            code: reason,
            detail: "This session has ended. Please log in again.",
            status: 401,
          })
          socket.disconnect(true)
        }
      },
    }
    // The engine writes websocket frames synchronously (its buffer stays empty), so topic frames and
    // one-by-one packets keep their order. A polling client moves to the topics once it upgrades.
    if (conn.transport.name === "websocket" && conn.transport.socket) connection.topics = topics
    else
      conn.on("upgrade", () => {
        connection.topics = topics
        hub.subscribe(connection)
      })
    ;(socket.data as SocketData).connection = connection
    hub.register(connection, lease)
    socket.on("disconnect", onDisconnect)
    socket.onAny(onEvent)
  })

  // One listener of each kind shared by every socket (a listener per event name per socket cost ~2 KiB).
  function onDisconnect(this: Socket) {
    const { connection } = this.data as SocketData
    if (connection) hub.unregister(connection)
  }
  async function onEvent(this: Socket, name: unknown, ...args: unknown[]) {
    const handler = typeof name === "string" ? events.get(name) : undefined
    const { connection } = this.data as SocketData
    if (!handler || !connection) return // unknown events are ignored, as Socket.IO does
    const ack = typeof args[args.length - 1] === "function" ? (args.pop() as (r: unknown) => void) : undefined
    try {
      const result = await handler(connection, args[0])
      ack?.({ ok: true, data: result })
    } catch (error) {
      const payload = errorPayload(error)
      if (payload.status >= 500)
        logger.error("realtime: client event failed", { event: name, error: (error as Error).message })
      if (ack) ack({ ok: false, error: payload })
      else this.emit("error", { event: name, ...payload })
    }
  }

  return {
    engine,
    io,
    /** Handles a request under /socket.io/ (handshake, polling, upgrade). */
    handle: (request: Request, httpServer: BunServer<unknown>) => {
      server = httpServer
      return engine.handleRequest(request, httpServer as never)
    },
    /** Closes the polling clients (the websocket ones are closed with 1001 by the dispatcher). */
    close() {
      engine.close()
    },
  }
}
