import type { Database as SqliteDatabase, Statement } from "bun:sqlite"
import type { Kysely } from "kysely"
import type { UserRole } from "../accounts/accounts.tables.ts"
import type { DatabaseHandle } from "../db/database.ts"
import { createReadCoalescer } from "../db/read-coalescer.ts"
import type { Database } from "../db/schema.ts"

/** Inserts a session (a logged-in device) with its hashed refresh token. */
export async function insertSession(
  db: Kysely<Database>,
  session: {
    id: string
    user_id: string
    refresh_token_hash: string
    refresh_salt: string
    device_name: string | null
    platform: string | null
    ip: string | null
    now: number
    expires_at: number
  },
): Promise<void> {
  const { now, ...values } = session
  await db
    .insertInto("user_sessions")
    .values({ ...values, created_at: now, last_used_at: now, ended_at: null })
    .execute()
}

/** What the auth check needs about a session. */
export type SessionForAuth = {
  user_id: string
  expires_at: number
  ended_at: number | null
  last_used_at: number
  role: UserRole
}

const sqliteStatements = new WeakMap<SqliteDatabase, Statement<SessionForAuth, [string]>>()

/**
 * What every authenticated request needs about its session, in one primary-key lookup joined to the user
 * (the role comes from the row, so a role change applies at once). On SQLite it is a cached prepared
 * statement on the raw handle: through Kysely the same lookup costs ~30× more (bench/auth-check.ts). On
 * Postgres, lookups of concurrent requests are coalesced into one query (a named prepared statement); a lookup
 * never joins a query already sent, so it sees every logout committed before it was asked.
 */
export async function findSessionForAuth(
  handle: DatabaseHandle,
  sessionId: string,
): Promise<SessionForAuth | undefined> {
  if (handle.sqlite) {
    let statement = sqliteStatements.get(handle.sqlite)
    if (!statement) {
      statement = handle.sqlite.query<SessionForAuth, [string]>(
        "select s.user_id, s.expires_at, s.ended_at, s.last_used_at, u.role from user_sessions s join users u on u.id = s.user_id where s.id = ?",
      )
      sqliteStatements.set(handle.sqlite, statement)
    }
    return statement.get(sessionId) ?? undefined
  }
  let load = postgresLoaders.get(handle)
  if (!load) {
    const pool = handle.pool!
    load = createReadCoalescer(async (ids: string[]) => {
      // One id (an idle server, c=1): `= $1`. Postgres never keeps a generic plan for `= any($1)` (its guess
      // of ten elements costs more than the custom plans for one), so that one is planned on every call:
      // ~130 against ~45 µs of Postgres CPU per lookup.
      const { rows } = await pool.query<SessionForAuth & { id: string }>(
        ids.length === 1
          ? { name: "auth.session", text: `${sessionSelect} where s.id = $1`, values: ids }
          : { name: "auth.sessions", text: `${sessionSelect} where s.id = any($1::text[])`, values: [ids] },
      )
      return new Map(rows.map(({ id, ...session }) => [id, session]))
    })
    postgresLoaders.set(handle, load)
  }
  return load(sessionId)
}

const sessionSelect =
  "select s.id, s.user_id, s.expires_at, s.ended_at, s.last_used_at, u.role from user_sessions s join users u on u.id = s.user_id"

// Postgres: concurrent requests' lookups share one query (see read-coalescer.ts).
const postgresLoaders = new WeakMap<DatabaseHandle, (id: string) => Promise<SessionForAuth | undefined>>()

/** The live session holding this refresh token hash, or undefined. */
export const findLiveSessionByRefreshHash = (db: Kysely<Database>, hash: string, now: number) =>
  db
    .selectFrom("user_sessions")
    .selectAll()
    .where("refresh_token_hash", "=", hash)
    .where("ended_at", "is", null)
    .where("expires_at", ">", now)
    .executeTakeFirst()

/** A live session of a user, or undefined. */
export const findLiveSession = (db: Kysely<Database>, id: string, userId: string, now: number) =>
  db
    .selectFrom("user_sessions")
    .selectAll()
    .where("id", "=", id)
    .where("user_id", "=", userId)
    .where("ended_at", "is", null)
    .where("expires_at", ">", now)
    .executeTakeFirst()

/** Marks a session used: slides its expiry and, when rotating, swaps the refresh token hash. */
export async function touchSession(
  db: Kysely<Database>,
  id: string,
  values: { last_used_at: number; expires_at?: number; refresh_token_hash?: string; refresh_salt?: string },
) {
  await db
    .updateTable("user_sessions")
    .set(values)
    .where("id", "=", id)
    .where("ended_at", "is", null)
    .execute()
}

/**
 * `last_used_at` of sessions seen in use: best effort, off the request's path (a lost write only makes "last
 * used" a little older). SQLite commits it with `synchronous = NORMAL`: with `database.durability = "full"`
 * the commit would otherwise fsync the WAL on the event loop (1–12 ms on the bench machine), a stall every
 * request in flight waits behind; a power loss may take the touch back, never anything acknowledged (a later
 * fsynced commit covers it anyway). On Kysely's connection, so it never lands inside another request's
 * open transaction.
 */
export async function touchLastUsed(
  h: DatabaseHandle,
  ids: string[],
  now: number,
  durability: "full" | "normal",
) {
  const s = h.sqlite
  if (!s) {
    await h.db.updateTable("user_sessions").set({ last_used_at: now }).where("id", "in", ids).execute()
    return
  }
  await h.db.connection().execute(async () => {
    if (durability === "full") s.exec("PRAGMA synchronous = NORMAL")
    try {
      s.query("update user_sessions set last_used_at = ? where id in (select value from json_each(?))").run(
        now,
        JSON.stringify(ids),
      )
    } finally {
      if (durability === "full") s.exec("PRAGMA synchronous = FULL")
    }
  })
}

/** A user's live sessions, newest first. */
export const listLiveSessions = (db: Kysely<Database>, userId: string, now: number) =>
  db
    .selectFrom("user_sessions")
    .select(["id", "device_name", "platform", "ip", "created_at", "last_used_at", "expires_at"])
    .where("user_id", "=", userId)
    .where("ended_at", "is", null)
    .where("expires_at", ">", now)
    .orderBy("created_at", "desc")
    .orderBy("id", "desc")
    .execute()

/** Ends sessions of a user (all live ones, or only `ids`); returns the ids that were live and are now ended. */
export async function endSessions(
  db: Kysely<Database>,
  userId: string,
  now: number,
  ids?: string[],
): Promise<string[]> {
  if (ids && ids.length === 0) return []
  let query = db
    .updateTable("user_sessions")
    .set({ ended_at: now })
    .where("user_id", "=", userId)
    .where("ended_at", "is", null)
  if (ids) query = query.where("id", "in", ids)
  const rows = await query.returning("id").execute()
  return rows.map((r) => r.id)
}
