import type { Server } from "bun"
import { createApp } from "./app.ts"
import type { Deps } from "./deps.ts"
import { assertSmsSafeForMode } from "./sms/sms.driver.ts"
import { createRealtime } from "./realtime/realtime.server.ts"

/** A listening server and the way to stop it gracefully. */
export type RunningServer = {
  url: string
  port: number
  server: Server<unknown>
  /** Stop accepting, let in-flight requests finish (bounded by server.shutdown_timeout), close sockets and the database. */
  stop(): Promise<void>
}

/** Starts HTTP (and, from the realtime feature, WebSockets) on the configured host and port. */
export async function startServer(deps: Deps): Promise<RunningServer> {
  const { config, logger } = deps
  assertSmsSafeForMode(config)
  const inFlight = { count: 0 }
  const realtime = createRealtime(deps)
  const app = createApp(deps, inFlight, realtime.handleRequest)
  await realtime.start()
  try {
    app.listen({
      hostname: config.server.host,
      port: config.server.port,
      // A second server on a taken port must fail, not silently share it.
      reusePort: false,
      // Hard ceiling; JSON bodies are held to server.body_limit by the app itself.
      maxRequestBodySize: Math.max(config.server.body_limit, 128 * 1024 * 1024),
      // Above Socket.IO's ping interval: a long-polling request is held that long.
      idleTimeout: Math.max(60, config.realtime.ping_interval + 10),
      // One WebSocket handler for /ws, /socket.io/ and any Elysia route, dispatched by ws.data.
      websocket: realtime.websocket,
    })
  } catch (error) {
    await realtime.stop()
    throw error
  }
  deps.push.start()
  deps.searchIndex.start()
  const server = app.server!
  const port = server.port!
  const host = config.server.host === "0.0.0.0" ? "localhost" : config.server.host
  const url = `http://${host.includes(":") ? `[${host}]` : host}:${port}`
  logger.info("listening", { url, database: deps.database.dialect })
  deps.database.wal?.startCheckpointer((error) => logger.warn("WAL checkpointer stopped", { error }))

  let stopping: Promise<void> | undefined
  const stop = () =>
    (stopping ??= (async () => {
      logger.info("shutting down", { in_flight: inFlight.count })
      void server.stop(false)
      // Sockets first: clients reconnect to another instance while in-flight requests finish.
      await realtime.stop()
      const deadline = Date.now() + config.server.shutdown_timeout * 1000
      while (inFlight.count > 0 && Date.now() < deadline) await Bun.sleep(10)
      await server.stop(true)
      await deps.push.stop()
      await deps.searchIndex.stop()
      await deps.close()
      logger.info("stopped")
    })())
  return { url, port, server, stop }
}
