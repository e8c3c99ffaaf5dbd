import type { ColumnType, Generated } from "kysely"
import type {
  OtpCodesTable,
  UserSessionsTable,
  UsersTable,
  VerificationRequestsTable,
} from "../accounts/accounts.tables.ts"
import type { UserBlocksTable, UserSettingsTable } from "../settings/settings.tables.ts"
import type { ConversationMembersTable, ConversationsTable } from "../conversations/conversations.tables.ts"
import type { MessageHidesTable, MessagesTable, MessageStarsTable } from "../messages/messages.tables.ts"
import type { ChangesTable } from "../sync/sync.tables.ts"
import type {
  GroupEventAttendeesTable,
  GroupEventsTable,
  GroupJoinRequestsTable,
  GroupSettingsTable,
} from "../groups/groups.tables.ts"
import type { MediaTable } from "../media/media.tables.ts"
import type { DeviceTokensTable } from "../push/push.tables.ts"

/** A boolean column: native on Postgres, 0/1 on SQLite. Read it with `!!`. */
export type Flag = ColumnType<number | boolean, boolean | undefined, boolean>
/** Milliseconds since epoch. */
export type Millis = number

export type { UserRole, UserSessionsTable, UsersTable } from "../accounts/accounts.tables.ts"

/** Every table, for `Kysely<Database>`. Features add their tables here. */
export interface Database {
  users: UsersTable
  user_sessions: UserSessionsTable
  otp_codes: OtpCodesTable
  verification_requests: VerificationRequestsTable
  user_blocks: UserBlocksTable
  user_settings: UserSettingsTable
  conversations: ConversationsTable
  conversation_members: ConversationMembersTable
  messages: MessagesTable
  message_hides: MessageHidesTable
  message_stars: MessageStarsTable
  changes: ChangesTable
  group_settings: GroupSettingsTable
  group_events: GroupEventsTable
  group_event_attendees: GroupEventAttendeesTable
  group_join_requests: GroupJoinRequestsTable
  media: MediaTable
  device_tokens: DeviceTokensTable
}

export type { Generated }
