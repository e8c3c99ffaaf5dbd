import type { Kysely, Selectable } from "kysely"
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
