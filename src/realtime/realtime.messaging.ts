import { groupDeletedMessage } from "../groups/groups.service.ts"
import type { Deps } from "../deps.ts"
import { badRequest } from "../errors.ts"
import { type SendMessageInput, sendMessage, setMessageStatus } from "../messages/messages.service.ts"
import { realtimeMessage } from "../messages/messages.views.ts"
import { decodeCursor } from "../sync/sync.cursor.ts"
import { listChangesSince, type SyncChange } from "../sync/sync.service.ts"
import { type ClientEventHandler, field } from "./realtime.events.ts"
import type { CursorOrder, Replay } from "./realtime.native.ts"

/**
 * The client events that go through messaging's services (the same ones REST uses): sending, and the
 * delivered/read receipts that move the member's watermarks and notify the sender.
 */
export function messagingClientEvents(deps: Deps): Record<string, ClientEventHandler> {
  return {
    /**
     * Persists (idempotent with the client's id), acknowledges with the stored message, and fans out
     * `message:received` to the other sockets (not echoed to this one).
     */
    "message:sent": async (connection, payload) => {
      if (!payload || typeof payload !== "object")
        throw badRequest("realtime.invalid_payload", "A message object is required.")
      const input = { ...(payload as Record<string, unknown>) } as SendMessageInput & Record<string, unknown>
      // The app's optimistic Message object: `type`, a temp `id` (its idempotency key), `replyTo` object.
      input.client_message_id ??=
        field(payload, "client_message_id", "clientMessageId") ?? field(payload, "id", "id")
      const replyTo =
        (payload as { replyTo?: { id?: unknown }; reply_to?: { id?: unknown } }).replyTo ??
        (payload as { reply_to?: { id?: unknown } }).reply_to
      if (!input.reply_to_id && !input.replyToId && typeof replyTo?.id === "string")
        input.reply_to_id = replyTo.id
      const result = await sendMessage(deps, connection.userId, input, { exceptSocketId: connection.id })
      return result.message
    },
    /** The client acknowledges receipt: moves the delivered watermark up to that message. */
    "message:delivered": async (connection, payload) => {
      const messageId = field(payload, "message_id", "messageId", true) ?? field(payload, "id", "id")
      if (!messageId) throw badRequest("realtime.invalid_payload", "message_id is required.")
      await setMessageStatus(deps, connection.userId, messageId, "DELIVERED")
      return { message_id: messageId, messageId }
    },
    /** The client read it: moves the read watermark (and delivered) up to that message. */
    "message:read": async (connection, payload) => {
      const messageId = field(payload, "message_id", "messageId", true) ?? field(payload, "id", "id")
      if (!messageId) throw badRequest("realtime.invalid_payload", "message_id is required.")
      await setMessageStatus(deps, connection.userId, messageId, "READ")
      return { message_id: messageId, messageId }
    },
  }
}

/** A feed entry as the live event it stands for (same names and payloads as the live frames). */
export function changeAsEvent(change: SyncChange): { name: string; data: Record<string, unknown> } {
  const conversationId = change.conversation_id
  const ids = (messageId: unknown) => ({
    id: messageId,
    message_id: messageId,
    messageId,
    conversation_id: conversationId,
    conversationId,
  })
  const data = change.data
  switch (change.type) {
    case "message.created":
      return { name: "message:received", data: realtimeMessage(data.message as never) }
    case "message.updated":
      return { name: "message:updated", data: realtimeMessage(data.message as never) }
    case "message.deleted":
      return {
        name: "message:deleted",
        data: { ...ids((data.message as { id: string }).id), scope: "everyone" },
      }
    case "message.hidden":
      return { name: "message:deleted", data: { ...ids(data.message_id), scope: "me" } }
    case "message.starred":
      return { name: "message:starred", data: { ...ids(data.message_id), is_starred: data.starred } }
    case "member.added":
    case "member.removed": {
      const userIds = [data.user_id]
      return {
        name: change.type === "member.added" ? "conversation:member_added" : "conversation:member_removed",
        data: { conversation_id: conversationId, conversationId, user_ids: userIds, userIds },
      }
    }
    case "conversation.state":
      return { name: "conversation:updated", data }
    case "receipt":
      // Watermarks, not one event per message: the live per-message events are summarised by this.
      return {
        name: "conversation:receipt",
        data: { conversation_id: conversationId, conversationId, ...data },
      }
    case "group.deleted":
      return {
        name: "group:deleted",
        data: { group_id: conversationId, message: groupDeletedMessage },
      }
    default:
      return { name: "sync:change", data: { type: change.type, conversation_id: conversationId, data } }
  }
}

/** Resume for /ws: the user's change feed from a cursor, page by page, as live events. */
export function messagingResume(deps: Deps): { replay: Replay; order: CursorOrder } {
  return {
    async *replay(userId, cursor) {
      decodeCursor(cursor) // 400 sync.invalid_cursor before anything is sent
      let from = cursor
      for (;;) {
        const page = await listChangesSince(deps, userId, from, 500)
        yield {
          events: page.changes.map((change) => ({ ...changeAsEvent(change), cursor: change.cursor })),
          cursor: page.cursor,
        }
        from = page.cursor
        if (!page.has_more) return
      }
    },
    order: (a, b) => decodeCursor(a) - decodeCursor(b),
  }
}
