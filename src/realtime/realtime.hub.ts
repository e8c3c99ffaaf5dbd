import { touchLastSeen } from "../accounts/users.repository.ts"
import type { Deps } from "../deps.ts"
import type { DomainEvent } from "../events.ts"
import type { BusMessage } from "./realtime.bus.ts"
import { type IdSet, idSetAdd, idSetDelete, idSetHas, idSetSize } from "./realtime.idset.ts"
import {
  isMember,
  listBlockedEitherWay,
  listEndedSessionIds,
  listMemberships,
  listPresenceConversationIds,
  setLastSeenMany,
  showsOnlineStatus,
} from "./realtime.repository.ts"

/** An event on its way to one socket; protocol adapters translate it (and cache their encoding on it). */
export type OutgoingEvent = {
  name: string
  data: Record<string, unknown>
  /** Position in the recipient's change feed (durable events only). */
  cursor?: string
  /** Typing and presence: dropped first when the socket's send buffer is full, never replayed. */
  volatile: boolean
  /** Encodings computed once per event and shared by every socket of the same protocol. */
  encoded?: { native?: string; socketIo?: unknown[]; socketIoFrames?: (string | Uint8Array)[] }
}

/**
 * A protocol's conversation topics (Bun pub/sub): a subscribed socket receives its conversations' events from
 * one native publish per event instead of a send per socket. Events with a per-recipient difference (volatile
 * ones filtered by blocks, `userIds` events) still go socket by socket.
 */
export type Topics = {
  join(connection: Connection, conversationId: string): void
  /** (A closed socket needs no leave: Bun drops its subscriptions itself.) */
  leave(connection: Connection, conversationId: string): void
  /** Publishes to this protocol's subscribers of the conversation, `except` (the sender's socket) excluded. */
  publish(conversationId: string, event: OutgoingEvent, except?: Connection): void
  close(): void
}

/** One live socket of either protocol, as the hub sees it. */
export type Connection = {
  id: string
  userId: string
  sessionId: string
  protocol: "native" | "socket.io"
  /** Conversations this socket opened with join:conversation (created on the first). */
  open?: Set<string>
  /** Set by the protocol once the socket can take its conversations' events from topics (see `Hub.subscribe`). */
  topics?: Topics
  /** Set by the hub: the socket is subscribed to its conversations' topics (no per-socket conversation sends). */
  subscribed?: boolean
  /** Since when the socket's send buffer is over the limit, as the topics' back-pressure sweep saw it. */
  topicsOverSince?: number | null
  send(event: OutgoingEvent): void
  /** Closes the socket; `reason` is a machine code (`auth.session_ended`, `realtime.slow_consumer`, …). */
  close(code: number, reason: string): void
}

/** Close codes of the realtime protocols (docs/realtime.md). */
export const closeCodes = {
  goingAway: 1001,
  unauthorized: 4401,
  sessionEnded: 4403,
  slowConsumer: 4429,
} as const

/**
 * A conversation with local members. Every index entry refers to this one object (and its one id string):
 * a user's memberships are references to it, not copies of the id read at each connect.
 */
type LocalConversation = {
  id: string
  /**
   * Locally connected members: the first two inline (most conversations are direct chats of one or two
   * local members, and an array of two costs more than the object holding it), any others in `more`.
   */
  m0: string | null
  m1: string | null
  more: IdSet | null
  /**
   * A direct chat: its events go to the members' sockets one by one through this index (a topic per
   * two-member chat would cost every socket a subscription per chat and save no work per event).
   */
  direct: boolean
}

/** Per locally connected user: memberships (the delivery index), sockets, presence timers. */
type LocalUser = {
  userId: string
  /** Handshakes in progress plus registered sockets; the index entry lives while this is > 0 or offline is pending. */
  leases: number
  /** Most users have one socket: an array while few (a JSC Set of one costs ~5× an array of one). */
  sockets: IdSet<Connection>
  conversations: IdSet<LocalConversation>
  /** Membership changes seen while the initial load was running, applied after it in order. */
  pending: { conversationId: string; added: boolean; direct: boolean }[] | null
  /** The initial load while it runs (null once done). */
  loaded: Promise<void> | null
  /** Announced online on this instance (true from the first socket until the grace after the last one). */
  announced: boolean
  offlineTimer?: ReturnType<typeof setTimeout>
  /** Presence announcements of one user leave in order. */
  presenceChain: Promise<void>
}

/**
 * Calls `fn` for each of the user's sockets, any of which it may close: a close unregisters the socket at
 * once, which swaps the array's last entry into its place, so an array is walked from its end (every entry
 * seen once). A Set's iteration already copes with deletion.
 */
function eachSocket(user: LocalUser, fn: (socket: Connection) => unknown) {
  const sockets = user.sockets
  if (!Array.isArray(sockets)) for (const socket of sockets) fn(socket)
  else for (let i = sockets.length - 1; i >= 0; i--) if (sockets[i]) fn(sockets[i]!)
}

/** Calls `fn` with each local member of the conversation. */
function eachMember(conversation: LocalConversation, fn: (userId: string) => unknown) {
  const { m0, m1, more } = conversation
  if (m0 !== null) fn(m0)
  if (m1 !== null) fn(m1)
  if (more) for (const userId of more) fn(userId)
}

function memberAdd(conversation: LocalConversation, userId: string) {
  const { m0, m1, more } = conversation
  if (m0 === userId || m1 === userId || (more && idSetHas(more, userId))) return
  if (m0 === null) conversation.m0 = userId
  else if (m1 === null) conversation.m1 = userId
  else conversation.more = more ? idSetAdd(more, userId) : [userId]
}

/** Removes a local member; whether none is left. */
function memberDelete(conversation: LocalConversation, userId: string): boolean {
  if (conversation.m0 === userId) conversation.m0 = null
  else if (conversation.m1 === userId) conversation.m1 = null
  else if (conversation.more) idSetDelete(conversation.more, userId)
  const { m0, m1, more } = conversation
  return m0 === null && m1 === null && (!more || idSetSize(more) === 0)
}

/** A settled promise shared by every user whose presence chain is idle (one object instead of one per user). */
const settled = Promise.resolve()

/** A typing indicator in flight: forwarded start time and the timer that stops it by itself. */
type Typing = { forwardedAt: number; expiry: ReturnType<typeof setTimeout> }

/** Presence across instances: which instances hold a socket of each user. Fed by the hub, read by REST. */
export type Presence = {
  /** True while the user has a live socket on any instance and shows their online status. */
  isOnline(userId: string): boolean
  /** Users seen online, for tests and diagnostics. */
  onlineUserIds(): string[]
}

/** Which instances hold a user (an array while few: one entry per online user, most on one instance). */
type PresenceEntry = {
  instances: IdSet
  hidden: boolean
}

/** The presence tracker the hub maintains (in deps so REST can read `is_online`). */
export function createPresence(): Presence & {
  entries: Map<string, PresenceEntry>
} {
  const entries = new Map<string, PresenceEntry>()
  return {
    entries,
    isOnline: (userId) => {
      const entry = entries.get(userId)
      return !!entry && idSetSize(entry.instances) > 0 && !entry.hidden
    },
    onlineUserIds: () =>
      [...entries].filter(([, e]) => idSetSize(e.instances) > 0 && !e.hidden).map(([id]) => id),
  }
}

export type Hub = ReturnType<typeof createHub>

/** How often local sockets' sessions are re-checked against the database. */
const sessionSweepMs = 30_000

/**
 * The realtime hub: knows the sockets of this instance by user and the local users by conversation, turns
 * domain events (from any instance, through the bus) into socket sends by membership, and keeps presence.
 */
export function createHub(deps: Deps, instance: string) {
  const { logger, bus, clock } = deps
  const db = deps.database.db
  const presence = deps.presence as ReturnType<typeof createPresence>
  const grace = deps.config.realtime.presence_grace * 1000
  const typingTimeout = deps.config.realtime.typing_timeout * 1000
  const presenceGroupLimit = deps.config.realtime.presence_group_limit
  const heartbeatInterval = deps.config.realtime.heartbeat_interval * 1000
  const heartbeatTimeout = deps.config.realtime.heartbeat_timeout * 1000
  const users = new Map<string, LocalUser>()
  /** The conversations with local members, by id. */
  const byConversation = new Map<string, LocalConversation>()
  /** group id → the local sockets of its members that are not subscribed to topics (sent one by one). */
  const unsubscribed = new Map<string, Set<Connection>>()
  /** Every protocol's topics: a conversation event is published once to each. */
  const allTopics = new Set<Topics>()
  const socketsById = new Map<string, Connection>()
  const typing = new Map<string, Typing>()
  let closing = false

  const unsubscribedAdd = (socket: Connection, conversationId: string) => {
    let sockets = unsubscribed.get(conversationId)
    if (!sockets) unsubscribed.set(conversationId, (sockets = new Set()))
    sockets.add(socket)
  }
  const unsubscribedDelete = (socket: Connection, conversationId: string) => {
    const sockets = unsubscribed.get(conversationId)
    if (sockets?.delete(socket) && sockets.size === 0) unsubscribed.delete(conversationId)
  }
  /** A socket starts receiving a group's events: through its topic, or one by one. */
  const deliverTo = (socket: Connection, conversationId: string) => {
    if (socket.subscribed) socket.topics!.join(socket, conversationId)
    else unsubscribedAdd(socket, conversationId)
  }
  const stopDelivering = (socket: Connection, conversationId: string) => {
    if (socket.subscribed) socket.topics!.leave(socket, conversationId)
    else unsubscribedDelete(socket, conversationId)
  }
  /**
   * Liveness of the other instances, from their traffic on the bus: instance → when it was last heard
   * (monotonic, for the timeout; and server time, for last_seen). Instances taken for dead are remembered
   * so that one heard again (a long pause, a bus outage) is asked who is online on it.
   */
  const peers = new Map<string, { heardAt: number; seenAt: number }>()
  const deadPeers = new Set<string>()
  /** This instance's own heartbeats come back through the bus: if they stop, the silence is ours. */
  let selfHeardAt = performance.now()
  let cutOff = false
  const heard = (id: string) => {
    const now = performance.now()
    if (id === instance) {
      selfHeardAt = now
      if (cutOff) {
        // Back on the bus: what the others announced meanwhile was missed. Their silence counts from now, and
        // they are asked for their online users again (the answers replace what this instance knew of them).
        cutOff = false
        logger.info("realtime: own heartbeats are back; presence is synced again")
        for (const peer of peers.values()) peer.heardAt = now
        bus.publish({ type: "presence.sync", instance, resync: true })
      }
      return
    }
    peers.set(id, { heardAt: now, seenAt: clock.now() })
    // Taken for dead, yet alive (a pause, a partition): its users were shown offline here, so it is asked who
    // is online on it, and those are shown online again.
    if (deadPeers.delete(id)) bus.publish({ type: "presence.sync", instance, resync: true })
  }

  const indexAdd = (user: LocalUser, conversationId: string, isDirect: boolean) => {
    let conversation = byConversation.get(conversationId)
    if (!conversation) {
      conversation = { id: conversationId, direct: isDirect, m0: user.userId, m1: null, more: null }
      byConversation.set(conversationId, conversation)
    } else if (idSetHas(user.conversations, conversation)) return
    else memberAdd(conversation, user.userId)
    user.conversations = idSetAdd(user.conversations, conversation)
    if (!conversation.direct) for (const socket of user.sockets) deliverTo(socket, conversation.id)
  }
  const membersDelete = (conversation: LocalConversation, userId: string) => {
    if (memberDelete(conversation, userId)) byConversation.delete(conversation.id)
  }
  const indexRemove = (user: LocalUser, conversationId: string) => {
    const conversation = byConversation.get(conversationId)
    if (!conversation || !idSetDelete(user.conversations, conversation)) return
    membersDelete(conversation, user.userId)
    for (const socket of user.sockets) {
      socket.open?.delete(conversationId)
      if (!conversation.direct) stopDelivering(socket, conversationId)
    }
  }
  const forget = (user: LocalUser) => {
    if (user.leases > 0 || user.offlineTimer || user.announced) return
    for (const conversation of user.conversations) membersDelete(conversation, user.userId)
    users.delete(user.userId)
  }

  const subscribe = (connection: Connection) => {
    const user = users.get(connection.userId)
    if (!user || !idSetHas(user.sockets, connection) || !connection.topics || connection.subscribed) return
    for (const { id, direct } of user.conversations) {
      if (direct) continue
      unsubscribedDelete(connection, id)
      connection.topics.join(connection, id)
    }
    connection.subscribed = true
  }

  const sendTo = (userId: string, event: OutgoingEvent, exceptSocketId?: string) => {
    const user = users.get(userId)
    if (!user) return
    eachSocket(user, (socket) => socket.id !== exceptSocketId && socket.send(event))
  }

  /** Presence of `userId` changed anywhere: tell the local users who share a conversation with them. */
  const showPresence = (message: Extract<BusMessage, { type: "presence" }>) => {
    const except = new Set(message.exceptUserIds)
    except.add(message.userId)
    const audience = new Set<string>()
    for (const conversationId of message.conversationIds) {
      const conversation = byConversation.get(conversationId)
      if (conversation) eachMember(conversation, (userId) => !except.has(userId) && audience.add(userId))
    }
    if (audience.size === 0) return
    const data: Record<string, unknown> = { user_id: message.userId, userId: message.userId }
    if (!message.online) {
      data.last_seen = message.lastSeen === null ? null : new Date(message.lastSeen).toISOString()
      data.lastSeen = data.last_seen
    }
    const event: OutgoingEvent = {
      name: message.online ? "user:online" : "user:offline",
      data,
      volatile: true,
    }
    for (const userId of audience) sendTo(userId, event)
  }

  const onPresence = (message: Extract<BusMessage, { type: "presence" }>) => {
    let entry = presence.entries.get(message.userId)
    const wasOnline = !!entry && idSetSize(entry.instances) > 0
    if (message.online) {
      if (!entry) presence.entries.set(message.userId, (entry = { instances: [], hidden: message.hidden }))
      entry.instances = idSetAdd(entry.instances, message.instance)
      entry.hidden = message.hidden
      if (!wasOnline && !message.hidden) showPresence(message)
    } else if (entry) {
      idSetDelete(entry.instances, message.instance)
      if (idSetSize(entry.instances) === 0) {
        presence.entries.delete(message.userId)
        if (wasOnline && !message.hidden) showPresence(message)
      }
    }
  }

  /** Every message from the bus (this instance's own included), in bus order. */
  const onBusMessage = (message: BusMessage) => {
    switch (message.type) {
      case "conversation": {
        const event: OutgoingEvent = {
          name: message.name,
          data: message.data,
          cursor: message.cursor,
          volatile: false,
        }
        if (message.userIds) {
          for (const userId of message.userIds) sendTo(userId, event, message.exceptSocketId)
          return
        }
        const conversation = byConversation.get(message.conversationId)
        if (conversation?.direct) {
          eachMember(conversation, (userId) => sendTo(userId, event, message.exceptSocketId))
          return
        }
        // Every member: one publish per protocol for the subscribed sockets, then the others one by one.
        const except =
          message.exceptSocketId === undefined ? undefined : socketsById.get(message.exceptSocketId)
        for (const topics of allTopics) topics.publish(message.conversationId, event, except)
        for (const socket of unsubscribed.get(message.conversationId) ?? [])
          if (socket.id !== message.exceptSocketId) socket.send(event)
        return
      }
      case "users": {
        const event: OutgoingEvent = {
          name: message.name,
          data: message.data,
          cursor: message.cursor,
          volatile: false,
        }
        for (const userId of message.userIds) sendTo(userId, event)
        return
      }
      case "membership.changed": {
        for (const [ids, added] of [
          [message.added, true],
          [message.removed, false],
        ] as const)
          for (const userId of ids) {
            const user = users.get(userId)
            if (!user) continue
            const isDirect = !!message.direct
            if (user.pending)
              user.pending.push({ conversationId: message.conversationId, added, direct: isDirect })
            else if (added) indexAdd(user, message.conversationId, isDirect)
            else indexRemove(user, message.conversationId)
          }
        return
      }
      case "volatile": {
        const except = new Set(message.exceptUserIds)
        const event: OutgoingEvent = { name: message.name, data: message.data, volatile: true }
        const conversation = byConversation.get(message.conversationId)
        if (conversation)
          eachMember(
            conversation,
            (userId) => !except.has(userId) && sendTo(userId, event, message.exceptSocketId),
          )
        return
      }
      case "session.ended": {
        const ended = new Set(message.sessionIds)
        const user = users.get(message.userId)
        if (user)
          eachSocket(
            user,
            (socket) =>
              ended.has(socket.sessionId) && socket.close(closeCodes.sessionEnded, "auth.session_ended"),
          )
        return
      }
      case "presence":
        heard(message.instance)
        return onPresence(message)
      case "instance.heartbeat":
        return heard(message.instance)
      case "presence.sync": {
        heard(message.instance)
        if (message.instance === instance) return
        const userIds = [...users.values()].filter((u) => u.announced).map((u) => u.userId)
        const hidden = userIds.filter((id) => presence.entries.get(id)?.hidden)
        bus.publish({
          type: "presence.snapshot",
          instance,
          to: message.instance,
          userIds,
          hiddenUserIds: hidden,
          resync: message.resync,
        })
        return
      }
      case "presence.snapshot": {
        heard(message.instance)
        if (message.to !== instance) return
        // The users online on that instance now: they replace what this one knew of it (its later presence
        // messages follow on the bus, in order).
        const hidden = new Set(message.hiddenUserIds)
        const online = new Set(message.userIds)
        const cameOnline: string[] = []
        const wentOffline: string[] = []
        for (const [userId, entry] of presence.entries)
          if (
            !online.has(userId) &&
            idSetDelete(entry.instances, message.instance) &&
            idSetSize(entry.instances) === 0
          ) {
            presence.entries.delete(userId)
            if (!entry.hidden) wentOffline.push(userId)
          }
        for (const userId of online) {
          let entry = presence.entries.get(userId)
          if (!entry) presence.entries.set(userId, (entry = { instances: [], hidden: hidden.has(userId) }))
          if (idSetSize(entry.instances) === 0 && !entry.hidden) cameOnline.push(userId)
          entry.instances = idSetAdd(entry.instances, message.instance)
        }
        // Asked after missing its announcements (it was taken for dead, or this one was cut off): the changes
        // are shown now. A starting instance's first sync has no sockets to show them to.
        if (message.resync) {
          const lastSeen = clock.now()
          void showPresenceOf(message.instance, cameOnline, true, lastSeen)
          void showPresenceOf(message.instance, wentOffline, false, lastSeen)
        }
        return
      }
      case "instance.down": {
        peers.delete(message.instance)
        // Its users may reconnect elsewhere within the grace; those who do not are shown offline then (their
        // audience read then, as for a dead instance: no per-user audience is kept in memory meanwhile).
        const gone: string[] = []
        for (const [userId, entry] of presence.entries)
          if (idSetDelete(entry.instances, message.instance) && idSetSize(entry.instances) === 0)
            gone.push(userId)
        if (gone.length === 0) return
        const lastSeen = clock.now()
        const timer = setTimeout(() => {
          const offline: string[] = []
          for (const userId of gone) {
            const entry = presence.entries.get(userId)
            if (!entry || idSetSize(entry.instances) > 0) continue
            presence.entries.delete(userId)
            if (!entry.hidden) offline.push(userId)
          }
          void showPresenceOf(message.instance, offline, false, lastSeen)
        }, grace)
        timer.unref?.()
        return
      }
    }
  }

  /**
   * Instances silent past the timeout are dead (kill -9, crash, cut off from the bus): they never sent
   * instance.down, so the users online only through them are shown offline here, last seen when the instance
   * was last heard. Their sockets died at least the timeout ago, so no grace: who reconnected elsewhere is
   * held by that instance and stays online. Skipped while this instance does not hear its own heartbeats: a
   * broken or lagging bus link (or a stalled event loop) would otherwise make every other instance look dead.
   */
  const checkPeers = () => {
    const now = performance.now()
    if (now - selfHeardAt > heartbeatTimeout) {
      if (!cutOff) logger.warn("realtime: own heartbeats not coming back from the bus; peers are not expired")
      cutOff = true
      return
    }
    for (const [id, peer] of peers)
      if (now - peer.heardAt > heartbeatTimeout) {
        peers.delete(id)
        deadPeers.add(id)
        // Every crash adds one id (a restart takes a new one): keep the latest only.
        if (deadPeers.size > 1000) deadPeers.delete(deadPeers.values().next().value!)
        logger.warn("realtime: instance missed its heartbeats, its users go offline", {
          instance: id,
          silent_ms: Math.round(now - peer.heardAt),
        })
        void expireInstance(id, peer.seenAt)
      }
  }

  const expireInstance = async (id: string, lastSeen: number) => {
    const gone: string[] = []
    for (const [userId, entry] of presence.entries)
      if (idSetDelete(entry.instances, id) && idSetSize(entry.instances) === 0) {
        presence.entries.delete(userId)
        gone.push(userId)
      }
    if (gone.length === 0) return
    // Every surviving instance writes the same value: the instance that held them cannot any more.
    try {
      await setLastSeenMany(db, gone, lastSeen)
    } catch (error) {
      logger.error("realtime: last_seen of a dead instance's users failed", {
        error: (error as Error).message,
      })
    }
    await showPresenceOf(id, gone, false, lastSeen)
  }

  /**
   * `user:offline` for users an instance held and nobody holds now (it stopped or died), or `user:online` for
   * users found online on an instance whose announcements were missed, as the normal path shows them: privacy,
   * blocks and conversations read now, to the local audience only. Skipped for a user whose state changed
   * again meanwhile.
   */
  const showPresenceOf = async (id: string, userIds: string[], online: boolean, lastSeen: number) => {
    const still = (userId: string) => !!idSetSize(presence.entries.get(userId)?.instances ?? []) === online
    for (const userId of userIds) {
      if (!still(userId)) continue
      try {
        const [shows, blocked, conversationIds] = await Promise.all([
          showsOnlineStatus(db, userId),
          listBlockedEitherWay(db, userId),
          listPresenceConversationIds(db, userId, presenceGroupLimit),
        ])
        if (!shows || !still(userId)) continue
        showPresence({
          type: "presence",
          instance: id,
          userId,
          online,
          lastSeen: online ? null : lastSeen,
          conversationIds,
          exceptUserIds: blocked,
          hidden: false,
        })
      } catch (error) {
        logger.error("realtime: presence of another instance's user failed", {
          user_id: userId,
          error: (error as Error).message,
        })
      }
    }
  }

  let heartbeatTimer: ReturnType<typeof setInterval> | undefined

  /** Announces this instance's view of a user (first socket / last socket + grace) to every instance. */
  const announce = (user: LocalUser, online: boolean) => {
    const chain = user.presenceChain.then(async () => {
      try {
        // Hidden: tracked, shown to nobody, so its audience is not read.
        const shows = await showsOnlineStatus(db, user.userId)
        const [blocked, conversationIds] = shows
          ? await Promise.all([
              listBlockedEitherWay(db, user.userId),
              listPresenceConversationIds(db, user.userId, presenceGroupLimit),
            ])
          : [[], []]
        let lastSeen: number | null = null
        if (!online) {
          lastSeen = clock.now()
          await touchLastSeen(db, user.userId, lastSeen)
        }
        bus.publish({
          type: "presence",
          instance,
          userId: user.userId,
          online,
          lastSeen,
          conversationIds,
          exceptUserIds: blocked,
          hidden: !shows,
        })
      } catch (error) {
        logger.error("realtime: presence announcement failed", {
          user_id: user.userId,
          error: (error as Error).message,
        })
      }
    })
    user.presenceChain = chain
    // Idle again: back to the shared settled promise (an idle user keeps no promise of their own).
    void chain.then(() => {
      if (user.presenceChain === chain) user.presenceChain = settled
    })
    return chain
  }

  const goOffline = (user: LocalUser) => {
    user.offlineTimer = undefined
    if (idSetSize(user.sockets) > 0 || !user.announced) return
    user.announced = false
    void announce(user, false).then(() => forget(user))
  }

  /**
   * Safety net for sessions ended where no `session.ended` reached the bus (an admin CLI run beside a
   * local-bus server, an instance that crashed mid-logout): local sockets' sessions are re-checked periodically.
   */
  const sweepSessions = async () => {
    const bySession = new Map<string, Connection[]>()
    for (const user of users.values())
      for (const socket of user.sockets)
        bySession.set(socket.sessionId, [...(bySession.get(socket.sessionId) ?? []), socket])
    if (bySession.size === 0) return
    try {
      for (const id of await listEndedSessionIds(db, [...bySession.keys()], clock.now()))
        for (const socket of bySession.get(id) ?? [])
          socket.close(closeCodes.sessionEnded, "auth.session_ended")
    } catch (error) {
      logger.error("realtime: session sweep failed", { error: (error as Error).message })
    }
  }
  const sweepTimer = setInterval(() => void sweepSessions(), sessionSweepMs)
  sweepTimer.unref?.()

  const unsubscribe = deps.events.subscribe((event: DomainEvent) => bus.publish(event))
  bus.onMessage((message) => {
    try {
      onBusMessage(message)
    } catch (error) {
      logger.error("realtime: bus message failed", { type: message.type, error: (error as Error).message })
    }
  })

  return {
    instance,

    /** Joins the bus and learns who is online on the other instances. */
    async start() {
      await bus.start()
      bus.publish({ type: "presence.sync", instance })
      // One process on a local bus: no other instance to watch.
      if (bus.kind !== "local") {
        selfHeardAt = performance.now()
        heartbeatTimer = setInterval(() => {
          bus.publish({ type: "instance.heartbeat", instance })
          checkPeers()
        }, heartbeatInterval)
        heartbeatTimer.unref?.()
      }
    },

    /**
     * Starts a handshake for `userId`: loads their memberships into the delivery index (once per user).
     * Returns the lease to pass to `register`, or to `release` if the socket never opens.
     */
    async attach(userId: string): Promise<{ userId: string; released: boolean }> {
      let user = users.get(userId)
      if (!user) {
        const created: LocalUser = {
          userId,
          leases: 0,
          sockets: [],
          conversations: [],
          pending: [],
          loaded: null,
          announced: false,
          presenceChain: settled,
        }
        created.loaded = listMemberships(deps.database, userId).then(
          (memberships) => {
            for (const { id, type } of memberships) indexAdd(created, id, type === "DIRECT")
            for (const change of created.pending ?? [])
              if (change.added) indexAdd(created, change.conversationId, change.direct)
              else indexRemove(created, change.conversationId)
            created.pending = null
            created.loaded = null
          },
          (error) => {
            users.delete(userId)
            throw error
          },
        )
        users.set(userId, (user = created))
      }
      user.leases++
      try {
        await user.loaded
      } catch (error) {
        user.leases--
        throw error
      }
      return { userId, released: false }
    },

    /** Gives up a lease whose socket never opened. */
    release(lease: { userId: string; released: boolean }) {
      if (lease.released) return
      lease.released = true
      const user = users.get(lease.userId)
      if (!user) return
      user.leases--
      forget(user)
    },

    /** A socket opened: it receives its user's events from now on. The first one announces the user online. */
    register(connection: Connection, lease: { userId: string; released: boolean }) {
      const user = users.get(connection.userId)
      if (!user || lease.released || closing)
        return connection.close(closeCodes.goingAway, "server.shutting_down")
      lease.released = true // now held by the socket: unregister gives it back
      user.sockets = idSetAdd(user.sockets, connection)
      socketsById.set(connection.id, connection)
      for (const { id, direct } of user.conversations) if (!direct) unsubscribedAdd(connection, id)
      if (connection.topics) subscribe(connection)
      if (user.offlineTimer) {
        clearTimeout(user.offlineTimer)
        user.offlineTimer = undefined
      }
      if (!user.announced) {
        user.announced = true
        void announce(user, true)
      }
    },

    /**
     * Moves a registered socket (its `topics` set) from one-by-one sends to its protocol's topics for every
     * conversation of its user. Synchronous: no event falls between the two paths.
     */
    subscribe,

    /** Adds a protocol's topics: every conversation event is published to them once. */
    useTopics(topics: Topics) {
      allTopics.add(topics)
    },

    /** A socket closed. The user's last one goes offline after the grace period (a quick reconnect keeps them online). */
    unregister(connection: Connection) {
      const user = users.get(connection.userId)
      if (!user || !idSetDelete(user.sockets, connection)) return
      socketsById.delete(connection.id)
      // Subscribed: Bun drops a closed socket's subscriptions itself.
      if (!connection.subscribed)
        for (const { id, direct } of user.conversations) if (!direct) unsubscribedDelete(connection, id)
      user.leases--
      if (idSetSize(user.sockets) === 0) {
        for (const { id } of user.conversations) stopTyping(user.userId, id)
        if (user.announced && !closing) user.offlineTimer = setTimeout(() => goOffline(user), grace)
        else forget(user)
      }
    },

    /** Whether the user is a member (delivery index first, the database for a change still in flight). */
    async isMember(userId: string, conversationId: string): Promise<boolean> {
      const user = users.get(userId)
      const conversation = byConversation.get(conversationId)
      if (user && conversation && idSetHas(user.conversations, conversation)) return true
      return isMember(db, conversationId, userId)
    },

    /** A member started typing: forwarded at most once per throttle window, stopped by itself after the timeout. */
    async startTyping(connection: Connection, conversationId: string) {
      const key = `${connection.userId} ${conversationId}`
      const now = clock.now()
      const current = typing.get(key)
      const expiry = setTimeout(() => stopTyping(connection.userId, conversationId), typingTimeout)
      if (current) {
        clearTimeout(current.expiry)
        current.expiry = expiry
        // Still typing: refresh the expiry; forward again only once the others' indicator may have expired.
        if (now - current.forwardedAt < typingTimeout / 2) return
        current.forwardedAt = now
      } else typing.set(key, { forwardedAt: now, expiry })
      await publishTyping("typing:start", connection.userId, conversationId, connection.id)
    },

    stopTyping: (connection: Connection, conversationId: string) =>
      stopTyping(connection.userId, conversationId, connection.id),

    /** Sockets of this instance, for shutdown and diagnostics. */
    connections(): Connection[] {
      return [...users.values()].flatMap((u) => [...u.sockets])
    },

    /** Re-checks the sessions of local sockets now (also runs every 30 s). */
    sweepSessions,

    /** Local socket count of a user (tests, diagnostics). */
    socketCount: (userId: string) => idSetSize(users.get(userId)?.sockets ?? []),

    /**
     * Stops: every local socket is closed with 1001 (the adapters do it), every local user is announced offline
     * now (no grace: this instance will not see them again) and the bus is left.
     */
    async close() {
      closing = true
      clearInterval(sweepTimer)
      for (const topics of allTopics) topics.close()
      clearInterval(heartbeatTimer)
      unsubscribe()
      for (const t of typing.values()) clearTimeout(t.expiry)
      typing.clear()
      // No announcement per user (thousands of queries while stopping): one instance.down, and the others show
      // offline, after the grace, whoever does not reconnect elsewhere. last_seen is written in bulk.
      const leaving: string[] = []
      for (const user of users.values()) {
        if (user.offlineTimer) clearTimeout(user.offlineTimer)
        user.offlineTimer = undefined
        if (user.announced) leaving.push(user.userId)
        user.announced = false
      }
      await Promise.all([...users.values()].map((u) => u.presenceChain))
      try {
        await setLastSeenMany(db, leaving, clock.now())
      } catch (error) {
        logger.error("realtime: last_seen on shutdown failed", { error: (error as Error).message })
      }
      bus.publish({ type: "instance.down", instance })
      await bus.close()
    },
  }

  function stopTyping(userId: string, conversationId: string, exceptSocketId?: string) {
    const key = `${userId} ${conversationId}`
    const current = typing.get(key)
    if (!current) return
    clearTimeout(current.expiry)
    typing.delete(key)
    void publishTyping("typing:stop", userId, conversationId, exceptSocketId)
  }

  async function publishTyping(
    name: string,
    userId: string,
    conversationId: string,
    exceptSocketId?: string,
  ) {
    try {
      const blocked = await listBlockedEitherWay(db, userId)
      bus.publish({
        type: "volatile",
        conversationId,
        name,
        data: { userId, user_id: userId, conversationId, conversation_id: conversationId },
        exceptUserIds: [userId, ...blocked],
        exceptSocketId,
      })
    } catch (error) {
      logger.error("realtime: typing failed", { error: (error as Error).message })
    }
  }
}
