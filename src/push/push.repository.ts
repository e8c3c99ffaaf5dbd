import type { Kysely } from "kysely"
import type { Database } from "../db/schema.ts"
import type { DevicePlatform } from "./push.tables.ts"

/** Registers a device token for a user's session; a token known under another user or session moves here. */
export async function upsertDeviceToken(
  db: Kysely<Database>,
  row: { token: string; userId: string; sessionId: string; platform: DevicePlatform; now: number },
) {
  await db
    .insertInto("device_tokens")
    .values({
      token: row.token,
      user_id: row.userId,
      session_id: row.sessionId,
      platform: row.platform,
      created_at: row.now,
      updated_at: row.now,
    })
    .onConflict((oc) =>
      oc.column("token").doUpdateSet({
        user_id: row.userId,
        session_id: row.sessionId,
        platform: row.platform,
        updated_at: row.now,
      }),
    )
    .execute()
}

/** Forgets a user's token; false when the user had no such token. */
export async function deleteUserDeviceToken(db: Kysely<Database>, userId: string, token: string) {
  const result = await db
    .deleteFrom("device_tokens")
    .where("user_id", "=", userId)
    .where("token", "=", token)
    .executeTakeFirst()
  return result.numDeletedRows > 0n
}

/** Forgets tokens the provider called invalid. */
export async function deleteDeviceTokens(db: Kysely<Database>, tokens: readonly string[]) {
  for (let i = 0; i < tokens.length; i += 500)
    await db
      .deleteFrom("device_tokens")
      .where("token", "in", tokens.slice(i, i + 500))
      .execute()
}

/** Forgets the tokens registered by ended sessions. */
export async function deleteSessionDeviceTokens(db: Kysely<Database>, sessionIds: readonly string[]) {
  for (let i = 0; i < sessionIds.length; i += 500)
    await db
      .deleteFrom("device_tokens")
      .where("session_id", "in", sessionIds.slice(i, i + 500))
      .execute()
}

/** A member of a conversation with what decides whether they get a push (settings absent: all on). */
export type PushMember = {
  user_id: string
  muted_until: number | null
  enabled: boolean
  preview: boolean
  sound: boolean
  messages: boolean
  groups: boolean
}

/** The conversation's type and name, and its members other than `senderId` with their notification switches. */
export async function pushAudience(db: Kysely<Database>, conversationId: string, senderId: string) {
  const conversation = await db
    .selectFrom("conversations")
    .select(["type", "name"])
    .where("id", "=", conversationId)
    .executeTakeFirst()
  if (!conversation) return null
  const rows = await db
    .selectFrom("conversation_members as cm")
    .leftJoin("user_settings as us", "us.user_id", "cm.user_id")
    .select([
      "cm.user_id",
      "cm.muted_until",
      "us.notifications_enabled",
      "us.notification_preview",
      "us.notification_sound",
      "us.message_notifications",
      "us.group_notifications",
    ])
    .where("cm.conversation_id", "=", conversationId)
    .where("cm.user_id", "<>", senderId)
    .execute()
  const on = (v: number | boolean | null) => v === null || !!v
  const members: PushMember[] = rows.map((r) => ({
    user_id: r.user_id,
    muted_until: r.muted_until === null ? null : Number(r.muted_until),
    enabled: on(r.notifications_enabled),
    preview: on(r.notification_preview),
    sound: on(r.notification_sound),
    messages: on(r.message_notifications),
    groups: on(r.group_notifications),
  }))
  return { type: conversation.type, name: conversation.name, members }
}

/** The device tokens of these users registered by sessions that are still live. */
export async function liveDeviceTokens(db: Kysely<Database>, userIds: readonly string[], now: number) {
  const out: { token: string; platform: DevicePlatform; user_id: string }[] = []
  for (let i = 0; i < userIds.length; i += 500)
    out.push(
      ...(await db
        .selectFrom("device_tokens as d")
        .innerJoin("user_sessions as s", "s.id", "d.session_id")
        .select(["d.token", "d.platform", "d.user_id"])
        .where("d.user_id", "in", userIds.slice(i, i + 500))
        .where("s.ended_at", "is", null)
        .where("s.expires_at", ">", now)
        .execute()),
    )
  return out
}
