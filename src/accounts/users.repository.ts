import { type Kysely, type Selectable, sql } from "kysely"
import type { Database } from "../db/schema.ts"
import type { UserRole, UsersTable } from "./accounts.tables.ts"

/** A users row as read. */
export type UserRow = Selectable<UsersTable>

/** A user by id, or undefined. */
export const findUserById = (db: Kysely<Database>, id: string) =>
  db.selectFrom("users").selectAll().where("id", "=", id).executeTakeFirst()

/** A user by E.164 phone number, or undefined. */
export const findUserByPhone = (db: Kysely<Database>, phone: string) =>
  db.selectFrom("users").selectAll().where("phone_number", "=", phone).executeTakeFirst()

/** Inserts a new account. */
export async function insertUser(
  db: Kysely<Database>,
  user: {
    id: string
    phone_number: string
    display_name: string | null
    email: string | null
    password_hash: string | null
    is_verified: boolean
    now: number
  },
): Promise<void> {
  const { now, ...values } = user
  await db
    .insertInto("users")
    .values({ ...values, created_at: now, updated_at: now })
    .execute()
}

/** Fields a profile update may change. */
export type UserPatch = Partial<
  Pick<UserRow, "display_name" | "bio" | "avatar_url" | "email" | "password_hash" | "last_seen"> & {
    social_links: string
    role: UserRole
    is_verified: boolean
  }
>

/** Updates a user's fields (updated_at included); returns whether a row changed. */
export async function updateUser(db: Kysely<Database>, id: string, patch: UserPatch, now: number) {
  const result = await db
    .updateTable("users")
    .set({ ...patch, updated_at: now })
    .where("id", "=", id)
    .executeTakeFirst()
  return result.numUpdatedRows > 0n
}

/** Records when a user was last seen (login, last socket closing); does not touch `updated_at`. */
export async function touchLastSeen(db: Kysely<Database>, userId: string, at: number): Promise<void> {
  await db.updateTable("users").set({ last_seen: at }).where("id", "=", userId).execute()
}

/** Whether another user already uses this email. */
export async function emailTaken(db: Kysely<Database>, email: string, exceptUserId: string) {
  const row = await db
    .selectFrom("users")
    .select("id")
    .where("email", "=", email)
    .where("id", "!=", exceptUserId)
    .executeTakeFirst()
  return !!row
}

/** Status of a user's latest verification (badge) request. */
export async function latestVerificationStatus(db: Kysely<Database>, userId: string) {
  const row = await db
    .selectFrom("verification_requests")
    .select(["status", "created_at"])
    .where("user_id", "=", userId)
    .orderBy("created_at", "desc")
    .orderBy("id", "desc")
    .limit(1)
    .executeTakeFirst()
  return row ?? null
}

const liteColumns = ["id", "phone_number", "display_name", "avatar_url", "bio", "last_seen"] as const

/** A page of users other than `exceptId`, oldest accounts first, and the count of all users. */
export async function listUsersPage(db: Kysely<Database>, exceptId: string, limit: number, offset: number) {
  const [users, count] = await Promise.all([
    db
      .selectFrom("users")
      .select(liteColumns)
      .where("id", "!=", exceptId)
      .orderBy("created_at")
      .orderBy("id")
      .limit(limit)
      .offset(offset)
      .execute(),
    db
      .selectFrom("users")
      .select((eb) => eb.fn.countAll<number | string>().as("n"))
      .executeTakeFirstOrThrow(),
  ])
  return { users, total: Number(count.n) }
}

/** Escapes LIKE wildcards so user input matches literally (with `escape '\'`). */
const likeEscape = (s: string) => s.replace(/[\\%_]/g, (c) => `\\${c}`)

/**
 * Users (other than `exceptId`) whose display name contains `q` case-insensitively, or whose phone number
 * contains its digits. Names first by name, then phone matches.
 */
export async function searchUsers(
  db: Kysely<Database>,
  exceptId: string,
  q: string,
  limit: number,
  offset: number,
) {
  const pattern = `%${likeEscape(q.toLowerCase())}%`
  const digits = q.replace(/\D/g, "")
  return db
    .selectFrom("users")
    .select(liteColumns)
    .where("id", "!=", exceptId)
    .where((eb) => {
      const byName = eb(eb.fn("lower", ["display_name"]), "like", sql<string>`${pattern} escape '\\'`)
      // A query with 3+ digits may be (part of) a phone number, written in any format.
      return digits.length >= 3 && digits.length === q.replace(/[\s()+.-]/g, "").length
        ? eb.or([byName, eb("phone_number", "like", `%${digits}%`)])
        : byName
    })
    .orderBy("display_name")
    .orderBy("id")
    .limit(limit)
    .offset(offset)
    .execute()
}

/** Users by id (unknown ids are left out), in no particular order. */
export const findUsersByIds = (db: Kysely<Database>, ids: readonly string[]) =>
  ids.length
    ? db.selectFrom("users").select(liteColumns).where("id", "in", ids).execute()
    : Promise.resolve([])
