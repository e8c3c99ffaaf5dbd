import { findMembership } from "../conversations/conversations.repository.ts"
import { memberStateJson } from "../conversations/conversations.service.ts"
import type { Deps } from "../deps.ts"
import { findMessageViews, hiddenAmong } from "../messages/messages.repository.ts"
import { serializeFor } from "../messages/messages.service.ts"
import { decodeCursor, encodeCursor } from "./sync.cursor.ts"
import { type ChangeRow, latestPosition, listChangesAfter } from "./sync.repository.ts"

/** One entry of `GET /api/sync`: what changed, where, and the cursor just after it. */
export type SyncChange = {
  cursor: string
  type: string
  conversation_id: string | null
  data: Record<string, unknown>
}

/** A page of the caller's change feed. */
export type SyncPage = { changes: SyncChange[]; cursor: string; has_more: boolean }

/**
 * The caller's changes after `cursor` (empty: from the beginning), oldest first, at most `limit`; `cursor` of
 * the page is where to continue. Messages are rendered in their current state (a later change in the feed
 * says the same or newer), so replaying from any cursor converges to the server's state. Messages the caller
 * hid or cleared are left out of message changes; the `message.hidden` / `conversation.state` entries say so.
 * Realtime uses this to replay on resume.
 */
export async function listChangesSince(
  deps: Deps,
  userId: string,
  cursor: string | null | undefined,
  limit = 500,
): Promise<SyncPage> {
  const db = deps.database.db
  const after = decodeCursor(cursor)
  limit = Math.min(Math.max(Math.trunc(limit), 1), 1000)
  const rows = await listChangesAfter(db, userId, after, limit + 1)
  const hasMore = rows.length > limit
  const page = rows.slice(0, limit)
  const next = page.length ? page.at(-1)!.pos : after
  return { changes: await renderChanges(deps, userId, page), cursor: encodeCursor(next), has_more: hasMore }
}

/** Where a client that has just loaded everything starts following the feed. */
export async function currentCursor(deps: Deps): Promise<string> {
  return encodeCursor(await latestPosition(deps.database.db))
}

async function renderChanges(deps: Deps, userId: string, rows: ChangeRow[]): Promise<SyncChange[]> {
  const db = deps.database.db
  const messageIds = [
    ...new Set(rows.filter((r) => r.kind.startsWith("message.") && r.message_id).map((r) => r.message_id!)),
  ]
  const views = await findMessageViews(db, messageIds)
  const [messages, hidden] = await Promise.all([
    serializeFor(db, views, userId),
    hiddenAmong(db, userId, messageIds),
  ])
  const byId = new Map(messages.map((m) => [m.id, m]))
  const clearedSeq = new Map<string, number>()
  const stateRows = new Map<string, ReturnType<typeof memberStateJson> | null>()
  const now = deps.clock.now()
  const conversationIds = [...new Set(rows.map((r) => r.conversation_id).filter((id): id is string => !!id))]
  for (const id of conversationIds) {
    const membership = await findMembership(db, id, userId)
    clearedSeq.set(id, membership ? Number(membership.cleared_seq) : 0)
    stateRows.set(id, membership ? memberStateJson(membership, now) : null)
  }

  const out: SyncChange[] = []
  for (const r of rows) {
    const base = { cursor: encodeCursor(r.pos), type: r.kind, conversation_id: r.conversation_id }
    const data = r.data ? (JSON.parse(r.data) as Record<string, unknown>) : {}
    switch (r.kind) {
      case "message.created":
      case "message.updated":
      case "message.deleted": {
        const message = byId.get(r.message_id!)
        // Gone (conversation deleted), hidden for the caller, or before their clear point: nothing to show.
        if (
          !message ||
          hidden.has(message.id) ||
          message.seq <= (clearedSeq.get(message.conversation_id) ?? 0)
        )
          continue
        out.push({ ...base, data: { message } })
        break
      }
      case "message.hidden":
        out.push({ ...base, data: { message_id: r.message_id } })
        break
      case "message.starred":
        out.push({ ...base, data: { message_id: r.message_id, ...data } })
        break
      case "conversation.state": {
        const state = stateRows.get(r.conversation_id!)
        if (state) out.push({ ...base, data: state })
        break
      }
      default:
        // receipt, member.added, member.removed: the data recorded at the time.
        out.push({ ...base, data })
    }
  }
  return out
}
