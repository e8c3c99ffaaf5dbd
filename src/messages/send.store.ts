import { sql } from "kysely"
import { conversationErrors } from "../conversations/conversations.access.ts"
import type { Deps } from "../deps.ts"
import { AppError, forbidden } from "../errors.ts"
import { isAdminRole } from "../groups/groups.roles.ts"
import { appendChanges } from "../sync/sync.repository.ts"
import type { MessageType } from "./messages.tables.ts"

/** One validated send, as the store writes it. */
export type StoreItem = {
  conversationId: string
  senderId: string
  clientMessageId: string | null
  content: string
  type: MessageType
  mediaUrl: string | null
  thumbnailUrl: string | null
  audioDuration: number | null
  replyToId: string | null
  isEncrypted: boolean
  isForwarded: boolean
}

const storageUnavailable = () =>
  new AppError(
    503,
    "storage.unavailable",
    "The message could not be confirmed on disk; retry with the same client_message_id",
  )

/** What became of one item of a batch. */
export type StoreOutcome =
  | { kind: "stored"; id: string; seq: number; pos: number }
  /** Its client id was already stored (ownerIndex null) or belongs to an earlier item of this batch. */
  | { kind: "duplicate"; ownerIndex: number | null }
  | { kind: "error"; error: AppError }

/** A sender's public profile, for the messages the batch announces. */
export type SenderProfile = { display_name: string | null; phone_number: string; avatar_url: string | null }

/**
 * The outcome of a committed batch. `durable` resolves once the commit is on disk (SQLite "full": the WAL fsync
 * that runs after the commit, off the event loop); answers and announcements wait for it, the next batch does not.
 */
export type StoreResult = {
  outcomes: StoreOutcome[]
  senders: Map<string, SenderProfile>
  durable: Promise<void>
}

/**
 * Who may post, read inside the send transaction for each (conversation, sender): the conversation's type,
 * the sender's role (null: not a member), the group's only_admins_can_post, and blocks either way in a
 * DIRECT chat. Written over `t.c` / `t.u` so SQLite binds them per item and Postgres joins a whole batch.
 */
const accessColumns = `c.type, cm.role, gs.only_admins_can_post as admins_only,
  exists(select 1 from conversation_members o join user_blocks b on b.blocker_id = t.u and b.blocked_id = o.user_id
    where c.type = 'DIRECT' and o.conversation_id = c.id and o.user_id <> t.u) as blocked_them,
  exists(select 1 from conversation_members o join user_blocks b on b.blocker_id = o.user_id and b.blocked_id = t.u
    where c.type = 'DIRECT' and o.conversation_id = c.id and o.user_id <> t.u) as blocked_me`
const accessJoins = `join conversations c on c.id = t.c
  left join conversation_members cm on cm.conversation_id = t.c and cm.user_id = t.u
  left join group_settings gs on gs.conversation_id = t.c`

type AccessRow = {
  type: string
  role: string | null
  admins_only: boolean | number | null
  blocked_them: boolean | number
  blocked_me: boolean | number
}

/** 404/403 when the sender is not in the conversation (checked before a duplicate client id is answered). */
function membershipRefusal(row: AccessRow | undefined | null): AppError | null {
  if (!row) return conversationErrors.notFound()
  return row.role === null ? conversationErrors.notMember() : null
}

/** 403 when a member may not post: a block either way in a DIRECT chat (CONTRACT A3), or an admins-only group. */
function postingRefusal(row: AccessRow): AppError | null {
  if (row.blocked_them)
    return forbidden("message.blocked", "You have blocked this user. Unblock them to send messages.")
  if (row.blocked_me) return forbidden("message.blocked", "You cannot send messages to this user.")
  if (row.type === "GROUP" && row.admins_only && !isAdminRole(row.role!))
    return forbidden("group.admins_only", "Only the Founder and Co-founders can send messages in this group")
  return null
}

/**
 * Writes a batch of sends in one transaction and returns once it committed: checks who may post (so a send
 * costs no read before it is queued), resolves client ids already stored or repeated in the batch, assigns seqs, inserts, advances the senders' own read
 * watermarks, appends the feed rows last. Ids are UUIDv7 taken in commit order (so id order follows seq).
 * SQLite runs it as prepared bun:sqlite statements with no await in between (one synchronous transaction
 * while holding Kysely's connection); Postgres as a few set-based statements whatever the batch size.
 */
export function storeSends(deps: Deps, items: StoreItem[], now: number): Promise<StoreResult> {
  const owners: (number | null)[] = items.map(() => null)
  const firstByKey = new Map<string, number>()
  items.forEach((item, index) => {
    if (!item.clientMessageId) return
    const key = `${item.senderId}\n${item.clientMessageId}`
    const first = firstByKey.get(key)
    if (first === undefined) firstByKey.set(key, index)
    else owners[index] = first
  })
  return deps.database.dialect === "sqlite"
    ? storeSqlite(deps, items, owners, now)
    : storePostgres(deps, items, owners, now)
}

async function storeSqlite(
  deps: Deps,
  items: StoreItem[],
  owners: (number | null)[],
  now: number,
): Promise<StoreResult> {
  const s = deps.database.sqlite!
  const wal = deps.database.wal
  // "full": commit without the fsync, then fsync the WAL off the event loop before answering (see wal.ts).
  const syncAfter = deps.config.database.durability === "full" && wal !== undefined
  // Holding Kysely's (single) connection keeps every other query out of this transaction.
  const result = await deps.database.db.connection().execute(async () => {
    const access = s.query<AccessRow, [string, string]>(
      `select ${accessColumns} from (select ?1 as c, ?2 as u) t ${accessJoins}`,
    )
    const stored = s.query<{ id: string }, [string, string]>(
      "select id from messages where sender_id = ? and client_message_id = ?",
    )
    const bump = s.query<{ last_seq: number }, [string, number, string]>(
      "update conversations set last_seq = last_seq + 1, last_message_id = ?1, last_message_at = ?2, updated_at = ?2 where id = ?3 returning last_seq",
    )
    const insert = s.query(
      `insert into messages (id, conversation_id, seq, sender_id, client_message_id, content, message_type, media_url,
        thumbnail_url, audio_duration, reply_to_id, is_encrypted, is_forwarded, created_at, updated_at)
       values (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?14)`,
    )
    const read = s.query(
      `update conversation_members set last_read_seq = ?1, last_delivered_seq = max(last_delivered_seq, ?1), updated_at = ?2
       where conversation_id = ?3 and user_id = ?4 and last_read_seq < ?1`,
    )
    const change = s.query<{ pos: number }, [string, string, number]>(
      "insert into changes (conversation_id, kind, message_id, created_at) values (?, 'message.created', ?, ?) returning pos",
    )
    const profile = s.query<SenderProfile, [string]>(
      "select display_name, phone_number, avatar_url from users where id = ?",
    )
    const outcomes: StoreOutcome[] = []
    const senders = new Map<string, SenderProfile>()
    if (syncAfter) s.exec("PRAGMA synchronous = NORMAL")
    // The access row, read under the same write lock, already proves the conversation and sender exist: the
    // two foreign-key lookups per inserted message would only repeat it (no cascade runs in this transaction).
    s.exec("PRAGMA foreign_keys = OFF")
    s.exec("begin immediate")
    try {
      const created: { index: number; id: string; seq: number }[] = []
      items.forEach((item, index) => {
        if (owners[index] !== null)
          return void (outcomes[index] = { kind: "duplicate", ownerIndex: owners[index]! })
        const row = access.get(item.conversationId, item.senderId)
        const notMember = membershipRefusal(row)
        if (notMember) return void (outcomes[index] = { kind: "error", error: notMember })
        if (item.clientMessageId && stored.get(item.senderId, item.clientMessageId))
          return void (outcomes[index] = { kind: "duplicate", ownerIndex: null })
        const refused = postingRefusal(row!)
        if (refused) return void (outcomes[index] = { kind: "error", error: refused })
        const id = Bun.randomUUIDv7()
        const seq = Number(bump.get(id, now, item.conversationId)!.last_seq)
        insert.run(
          id,
          item.conversationId,
          seq,
          item.senderId,
          item.clientMessageId,
          item.content,
          item.type,
          item.mediaUrl,
          item.thumbnailUrl,
          item.audioDuration,
          item.replyToId,
          item.isEncrypted,
          item.isForwarded,
          now,
        )
        read.run(seq, now, item.conversationId, item.senderId)
        created.push({ index, id, seq })
        if (!senders.has(item.senderId)) senders.set(item.senderId, profile.get(item.senderId)!)
      })
      // Feed rows last (see appendChanges: the feed's order is commit order).
      for (const c of created) {
        const { pos } = change.get(items[c.index]!.conversationId, c.id, now)!
        outcomes[c.index] = { kind: "stored", id: c.id, seq: c.seq, pos: Number(pos) }
      }
      s.exec("commit")
    } catch (error) {
      if (s.inTransaction) s.exec("rollback")
      throw error
    } finally {
      s.exec("PRAGMA foreign_keys = ON")
      if (syncAfter) s.exec("PRAGMA synchronous = FULL")
    }
    return { outcomes, senders, durable: Promise.resolve() }
  })
  if (!syncAfter || !result.outcomes.some((o) => o.kind === "stored")) return result
  const durable = wal!.sync().catch((error) => {
    // Committed but not known to be on disk: answer an error (a retry with the client id gets the message).
    deps.logger.error("WAL fsync failed", { error: String(error) })
    throw storageUnavailable()
  })
  durable.catch(() => {}) // the callers handle it; this only marks it handled
  return { ...result, durable }
}

async function storePostgres(deps: Deps, items: StoreItem[], owners: (number | null)[], now: number) {
  const { db, dialect } = deps.database
  return db.transaction().execute(async (trx) => {
    const outcomes: StoreOutcome[] = []
    const key = (conversationId: string, userId: string) => `${conversationId}\n${userId}`
    const accessRows = await sql<AccessRow & { c: string; u: string }>`
      select t.c, t.u, ${sql.raw(accessColumns)}
      from unnest(${items.map((i) => i.conversationId)}::text[], ${items.map((i) => i.senderId)}::text[]) as t(c, u)
      ${sql.raw(accessJoins)}`.execute(trx)
    const accessOf = new Map(accessRows.rows.map((r) => [key(r.c, r.u), r]))
    const withClientId = items.filter((i) => i.clientMessageId)
    const already = new Set<string>()
    if (withClientId.length) {
      const rows = await sql<{ sender_id: string; client_message_id: string }>`
        select sender_id, client_message_id from messages
        where (sender_id, client_message_id) in (select * from unnest(${withClientId.map((i) => i.senderId)}::text[], ${withClientId.map((i) => i.clientMessageId)}::text[]))`.execute(
        trx,
      )
      for (const r of rows.rows) already.add(`${r.sender_id}\n${r.client_message_id}`)
    }
    const fresh: number[] = []
    items.forEach((item, index) => {
      if (owners[index] !== null)
        return void (outcomes[index] = { kind: "duplicate", ownerIndex: owners[index]! })
      const row = accessOf.get(key(item.conversationId, item.senderId))
      const notMember = membershipRefusal(row)
      if (notMember) return void (outcomes[index] = { kind: "error", error: notMember })
      if (item.clientMessageId && already.has(key(item.senderId, item.clientMessageId)))
        return void (outcomes[index] = { kind: "duplicate", ownerIndex: null })
      const refused = postingRefusal(row!)
      if (refused) return void (outcomes[index] = { kind: "error", error: refused })
      fresh.push(index)
    })
    // Ids in commit order; then one UPDATE … RETURNING for every conversation's seqs (rows locked in id
    // order, so two instances batching the same conversations cannot deadlock).
    const ids = new Map(fresh.map((index) => [index, Bun.randomUUIDv7()]))
    const counts = new Map<string, { k: number; last: string }>()
    for (const index of fresh) {
      const c = counts.get(items[index]!.conversationId) ?? { k: 0, last: "" }
      c.k++
      c.last = ids.get(index)!
      counts.set(items[index]!.conversationId, c)
    }
    const conversationIds = [...counts.keys()].sort()
    const seqBase = new Map<string, number>()
    if (conversationIds.length) {
      await sql`select id from conversations where id = any(${conversationIds}::text[]) order by id for update`.execute(
        trx,
      )
      const bumped = await sql<{ id: string; last_seq: number }>`
        update conversations c set last_seq = c.last_seq + t.k, last_message_id = t.last_id, last_message_at = ${now}, updated_at = ${now}
        from unnest(${conversationIds}::text[], ${conversationIds.map((id) => counts.get(id)!.k)}::bigint[], ${conversationIds.map((id) => counts.get(id)!.last)}::text[]) as t(id, k, last_id)
        where c.id = t.id returning c.id, c.last_seq`.execute(trx)
      for (const r of bumped.rows) seqBase.set(r.id, Number(r.last_seq) - counts.get(r.id)!.k)
    }
    const created: { index: number; id: string; seq: number }[] = []
    const next = new Map(seqBase)
    for (const index of fresh) {
      const item = items[index]!
      const base = next.get(item.conversationId)
      if (base === undefined) {
        outcomes[index] = { kind: "error", error: conversationErrors.notFound() }
        continue
      }
      next.set(item.conversationId, base + 1)
      created.push({ index, id: ids.get(index)!, seq: base + 1 })
    }
    if (created.length) {
      const col = <T>(f: (item: StoreItem, c: (typeof created)[number]) => T) =>
        created.map((c) => f(items[c.index]!, c))
      await sql`insert into messages (id, conversation_id, seq, sender_id, client_message_id, content, message_type, media_url,
          thumbnail_url, audio_duration, reply_to_id, is_encrypted, is_forwarded, created_at, updated_at)
        select t.*, ${now}::bigint, ${now}::bigint from unnest(
          ${col((_, c) => c.id)}::text[], ${col((i) => i.conversationId)}::text[], ${col((_, c) => c.seq)}::bigint[],
          ${col((i) => i.senderId)}::text[], ${col((i) => i.clientMessageId)}::text[], ${col((i) => i.content)}::text[],
          ${col((i) => i.type)}::text[], ${col((i) => i.mediaUrl)}::text[], ${col((i) => i.thumbnailUrl)}::text[],
          ${col((i) => i.audioDuration)}::integer[], ${col((i) => i.replyToId)}::text[], ${col((i) => i.isEncrypted)}::boolean[],
          ${col((i) => i.isForwarded)}::boolean[]) as t`.execute(trx)
      const top = new Map<string, number>()
      for (const c of created) {
        const key = `${items[c.index]!.conversationId}\n${items[c.index]!.senderId}`
        top.set(key, Math.max(top.get(key) ?? 0, c.seq))
      }
      const keys = [...top.keys()].sort()
      await sql`update conversation_members m set last_read_seq = t.seq, last_delivered_seq = greatest(m.last_delivered_seq, t.seq), updated_at = ${now}
        from unnest(${keys.map((k) => k.split("\n")[0]!)}::text[], ${keys.map((k) => k.split("\n")[1]!)}::text[], ${keys.map((k) => top.get(k)!)}::bigint[]) as t(c, u, seq)
        where m.conversation_id = t.c and m.user_id = t.u and m.last_read_seq < t.seq`.execute(trx)
    }
    const senderIds = [...new Set(created.map((c) => items[c.index]!.senderId))]
    const profiles = senderIds.length
      ? await sql<
          SenderProfile & { id: string }
        >`select id, display_name, phone_number, avatar_url from users where id = any(${senderIds}::text[])`.execute(
          trx,
        )
      : { rows: [] }
    const positions = await appendChanges(
      trx,
      dialect,
      created.map((c) => ({
        conversationId: items[c.index]!.conversationId,
        kind: "message.created" as const,
        messageId: c.id,
      })),
      now,
    )
    created.forEach(
      (c, k) => (outcomes[c.index] = { kind: "stored", id: c.id, seq: c.seq, pos: positions[k]! }),
    )
    return { outcomes, senders: new Map(profiles.rows.map((p) => [p.id, p])), durable: Promise.resolve() }
  })
}
