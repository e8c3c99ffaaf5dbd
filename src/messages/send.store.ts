import type pg from "pg"
import { conversationErrors } from "../conversations/conversations.access.ts"
import type { Deps } from "../deps.ts"
import { AppError, forbidden } from "../errors.ts"
import { isAdminRole } from "../groups/groups.roles.ts"
import { feedLockKey } from "../sync/sync.repository.ts"
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
  /** `recipients`: the members other than the sender, when the batch read them (DIRECT chats). */
  | { kind: "stored"; id: string; seq: number; pos: number; recipients?: string[] }
  /** Its client id was already stored (ownerIndex null) or belongs to an earlier item of this batch. */
  | { kind: "duplicate"; ownerIndex: number | null }
  | { kind: "error"; error: AppError }

/** A sender's public profile, for the messages the batch announces. */
export type SenderProfile = { display_name: string | null; phone_number: string; avatar_url: string | null }

/** The outcome of a batch committed (and, in SQLite "full", fsynced). */
export type StoreResult = { outcomes: StoreOutcome[]; senders: Map<string, SenderProfile> }

/**
 * Who may post, read inside the send transaction for each (conversation, sender): the conversation's type,
 * the sender's role (null: not a member), the group's only_admins_can_post, and blocks either way in a
 * DIRECT chat. Written over `t.c` / `t.u` so SQLite binds them per item and Postgres joins a whole batch.
 */
const accessColumns = `c.type, cm.role, gs.only_admins_can_post as admins_only,
  exists(select 1 from conversation_members o join user_blocks b on b.blocker_id = t.u and b.blocked_id = o.user_id
    where c.type = 'DIRECT' and o.conversation_id = c.id and o.user_id <> t.u) as blocked_them,
  exists(select 1 from conversation_members o join user_blocks b on b.blocker_id = o.user_id and b.blocked_id = t.u
    where c.type = 'DIRECT' and o.conversation_id = c.id and o.user_id <> t.u) as blocked_me,
  (select o.user_id from conversation_members o
    where c.type = 'DIRECT' and o.conversation_id = c.id and o.user_id <> t.u limit 1) as peer`
const accessJoins = `join conversations c on c.id = t.c
  left join conversation_members cm on cm.conversation_id = t.c and cm.user_id = t.u
  left join group_settings gs on gs.conversation_id = t.c`

type AccessRow = {
  type: string
  role: string | null
  admins_only: boolean | number | null
  blocked_them: boolean | number
  blocked_me: boolean | number
  /** The other member of a DIRECT chat. */
  peer: string | null
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
 * costs no read before it is queued), resolves client ids already stored or repeated in the batch, assigns
 * seqs, inserts, advances the senders' own read watermarks, appends the feed rows last. Ids are UUIDv7 taken in commit order (so id order follows seq).
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
      const created: { index: number; id: string; seq: number; recipients?: string[] }[] = []
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
        const recipients = row!.peer === null ? undefined : [row!.peer]
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
        created.push({ index, id, seq, recipients })
        if (!senders.has(item.senderId)) senders.set(item.senderId, profile.get(item.senderId)!)
      })
      // Feed rows last (see appendChanges: the feed's order is commit order).
      for (const c of created) {
        const { pos } = change.get(items[c.index]!.conversationId, c.id, now)!
        outcomes[c.index] = {
          kind: "stored",
          id: c.id,
          seq: c.seq,
          pos: Number(pos),
          recipients: c.recipients,
        }
      }
      s.exec("commit")
    } catch (error) {
      if (s.inTransaction) s.exec("rollback")
      throw error
    } finally {
      s.exec("PRAGMA foreign_keys = ON")
      if (syncAfter) s.exec("PRAGMA synchronous = FULL")
    }
    return { outcomes, senders }
  })
  if (!syncAfter || !result.outcomes.some((o) => o.kind === "stored")) return result
  // The fsync runs on Bun's I/O threads; the next batch commits when it ends (its answers would wait for the
  // fsync after this one anyway, and the sends that arrive meanwhile make one bigger batch: 1:1 at 1,000 msg/s,
  // -14 % server CPU per message, p50 +1 ms, same p99).
  try {
    await wal!.sync()
  } catch (error) {
    // Committed but not known to be on disk: answer an error (a retry with the client id gets the message).
    deps.logger.error("WAL fsync failed", { error: String(error) })
    result.outcomes = result.outcomes.map((o) =>
      o.kind === "stored" ? { kind: "error", error: storageUnavailable() } : o,
    )
  }
  return result
}

/**
 * The batch's statements on Postgres, run as named prepared statements on one pooled connection: planning these
 * unnest/exists statements was most of Postgres' CPU per batch (the access query: ~0.8-0.95 ms of Postgres CPU
 * unprepared, ~0.22-0.3 ms prepared, batches of 16), and Kysely has no prepared statements.
 */
const pgSend = {
  access: `select t.c, t.u, ${accessColumns} from unnest($1::text[], $2::text[]) as t(c, u) ${accessJoins}`,
  stored: `select sender_id, client_message_id from messages
    where (sender_id, client_message_id) in (select * from unnest($1::text[], $2::text[]))`,
  // Rows locked in id order, so two instances batching the same conversations cannot deadlock.
  lock: "select id from conversations where id = any($1::text[]) order by id for update",
  bump: `update conversations c set last_seq = c.last_seq + t.k, last_message_id = t.last_id, last_message_at = $4, updated_at = $4
    from unnest($1::text[], $2::bigint[], $3::text[]) as t(id, k, last_id) where c.id = t.id returning c.id, c.last_seq`,
  insert: `insert into messages (id, conversation_id, seq, sender_id, client_message_id, content, message_type, media_url,
      thumbnail_url, audio_duration, reply_to_id, is_encrypted, is_forwarded, created_at, updated_at)
    select t.*, $14::bigint, $14::bigint from unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[],
      $6::text[], $7::text[], $8::text[], $9::text[], $10::integer[], $11::text[], $12::boolean[], $13::boolean[]) as t`,
  read: `update conversation_members m set last_read_seq = t.seq, last_delivered_seq = greatest(m.last_delivered_seq, t.seq), updated_at = $4
    from unnest($1::text[], $2::text[], $3::bigint[]) as t(c, u, seq)
    where m.conversation_id = t.c and m.user_id = t.u and m.last_read_seq < t.seq`,
  senders: "select id, display_name, phone_number, avatar_url from users where id = any($1::text[])",
  // The feed's ordering lock, then its rows (see appendChanges: the last writes of the transaction).
  feedLock: "select pg_advisory_xact_lock($1)",
  feed: `insert into changes (conversation_id, kind, message_id, created_at)
    select t.c, 'message.created', t.m, $3 from unnest($1::text[], $2::text[]) as t(c, m) returning pos`,
} as const

async function storePostgres(
  deps: Deps,
  items: StoreItem[],
  owners: (number | null)[],
  now: number,
): Promise<StoreResult> {
  const client = await deps.database.pool!.connect()
  const run = async <Row>(name: keyof typeof pgSend, values: unknown[]) =>
    (await client.query<Row & pg.QueryResultRow>({ name: `send.${name}`, text: pgSend[name], values })).rows
  try {
    await client.query("begin")
    const outcomes: StoreOutcome[] = []
    const key = (a: string, b: string) => `${a}\n${b}`
    const accessRows = await run<AccessRow & { c: string; u: string }>("access", [
      items.map((i) => i.conversationId),
      items.map((i) => i.senderId),
    ])
    const accessOf = new Map(accessRows.map((r) => [key(r.c, r.u), r]))
    const withClientId = items.filter((i) => i.clientMessageId)
    const already = new Set<string>()
    if (withClientId.length) {
      const rows = await run<{ sender_id: string; client_message_id: string }>("stored", [
        withClientId.map((i) => i.senderId),
        withClientId.map((i) => i.clientMessageId),
      ])
      for (const r of rows) already.add(key(r.sender_id, r.client_message_id))
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
    // Ids in commit order; then one UPDATE … RETURNING for every conversation's seqs.
    const ids = new Map(fresh.map((index) => [index, Bun.randomUUIDv7()]))
    const counts = new Map<string, { k: number; last: string }>()
    for (const index of fresh) {
      const c = counts.get(items[index]!.conversationId) ?? { k: 0, last: "" }
      c.k++
      c.last = ids.get(index)!
      counts.set(items[index]!.conversationId, c)
    }
    const conversationIds = [...counts.keys()].sort()
    const next = new Map<string, number>()
    if (conversationIds.length) {
      await run("lock", [conversationIds])
      const bumped = await run<{ id: string; last_seq: number }>("bump", [
        conversationIds,
        conversationIds.map((id) => counts.get(id)!.k),
        conversationIds.map((id) => counts.get(id)!.last),
        now,
      ])
      for (const r of bumped) next.set(r.id, Number(r.last_seq) - counts.get(r.id)!.k)
    }
    const created: { index: number; id: string; seq: number; peer: string | null }[] = []
    for (const index of fresh) {
      const base = next.get(items[index]!.conversationId)
      // Deleted by another transaction since the access row was read (read committed).
      if (base === undefined) {
        outcomes[index] = { kind: "error", error: conversationErrors.notFound() }
        continue
      }
      next.set(items[index]!.conversationId, base + 1)
      const { peer } = accessOf.get(key(items[index]!.conversationId, items[index]!.senderId))!
      created.push({ index, id: ids.get(index)!, seq: base + 1, peer })
    }
    const senders = new Map<string, SenderProfile>()
    if (created.length) {
      const col = <T>(f: (item: StoreItem, c: (typeof created)[number]) => T) =>
        created.map((c) => f(items[c.index]!, c))
      await run("insert", [
        col((_, c) => c.id),
        col((i) => i.conversationId),
        col((_, c) => c.seq),
        col((i) => i.senderId),
        col((i) => i.clientMessageId),
        col((i) => i.content),
        col((i) => i.type),
        col((i) => i.mediaUrl),
        col((i) => i.thumbnailUrl),
        col((i) => i.audioDuration),
        col((i) => i.replyToId),
        col((i) => i.isEncrypted),
        col((i) => i.isForwarded),
        now,
      ])
      const top = new Map<string, number>()
      for (const c of created) {
        const k = key(items[c.index]!.conversationId, items[c.index]!.senderId)
        top.set(k, Math.max(top.get(k) ?? 0, c.seq))
      }
      const keys = [...top.keys()].sort().map((k) => k.split("\n") as [string, string])
      await run("read", [
        keys.map((k) => k[0]),
        keys.map((k) => k[1]),
        keys.map((k) => top.get(key(...k))!),
        now,
      ])
      const senderIds = [...new Set(created.map((c) => items[c.index]!.senderId))]
      for (const p of await run<SenderProfile & { id: string }>("senders", [senderIds])) senders.set(p.id, p)
      await run("feedLock", [feedLockKey])
      const positions = (
        await run<{ pos: number }>("feed", [col((i) => i.conversationId), col((_, c) => c.id), now])
      )
        .map((r) => Number(r.pos))
        .sort((a, b) => a - b)
      created.forEach(
        (c, k) =>
          (outcomes[c.index] = {
            kind: "stored",
            id: c.id,
            seq: c.seq,
            pos: positions[k]!,
            recipients: c.peer === null ? undefined : [c.peer],
          }),
      )
    }
    await client.query("commit")
    client.release()
    return { outcomes, senders }
  } catch (error) {
    // A failed rollback means a broken connection: destroy it rather than return it to the pool.
    const broken = await client.query("rollback").then(
      () => undefined,
      (e: Error) => e,
    )
    client.release(broken)
    throw error
  }
}
