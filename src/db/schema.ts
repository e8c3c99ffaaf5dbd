import type { ColumnType, Generated } from "kysely"
import type { ConversationMembersTable, ConversationsTable } from "../conversations/conversations.tables.ts"
import type { MessageHidesTable, MessagesTable, MessageStarsTable } from "../messages/messages.tables.ts"
import type { ChangesTable } from "../sync/sync.tables.ts"

/** A boolean column: native on Postgres, 0/1 on SQLite. Read it with `!!`. */
export type Flag = ColumnType<number | boolean, boolean | undefined, boolean>
/** Milliseconds since epoch. */
export type Millis = number

/** `users`: one account per phone number. */
export interface UsersTable {
  id: string
  phone_number: string
  email: string | null
  password_hash: string | null
  display_name: string | null
  avatar_url: string | null
  bio: string | null
  role: ColumnType<UserRole, UserRole | undefined, UserRole>
  is_verified: Flag
  social_links: ColumnType<string, string | undefined, string>
  last_seen: Millis | null
  created_at: Millis
  updated_at: Millis
}

export type UserRole = "FOUNDER" | "CO_FOUNDER" | "VERIFIED" | "REGULAR"

/** `user_sessions`: a logged-in device; its refresh token is stored hashed. */
export interface UserSessionsTable {
  id: string
  user_id: string
  refresh_token_hash: string
  device_name: string | null
  platform: string | null
  ip: string | null
  created_at: Millis
  last_used_at: Millis
  expires_at: Millis
  ended_at: Millis | null
}

/** Every table, for `Kysely<Database>`. Features add their tables here. */
export interface Database {
  users: UsersTable
  user_sessions: UserSessionsTable
  conversations: ConversationsTable
  conversation_members: ConversationMembersTable
  messages: MessagesTable
  message_hides: MessageHidesTable
  message_stars: MessageStarsTable
  changes: ChangesTable
}

export type { Generated }
