import { Command } from "commander"
import { migrateUp } from "../src/db/migrate.ts"
import { logImageSupport } from "../src/media/images.ts"
import { startServer } from "../src/server.ts"
import type { CliContext } from "./program.ts"

/** `urge serve`: migrate (unless told not to), listen, and stop gracefully on SIGTERM/SIGINT. */
export const serveCommand = (cli: CliContext) =>
  new Command("serve")
    .description("start the server (REST under /api, WebSockets at /ws and /socket.io/)")
    .option("--host <host>", "address to listen on (server.host)")
    .option("-p, --port <port>", "port to listen on (server.port)")
    .option("--no-migrate", "do not apply pending migrations on start")
    .action(async (opts: { host?: string; port?: string; migrate: boolean }) => {
      const deps = cli.deps({
        "server.host": opts.host,
        "server.port": opts.port,
        "database.migrate_on_start": opts.migrate ? undefined : false,
      })
      const { logger, config } = deps
      if (config.database.migrate_on_start) {
        const applied = await migrateUp(deps.database.db)
        if (applied.length) logger.info("migrations applied", { applied })
      }
      const running = await startServer(deps)
      // After listening, so loading sharp (first start: extracting it) never delays serving.
      setTimeout(() => void logImageSupport(logger, config.data.dir), 0)
      const shutdown = (signal: string) => {
        logger.info("signal received", { signal })
        running.stop().then(
          () => process.exit(0),
          () => process.exit(1),
        )
      }
      process.once("SIGTERM", () => shutdown("SIGTERM"))
      process.once("SIGINT", () => shutdown("SIGINT"))
    })
