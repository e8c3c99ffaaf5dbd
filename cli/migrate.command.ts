import { Command } from "commander"
import { migrateDown, migrateUp, migrationStatus } from "../src/db/migrate.ts"
import type { Deps } from "../src/deps.ts"
import type { CliContext } from "./program.ts"

/** `urge migrate up | down | status`. */
export function migrateCommand(cli: CliContext): Command {
  const withDeps = (run: (deps: Deps) => Promise<void>) => async () => {
    const deps = cli.deps()
    try {
      await run(deps)
    } finally {
      await deps.close()
    }
  }
  const command = new Command("migrate").description("apply, revert or list database migrations")
  command
    .command("up")
    .description("apply every pending migration")
    .action(
      withDeps(async ({ database }) => {
        const applied = await migrateUp(database.db)
        cli.print(applied.length ? applied.map((n) => `applied ${n}`).join("\n") : "up to date")
      }),
    )
  command
    .command("down")
    .description("revert the last applied migration")
    .action(
      withDeps(async ({ database }) => {
        const reverted = await migrateDown(database.db)
        cli.print(reverted.length ? reverted.map((n) => `reverted ${n}`).join("\n") : "nothing to revert")
      }),
    )
  command
    .command("status")
    .description("list migrations and whether they are applied")
    .action(
      withDeps(async ({ database }) => {
        cli.print(`database: ${database.dialect} ${database.location}`)
        for (const m of await migrationStatus(database.db))
          cli.print(
            `${m.executedAt ? "applied" : "pending"}  ${m.name}${m.executedAt ? `  ${m.executedAt.toISOString()}` : ""}`,
          )
      }),
    )
  return command
}
