import { Command } from "commander"
import pkg from "../package.json" with { type: "json" }
import { pingDatabase } from "../src/db/database.ts"
import { migrationStatus } from "../src/db/migrate.ts"
import type { Deps } from "../src/deps.ts"
import { AppError } from "../src/errors.ts"
import { imageSupport } from "../src/media/images.ts"
import type { CliContext } from "./program.ts"

/** How long the database may take to answer before doctor calls it unreachable. */
const databaseTimeoutMs = 5000

/**
 * `urge doctor`: what an operator checks first on a new machine. Prints the version, the configuration source,
 * whether the database answers (and its migrations), the push drivers (FCM: the service account gets an access
 * token), and whether image processing really works (sharp resizes a test image). Exits 1 when a check fails.
 */
export const doctorCommand = (cli: CliContext) =>
  new Command("doctor")
    .description("check this installation: version, configuration, database, push, image processing")
    .action(async () => {
      const config = cli.loadConfig()
      const failed: string[] = []
      cli.print(`urge ${pkg.version} (bun ${Bun.version}, ${process.platform}-${process.arch})`)
      cli.print(`config: ${config.source ?? "no config file (defaults and environment)"}`)
      cli.print(`data: ${config.data.dir}`)

      let deps: Deps | undefined
      try {
        deps = cli.deps()
        const { database } = deps
        await withTimeout(pingDatabase(database.db), databaseTimeoutMs, "no answer")
        const migrations = await migrationStatus(database.db)
        const pending = migrations.filter((m) => !m.executedAt).length
        cli.print(
          `database: ok (${database.dialect} ${database.location}; ${migrations.length - pending} migrations applied, ${pending} pending)`,
        )
      } catch (error) {
        failed.push("database")
        cli.print(`database: unreachable (${(error as Error).message.split("\n")[0]})`)
      }

      if (deps) {
        const push = await deps.push.verify()
        if (!push.ok) failed.push("push")
        cli.print(`push: ${push.text}`)
      }

      const images = await imageSupport({ dataDir: config.data.dir })
      if (images.available) cli.print(`images: sharp ${images.sharp} (libvips ${images.libvips})`)
      else {
        failed.push("images")
        cli.print(`images: unavailable (${images.reason})`)
      }

      await deps?.close()
      if (failed.length) throw new AppError(503, "doctor.failed", `failed checks: ${failed.join(", ")}`)
    })

function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}
