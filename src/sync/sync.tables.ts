import type { Generated } from "kysely"
import type { Millis } from "../db/schema.ts"

/** What a change-feed row records (see docs/architecture.md "Messaging"). */
export type ChangeKind =
  | "message.created"
  | "message.updated"
  | "message.deleted"
  | "message.hidden"
  | "message.starred"
  | "receipt"
  | "member.added"
  | "member.removed"
  | "conversation.state"

/** `changes`: the change feed behind `/api/sync`; `pos` is totally ordered in commit order. */
export interface ChangesTable {
  pos: Generated<number>
  /** The conversation concerned (NULL for a change about the user only). */
  conversation_id: string | null
  /** NULL: every member of the conversation sees it; else only this user. */
  user_id: string | null
  kind: ChangeKind
  message_id: string | null
  /** Small JSON for changes that are not read back from current state (receipts, membership). */
  data: string | null
  created_at: Millis
}
