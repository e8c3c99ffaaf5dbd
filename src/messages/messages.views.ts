import { iso } from "../clock.ts"
import type { MessageView, Watermark } from "./messages.repository.ts"

/** What a reply shows of the message it answers. */
export type ReplyPreview = { id: string; sender_name: string | null; content: string }

/** The message JSON of the REST API (CONTRACT §2.4 MsgFull, plus `type`, `seq`, `client_message_id`). */
export type MessageJson = {
  id: string
  conversation_id: string
  seq: number
  sender_id: string | null
  sender_name: string | null
  sender_avatar: string | null
  content: string
  message_type: string
  type: string
  status: "SENT" | "DELIVERED" | "READ"
  media_url: string | null
  thumbnail_url: string | null
  audio_duration: number | null
  reply_to_id: string | null
  reply_to: ReplyPreview | null
  client_message_id: string | null
  is_edited: boolean
  is_deleted: boolean
  is_encrypted: boolean
  is_starred: boolean
  is_forwarded: boolean
  created_at: string
  updated_at: string
  edited_at: string | null
  deleted_at: string | null
}

/** What serializing a set of messages needs besides the rows. */
export type MessageContext = {
  /** Watermarks of the members of the messages' conversations. */
  watermarks: Watermark[]
  /** Ids the viewer starred. */
  starred: Set<string>
  /** Reply previews by message id. */
  replies: Map<string, ReplyPreview>
}

/** The reply preview of a message ("Media" for empty content, as the app shows it). */
export const replyPreview = (
  m: Pick<MessageView, "id" | "sender_name" | "sender_phone" | "content" | "deleted_at">,
): ReplyPreview => ({
  id: m.id,
  sender_name: m.sender_name ?? m.sender_phone,
  content: m.deleted_at !== null ? "" : m.content || "Media",
})

/**
 * One status per message, as the original and the app have it: READ once any member other than the sender
 * has read up to it, DELIVERED once any has received it, else SENT. Derived from watermarks, never stored.
 */
export function statusOf(
  m: { conversation_id: string; seq: number; sender_id: string | null },
  marks: Watermark[],
) {
  let delivered = false
  for (const w of marks) {
    if (w.conversation_id !== m.conversation_id || w.user_id === m.sender_id) continue
    if (Number(w.last_read_seq) >= m.seq) return "READ" as const
    if (Number(w.last_delivered_seq) >= m.seq) delivered = true
  }
  return delivered ? ("DELIVERED" as const) : ("SENT" as const)
}

/** A message as the REST API returns it. */
export function serializeMessage(m: MessageView, ctx: MessageContext): MessageJson {
  const deleted = m.deleted_at !== null
  const reply = m.reply_to_id ? (ctx.replies.get(m.reply_to_id) ?? null) : null
  return {
    id: m.id,
    conversation_id: m.conversation_id,
    seq: Number(m.seq),
    sender_id: m.sender_id,
    sender_name: m.sender_name ?? m.sender_phone,
    sender_avatar: m.sender_avatar,
    content: deleted ? "" : m.content,
    message_type: m.message_type,
    type: m.message_type,
    status: statusOf({ ...m, seq: Number(m.seq) }, ctx.watermarks),
    media_url: deleted ? null : m.media_url,
    thumbnail_url: deleted ? null : m.thumbnail_url,
    audio_duration: m.audio_duration,
    reply_to_id: m.reply_to_id,
    reply_to: reply,
    client_message_id: m.client_message_id,
    is_edited: m.edited_at !== null,
    is_deleted: deleted,
    is_encrypted: !!m.is_encrypted,
    is_starred: ctx.starred.has(m.id),
    is_forwarded: !!m.is_forwarded,
    created_at: iso(m.created_at)!,
    updated_at: iso(m.updated_at)!,
    edited_at: iso(m.edited_at),
    deleted_at: iso(m.deleted_at),
  }
}

// Memoised: every announced message camel-cases the same ~20 keys (a regex each was ~3 % of a send's CPU).
const camelKeys = new Map<string, string>()
const camel = (key: string) => {
  let camelKey = camelKeys.get(key)
  if (camelKey === undefined)
    camelKeys.set(key, (camelKey = key.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase())))
  return camelKey
}

/**
 * The realtime payload (`message:received`, `message:updated`): both cases side by side, `type`, and a
 * `reply_to`/`replyTo` object (CONTRACT §3, A4), because the app's screens read one or the other.
 */
export function realtimeMessage(json: MessageJson): Record<string, unknown> {
  const out: Record<string, unknown> = { ...json }
  for (const [key, value] of Object.entries(json)) if (key.includes("_")) out[camel(key)] = value
  out.replyTo = json.reply_to
    ? { id: json.reply_to.id, senderName: json.reply_to.sender_name, content: json.reply_to.content }
    : null
  return out
}
