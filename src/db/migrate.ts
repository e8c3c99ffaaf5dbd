import { type Kysely, type MigrationResultSet, Migrator, PostgresAdapter, sql } from "kysely"
import { migrations } from "../../migrations/index.ts"
import { AppError } from "../errors.ts"

/** Runs the embedded migrations (an in-code provider: nothing is read from disk). */
function migrator(db: Kysely<any>) {
  return new Migrator({ db, provider: { getMigrations: async () => migrations } })
}

export type MigrationStatus = { name: string; executedAt: Date | null }

/** Applies every pending migration; returns the names applied. Safe when two processes start together (Postgres uses an advisory lock). */
export async function migrateUp(db: Kysely<any>): Promise<string[]> {
  return exclusive(db, (conn) => migrator(conn).migrateToLatest())
}

/** Reverts the last applied migration; returns its name (empty when none was applied). */
export async function migrateDown(db: Kysely<any>): Promise<string[]> {
  return exclusive(db, (conn) => migrator(conn).migrateDown())
}

/**
 * Runs a migration step alone. Postgres: Kysely takes an advisory lock. SQLite: Kysely takes none, so the
 * whole step runs in one `BEGIN IMMEDIATE` transaction: another process waits for it (busy_timeout), and a
 * failed migration leaves nothing half-done (SQLite DDL is transactional).
 */
async function exclusive(db: Kysely<any>, step: (db: Kysely<any>) => Promise<MigrationResultSet>) {
  // Tested as "not Postgres": kysely-bun-sqlite's SqliteAdapter comes from another copy of kysely, so an
  // `instanceof SqliteAdapter` check is always false and SQLite would migrate without the lock.
  if (db.getExecutor().adapter instanceof PostgresAdapter) return applied(await step(db))
  return db.connection().execute(async (conn) => {
    await sql`begin immediate`.execute(conn)
    try {
      const names = applied(await step(conn))
      await sql`commit`.execute(conn)
      return names
    } catch (error) {
      await sql`rollback`.execute(conn)
      throw error
    }
  })
}

/** Every known migration and when it ran (null: pending). */
export async function migrationStatus(db: Kysely<any>): Promise<MigrationStatus[]> {
  const list = await migrator(db).getMigrations()
  return list.map((m) => ({ name: m.name, executedAt: m.executedAt ?? null }))
}

function applied({ error, results }: MigrationResultSet): string[] {
  if (error) {
    const failed = results?.find((r) => r.status === "Error")?.migrationName
    throw new AppError(
      500,
      "migration.failed",
      `migration ${failed ?? ""} failed: ${(error as Error).message ?? error}`,
    )
  }
  return (results ?? []).filter((r) => r.status === "Success").map((r) => r.migrationName)
}
