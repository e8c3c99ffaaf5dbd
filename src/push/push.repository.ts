import type { Kysely } from "kysely"
import type { DatabaseHandle } from "../db/database.ts"
import { readQuery } from "../db/read-query.ts"
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

/** Keeps a user's `keep` most recently registered tokens and forgets the rest. */
export async function trimUserDeviceTokens(db: Kysely<Database>, userId: string, keep: number) {
  await db
    .deleteFrom("device_tokens")
    .where("user_id", "=", userId)
    .where(
      "token",
      "not in",
      db
        .selectFrom("device_tokens")
        .select("token")
        .where("user_id", "=", userId)
        .orderBy("updated_at", "desc")
        .orderBy("token")
        .limit(keep),
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

/** A device a message could be pushed to, with its owner's notification switches (settings absent: all on). */
export type PushCandidate = {
  conversation_type: "DIRECT" | "GROUP"
  conversation_name: string | null
  user_id: string
  token: string
  platform: DevicePlatform
  enabled: boolean
  preview: boolean
  sound: boolean
  messages: boolean
  groups: boolean
}

/** A committed message's conversation and sender: what its push candidates are asked for. */
export type PushSource = { conversationId: string; senderId: string }

/**
 * The devices of each conversation's members other than its sender: tokens of live sessions, conversation not
 * muted by their owner. One query for every message of a send batch (one per message cost ~30 µs of CPU on
 * SQLite and a pg round trip on Postgres, for no rows at all in the common case of members without devices).
 * Keyed by `conversationId + "\n" + senderId`.
 */
export async function pushCandidates(
  h: DatabaseHandle,
  sources: PushSource[],
  now: number,
): Promise<Map<string, PushCandidate[]>> {
  const key = (c: string, u: string) => `${c}\n${u}`
  const pairs = [...new Map(sources.map((s) => [key(s.conversationId, s.senderId), s])).values()]
  const rows = await candidatesQuery(
    h,
    h.dialect === "sqlite"
      ? [JSON.stringify(pairs.map((p) => [p.conversationId, p.senderId])), now, now]
      : [pairs.map((p) => p.conversationId), pairs.map((p) => p.senderId), now, now],
  )
  const on = (v: number | boolean | null) => v === null || !!v
  const byPair = new Map<string, PushCandidate[]>()
  for (const r of rows) {
    const k = key(r.c, r.u)
    let list = byPair.get(k)
    if (!list) byPair.set(k, (list = []))
    list.push({
      conversation_type: r.type,
      conversation_name: r.name,
      user_id: r.user_id,
      token: r.token,
      platform: r.platform,
      enabled: on(r.notifications_enabled),
      preview: on(r.notification_preview),
      sound: on(r.notification_sound),
      messages: on(r.message_notifications),
      groups: on(r.group_notifications),
    })
  }
  return byPair
}

// Hand-written (readQuery): it runs for every send batch, and Kysely's building would cost more than the query.
const candidatesSql = (pairs: string, now1: string, now2: string) => `
  select t.c, t.u, c.type, c.name, cm.user_id, d.token, d.platform, us.notifications_enabled,
    us.notification_preview, us.notification_sound, us.message_notifications, us.group_notifications
  from ${pairs}
  join conversation_members cm on cm.conversation_id = t.c and cm.user_id <> t.u
  join device_tokens d on d.user_id = cm.user_id
  join user_sessions s on s.id = d.session_id
  join conversations c on c.id = cm.conversation_id
  left join user_settings us on us.user_id = cm.user_id
  where (cm.muted_until is null or cm.muted_until <= ${now1})
    and s.ended_at is null and s.expires_at > ${now2}`
const candidatesQuery = readQuery<{
  c: string
  u: string
  type: "DIRECT" | "GROUP"
  name: string | null
  user_id: string
  token: string
  platform: DevicePlatform
  notifications_enabled: number | boolean | null
  notification_preview: number | boolean | null
  notification_sound: number | boolean | null
  message_notifications: number | boolean | null
  group_notifications: number | boolean | null
}>(
  candidatesSql("(select value ->> 0 as c, value ->> 1 as u from json_each(?)) t", "?", "?"),
  candidatesSql("unnest($1::text[], $2::text[]) as t(c, u)", "$3", "$4"),
)
