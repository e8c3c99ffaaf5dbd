import { requireMembership } from "../conversations/conversations.access.ts"
import {
  advanceDelivered,
  advanceRead,
  type MembershipView,
} from "../conversations/conversations.repository.ts"
import { type BatchOutcome, createWriteBatcher, type WriteBatcher } from "../db/write-batcher.ts"
import type { DatabaseHandle } from "../db/database.ts"
import type { Deps } from "../deps.ts"
import { AppError, badRequest, forbidden, notFound } from "../errors.ts"
import { encodeCursor } from "../sync/sync.cursor.ts"
import { appendChanges } from "../sync/sync.repository.ts"
import { type SenderProfile, type StoreItem, storeSends } from "./send.store.ts"
import {
  findByClientId,
  findMessageViews,
  hiddenAmong,
  historyPage,
  listHistory,
  type MessageView,
  newestLiveMessage,
  starredAmong,
  watermarksOf,
} from "./messages.repository.ts"
import { type MessageType, messageTypes } from "./messages.tables.ts"
import {
  type MessageJson,
  realtimeMessage,
  type ReplyPreview,
  replyPreview,
  serializeMessage,
} from "./messages.views.ts"

/** Errors of the messages feature. */
export const messageErrors = {
  notFound: () => notFound("message.not_found", "Message not found"),
  notSender: () => forbidden("message.not_sender", "You can only edit your own messages"),
}

/** What a client sends (REST body or socket `message:sent`); snake_case or camelCase keys. */
export type SendMessageInput = {
  conversation_id?: string
  conversationId?: string
  content?: string | null
  message_type?: string
  messageType?: string
  type?: string
  media_url?: string | null
  mediaUrl?: string | null
  thumbnail_url?: string | null
  thumbnailUrl?: string | null
  audio_duration?: number | null
  audioDuration?: number | null
  reply_to_id?: string | null
  replyToId?: string | null
  is_encrypted?: boolean
  isEncrypted?: boolean
  client_message_id?: string | null
  clientMessageId?: string | null
}

/** The result of a send: the message, whether this call created it (false: an idempotent retry), and the feed cursor. */
export type SendResult = { message: MessageJson; created: boolean; cursor: string | null }

/** Options of a send: forwarded copies, and the socket not to echo to. */
export type SendOptions = { forwarded?: boolean; exceptSocketId?: string }

/** One validated send waiting for its batch. */
type SendItem = StoreItem & { reply: ReplyPreview | null; exceptSocketId?: string }

/** Longest message text accepted (REST and socket). */
export const maxContentLength = 65536

const str = (v: unknown): string | null => (typeof v === "string" ? v : null)

/** Upper-cased; unknown types become TEXT (CONTRACT §5 D25). */
export function normalizeMessageType(raw: unknown): MessageType {
  const upper = typeof raw === "string" ? raw.toUpperCase() : "TEXT"
  return (messageTypes as readonly string[]).includes(upper) ? (upper as MessageType) : "TEXT"
}

const batchers = new WeakMap<Deps, WriteBatcher<SendItem, SendResult>>()

/** The group-commit batcher of this server's sends. */
function sendBatcher(deps: Deps): WriteBatcher<SendItem, SendResult> {
  let batcher = batchers.get(deps)
  if (!batcher) {
    batcher = createWriteBatcher((items) => commitSends(deps, items))
    batchers.set(deps, batcher)
  }
  return batcher
}

/**
 * Sends a message (REST `POST /messages`, socket `message:sent`, forwards). Validates and authorizes, then
 * commits through the group-commit batcher; resolves after the commit, then announces `message:received`.
 * With a `client_message_id`, a retry returns the original message, forever.
 */
export async function sendMessage(
  deps: Deps,
  userId: string,
  input: SendMessageInput,
  options: SendOptions = {},
): Promise<SendResult> {
  const conversationId = str(input.conversation_id) ?? str(input.conversationId)
  if (!conversationId) throw badRequest("message.conversation_required", "conversation_id is required")
  const clientMessageId = str(input.client_message_id) ?? str(input.clientMessageId)
  if (clientMessageId !== null && (clientMessageId.length === 0 || clientMessageId.length > 200))
    throw badRequest("message.invalid_client_id", "client_message_id must be 1 to 200 characters")
  const content = str(input.content) ?? ""
  // REST validates this in its schema; the socket path arrives here unchecked.
  if (content.length > maxContentLength)
    throw badRequest("message.too_long", `content is longer than ${maxContentLength} characters`)
  // Who may post, and whether this client id was already stored, are checked inside the send transaction.
  const replyToId = str(input.reply_to_id) ?? str(input.replyToId)
  let reply: ReplyPreview | null = null
  if (replyToId) {
    // Client temp ids and ids from other conversations are dropped, never an error (CONTRACT A1).
    const [target] = await findMessageViews(deps.database, [replyToId])
    if (target && target.conversation_id === conversationId) reply = replyPreview(target)
  }
  const audio = input.audio_duration ?? input.audioDuration
  const item: SendItem = {
    conversationId,
    senderId: userId,
    clientMessageId,
    content,
    type: normalizeMessageType(input.message_type ?? input.messageType ?? input.type),
    mediaUrl: str(input.media_url) ?? str(input.mediaUrl),
    thumbnailUrl: str(input.thumbnail_url) ?? str(input.thumbnailUrl),
    audioDuration: typeof audio === "number" && Number.isFinite(audio) ? Math.round(audio) : null,
    replyToId: reply ? reply.id : null,
    reply,
    isEncrypted: (input.is_encrypted ?? input.isEncrypted) === true,
    isForwarded: options.forwarded === true,
    exceptSocketId: options.exceptSocketId,
  }
  try {
    return await sendBatcher(deps).submit(item)
  } catch (error) {
    // Another process (or a retry racing this one) stored the same client id first: return that message.
    if (clientMessageId && !(error instanceof AppError)) {
      const existing = await findByClientId(deps.database, userId, clientMessageId)
      if (existing)
        return { message: await serializeOne(deps.database, existing, userId), created: false, cursor: null }
    }
    throw error
  }
}

/** Commits a batch of sends (see `storeSends`), then answers each and announces `message:received`. */
async function commitSends(deps: Deps, items: SendItem[]): Promise<BatchOutcome<SendResult>[]> {
  const now = deps.clock.now()
  const { outcomes: stored, senders } = await storeSends(deps, items, now)
  const results: BatchOutcome<SendResult>[] = new Array(items.length)
  // Committed. From here nothing may throw out of this function: the batcher would take it for a failed
  // transaction and store the sends again.
  stored.forEach((outcome, index) => {
    if (outcome.kind === "error") results[index] = { ok: false, error: outcome.error }
    if (outcome.kind !== "stored") return
    try {
      results[index] = announceSent(deps, items[index]!, outcome, senders, now)
    } catch (error) {
      results[index] = { ok: false, error }
    }
  })
  // Duplicate client ids: the message of the earlier item of this batch, or the stored one.
  for (const [index, outcome] of stored.entries()) {
    if (outcome.kind !== "duplicate") continue
    const owner = outcome.ownerIndex === null ? undefined : results[outcome.ownerIndex]
    if (owner?.ok) {
      results[index] = { ok: true, value: { ...owner.value, created: false, cursor: null } }
      continue
    }
    const item = items[index]!
    try {
      const existing = await findByClientId(deps.database, item.senderId, item.clientMessageId!)
      results[index] = existing
        ? {
            ok: true,
            value: {
              message: await serializeOne(deps.database, existing, item.senderId),
              created: false,
              cursor: null,
            },
          }
        : { ok: false, error: messageErrors.notFound() }
    } catch (error) {
      results[index] = { ok: false, error }
    }
  }
  return results
}

/** The answer to one committed send, announced as `message:received` with its feed cursor. */
function announceSent(
  deps: Deps,
  item: SendItem,
  outcome: { id: string; seq: number; pos: number; recipients?: string[] },
  senders: Map<string, SenderProfile>,
  now: number,
): BatchOutcome<SendResult> {
  const sender = senders.get(item.senderId)
  const view: MessageView = {
    id: outcome.id,
    conversation_id: item.conversationId,
    seq: outcome.seq,
    sender_id: item.senderId,
    client_message_id: item.clientMessageId,
    content: item.content,
    message_type: item.type,
    media_url: item.mediaUrl,
    thumbnail_url: item.thumbnailUrl,
    audio_duration: item.audioDuration,
    reply_to_id: item.replyToId,
    is_encrypted: item.isEncrypted,
    is_forwarded: item.isForwarded,
    edited_at: null,
    deleted_at: null,
    created_at: now,
    updated_at: now,
    sender_name: sender?.display_name ?? null,
    sender_phone: sender?.phone_number ?? null,
    sender_avatar: sender?.avatar_url ?? null,
  }
  const replies = new Map<string, ReplyPreview>()
  if (item.reply) replies.set(item.reply.id, item.reply)
  const message = serializeMessage(view, { watermarks: [], starred: new Set(), replies })
  const cursor = encodeCursor(outcome.pos)
  deps.events.emit({
    type: "conversation",
    conversationId: item.conversationId,
    name: "message:received",
    data: realtimeMessage(message),
    cursor,
    exceptSocketId: item.exceptSocketId,
    recipients: outcome.recipients,
  })
  return { ok: true, value: { message, created: true, cursor } }
}

/** Serializes messages for one viewer: statuses from watermarks, the viewer's stars, reply previews. */
export async function serializeFor(
  h: DatabaseHandle,
  views: MessageView[],
  viewerId: string,
): Promise<MessageJson[]> {
  if (views.length === 0) return []
  const ids = views.map((v) => v.id)
  const replyIds = [...new Set(views.map((v) => v.reply_to_id).filter((id): id is string => !!id))]
  const [watermarks, starred, replyViews] = await Promise.all([
    watermarksOf(h, [...new Set(views.map((v) => v.conversation_id))]),
    starredAmong(h, viewerId, ids),
    findMessageViews(h, replyIds),
  ])
  const replies = new Map(
    replyViews
      .filter((r) => views.some((v) => v.reply_to_id === r.id && v.conversation_id === r.conversation_id))
      .map((r) => [r.id, replyPreview(r)] as const),
  )
  return views.map((v) => serializeMessage(v, { watermarks, starred, replies }))
}

async function serializeOne(h: DatabaseHandle, view: MessageView, viewerId: string): Promise<MessageJson> {
  return (await serializeFor(h, [view], viewerId))[0]!
}

/** A message the caller can see (member of its conversation, not deleted, not hidden, after their clear), or 404. */
export async function requireVisibleMessage(
  deps: Deps,
  userId: string,
  messageId: string,
): Promise<{ view: MessageView; membership: MembershipView }> {
  const [view] = await findMessageViews(deps.database, [messageId])
  if (!view || view.deleted_at !== null) throw messageErrors.notFound()
  const membership = await requireMembership(deps, view.conversation_id, userId, { hide: true }).catch(() => {
    throw messageErrors.notFound()
  })
  if (Number(view.seq) <= Number(membership.cleared_seq)) throw messageErrors.notFound()
  if ((await hiddenAmong(deps.database, userId, [messageId])).size) throw messageErrors.notFound()
  return { view, membership }
}

/** Query of a history page (CONTRACT §2.3 plus `after`/`since_seq`). */
export type HistoryParams = {
  limit?: number
  before?: string
  after?: string
  since_seq?: number
  before_seq?: number
}

/** A page of a conversation's history, ascending within the page. */
export async function listConversationMessages(
  deps: Deps,
  userId: string,
  conversationId: string,
  p: HistoryParams,
) {
  const limit = Math.min(Math.max(Math.trunc(p.limit ?? 50), 1), 200)
  // Postgres, seq cursors: one statement (historyPage); the rest as below.
  if (deps.database.dialect === "postgres" && !p.before && !p.after) {
    const found = await historyPage(deps.database, {
      conversationId,
      userId,
      beforeSeq: p.before_seq,
      afterSeq: p.since_seq,
      limit,
    })
    // Not a member: the same error as every other path.
    if (!found) await requireMembership(deps, conversationId, userId)
    const { membership, rows, watermarks } = found!
    const page = rows.slice(0, limit)
    if (p.since_seq === undefined) page.reverse()
    const starred = new Set(page.filter((r) => r.is_starred).map((r) => r.id))
    const replies = new Map<string, ReplyPreview>()
    for (const r of page)
      if (r.reply_id)
        replies.set(
          r.reply_id,
          replyPreview({
            id: r.reply_id,
            sender_name: r.reply_sender_name,
            sender_phone: r.reply_sender_phone,
            content: r.reply_content ?? "",
            deleted_at: r.reply_deleted_at,
          }),
        )
    const messages = page.map((v) => serializeMessage(v, { watermarks, starred, replies }))
    return {
      messages,
      total: messages.length,
      limit,
      has_more: rows.length > limit,
      last_seq: Number(membership.last_seq),
      last_read_seq: Number(membership.last_read_seq),
    }
  }
  const membership = await requireMembership(deps, conversationId, userId)
  const seqOfId = async (id: string) => {
    const [m] = await findMessageViews(deps.database, [id])
    if (!m || m.conversation_id !== conversationId) throw messageErrors.notFound()
    return Number(m.seq)
  }
  const beforeSeq = p.before ? await seqOfId(p.before) : p.before_seq
  const afterSeq = p.after ? await seqOfId(p.after) : p.since_seq
  const rows = await listHistory(deps.database, {
    conversationId,
    userId,
    clearedSeq: Number(membership.cleared_seq),
    beforeSeq,
    afterSeq,
    limit,
  })
  const hasMore = rows.length > limit
  const page = rows.slice(0, limit)
  if (afterSeq === undefined) page.reverse()
  const messages = await serializeFor(deps.database, page, userId)
  return {
    messages,
    total: messages.length,
    limit,
    has_more: hasMore,
    last_seq: Number(membership.last_seq),
    last_read_seq: Number(membership.last_read_seq),
  }
}

/** Announces a change to a message's members (after commit). */
function announce(
  deps: Deps,
  conversationId: string,
  name: string,
  data: Record<string, unknown>,
  pos: number,
  userIds?: string[],
) {
  deps.events.emit({ type: "conversation", conversationId, name, data, cursor: encodeCursor(pos), userIds })
}

/** Edits the caller's own message (marks it edited) and announces `message:updated`. */
export async function editMessage(
  deps: Deps,
  userId: string,
  messageId: string,
  content: string,
): Promise<MessageJson> {
  const { db, dialect } = deps.database
  const { view } = await requireVisibleMessage(deps, userId, messageId)
  if (view.sender_id !== userId) throw messageErrors.notSender()
  const now = deps.clock.now()
  const [pos] = await db.transaction().execute(async (trx) => {
    await trx
      .updateTable("messages")
      .set({ content, edited_at: now, updated_at: now })
      .where("id", "=", messageId)
      .execute()
    return appendChanges(
      trx,
      dialect,
      [{ conversationId: view.conversation_id, kind: "message.updated", messageId }],
      now,
    )
  })
  const message = await serializeOne(
    deps.database,
    { ...view, content, edited_at: now, updated_at: now },
    userId,
  )
  announce(deps, view.conversation_id, "message:updated", realtimeMessage(message), pos!)
  return message
}

const moderatorRoles = new Set(["FOUNDER", "MODERATOR"])

/**
 * Deletes a message: for everyone when the caller sent it (or moderates the group: FOUNDER, MODERATOR),
 * otherwise — or with `scope: "me"` — hides it for the caller only (CONTRACT A3).
 */
export async function deleteMessage(
  deps: Deps,
  userId: string,
  messageId: string,
  scope?: "me" | "everyone",
) {
  const { db, dialect } = deps.database
  const { view, membership } = await requireVisibleMessage(deps, userId, messageId)
  const mayDeleteForAll =
    view.sender_id === userId || (membership.type === "GROUP" && moderatorRoles.has(membership.role))
  if (scope === "everyone" && !mayDeleteForAll)
    throw forbidden(
      "message.not_allowed",
      "Only the sender or a group moderator can delete this message for everyone",
    )
  const forEveryone = mayDeleteForAll && scope !== "me"
  const now = deps.clock.now()
  const ids = {
    id: messageId,
    messageId,
    message_id: messageId,
    conversationId: view.conversation_id,
    conversation_id: view.conversation_id,
  }
  if (forEveryone) {
    const [pos] = await db.transaction().execute(async (trx) => {
      await trx
        .updateTable("messages")
        .set({ deleted_at: now, updated_at: now, content: "", media_url: null, thumbnail_url: null })
        .where("id", "=", messageId)
        .execute()
      const conversation = await trx
        .selectFrom("conversations")
        .select("last_message_id")
        .where("id", "=", view.conversation_id)
        .executeTakeFirst()
      if (conversation?.last_message_id === messageId) {
        const newest = await newestLiveMessage(trx, view.conversation_id)
        await trx
          .updateTable("conversations")
          .set({ last_message_id: newest?.id ?? null, last_message_at: newest?.created_at ?? null })
          .where("id", "=", view.conversation_id)
          .execute()
      }
      return appendChanges(
        trx,
        dialect,
        [{ conversationId: view.conversation_id, kind: "message.deleted", messageId }],
        now,
      )
    })
    announce(deps, view.conversation_id, "message:deleted", { ...ids, scope: "everyone" }, pos!)
    return { success: true, message: "Message deleted", scope: "everyone" as const }
  }
  const [pos] = await db.transaction().execute(async (trx) => {
    await trx
      .insertInto("message_hides")
      .values({
        user_id: userId,
        message_id: messageId,
        conversation_id: view.conversation_id,
        created_at: now,
      })
      .onConflict((oc) => oc.columns(["user_id", "message_id"]).doNothing())
      .execute()
    return appendChanges(
      trx,
      dialect,
      [{ conversationId: view.conversation_id, userId, kind: "message.hidden", messageId }],
      now,
    )
  })
  announce(deps, view.conversation_id, "message:deleted", { ...ids, scope: "me" }, pos!, [userId])
  return { success: true, message: "Message deleted", scope: "me" as const }
}

/** Forwards messages the caller can see into a conversation they are in (copies marked forwarded). */
export async function forwardMessages(
  deps: Deps,
  userId: string,
  messageIds: string[],
  conversationId: string,
) {
  await requireMembership(deps, conversationId, userId)
  const sources: MessageView[] = []
  for (const id of [...new Set(messageIds)].slice(0, 100)) {
    // Temp ids, unknown ids and messages the caller cannot see are skipped.
    const visible = await requireVisibleMessage(deps, userId, id).catch(() => null)
    if (visible) sources.push(visible.view)
  }
  sources.sort((a, b) => a.created_at - b.created_at || Number(a.seq) - Number(b.seq))
  // One after the other, so the copies keep the order of the originals.
  const results: SendResult[] = []
  for (const s of sources)
    results.push(
      await sendMessage(
        deps,
        userId,
        {
          conversation_id: conversationId,
          content: s.content,
          message_type: s.message_type,
          media_url: s.media_url,
          thumbnail_url: s.thumbnail_url,
          audio_duration: s.audio_duration,
        },
        { forwarded: true },
      ),
    )
  return {
    success: true,
    message: `Forwarded ${results.length} message(s)`,
    forwarded_count: results.length,
    messages: results.map((r) => r.message),
  }
}

/** Stars (or unstars) a message for the caller only. */
export async function setStar(deps: Deps, userId: string, messageId: string, starred: boolean) {
  const { db, dialect } = deps.database
  const { view } = await requireVisibleMessage(deps, userId, messageId)
  const now = deps.clock.now()
  const [pos] = await db.transaction().execute(async (trx) => {
    if (starred)
      await trx
        .insertInto("message_stars")
        .values({
          user_id: userId,
          message_id: messageId,
          conversation_id: view.conversation_id,
          created_at: now,
        })
        .onConflict((oc) => oc.columns(["user_id", "message_id"]).doNothing())
        .execute()
    else
      await trx
        .deleteFrom("message_stars")
        .where("user_id", "=", userId)
        .where("message_id", "=", messageId)
        .execute()
    return appendChanges(
      trx,
      dialect,
      [
        {
          conversationId: view.conversation_id,
          userId,
          kind: "message.starred",
          messageId,
          data: { starred },
        },
      ],
      now,
    )
  })
  deps.events.emit({
    type: "users",
    userIds: [userId],
    name: "message:starred",
    data: {
      id: messageId,
      message_id: messageId,
      messageId,
      conversation_id: view.conversation_id,
      is_starred: starred,
    },
    cursor: encodeCursor(pos!),
  })
  return { success: true, message: starred ? "Message starred" : "Message unstarred", is_starred: starred }
}

/** The caller's starred messages that they can still see, newest star first. */
export async function listStarred(deps: Deps, userId: string, limit = 50, offset = 0) {
  const db = deps.database.db
  limit = Math.min(Math.max(Math.trunc(limit), 1), 200)
  offset = Math.max(Math.trunc(offset), 0)
  const visible = db
    .selectFrom("message_stars as s")
    .innerJoin("messages as m", "m.id", "s.message_id")
    .innerJoin("conversation_members as cm", (j) =>
      j.onRef("cm.conversation_id", "=", "m.conversation_id").on("cm.user_id", "=", userId),
    )
    .where("s.user_id", "=", userId)
    .where("m.deleted_at", "is", null)
    .whereRef("m.seq", ">", "cm.cleared_seq")
    .where((eb) =>
      eb.not(
        eb.exists(
          eb
            .selectFrom("message_hides as h")
            .select("h.message_id")
            .where("h.user_id", "=", userId)
            .whereRef("h.message_id", "=", "m.id"),
        ),
      ),
    )
  const [rows, count] = await Promise.all([
    visible
      .select(["s.message_id"])
      .orderBy("s.created_at", "desc")
      .orderBy("s.message_id", "desc")
      .limit(limit)
      .offset(offset)
      .execute(),
    visible.select((eb) => eb.fn.countAll().as("n")).executeTakeFirst(),
  ])
  const views = await findMessageViews(
    deps.database,
    rows.map((r) => r.message_id),
  )
  const order = new Map(rows.map((r, i) => [r.message_id, i]))
  views.sort((a, b) => order.get(a.id)! - order.get(b.id)!)
  const messages = await serializeFor(deps.database, views, userId)
  const total = Number(count?.n ?? 0)
  return { messages, total, limit, offset, has_more: offset + messages.length < total }
}

/** Moves the caller's read watermark in a conversation to `seq` (default: the newest) and announces `message:read`. */
export async function markConversationRead(deps: Deps, userId: string, conversationId: string, seq?: number) {
  const membership = await requireMembership(deps, conversationId, userId, { hide: true })
  const target = Math.min(seq ?? Number(membership.last_seq), Number(membership.last_seq))
  const previous = Number(membership.last_read_seq)
  if (target > previous) await moveWatermark(deps, userId, membership, "read", target, previous)
  return { success: true, message: "Conversation marked as read", last_read_seq: Math.max(target, previous) }
}

/** Moves the caller's delivered watermark in a conversation to `seq` (socket acks, `PUT /messages/:id/status`). */
export async function markConversationDelivered(
  deps: Deps,
  userId: string,
  conversationId: string,
  seq: number,
) {
  const membership = await requireMembership(deps, conversationId, userId, { hide: true })
  const target = Math.min(seq, Number(membership.last_seq))
  const previous = Number(membership.last_delivered_seq)
  if (target > previous) await moveWatermark(deps, userId, membership, "delivered", target, previous)
  return { success: true, last_delivered_seq: Math.max(target, previous) }
}

/** Per-message receipt events are capped; the watermark in each event covers the rest. */
const receiptEventCap = 100

async function moveWatermark(
  deps: Deps,
  userId: string,
  membership: MembershipView,
  kind: "read" | "delivered",
  target: number,
  previous: number,
) {
  const { db, dialect } = deps.database
  const now = deps.clock.now()
  const conversationId = membership.id
  const [pos, marks] = await db.transaction().execute(async (trx) => {
    if (kind === "read") await advanceRead(trx, conversationId, userId, target, now)
    else await advanceDelivered(trx, conversationId, userId, target, now)
    const row = await trx
      .selectFrom("conversation_members")
      .select(["last_read_seq", "last_delivered_seq"])
      .where("conversation_id", "=", conversationId)
      .where("user_id", "=", userId)
      .executeTakeFirstOrThrow()
    const marks = {
      last_read_seq: Number(row.last_read_seq),
      last_delivered_seq: Number(row.last_delivered_seq),
    }
    const [pos] = await appendChanges(
      trx,
      dialect,
      [{ conversationId, kind: "receipt", data: { user_id: userId, ...marks } }],
      now,
    )
    return [pos!, marks] as const
  })
  // The messages from others that this receipt covers, newest first, for the app's per-message events.
  const covered = await db
    .selectFrom("messages")
    .select(["id", "seq", "sender_id"])
    .where("conversation_id", "=", conversationId)
    .where("seq", ">", previous)
    .where("seq", "<=", target)
    .where("deleted_at", "is", null)
    .where((eb) => eb.or([eb("sender_id", "is", null), eb("sender_id", "!=", userId)]))
    .orderBy("seq", "desc")
    .limit(receiptEventCap)
    .execute()
  const name = kind === "read" ? "message:read" : "message:delivered"
  for (const m of covered.reverse())
    announce(
      deps,
      conversationId,
      name,
      {
        messageId: m.id,
        message_id: m.id,
        userId,
        user_id: userId,
        conversationId,
        conversation_id: conversationId,
        seq: Number(m.seq),
        lastReadSeq: marks.last_read_seq,
        last_read_seq: marks.last_read_seq,
        lastDeliveredSeq: marks.last_delivered_seq,
        last_delivered_seq: marks.last_delivered_seq,
      },
      pos,
    )
}

/** `PUT /messages/:id/status`: DELIVERED or READ moves the caller's watermark to that message; other values are a no-op. */
export async function setMessageStatus(deps: Deps, userId: string, messageId: string, status: string) {
  const { view } = await requireVisibleMessage(deps, userId, messageId)
  const upper = status.toUpperCase()
  if (upper === "READ") await markConversationRead(deps, userId, view.conversation_id, Number(view.seq))
  else if (upper === "DELIVERED")
    await markConversationDelivered(deps, userId, view.conversation_id, Number(view.seq))
  return { success: true }
}

/** `POST /messages/read`: marks read up to the newest of the given messages in each of their conversations. */
export async function markMessagesRead(
  deps: Deps,
  userId: string,
  messageIds: string[],
  conversationId?: string,
) {
  const views = await findMessageViews(deps.database, [...new Set(messageIds)].slice(0, 1000))
  const top = new Map<string, number>()
  for (const v of views) {
    if (conversationId && v.conversation_id !== conversationId) continue
    top.set(v.conversation_id, Math.max(top.get(v.conversation_id) ?? 0, Number(v.seq)))
  }
  let updated = 0
  for (const [cid, seq] of top) {
    const membership = await requireMembership(deps, cid, userId, { hide: true }).catch(() => null)
    if (!membership) continue
    const before = Number(membership.last_read_seq)
    await markConversationRead(deps, userId, cid, seq)
    updated += views.filter(
      (v) => v.conversation_id === cid && Number(v.seq) > before && Number(v.seq) <= seq,
    ).length
  }
  return { success: true, updated }
}

/** Drains pending sends (shutdown, tests). */
export async function drainSends(deps: Deps): Promise<void> {
  await batchers.get(deps)?.drain()
}
