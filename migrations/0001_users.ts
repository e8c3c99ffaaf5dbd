import { type Kysely, sql } from "kysely"
import { bigintType, flagType } from "./lib.ts"

/** Accounts and their sessions (one per logged-in device). */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable("users")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("phone_number", "text", (c) => c.notNull().unique())
    .addColumn("email", "text")
    .addColumn("password_hash", "text")
    .addColumn("display_name", "text")
    .addColumn("avatar_url", "text")
    .addColumn("bio", "text")
    .addColumn("role", "text", (c) => c.notNull().defaultTo("REGULAR"))
    .addColumn("is_verified", flagType(db), (c) => c.notNull().defaultTo(sql`false`))
    .addColumn("social_links", "text", (c) => c.notNull().defaultTo("{}"))
    .addColumn("last_seen", bigintType)
    .addColumn("created_at", bigintType, (c) => c.notNull())
    .addColumn("updated_at", bigintType, (c) => c.notNull())
    .execute()
  await db.schema.createIndex("users_email_unique").unique().on("users").column("email").execute()

  await db.schema
    .createTable("user_sessions")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("user_id", "text", (c) => c.notNull().references("users.id").onDelete("cascade"))
    .addColumn("refresh_token_hash", "text", (c) => c.notNull().unique())
    .addColumn("device_name", "text")
    .addColumn("platform", "text")
    .addColumn("ip", "text")
    .addColumn("created_at", bigintType, (c) => c.notNull())
    .addColumn("last_used_at", bigintType, (c) => c.notNull())
    .addColumn("expires_at", bigintType, (c) => c.notNull())
    .addColumn("ended_at", bigintType)
    .execute()
  await db.schema
    .createIndex("user_sessions_user")
    .on("user_sessions")
    .columns(["user_id", "ended_at"])
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable("user_sessions").execute()
  await db.schema.dropTable("users").execute()
}
