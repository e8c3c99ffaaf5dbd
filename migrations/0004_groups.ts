import { type Kysely, sql } from "kysely"
import { bigintType, flagType } from "./lib.ts"

/**
 * Groups: a group is a `conversations` row with type GROUP (its id is the group id) and its members'
 * `conversation_members.role`. This adds its settings (one row, created with the group or lazily for groups
 * made through `POST /conversations`), events with RSVPs, and join requests for groups that need approval.
 * See docs/architecture.md "Groups".
 */
export async function up(db: Kysely<any>): Promise<void> {
  const flag = flagType(db)
  await db.schema
    .createTable("group_settings")
    .addColumn("conversation_id", "text", (c) =>
      c.primaryKey().references("conversations.id").onDelete("cascade"),
    )
    .addColumn("is_public", flag, (c) => c.notNull().defaultTo(sql`false`))
    .addColumn("allow_member_invites", flag, (c) => c.notNull().defaultTo(sql`true`))
    .addColumn("require_admin_approval", flag, (c) => c.notNull().defaultTo(sql`false`))
    .addColumn("only_admins_can_post", flag, (c) => c.notNull().defaultTo(sql`false`))
    .addColumn("only_admins_can_edit_info", flag, (c) => c.notNull().defaultTo(sql`true`))
    // 12 characters [A-Za-z0-9] (CONTRACT §1 IDs): the code of urgetalk://join/<code>.
    .addColumn("invite_link", "text", (c) => c.notNull().unique())
    .addColumn("invite_link_enabled", flag, (c) => c.notNull().defaultTo(sql`true`))
    .addColumn("mute_notifications", flag, (c) => c.notNull().defaultTo(sql`false`))
    .addColumn("theme_color", "text")
    .addColumn("created_at", bigintType, (c) => c.notNull())
    .addColumn("updated_at", bigintType, (c) => c.notNull())
    .execute()

  await db.schema
    .createTable("group_events")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("conversation_id", "text", (c) =>
      c.notNull().references("conversations.id").onDelete("cascade"),
    )
    .addColumn("created_by", "text", (c) => c.references("users.id").onDelete("set null"))
    .addColumn("title", "text", (c) => c.notNull())
    .addColumn("description", "text")
    .addColumn("location", "text")
    .addColumn("start_time", bigintType, (c) => c.notNull())
    .addColumn("end_time", bigintType)
    .addColumn("is_online", flag, (c) => c.notNull().defaultTo(sql`false`))
    .addColumn("meeting_link", "text")
    .addColumn("max_attendees", "integer")
    .addColumn("created_at", bigintType, (c) => c.notNull())
    .addColumn("updated_at", bigintType, (c) => c.notNull())
    .execute()
  await db.schema
    .createIndex("group_events_conversation_start")
    .on("group_events")
    .columns(["conversation_id", "start_time"])
    .execute()

  await db.schema
    .createTable("group_event_attendees")
    .addColumn("event_id", "text", (c) => c.notNull().references("group_events.id").onDelete("cascade"))
    .addColumn("user_id", "text", (c) => c.notNull().references("users.id").onDelete("cascade"))
    .addColumn("status", "text", (c) => c.notNull())
    .addColumn("created_at", bigintType, (c) => c.notNull())
    .addColumn("updated_at", bigintType, (c) => c.notNull())
    .addPrimaryKeyConstraint("group_event_attendees_pk", ["event_id", "user_id"])
    .execute()

  // One row per (group, user): a new request after a decision reopens the same row.
  await db.schema
    .createTable("group_join_requests")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("conversation_id", "text", (c) =>
      c.notNull().references("conversations.id").onDelete("cascade"),
    )
    .addColumn("user_id", "text", (c) => c.notNull().references("users.id").onDelete("cascade"))
    .addColumn("status", "text", (c) => c.notNull())
    // NULL: the user asked through the invite link; else the member who proposed them.
    .addColumn("invited_by", "text", (c) => c.references("users.id").onDelete("set null"))
    .addColumn("decided_by", "text", (c) => c.references("users.id").onDelete("set null"))
    .addColumn("decided_at", bigintType)
    .addColumn("created_at", bigintType, (c) => c.notNull())
    .addColumn("updated_at", bigintType, (c) => c.notNull())
    .addUniqueConstraint("group_join_requests_conversation_user", ["conversation_id", "user_id"])
    .execute()
  await db.schema
    .createIndex("group_join_requests_conversation_status")
    .on("group_join_requests")
    .columns(["conversation_id", "status", "created_at"])
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable("group_join_requests").execute()
  await db.schema.dropTable("group_event_attendees").execute()
  await db.schema.dropTable("group_events").execute()
  await db.schema.dropTable("group_settings").execute()
}
