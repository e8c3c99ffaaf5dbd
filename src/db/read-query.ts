import { CompiledQuery } from "kysely"
import type { DatabaseHandle } from "./database.ts"

/**
 * Hand-written reads for the hot paths (membership checks, history pages, the conversation list), where
 * Kysely's query building costs more than the query. Written once with `?` placeholders (turned into `$n`
 * on Postgres) or once per dialect where they differ (lists: `json_each(?)` / `= any(?)`, see `listParam`).
 *
 * Postgres runs them as named prepared statements on the pool. SQLite runs them through bun:sqlite's statement
 * cache, only when no transaction is open on the connection: otherwise (a Kysely transaction awaiting between
 * its statements) the read queues on Kysely's connection like any other query, so it can never see another
 * request's uncommitted writes.
 */
export function readQuery<Row>(sqliteText: string, postgresText = toDollarParams(sqliteText)) {
  // Postgres: a named prepared statement, planned once per connection (planning these joins cost more
  // Postgres CPU than running them).
  const name = `read_${Bun.hash(postgresText).toString(36)}`
  return async (h: DatabaseHandle, params: unknown[]): Promise<Row[]> => {
    const s = h.sqlite
    if (!s) return (await h.pool!.query({ name, text: postgresText, values: params })).rows as Row[]
    if (!s.inTransaction) return s.query(sqliteText).all(...(params as never[])) as Row[]
    return (await h.db.executeQuery<Row>(CompiledQuery.raw(sqliteText, params))).rows
  }
}

/** A Postgres-only read (`$n` placeholders) as a named prepared statement on the pool. */
export function postgresQuery<Row>(text: string) {
  const name = `read_${Bun.hash(text).toString(36)}`
  return async (h: DatabaseHandle, params: unknown[]): Promise<Row[]> =>
    (await h.pool!.query({ name, text, values: params })).rows as Row[]
}

/** A list bound as one parameter: a JSON array for SQLite's `json_each(?)`, an array for Postgres' `any(?)`. */
export const listParam = (h: DatabaseHandle, values: unknown[]) =>
  h.dialect === "sqlite" ? JSON.stringify(values) : values

/** `?` placeholders → `$1, $2, …` (no `?` appears in our SQL other than as a placeholder). */
function toDollarParams(text: string): string {
  let n = 0
  return text.replace(/\?/g, () => `$${++n}`)
}
