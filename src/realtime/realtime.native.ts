import type { Server, ServerWebSocket } from "bun"
import { bearerToken, verifyAccessToken } from "../auth/auth.plugin.ts"
import type { Deps } from "../deps.ts"
import { AppError } from "../errors.ts"
import { type ClientEventHandler, errorPayload } from "./realtime.events.ts"
import { closeCodes, type Connection, type Hub, type OutgoingEvent, type Topics } from "./realtime.hub.ts"
import { createTopics } from "./realtime.topics.ts"

/** What a native socket carries in `ws.data` (the dispatcher recognises it by `native`). */
export type NativeSocketData = {
  native: true
  auth?: { userId: string; sessionId: string }
  lease?: { userId: string; released: boolean }
  /** Why the handshake was refused: sent as an error frame, then the socket closes with 4401. */
  refused?: { code: string; detail: string }
  cursor?: string
  connection?: NativeConnection
}

type NativeConnection = Connection & {
  ws: ServerWebSocket<NativeSocketData>
  /** Durable events held back while the missed ones are replayed (subscribe first, then replay). */
  held: OutgoingEvent[] | null
  overSince: number | null
}

/**
 * Replays a user's missed durable events from a cursor, page by page (messaging's change feed). Each page
 * says up to which cursor it covers (entries the user may not see are covered without being sent).
 */
export type Replay = (
  userId: string,
  cursor: string,
) => AsyncIterable<{
  events: { name: string; data: Record<string, unknown>; cursor: string }[]
  cursor: string
}>

/** Compares two cursors of the change feed (negative: a is earlier). */
export type CursorOrder = (a: string, b: string) => number

const encode = (event: OutgoingEvent) =>
  ((event.encoded ??= {}).native ??= JSON.stringify(
    event.cursor === undefined
      ? { event: event.name, data: event.data }
      : { event: event.name, data: event.data, cursor: event.cursor },
  ))

/**
 * The native protocol at `/ws`: JSON text frames `{"event", "data", "id"?, "cursor"?}` (docs/realtime.md).
 * Auth by access token in the `token` query parameter (or an `Authorization: Bearer` header for clients that
 * can set one); resume with `cursor`. A refused token still gets a WebSocket: an error frame, then close 4401,
 * because a browser cannot read the status of a refused upgrade.
 */
export function createNativeProtocol(
  deps: Deps,
  hub: Hub,
  events: Map<string, ClientEventHandler>,
  resume: { replay: Replay; order: CursorOrder },
) {
  const { logger } = deps
  const limit = deps.config.realtime.send_buffer_limit
  let server: Server<unknown> | undefined
  const topics = createTopics({
    prefix: "native:",
    frames: (event) => [encode(event)],
    socketOf: (connection) => (connection as NativeConnection).ws as ServerWebSocket<unknown>,
    server: () => server,
    connections: () => hub.connections(),
    limit,
    timeoutMs: deps.config.realtime.slow_consumer_timeout * 1000,
    logger,
  })
  hub.useTopics(topics)

  const frame = (ws: ServerWebSocket<NativeSocketData>, value: unknown) => ws.send(JSON.stringify(value))

  /** A socket as the hub sees it: methods on the prototype, so an idle socket holds no closures of its own. */
  class Native implements NativeConnection {
    id = crypto.randomUUID()
    userId: string
    sessionId: string
    protocol = "native" as const
    held: OutgoingEvent[] | null = null
    overSince: number | null = null
    open?: Set<string>
    topics?: Topics
    subscribed?: boolean
    constructor(
      readonly ws: ServerWebSocket<NativeSocketData>,
      auth: { userId: string; sessionId: string },
    ) {
      this.userId = auth.userId
      this.sessionId = auth.sessionId
    }
    send(event: OutgoingEvent) {
      if (this.held && !event.volatile) return void this.held.push(event)
      write(this, event)
    }
    close(code: number, reason: string) {
      this.ws.close(code, reason)
    }
  }

  /**
   * Bounded send buffer: over half the limit, volatile events (typing, presence) are dropped; over the limit a
   * durable event is still queued, but a socket that stays over it for `slow_consumer_timeout`, or reaches
   * twice the limit, is closed with 4429 (it resumes from its cursor on reconnect).
   */
  const write = (connection: NativeConnection, event: OutgoingEvent) => {
    const { ws } = connection
    const buffered = ws.getBufferedAmount()
    if (buffered > limit / 2 && event.volatile) return
    if (buffered > limit) {
      const now = Date.now()
      connection.overSince ??= now
      if (
        buffered > 2 * limit ||
        now - connection.overSince > deps.config.realtime.slow_consumer_timeout * 1000
      ) {
        logger.warn("realtime: slow consumer disconnected", { user_id: connection.userId, buffered })
        return ws.close(closeCodes.slowConsumer, "realtime.slow_consumer")
      }
    } else connection.overSince = null
    if (ws.send(encode(event)) === 0) ws.close(closeCodes.slowConsumer, "realtime.slow_consumer")
  }

  const replay = async (connection: NativeConnection, cursor: string) => {
    connection.held = []
    let last = cursor
    try {
      for await (const page of resume.replay(connection.userId, cursor)) {
        if (connection.ws.readyState !== WebSocket.OPEN) return
        for (const change of page.events)
          write(connection, { name: change.name, data: change.data, cursor: change.cursor, volatile: false })
        last = page.cursor
      }
    } catch (error) {
      const payload = errorPayload(error)
      if (payload.status >= 500) logger.error("realtime: replay failed", { error: (error as Error).message })
      frame(connection.ws, { event: "error", data: payload })
      connection.ws.close(1011, payload.code)
      return
    }
    frame(connection.ws, { event: "resumed", data: { cursor: last } })
    const held = connection.held
    connection.held = null
    // Live events that arrived during the replay: the ones it already covered are skipped (no duplicate).
    for (const event of held)
      if (event.cursor === undefined || resume.order(event.cursor, last) > 0) write(connection, event)
    // Caught up: from now on its conversations' events come from the topics (in the same tick, so none is
    // missed or doubled between the two paths).
    connection.topics = topics
    hub.subscribe(connection)
  }

  return {
    /** Handles `GET /ws`: authenticates, loads the user's memberships, then upgrades. */
    async upgrade(request: Request, httpServer: Server<unknown>): Promise<Response> {
      server = httpServer
      if (request.headers.get("upgrade")?.toLowerCase() !== "websocket")
        return Response.json(
          { detail: "This endpoint speaks WebSocket.", code: "realtime.upgrade_required" },
          { status: 426, headers: { upgrade: "websocket" } },
        )
      const url = new URL(request.url)
      const token = url.searchParams.get("token") || bearerToken(request.headers.get("authorization"))
      const data: NativeSocketData = { native: true, cursor: url.searchParams.get("cursor") || undefined }
      try {
        if (!token) throw new AppError(401, "auth.missing_token", "Not authenticated")
        const principal = await verifyAccessToken(deps, token, { allowExpired: true })
        data.auth = { userId: principal.userId, sessionId: principal.sessionId }
        data.lease = await hub.attach(principal.userId)
      } catch (error) {
        const payload = errorPayload(error)
        if (payload.status >= 500)
          logger.error("realtime: handshake failed", { error: (error as Error).message })
        data.refused = { code: payload.code, detail: payload.detail }
      }
      if (!httpServer.upgrade(request, { data })) {
        if (data.lease) hub.release(data.lease)
        return Response.json(
          { detail: "WebSocket upgrade failed.", code: "realtime.upgrade_failed" },
          { status: 400 },
        )
      }
      return new Response(null)
    },

    open(ws: ServerWebSocket<NativeSocketData>) {
      if (ws.data.refused) {
        frame(ws, { event: "error", data: { ...ws.data.refused, status: 401 } })
        return ws.close(closeCodes.unauthorized, ws.data.refused.code)
      }
      const connection = (ws.data.connection = new Native(ws, ws.data.auth!))
      // Without a cursor there is nothing to catch up on: topics at once. With one, the socket is registered
      // for one-by-one sends first (held during the replay), then replays, then moves to the topics.
      if (!ws.data.cursor) connection.topics = topics
      hub.register(connection, ws.data.lease!)
      // Held by the connection from now on (the lease by the hub until unregister): nothing per socket twice.
      ws.data.auth = ws.data.lease = undefined
      frame(ws, {
        event: "hello",
        data: { socket_id: connection.id, user_id: connection.userId, session_id: connection.sessionId },
      })
      if (ws.data.cursor) void replay(connection, ws.data.cursor)
    },

    async message(ws: ServerWebSocket<NativeSocketData>, message: string | Buffer) {
      const connection = ws.data.connection
      if (!connection) return
      let parsed: { event?: unknown; data?: unknown; id?: unknown }
      try {
        if (typeof message !== "string") throw new Error("binary")
        parsed = JSON.parse(message)
        if (!parsed || typeof parsed !== "object" || typeof parsed.event !== "string")
          throw new Error("shape")
      } catch {
        return frame(ws, {
          event: "error",
          data: {
            code: "realtime.bad_frame",
            detail: 'Frames are JSON text: {"event": "...", "data": ..., "id"?: "..."}.',
            status: 400,
          },
        })
      }
      const id = typeof parsed.id === "string" || typeof parsed.id === "number" ? parsed.id : undefined
      if (parsed.event === "ping")
        return frame(ws, id === undefined ? { event: "pong" } : { event: "pong", id })
      const handler = events.get(parsed.event)
      try {
        if (!handler)
          throw new AppError(400, "realtime.unknown_event", `Unknown event "${parsed.event.slice(0, 64)}".`)
        const result = await handler(connection, parsed.data)
        if (id !== undefined && ws.readyState === WebSocket.OPEN)
          frame(ws, { event: "ack", id, data: result })
      } catch (error) {
        const payload = errorPayload(error)
        if (payload.status >= 500)
          logger.error("realtime: client event failed", {
            event: parsed.event,
            error: (error as Error).message,
          })
        if (ws.readyState === WebSocket.OPEN)
          frame(
            ws,
            id === undefined ? { event: "error", data: payload } : { event: "error", id, data: payload },
          )
      }
    },

    close(ws: ServerWebSocket<NativeSocketData>) {
      if (ws.data.connection) hub.unregister(ws.data.connection)
      else if (ws.data.lease) hub.release(ws.data.lease)
    },
  }
}
