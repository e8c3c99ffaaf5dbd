import { type Kysely, sql } from "kysely"
import { isPostgres } from "./lib.ts"

/**
 * SQLite search: adds a prefix index for 4 characters to the FTS5 table (`prefix='2 3 4'`). The word being
 * typed is a prefix term; a prefix no index covers makes FTS5 merge the postings of every matching word before
 * it can return the newest match (9 ms of CPU for a 4-letter word found in one message in five of a million,
 * bench/messaging.ts), while an indexed prefix is one term read newest-first. Costs one more index entry per
 * token of 4+ characters on every send. FTS5 fixes its options at creation, so the table is rebuilt from
 * `messages` (the same rows the triggers of 0003 index). Postgres: nothing to do.
 */
export async function up(db: Kysely<any>): Promise<void> {
  if (!isPostgres(db)) await rebuild(db, "2 3 4")
}

export async function down(db: Kysely<any>): Promise<void> {
  if (!isPostgres(db)) await rebuild(db, "2 3")
}

// The triggers of 0003 name the table, so they keep working on the new one.
async function rebuild(db: Kysely<any>, prefix: string) {
  await sql`drop table messages_fts`.execute(db)
  await sql`create virtual table messages_fts using fts5(body, conv, content='', contentless_delete=1, prefix=${sql.lit(prefix)}, tokenize='unicode61 remove_diacritics 2')`.execute(
    db,
  )
  await sql`insert into messages_fts(rowid, body, conv)
    select rid, content, 'c' || replace(conversation_id, '-', '') from messages
    where message_type = 'TEXT' and deleted_at is null order by rid`.execute(db)
  // One bulk insert leaves large segments on the lowest levels, where every later send's small segment is
  // merged with them: on 1M messages sends then cost ~2.2x the CPU until those merges end. Merged into one
  // segment (2.6 s on 1M messages) the next sends cost what they did before the rebuild, and searches read
  // one segment instead of several.
  await sql`insert into messages_fts(messages_fts) values ('optimize')`.execute(db)
}
