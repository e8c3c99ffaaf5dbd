import type { ColumnType } from "kysely"
import type { Flag, Millis } from "../db/schema.ts"

/** The nine message types of the app (CONTRACT §4.3). */
export const messageTypes = [
  "TEXT",
  "IMAGE",
  "VIDEO",
  "AUDIO",
  "DOCUMENT",
  "VOICE",
  "LOCATION",
  "CONTACT",
  "SYSTEM",
] as const
export type MessageType = (typeof messageTypes)[number]

/** `messages`: one message; `seq` orders it in its conversation. (SQLite also has `rid`, the FTS5 key.) */
export interface MessagesTable {
  id: string
  conversation_id: string
  seq: number
  sender_id: string | null
  client_message_id: string | null
  content: string
  message_type: ColumnType<MessageType, MessageType | undefined, MessageType>
  media_url: string | null
  thumbnail_url: string | null
  audio_duration: number | null
  reply_to_id: string | null
  is_encrypted: Flag
  is_forwarded: Flag
  edited_at: Millis | null
  deleted_at: Millis | null
  created_at: Millis
  updated_at: Millis
}

/** `message_hides`: a message one user deleted for themselves only. */
export interface MessageHidesTable {
  user_id: string
  message_id: string
  conversation_id: string
  created_at: Millis
}

/** `message_stars`: a message one user starred. */
export interface MessageStarsTable {
  user_id: string
  message_id: string
  conversation_id: string
  created_at: Millis
}
