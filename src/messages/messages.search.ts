import { sql } from "kysely"
import { requireMembership } from "../conversations/conversations.access.ts"
import type { Deps } from "../deps.ts"
import { badRequest } from "../errors.ts"
import { findMessageViews, hiddenAmong, type MessageView } from "./messages.repository.ts"
import { serializeFor } from "./messages.service.ts"

/** Query of `GET /messages/search`. */
export type SearchParams = { q: string; conversationId?: string; limit?: number; cursor?: string }

/** Up to this many of the caller's conversations go into the index query itself; beyond, results are filtered after. */
const conversationsInQuery = 1000

/** The conversation as an FTS5 token: "c" + the uuid's hex digits (one unicode61 token). */
const conversationToken = (id: string) => "c" + id.replace(/-/g, "").toLowerCase()

type SearchKey = { rid?: number; t?: number; i?: string }

const encodeKey = (k: SearchKey) => Buffer.from(JSON.stringify(k)).toString("base64url")
function decodeKey(cursor: string | undefined): SearchKey | null {
  if (!cursor) return null
  try {
    const k = JSON.parse(Buffer.from(cursor, "base64url").toString()) as SearchKey
    if (
      typeof k === "object" &&
      k &&
      (typeof k.rid === "number" || (typeof k.t === "number" && typeof k.i === "string"))
    )
      return k
  } catch {}
  throw badRequest("search.invalid_cursor", "The search cursor is not one this server issued.")
}

/**
 * Full-text search over the caller's conversations (or one of them), newest match first, paginated by an
 * opaque cursor. The conversations are part of the index query (FTS5 `conv` column; Postgres GIN on
 * (conversation_id, tsv)), never a join after the fact. Deleted messages are not indexed; messages hidden by
 * the caller or before their clear point are filtered out. Words match as prefixes, all words must match.
 */
export async function searchMessages(deps: Deps, userId: string, params: SearchParams) {
  const db = deps.database.db
  const limit = Math.min(Math.max(Math.trunc(params.limit ?? 50), 1), 100)
  const words = (
    params.q
      .normalize("NFKC")
      .toLowerCase()
      .match(/[\p{L}\p{N}]+/gu) ?? []
  ).slice(0, 10)
  let scope: { id: string; cleared_seq: number }[]
  if (params.conversationId) {
    const m = await requireMembership(deps, params.conversationId, userId)
    scope = [{ id: m.id, cleared_seq: Number(m.cleared_seq) }]
  } else {
    scope = (
      await db
        .selectFrom("conversation_members")
        .select(["conversation_id as id", "cleared_seq"])
        .where("user_id", "=", userId)
        .execute()
    ).map((r) => ({ id: r.id, cleared_seq: Number(r.cleared_seq) }))
  }
  const empty = { messages: [], total: 0, limit, has_more: false, next_cursor: null }
  if (words.length === 0 || scope.length === 0) return empty
  const cleared = new Map(scope.map((s) => [s.id, s.cleared_seq]))
  const inQuery = scope.length <= conversationsInQuery

  let key = decodeKey(params.cursor)
  const found: MessageView[] = []
  let exhausted = false
  // Filtering after the index (hidden, cleared, membership beyond the in-query cap) may drop rows: fetch on.
  for (let round = 0; round < 20 && found.length <= limit && !exhausted; round++) {
    const want = limit + 1 - found.length + 16
    let ids: { id: string; key: SearchKey }[]
    if (deps.database.dialect === "sqlite") {
      const match =
        (inQuery ? `conv : (${scope.map((s) => conversationToken(s.id)).join(" OR ")}) AND ` : "") +
        `body : (${words.map((w) => `"${w}"*`).join(" AND ")})`
      const rows = await sql<{
        rid: number
      }>`select rowid as rid from messages_fts where messages_fts match ${match}
        and rowid < ${key?.rid ?? Number.MAX_SAFE_INTEGER} order by rowid desc limit ${want}`.execute(db)
      const rids = rows.rows.map((r) => Number(r.rid))
      const byRid = new Map(
        rids.length
          ? (
              await sql<{
                rid: number
                id: string
              }>`select rid, id from messages where rid in (${sql.join(rids)})`.execute(db)
            ).rows.map((r) => [Number(r.rid), r.id] as const)
          : [],
      )
      ids = rids.filter((rid) => byRid.has(rid)).map((rid) => ({ id: byRid.get(rid)!, key: { rid } }))
      exhausted = rows.rows.length < want
    } else {
      const tsquery = words.map((w) => `${w}:*`).join(" & ")
      const before = key?.t !== undefined ? sql`and (created_at, id) < (${key.t}, ${key.i})` : sql``
      const convFilter = inQuery ? sql`and conversation_id in (${sql.join(scope.map((s) => s.id))})` : sql``
      const rows = await sql<{ id: string; created_at: number }>`select id, created_at from messages
        where tsv @@ to_tsquery('simple', ${tsquery}) ${convFilter} ${before}
        order by created_at desc, id desc limit ${want}`.execute(db)
      ids = rows.rows.map((r) => ({ id: r.id, key: { t: Number(r.created_at), i: r.id } }))
      exhausted = rows.rows.length < want
    }
    if (ids.length === 0) break
    key = ids.at(-1)!.key
    const views = await findMessageViews(
      db,
      ids.map((r) => r.id),
    )
    const hidden = await hiddenAmong(
      db,
      userId,
      views.map((v) => v.id),
    )
    const byId = new Map(views.map((v) => [v.id, v]))
    for (const { id, key: k } of ids) {
      const v = byId.get(id)
      if (!v || v.deleted_at !== null || hidden.has(id)) continue
      const clearedSeq = cleared.get(v.conversation_id)
      if (clearedSeq === undefined || Number(v.seq) <= clearedSeq) continue
      found.push(Object.assign(v, { searchKey: k }))
      if (found.length > limit) break
    }
  }
  const hasMore = found.length > limit
  const page = found.slice(0, limit)
  const messages = await serializeFor(db, page, userId)
  const last = page.at(-1) as (MessageView & { searchKey?: SearchKey }) | undefined
  return {
    messages,
    total: messages.length,
    limit,
    has_more: hasMore,
    next_cursor: hasMore && last?.searchKey ? encodeKey(last.searchKey) : null,
  }
}
