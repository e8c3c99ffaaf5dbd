import { requireMembership } from "../conversations/conversations.access.ts"
import type { Deps } from "../deps.ts"
import { badRequest } from "../errors.ts"
import { postgresQuery, readQuery } from "../db/read-query.ts"
import { findMessageViews, hiddenAmong, type MessageView, type ViewerColumns } from "./messages.repository.ts"
import { serializeFor } from "./messages.service.ts"
import { type ReplyPreview, replyPreview, serializeMessage } from "./messages.views.ts"

/** Query of `GET /messages/search`. */
export type SearchParams = { q: string; conversationId?: string; limit?: number; cursor?: string }

/** SQLite: up to this many of the caller's conversations go into the index query itself; beyond, results are filtered after. */
const conversationsInQuery = 1000

/**
 * SQLite: how many newest matches of the words alone (any conversation) may be scanned, per conversation of
 * the caller, before the search asks FTS5 for the caller's conversations instead, for an index of `segments`
 * segments (search.indexer.ts). Measured on 1M messages (the `conv` query for every sample user, on the index
 * in 1 and in 12 segments): each `conv` token of that query costs FTS5 about 8 µs plus 5 µs per segment (a
 * seek in each), however few matches follow; each scanned match about 1.5 µs (a lookup of its conversation).
 * So the scan costs at most what the query it may avoid costs, and answers alone for rare words (all their
 * matches fit) and for callers whose conversations hold many of the matches.
 */
const scanPerConversation = (segments: number) => 5 + 3 * segments
/**
 * SQLite: the scan's first batch (up to 512 matches, ~0.8 ms): all of a rare word's matches. It stays what it
 * was before the budget followed the segments, 40 per conversation of the caller: fewer, and rare words went to
 * the `conv` query for callers with a few dozen conversations ("ruzivise" 0.97 → 1.5–2.4 ms of CPU); more, and
 * a search in one conversation scanned 512 matches of a common word before its one-token `conv` query.
 */
const firstBatch = (conversations: number) => Math.min(512, 40 * conversations)

/** The conversation as an FTS5 token: "c" + the uuid's hex digits (one unicode61 token). */
const conversationToken = (id: string) => "c" + id.replace(/-/g, "").toLowerCase()

/**
 * Search-as-you-type: the last word matches as a prefix (from 2 characters), the others as whole words.
 * Prefix terms are the expensive ones in both engines (every matching term's postings are merged), so only
 * the word being typed is one.
 */
const isPrefix = (words: string[], i: number) => i === words.length - 1 && words[i]!.length >= 2

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
 * opaque cursor. SQLite: the conversations are part of the index query (FTS5 `conv` column, after a bounded
 * scan of the newest matches anywhere, see `sqliteSearch`). Postgres: `urge_search_messages` (migration 0011)
 * reads the caller's conversations by windows of time, newest first, or asks GIN for rare words. Deleted
 * messages are not indexed; messages hidden by the caller or before their clear point are filtered out. All
 * words must match; the last one as a prefix.
 */
export async function searchMessages(deps: Deps, userId: string, params: SearchParams) {
  // SQLite indexes after the send (search.indexer.ts): first index whatever was committed before this search.
  await deps.searchIndex.catchUp()
  const limit = Math.min(Math.max(Math.trunc(params.limit ?? 50), 1), 100)
  const words = (
    params.q
      .normalize("NFKC")
      .toLowerCase()
      .match(/[\p{L}\p{N}]+/gu) ?? []
  ).slice(0, 10)
  const sqlite = deps.database.dialect === "sqlite"
  // The conversations searched, with the caller's clear points. Postgres reads them in the search statement.
  let scope: { id: string; cleared_seq: number }[] | null = null
  if (params.conversationId) {
    const m = await requireMembership(deps, params.conversationId, userId)
    scope = [{ id: m.id, cleared_seq: Number(m.cleared_seq) }]
  } else if (sqlite) {
    scope = (await scopeQuery(deps.database, [userId])).map((r) => ({
      id: r.id,
      cleared_seq: Number(r.cleared_seq),
    }))
  }
  const empty = { messages: [], total: 0, limit, has_more: false, next_cursor: null }
  if (words.length === 0 || scope?.length === 0) return empty
  const cleared = scope && new Map(scope.map((s) => [s.id, s.cleared_seq]))

  let key = decodeKey(params.cursor)
  const found: MessageView[] = []
  let exhausted = false
  const sqliteMatches = sqlite
    ? sqliteSearch(deps, scope!, words, key?.rid, deps.searchIndex.segments())
    : undefined
  // Filtering after the index (hidden, cleared) may drop rows: fetch on.
  for (let round = 0; round < 20 && found.length <= limit && !exhausted; round++) {
    const want = limit + 1 - found.length + 16
    let ids: { id: string; key: SearchKey }[]
    let views: MessageView[]
    // Hidden by the caller (Postgres: or at or below their clear point).
    let hidden: Set<string>
    if (sqliteMatches) {
      const next = await sqliteMatches(want)
      ids = next.ids.map((r) => ({ id: r.id, key: { rid: r.rid } }))
      exhausted = next.exhausted
      if (ids.length === 0) break
      views = await findMessageViews(
        deps.database,
        ids.map((r) => r.id),
      )
      hidden = await hiddenAmong(
        deps.database,
        userId,
        views.map((v) => v.id),
      )
    } else {
      const tsquery = words.map((w, i) => (isPrefix(words, i) ? `${w}:*` : w)).join(" & ")
      const rows = await postgresMatches(deps.database, [
        userId,
        params.conversationId ?? null,
        tsquery,
        key?.t ?? maxBigint,
        key?.i ?? "",
        want,
        params.conversationId ? postgresWindowBudget.one : postgresWindowBudget.all,
      ])
      ids = rows.map((r) => ({ id: r.id, key: { t: Number(r.created_at), i: r.id } }))
      exhausted = rows.length < want
      views = rows
      hidden = new Set(rows.filter((r) => r.excluded).map((r) => r.id))
    }
    if (ids.length === 0) break
    key = ids.at(-1)!.key
    const byId = new Map(views.map((v) => [v.id, v]))
    for (const { id, key: k } of ids) {
      const v = byId.get(id)
      if (!v || v.deleted_at !== null || hidden.has(id)) continue
      const clearedSeq = cleared ? cleared.get(v.conversation_id) : 0
      if (clearedSeq === undefined || Number(v.seq) <= clearedSeq) continue
      found.push(Object.assign(v, { searchKey: k }))
      if (found.length > limit) break
    }
  }
  const hasMore = found.length > limit
  const page = found.slice(0, limit)
  const messages = sqlite
    ? await serializeFor(deps.database, page, userId)
    : (page as PostgresMatch[]).map(serializeMatch)
  const last = page.at(-1) as (MessageView & { searchKey?: SearchKey }) | undefined
  return {
    messages,
    total: messages.length,
    limit,
    has_more: hasMore,
    next_cursor: hasMore && last?.searchKey ? encodeKey(last.searchKey) : null,
  }
}

/** SQLite: the caller's conversations with their clear points (a statement of bun:sqlite's cache, not Kysely's builder). */
const scopeQuery = readQuery<{ id: string; cleared_seq: number }>(
  "select conversation_id as id, cleared_seq from conversation_members where user_id = ?",
)

/** Postgres: the first page's cursor, above every (created_at, id). */
const maxBigint = "9223372036854775807"

/**
 * Postgres: how many messages the time windows of `urge_search_messages` (migration 0011) may read before GIN
 * answers instead (and the most they are expected to need, by the words' estimated frequency, to be tried at
 * all). A window's message costs ~1–2 µs of Postgres CPU (an index-only row); GIN costs about as much per match
 * of the words anywhere, plus a heap row per match in the caller's conversations. Measured on 1M messages
 * (docs/performance.md, "Postgres reads 2"): the busiest sample user (172 conversations, 13,647 messages) reads
 * ~500 messages for a word in 20 % of messages and ~3,500 for a word in 3 %.
 */
const postgresWindowBudget = { all: 10000, one: 10000 }

// Postgres: the matches (see migration 0011) with what the page needs of them, in one statement: the message
// with its sender, whether the caller hid it or cleared it (or left the conversation), and what serializing
// it reads (as `serializeFor` would, in the same round trip): the caller's star, the reply preview (a reply to
// a message of the same conversation), and the members' watermarks folded into what `statusOf` compares: the
// highest read and delivered seq among the members other than the sender (read receipts off: never read).
// Each conversation's members are read once (`marks`: the two highest of each with the first one's member),
// not once per message (67 matches in a group of 60 read 4,000 membership rows).
type PostgresMatch = MessageView &
  ViewerColumns & {
    excluded: boolean
    read_upto: number | null
    delivered_upto: number | null
  }
const postgresMatches = postgresQuery<PostgresMatch>(
  `with s as materialized (
     select * from urge_search_messages($1, $2, to_tsquery('simple', $3), $4, $5, $6, $7)
   ), page as (
     select m.id, m.conversation_id, m.seq, m.sender_id, m.client_message_id, m.content, m.message_type,
       m.media_url, m.thumbnail_url, m.audio_duration, m.reply_to_id, m.is_encrypted, m.is_forwarded, m.edited_at,
       m.deleted_at, m.created_at, m.updated_at, u.display_name as sender_name, u.phone_number as sender_phone,
       u.avatar_url as sender_avatar,
       (cm.cleared_seq is null or m.seq <= cm.cleared_seq
         or exists (select 1 from message_hides h where h.user_id = $1 and h.message_id = m.id)) as excluded,
       exists (select 1 from message_stars st where st.user_id = $1 and st.message_id = m.id) as is_starred,
       r.id as reply_id, ru.display_name as reply_sender_name, ru.phone_number as reply_sender_phone,
       r.content as reply_content, r.deleted_at as reply_deleted_at
     from s join messages m on m.id = s.id left join users u on u.id = m.sender_id
     left join conversation_members cm on cm.conversation_id = m.conversation_id and cm.user_id = $1
     left join messages r on r.id = m.reply_to_id and r.conversation_id = m.conversation_id
     left join users ru on ru.id = r.sender_id
   ), marks as (
     select pc.conversation_id, k.* from (select distinct p.conversation_id from page p) pc
     cross join lateral (
       select (array_agg(w.user_id order by w.rd desc))[1] as rd_user, (array_agg(w.rd order by w.rd desc))[1:2] as rd,
         (array_agg(w.user_id order by w.dl desc))[1] as dl_user, (array_agg(w.dl order by w.dl desc))[1:2] as dl
       from (
         select cm.user_id, case when us.show_read_receipts = false then 0 else cm.last_read_seq end as rd,
           greatest(cm.last_delivered_seq, cm.last_read_seq) as dl
         from conversation_members cm left join user_settings us on us.user_id = cm.user_id
         where cm.conversation_id = pc.conversation_id
       ) w
     ) k
   )
   select p.*,
     case when k.rd_user is not distinct from p.sender_id then k.rd[2] else k.rd[1] end as read_upto,
     case when k.dl_user is not distinct from p.sender_id then k.dl[2] else k.dl[1] end as delivered_upto
   from page p join s on s.id = p.id left join marks k on k.conversation_id = p.conversation_id
   order by s.created_at desc, s.id desc`,
)

/** Postgres: a match as the API returns it, from what its statement read (see `postgresMatches`). */
function serializeMatch(m: PostgresMatch) {
  const replies = new Map<string, ReplyPreview>()
  if (m.reply_id)
    replies.set(
      m.reply_id,
      replyPreview({
        id: m.reply_id,
        sender_name: m.reply_sender_name,
        sender_phone: m.reply_sender_phone,
        content: m.reply_content ?? "",
        deleted_at: m.reply_deleted_at,
      }),
    )
  // One watermark standing for every member but the sender (no user id equals it).
  const watermarks = [
    {
      conversation_id: m.conversation_id,
      user_id: "",
      last_read_seq: Number(m.read_upto ?? 0),
      last_delivered_seq: Number(m.delivered_upto ?? 0),
    },
  ]
  return serializeMessage(m, { watermarks, starred: new Set(m.is_starred ? [m.id] : []), replies })
}

// The newest matches of the words below a rowid, and of those the ones in the caller's conversations. CROSS JOIN
// and `+` keep the plan hits → messages by rowid: left free, SQLite reads every message of the caller's
// conversations through messages_conversation_seq instead (13,600 rows for the busiest sample user).
// Both run on the search index's own connection (search.indexer.ts): the index is `search`, the messages `main`.
const scanQuery = `with hits as materialized (select rowid as rid from search.messages_fts
     where messages_fts match ? and rowid < ? order by rowid desc limit ?)
   select h.rid, m.id, 0 as n from hits h cross join main.messages m on m.rid = h.rid
     where +m.conversation_id in (select value from json_each(?))
   union all select min(rid), null, count(*) from hits`
const conversationsQuery = `select f.rowid as rid, m.id from search.messages_fts f join main.messages m on m.rid = f.rowid
   where f.messages_fts match ? and f.rowid < ? order by f.rowid desc limit ?`

/**
 * SQLite: a source of the caller's matches, newest (highest rowid) first, below `before`. Two ways to the same
 * rows: first a bounded scan of the words' matches in every conversation, filtered to the caller's (cheap when
 * the words are rare or the caller's conversations hold many matches), then, from where the scan stopped,
 * FTS5 with the caller's conversations as `conv` tokens (cheap when the caller has few conversations).
 */
function sqliteSearch(
  deps: Deps,
  scope: { id: string }[],
  words: string[],
  before: number | undefined,
  segments: number,
) {
  const index = deps.searchIndex
  const body = `body : (${words.map((w, i) => (isPrefix(words, i) ? `"${w}"*` : `"${w}"`)).join(" AND ")})`
  const conversations = JSON.stringify(scope.map((s) => s.id))
  const inConversations =
    scope.length <= conversationsInQuery
      ? `conv : (${scope.map((s) => conversationToken(s.id)).join(" OR ")}) AND ${body}`
      : null
  const first = firstBatch(scope.length)
  let budget = inConversations
    ? Math.max(first, scanPerConversation(segments) * scope.length)
    : Number.POSITIVE_INFINITY
  let scanned = 0
  let matched = 0
  let below = before ?? Number.MAX_SAFE_INTEGER
  return async (want: number) => {
    const ids: { rid: number; id: string }[] = []
    while (budget > 0 && ids.length < want) {
      // A first batch (all of a rare word's matches); then scan on only while the share of the caller's
      // conversations among the matches seen so far says `want` is reached within the budget.
      let n = Math.min(budget, first)
      if (scanned > 0) {
        const expected = ((want - ids.length) * scanned) / Math.max(matched, 1)
        if (expected > budget) {
          budget = 0
          break
        }
        n = Math.min(budget, 8192, Math.max(256, Math.ceil(expected * 1.25)))
      }
      budget -= n
      const rows = await index.read<{ rid: number | null; id: string | null; n: number }>(scanQuery, [
        body,
        below,
        n,
        conversations,
      ])
      const last = rows.find((r) => r.id === null)!
      const matches = rows.filter((r) => r.id !== null) as { rid: number; id: string }[]
      ids.push(...matches.sort((a, b) => b.rid - a.rid))
      scanned += Number(last.n)
      matched += matches.length
      if (Number(last.n) < n) return { ids, exhausted: true }
      below = Number(last.rid)
    }
    if (ids.length >= want || !inConversations) return { ids, exhausted: false }
    const need = want - ids.length
    const rows = await index.read<{ rid: number; id: string }>(conversationsQuery, [
      inConversations,
      below,
      need,
    ])
    ids.push(...rows)
    if (rows.length) below = rows.at(-1)!.rid
    return { ids, exhausted: rows.length < need }
  }
}
