import type { Server, ServerWebSocket } from "bun"
import type { Logger } from "../logger.ts"
import { type IdSet, idSetAdd, idSetDelete, idSetHas } from "./realtime.idset.ts"
import { closeCodes, type Connection, type OutgoingEvent, type Topics } from "./realtime.hub.ts"

type Subscriber = {
  ws: ServerWebSocket<unknown>
  conversations: IdSet
  /** Since when the socket's send buffer is over the limit (back-pressure sweep). */
  overSince: number | null
}

/**
 * Conversation topics of one protocol over Bun's pub/sub: `<prefix><conversation id>`, one frame encoding and
 * one native publish per event however many sockets subscribed (Bun writes each socket's pending frames in
 * one go, and before any later `send` to the same socket, so the order of a socket's events is kept).
 *
 * Back-pressure: Bun drops a frame for a socket over `backpressureLimit` (twice the send buffer limit), so a
 * publish that reports a drop closes the sockets over it with 4429 (they resume from their cursor); a sweep
 * every second closes those that stay over the limit for `slow_consumer_timeout`.
 */
export function createTopics(options: {
  prefix: string
  /** The event's frames for this protocol, computed once per event. */
  frames: (event: OutgoingEvent) => (string | Uint8Array)[]
  /** The Bun socket a connection writes to (the protocol sets `connection.topics` only when there is one). */
  socketOf: (connection: Connection) => ServerWebSocket<unknown> | undefined
  server: () => Server<unknown> | undefined
  limit: number
  timeoutMs: number
  logger: Logger
}): Topics & { sweep(): void } {
  const { prefix, limit, logger } = options
  const subscribers = new Map<Connection, Subscriber>()
  /** conversation id → how many local sockets subscribed to its topic (skip publishing to none). */
  const counts = new Map<string, number>()
  let pressured = false

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
    for (const [connection, subscriber] of subscribers) {
      const buffered = subscriber.ws.getBufferedAmount()
      if (buffered <= limit) {
        subscriber.overSince = null
        continue
      }
      pressured = true
      subscriber.overSince ??= now
      if (buffered > 2 * limit || now - subscriber.overSince > options.timeoutMs) slow(connection, buffered)
    }
  }
  const timer = setInterval(() => pressured && sweep(), 1000)
  timer.unref?.()

  return {
    join(connection, conversationId) {
      let subscriber = subscribers.get(connection)
      if (!subscriber) {
        const ws = options.socketOf(connection)
        if (!ws) return
        subscribers.set(connection, (subscriber = { ws, conversations: [], overSince: null }))
      }
      if (idSetHas(subscriber.conversations, conversationId)) return
      subscriber.conversations = idSetAdd(subscriber.conversations, conversationId)
      subscriber.ws.subscribe(prefix + conversationId)
      counts.set(conversationId, (counts.get(conversationId) ?? 0) + 1)
    },

    leave(connection, conversationId) {
      const subscriber = subscribers.get(connection)
      if (!subscriber || !idSetDelete(subscriber.conversations, conversationId)) return
      subscriber.ws.unsubscribe(prefix + conversationId)
      const count = counts.get(conversationId)! - 1
      if (count === 0) counts.delete(conversationId)
      else counts.set(conversationId, count)
    },

    forget(connection) {
      const subscriber = subscribers.get(connection)
      if (!subscriber) return
      subscribers.delete(connection)
      for (const conversationId of subscriber.conversations) {
        const count = counts.get(conversationId)! - 1
        if (count === 0) counts.delete(conversationId)
        else counts.set(conversationId, count)
      }
    },

    publish(conversationId, event, except) {
      const count = counts.get(conversationId)
      const server = options.server()
      if (!count || !server) return
      const topic = prefix + conversationId
      // The sender's own socket: Bun's ws.publish reaches every subscriber but itself.
      const sender = except && subscribers.get(except)
      const excluded = !!sender && idSetHas(sender.conversations, conversationId)
      if (excluded && count === 1) return
      let dropped = false
      for (const frame of options.frames(event)) {
        const status = excluded ? sender!.ws.publish(topic, frame) : server.publish(topic, frame, false)
        if (status === 0) dropped = true
        else if (status === -1) pressured = true
      }
      // Some subscriber is over Bun's limit and missed this event: close it now (it resumes from its cursor).
      if (dropped) sweep()
    },

    sweep,
    close: () => clearInterval(timer),
  }
}
