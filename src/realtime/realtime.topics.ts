import type { Server, ServerWebSocket } from "bun"
import type { Logger } from "../logger.ts"
import { closeCodes, type Connection, type OutgoingEvent, type Topics } from "./realtime.hub.ts"

/**
 * Conversation topics of one protocol over Bun's pub/sub: `<prefix><conversation id>`, one frame encoding and
 * one native publish per event however many sockets subscribed (Bun writes each socket's pending frames in
 * one go, and before any later `send` to the same socket, so the order of a socket's events is kept).
 *
 * Back-pressure: Bun drops a frame for a socket over `backpressureLimit` (twice the send buffer limit), so a
 * publish that reports a drop closes the sockets over it with 4429 (they resume from their cursor); a sweep
 * every second closes those that stay over the limit for `slow_consumer_timeout`.
 *
 * Nothing is kept per socket or per topic here: Bun knows each socket's subscriptions (`isSubscribed`) and
 * each topic's subscriber count, and the hub knows which sockets are subscribed (`Connection.subscribed`).
 */
export function createTopics(options: {
  prefix: string
  /** The event's frames for this protocol, computed once per event. */
  frames: (event: OutgoingEvent) => (string | Uint8Array)[]
  /** The Bun socket a connection writes to (the protocol sets `connection.topics` only when there is one). */
  socketOf: (connection: Connection) => ServerWebSocket<unknown> | undefined
  server: () => Server<unknown> | undefined
  /** The protocol's live connections (the sweep checks those subscribed to these topics). */
  connections: () => Iterable<Connection>
  limit: number
  timeoutMs: number
  logger: Logger
}): Topics & { sweep(): void } {
  const { prefix, limit, logger } = options
  let pressured = false
  let self: Topics

  const slow = (connection: Connection, buffered: number) => {
    logger.warn("realtime: slow consumer disconnected", {
      user_id: connection.userId,
      protocol: connection.protocol,
      buffered,
    })
    connection.close(closeCodes.slowConsumer, "realtime.slow_consumer")
  }

  const sweep = () => {
    pressured = false
    const now = Date.now()
    for (const connection of options.connections()) {
      const ws = connection.topics === self && connection.subscribed && options.socketOf(connection)
      if (!ws) continue
      const buffered = ws.getBufferedAmount()
      if (buffered <= limit) {
        connection.topicsOverSince = null
        continue
      }
      pressured = true
      connection.topicsOverSince ??= now
      if (buffered > 2 * limit || now - connection.topicsOverSince > options.timeoutMs)
        slow(connection, buffered)
    }
  }
  const timer = setInterval(() => pressured && sweep(), 1000)
  timer.unref?.()

  self = {
    join(connection, conversationId) {
      const ws = options.socketOf(connection)
      if (ws && !ws.isSubscribed(prefix + conversationId)) ws.subscribe(prefix + conversationId)
    },

    leave(connection, conversationId) {
      const ws = options.socketOf(connection)
      if (ws?.isSubscribed(prefix + conversationId)) ws.unsubscribe(prefix + conversationId)
    },

    publish(conversationId, event, except) {
      const server = options.server()
      const topic = prefix + conversationId
      // No local subscriber: nothing to encode or publish.
      const count = server?.subscriberCount(topic)
      if (!count) return
      // The sender's own socket: Bun's ws.publish reaches every subscriber but itself.
      const sender = except?.topics === self ? options.socketOf(except) : undefined
      const excluded = !!sender?.isSubscribed(topic)
      if (excluded && count === 1) return
      let dropped = false
      for (const frame of options.frames(event)) {
        const status = excluded ? sender!.publish(topic, frame) : server!.publish(topic, frame, false)
        if (status === 0) dropped = true
        else if (status === -1) pressured = true
      }
      // Some subscriber is over Bun's limit and missed this event: close it now (it resumes from its cursor).
      if (dropped) sweep()
    },

    close: () => clearInterval(timer),
  }
  return Object.assign(self, { sweep })
}
