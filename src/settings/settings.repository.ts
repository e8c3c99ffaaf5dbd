import type { Kysely, Selectable } from "kysely"
import type { Database } from "../db/schema.ts"
import type { UserSettingsTable } from "./settings.tables.ts"

/** Privacy switches (CONTRACT §4.7); every one defaults to true. */
export type PrivacySettings = {
  show_online_status: boolean
  show_last_seen: boolean
  show_profile_photo: boolean
  show_read_receipts: boolean
}

/** Notification switches (CONTRACT §4.6, the app's snake names); every one defaults to true. */
export type NotificationSettings = {
  enabled: boolean
  show_preview: boolean
  sound: boolean
  vibration: boolean
  message_notifications: boolean
  group_notifications: boolean
}

/** The settings a user has when they never changed any. */
export const defaultPrivacy: PrivacySettings = {
  show_online_status: true,
  show_last_seen: true,
  show_profile_photo: true,
  show_read_receipts: true,
}

const privacyOf = (row: Selectable<UserSettingsTable> | undefined): PrivacySettings =>
  row
    ? {
        show_online_status: !!row.show_online_status,
        show_last_seen: !!row.show_last_seen,
        show_profile_photo: !!row.show_profile_photo,
        show_read_receipts: !!row.show_read_receipts,
      }
    : { ...defaultPrivacy }

const notificationsOf = (row: Selectable<UserSettingsTable> | undefined): NotificationSettings => ({
  enabled: row ? !!row.notifications_enabled : true,
  show_preview: row ? !!row.notification_preview : true,
  sound: row ? !!row.notification_sound : true,
  vibration: row ? !!row.notification_vibration : true,
  message_notifications: row ? !!row.message_notifications : true,
  group_notifications: row ? !!row.group_notifications : true,
})

const settingsRow = (db: Kysely<Database>, userId: string) =>
  db.selectFrom("user_settings").selectAll().where("user_id", "=", userId).executeTakeFirst()

/** A user's privacy switches (realtime honours show_online_status and show_read_receipts). */
export async function getPrivacySettings(db: Kysely<Database>, userId: string): Promise<PrivacySettings> {
  return privacyOf(await settingsRow(db, userId))
}

/** Privacy switches of many users at once (absent ids get the defaults). */
export async function getPrivacySettingsMany(
  db: Kysely<Database>,
  userIds: readonly string[],
): Promise<Map<string, PrivacySettings>> {
  const out = new Map<string, PrivacySettings>()
  if (!userIds.length) return out
  const rows = await db.selectFrom("user_settings").selectAll().where("user_id", "in", userIds).execute()
  for (const id of userIds) out.set(id, { ...defaultPrivacy })
  for (const row of rows) out.set(row.user_id, privacyOf(row))
  return out
}

/** A user's notification switches (push honours enabled, message_notifications, group_notifications). */
export async function getNotificationSettings(
  db: Kysely<Database>,
  userId: string,
): Promise<NotificationSettings> {
  return notificationsOf(await settingsRow(db, userId))
}

/** Column values of a settings update. */
export type SettingsPatch = Partial<
  Omit<{ [K in keyof UserSettingsTable]: boolean }, "user_id" | "updated_at">
>

/** Writes some switches (creating the row with defaults first if needed). */
export async function updateSettings(
  db: Kysely<Database>,
  userId: string,
  patch: SettingsPatch,
  now: number,
) {
  await db
    .insertInto("user_settings")
    .values({ user_id: userId, ...patch, updated_at: now })
    .onConflict((oc) => oc.column("user_id").doUpdateSet({ ...patch, updated_at: now }))
    .execute()
}

/** Whether either user blocked the other (direct messages, new conversations, typing, presence, invites). */
export async function isBlockedEitherWay(
  db: Kysely<Database>,
  userA: string,
  userB: string,
): Promise<boolean> {
  const row = await db
    .selectFrom("user_blocks")
    .select("blocker_id")
    .where((eb) =>
      eb.or([
        eb.and([eb("blocker_id", "=", userA), eb("blocked_id", "=", userB)]),
        eb.and([eb("blocker_id", "=", userB), eb("blocked_id", "=", userA)]),
      ]),
    )
    .limit(1)
    .executeTakeFirst()
  return !!row
}

/** Of `others`, the ids that `userId` blocked or that blocked `userId` (batch form of isBlockedEitherWay). */
export async function blockedEitherWayAmong(
  db: Kysely<Database>,
  userId: string,
  others: readonly string[],
): Promise<Set<string>> {
  if (!others.length) return new Set()
  const rows = await db
    .selectFrom("user_blocks")
    .select(["blocker_id", "blocked_id"])
    .where((eb) =>
      eb.or([
        eb.and([eb("blocker_id", "=", userId), eb("blocked_id", "in", others)]),
        eb.and([eb("blocked_id", "=", userId), eb("blocker_id", "in", others)]),
      ]),
    )
    .execute()
  return new Set(rows.map((r) => (r.blocker_id === userId ? r.blocked_id : r.blocker_id)))
}

/** Whether `blocker` blocked `blocked` (one direction). */
export async function hasBlocked(db: Kysely<Database>, blocker: string, blocked: string): Promise<boolean> {
  const row = await db
    .selectFrom("user_blocks")
    .select("blocker_id")
    .where("blocker_id", "=", blocker)
    .where("blocked_id", "=", blocked)
    .executeTakeFirst()
  return !!row
}

/** Adds a block; false when it already existed. */
export async function insertBlock(db: Kysely<Database>, blocker: string, blocked: string, now: number) {
  const result = await db
    .insertInto("user_blocks")
    .values({ blocker_id: blocker, blocked_id: blocked, created_at: now })
    .onConflict((oc) => oc.columns(["blocker_id", "blocked_id"]).doNothing())
    .executeTakeFirst()
  return (result.numInsertedOrUpdatedRows ?? 0n) > 0n
}

/** Removes a block; false when there was none. */
export async function deleteBlock(db: Kysely<Database>, blocker: string, blocked: string) {
  const result = await db
    .deleteFrom("user_blocks")
    .where("blocker_id", "=", blocker)
    .where("blocked_id", "=", blocked)
    .executeTakeFirst()
  return result.numDeletedRows > 0n
}

/** Ids a user blocked, oldest block first. */
export async function blockedIds(db: Kysely<Database>, blocker: string): Promise<string[]> {
  const rows = await db
    .selectFrom("user_blocks")
    .select("blocked_id")
    .where("blocker_id", "=", blocker)
    .orderBy("created_at")
    .orderBy("blocked_id")
    .execute()
  return rows.map((r) => r.blocked_id)
}

/** The users a user blocked, with what the Privacy screen shows. */
export const blockedUsers = (db: Kysely<Database>, blocker: string) =>
  db
    .selectFrom("user_blocks as b")
    .innerJoin("users as u", "u.id", "b.blocked_id")
    .select(["u.id", "u.display_name", "u.phone_number", "u.avatar_url"])
    .where("b.blocker_id", "=", blocker)
    .orderBy("b.created_at")
    .orderBy("u.id")
    .execute()
