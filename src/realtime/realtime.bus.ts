import pg from "pg"
import type { DomainEvent } from "../events.ts"
import type { Logger } from "../logger.ts"

/**
 * What travels between instances: every domain event the hub fans out, plus the hub's own volatile traffic
 * (typing, presence). Each instance delivers a message to its own sockets only, so one publish reaches every
 * socket of every instance. Messages are delivered to the publishing instance too, in publish order.
 */
export type BusMessage =
  | DomainEvent
  /** Typing and the like: best effort, never replayed, dropped first under back-pressure. */
  | {
      type: "volatile"
      conversationId: string
      name: string
      data: Record<string, unknown>
      exceptUserIds: string[]
      exceptSocketId?: string
    }
  /** A user's first socket on `instance` opened (online) or its last one closed (offline, after the grace). */
  | {
      type: "presence"
      instance: string
      userId: string
      online: boolean
      lastSeen: number | null
      /** The user's conversations: whoever is in one of them may see the change. */
      conversationIds: string[]
      /** Users blocked either way: they never see it. */
      exceptUserIds: string[]
      /** show_online_status is off: tracked (REST is_online stays false) but shown to nobody. */
      hidden: boolean
    }
  /**
   * A new instance asks the others who is online on them; `resync`: an instance that missed announcements (it
   * took one for dead that was alive, or was cut off from the bus) asks again, and shows the changes.
   */
  | { type: "presence.sync"; instance: string; resync?: boolean }
  /** An instance's answer to `presence.sync`: the users with a socket on it (`resync` echoed). */
  | {
      type: "presence.snapshot"
      instance: string
      to: string
      userIds: string[]
      hiddenUserIds: string[]
      resync?: boolean
    }
  /** An instance is stopping: every user it held is offline there. */
  | { type: "instance.down"; instance: string }
  /** An instance is alive (every realtime.heartbeat_interval); one silent past the timeout is taken for dead. */
  | { type: "instance.heartbeat"; instance: string }

/** Cross-instance pub/sub for the realtime hub: `local` (one process), `redis` or `postgres` (several). */
export type RealtimeBus = {
  readonly kind: "local" | "redis" | "postgres"
  /** Connects (a no-op for local); resolves once messages published afterwards will be received. */
  start(): Promise<void>
  publish(message: BusMessage): void
  /** One handler per bus: the hub. */
  onMessage(handler: (message: BusMessage) => void): void
  close(): Promise<void>
}

/** In-process bus: publish delivers synchronously to this instance only. */
export function createLocalBus(): RealtimeBus {
  let handler: (message: BusMessage) => void = () => {}
  return {
    kind: "local",
    start: async () => {},
    publish: (message) => handler(message),
    onMessage: (h) => void (handler = h),
    close: async () => {},
  }
}

/**
 * Redis pub/sub over Bun's built-in client: one connection publishes, a duplicate subscribes (a subscribed
 * connection can do nothing else). Redis keeps the order of one publisher's messages on a channel.
 */
export function createRedisBus(url: string, channel: string, logger: Logger): RealtimeBus {
  let handler: (message: BusMessage) => void = () => {}
  let publisher: Bun.RedisClient | undefined
  let subscriber: Bun.RedisClient | undefined
  let closed = false
  let last: Promise<unknown> = Promise.resolve()
  const onRaw = (raw: string) => {
    let message: BusMessage
    try {
      message = JSON.parse(raw)
    } catch {
      return logger.warn("realtime bus: unreadable message dropped", { bus: "redis" })
    }
    handler(message)
  }
  return {
    kind: "redis",
    async start() {
      publisher = new Bun.RedisClient(url, { autoReconnect: true, enableOfflineQueue: true })
      await publisher.connect()
      subscriber = await publisher.duplicate()
      await subscriber.subscribe(channel, onRaw)
      subscriber.onclose = (error) => {
        if (!closed) logger.warn("realtime bus: redis subscriber connection lost", { error: error?.message })
      }
    },
    publish(message) {
      if (!publisher) return handler(message)
      last = publisher.publish(channel, JSON.stringify(message)).catch((error: Error) => {
        logger.error("realtime bus: publish failed", { bus: "redis", error: error.message })
      })
    },
    onMessage: (h) => void (handler = h),
    async close() {
      closed = true
      // Publishes are pipelined in order on one connection: the last one done means all are.
      await last
      subscriber?.close()
      publisher?.close()
    },
  }
}

/**
 * Postgres LISTEN/NOTIFY: no extra service when the instances already share Postgres. A NOTIFY payload is
 * limited to 8000 bytes, so a larger message is sent as numbered parts in one transaction (delivered together
 * and in order) and reassembled. Payloads are made ASCII first (JSON `\u` escapes), so a part boundary never
 * splits a character and length equals bytes.
 */
export function createPostgresBus(databaseUrl: string, channel: string, logger: Logger): RealtimeBus {
  let handler: (message: BusMessage) => void = () => {}
  let listener: pg.Client | undefined
  let pool: pg.Pool | undefined
  const partial = new Map<string, string[]>()
  // One NOTIFY at a time keeps this instance's messages in publish order.
  let queue: Promise<unknown> = Promise.resolve()
  const maxPart = 7000
  const deliver = (payload: string) => {
    // "<id> <index>/<count> <chunk>" for split messages; a plain JSON text otherwise.
    if (payload.startsWith("{")) return parse(payload)
    const match = /^(\S+) (\d+)\/(\d+) /.exec(payload)
    if (!match) return
    const [head, id, index, count] = match as unknown as [string, string, string, string]
    const parts = partial.get(id) ?? []
    parts[Number(index)] = payload.slice(head.length)
    partial.set(id, parts)
    if (Number(index) === Number(count) - 1) {
      partial.delete(id)
      parse(parts.join(""))
    }
  }
  const parse = (text: string) => {
    try {
      handler(JSON.parse(text))
    } catch (error) {
      logger.warn("realtime bus: unreadable message dropped", {
        bus: "postgres",
        error: (error as Error).message,
      })
    }
  }
  return {
    kind: "postgres",
    async start() {
      pool = new pg.Pool({ connectionString: databaseUrl, max: 2 })
      pool.on("error", () => {})
      listener = new pg.Client({ connectionString: databaseUrl })
      listener.on("error", (error) => logger.error("realtime bus: listener failed", { error: error.message }))
      listener.on(
        "notification",
        (n) => n.channel === channel && n.payload !== undefined && deliver(n.payload),
      )
      await listener.connect()
      await listener.query(`listen ${channel}`)
    },
    publish(message) {
      const text = JSON.stringify(message).replace(
        /[\u007f-\uffff]/g,
        (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"),
      )
      const payloads: string[] = []
      if (text.length <= maxPart) payloads.push(text)
      else {
        const id = Bun.randomUUIDv7()
        const count = Math.ceil(text.length / maxPart)
        for (let i = 0; i < count; i++)
          payloads.push(`${id} ${i}/${count} ${text.slice(i * maxPart, (i + 1) * maxPart)}`)
      }
      queue = queue.then(async () => {
        const client = await pool!.connect()
        try {
          // One transaction: the parts of a split message are delivered together and in order.
          await client.query("begin")
          for (const payload of payloads) await client.query("select pg_notify($1, $2)", [channel, payload])
          await client.query("commit")
        } catch (error) {
          await client.query("rollback").catch(() => {})
          logger.error("realtime bus: publish failed", { bus: "postgres", error: (error as Error).message })
        } finally {
          client.release()
        }
      })
    },
    onMessage: (h) => void (handler = h),
    async close() {
      await queue
      await listener?.end().catch(() => {})
      await pool?.end().catch(() => {})
    },
  }
}
