import type { Kysely } from "kysely"
import { bigintType } from "./lib.ts"

/**
 * Media: one row per completed upload (CONTRACT §4.5). `file_key` is the storage key and the path of the file
 * URL (unguessable: 128 random bits); a file is served only while its row exists. See docs/architecture.md "Media".
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable("media")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("user_id", "text", (c) => c.notNull().references("users.id").onDelete("cascade"))
    .addColumn("file_key", "text", (c) => c.notNull().unique())
    .addColumn("file_url", "text", (c) => c.notNull())
    .addColumn("thumbnail_key", "text", (c) => c.unique())
    .addColumn("thumbnail_url", "text")
    .addColumn("file_name", "text", (c) => c.notNull())
    .addColumn("file_type", "text", (c) => c.notNull())
    .addColumn("mime_type", "text", (c) => c.notNull())
    .addColumn("file_size", bigintType, (c) => c.notNull())
    .addColumn("duration", "integer")
    .addColumn("width", "integer")
    .addColumn("height", "integer")
    .addColumn("created_at", bigintType, (c) => c.notNull())
    .addColumn("updated_at", bigintType, (c) => c.notNull())
    .execute()
  await db.schema.createIndex("media_user_created").on("media").columns(["user_id", "created_at"]).execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable("media").execute()
}
