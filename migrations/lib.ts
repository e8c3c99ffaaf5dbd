import { type Kysely, PostgresAdapter } from "kysely"

/** Helpers for migrations written once for both dialects. */
export const isPostgres = (db: Kysely<any>) => db.getExecutor().adapter instanceof PostgresAdapter

/** Column type for booleans: native on Postgres, 0/1 integers on SQLite (bun:sqlite binds true/false as 1/0). */
export const flagType = (db: Kysely<any>) => (isPostgres(db) ? "boolean" : "integer")

/** Column type for millisecond timestamps and sequence numbers. */
export const bigintType = "bigint" as const
