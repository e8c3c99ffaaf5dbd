import type { ColumnType } from "kysely"
import type { Flag, Millis } from "../db/schema.ts"

/** DIRECT (two people) or GROUP. */
export type ConversationType = "DIRECT" | "GROUP"

/** The app's group roles (CONTRACT §4.4); DIRECT members are MEMBER. */
export type MemberRole =
  "FOUNDER" | "ACCOUNTANT" | "MODERATOR" | "RECRUITER" | "SUPPORT" | "CHEERLEADER" | "MEMBER"

/** `conversations`: a chat; `last_seq` is the seq of its newest message. */
export interface ConversationsTable {
  id: string
  type: ConversationType
  name: string | null
  avatar_url: string | null
  description: string | null
  created_by: string | null
  /** DIRECT only: the sorted pair of user ids, unique. */
  direct_key: string | null
  last_seq: ColumnType<number, number | undefined, number>
  /** Newest message not deleted for everyone. */
  last_message_id: string | null
  last_message_at: Millis | null
  created_at: Millis
  updated_at: Millis
}

/** `conversation_members`: who is in a conversation, with their own read state and flags (CONTRACT A3). */
export interface ConversationMembersTable {
  conversation_id: string
  user_id: string
  role: ColumnType<MemberRole, MemberRole | undefined, MemberRole>
  joined_at: Millis
  last_read_seq: ColumnType<number, number | undefined, number>
  last_delivered_seq: ColumnType<number, number | undefined, number>
  cleared_seq: ColumnType<number, number | undefined, number>
  muted_until: Millis | null
  archived: Flag
  favourite: Flag
  pinned_at: Millis | null
  hidden: Flag
  updated_at: Millis
}
