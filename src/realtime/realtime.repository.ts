import type { Kysely } from "kysely"
import type { DatabaseHandle } from "../db/database.ts"
import { readQuery } from "../db/read-query.ts"
import type { Database } from "../db/schema.ts"

const membershipsQuery = readQuery<{ id: string; type: string }>(
  "select m.conversation_id as id, c.type from conversation_members m join conversations c on c.id = m.conversation_id where m.user_id = ?",
)

/**
 * A user's conversations and their types, loaded into the delivery index at connect. A cached prepared
 * statement: through Kysely every connect prepared (and left for the GC to finalize) a statement of its own.
 */
export const listMemberships = (handle: DatabaseHandle, userId: string) => membershipsQuery(handle, [userId])

/** Whether the user is a member of the conversation (the index's fallback for a change not seen yet). */
export async function isMember(
  db: Kysely<Database>,
  conversationId: string,
  userId: string,
): Promise<boolean> {
  const row = await db
    .selectFrom("conversation_members")
    .select("user_id")
    .where("conversation_id", "=", conversationId)
    .where("user_id", "=", userId)
    .executeTakeFirst()
  return !!row
}

/** Users this one blocked or is blocked by: they never see each other's typing or presence. */
export async function listBlockedEitherWay(db: Kysely<Database>, userId: string): Promise<string[]> {
  const rows = await db
    .selectFrom("user_blocks")
    .select("blocked_id as other")
    .where("blocker_id", "=", userId)
    .union(db.selectFrom("user_blocks").select("blocker_id as other").where("blocked_id", "=", userId))
    .execute()
  return rows.map((r) => r.other)
}

/** The user's show_online_status switch (no settings row: on). */
export async function showsOnlineStatus(db: Kysely<Database>, userId: string): Promise<boolean> {
  const row = await db
    .selectFrom("user_settings")
    .select("show_online_status")
    .where("user_id", "=", userId)
    .executeTakeFirst()
  return !row || !!row.show_online_status
}

/** Records the same last_seen for many users at once (an instance stopping). */
export async function setLastSeenMany(db: Kysely<Database>, userIds: string[], at: number): Promise<void> {
  for (let i = 0; i < userIds.length; i += 500)
    await db
      .updateTable("users")
      .set({ last_seen: at })
      .where("id", "in", userIds.slice(i, i + 500))
      .execute()
}

/** Of these sessions, the ones that ended or expired (their sockets must close). */
export async function listEndedSessionIds(
  db: Kysely<Database>,
  sessionIds: string[],
  now: number,
): Promise<string[]> {
  const ended: string[] = []
  // Chunked to stay under SQLite's bound-parameter limit.
  for (let i = 0; i < sessionIds.length; i += 500) {
    const chunk = sessionIds.slice(i, i + 500)
    const live = await db
      .selectFrom("user_sessions")
      .select("id")
      .where("id", "in", chunk)
      .where("ended_at", "is", null)
      .where("expires_at", ">", now)
      .execute()
    const liveIds = new Set(live.map((r) => r.id))
    for (const id of chunk) if (!liveIds.has(id)) ended.push(id)
  }
  return ended
}

/**
 * The conversations through which a user's presence is shown: every DIRECT one, and groups of at most
 * `groupLimit` members (announcing every connect to a 10,000-member group would cost more than it tells).
 */
export async function listPresenceConversationIds(
  db: Kysely<Database>,
  userId: string,
  groupLimit: number,
): Promise<string[]> {
  const rows = await db
    .selectFrom("conversation_members as mine")
    .innerJoin("conversations as c", "c.id", "mine.conversation_id")
    .select("mine.conversation_id")
    .where("mine.user_id", "=", userId)
    .where((eb) =>
      eb.or([
        eb("c.type", "=", "DIRECT"),
        eb(
          eb
            .selectFrom("conversation_members as m")
            .select((x) => x.fn.countAll().as("n"))
            .whereRef("m.conversation_id", "=", "mine.conversation_id"),
          "<=",
          groupLimit,
        ),
      ]),
    )
    .execute()
  return rows.map((r) => r.conversation_id)
}
