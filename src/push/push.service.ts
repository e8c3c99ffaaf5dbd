import type { Principal } from "../auth/auth.service.ts"
import type { Deps } from "../deps.ts"
import { badRequest, notFound } from "../errors.ts"
import type { DomainEvent } from "../events.ts"
import { idSetSize } from "../realtime/realtime.idset.ts"
import { blockedEitherWayAmong } from "../settings/settings.repository.ts"
import { type PushDriver, type PushMessage, shortToken } from "./push.driver.ts"
import {
  deleteDeviceTokens,
  deleteSessionDeviceTokens,
  deleteUserDeviceToken,
  pushCandidates,
  trimUserDeviceTokens,
  upsertDeviceToken,
} from "./push.repository.ts"
import type { DevicePlatform } from "./push.tables.ts"

/** Devices kept per user: every message fans out to each, so an account cannot pile up thousands. */
export const maxDevicesPerUser = 20

/** POST /settings/notifications/register (and the seed's /notifications/register, which sends "IOS"/"ANDROID"). */
export async function registerDevice(deps: Deps, principal: Principal, token: string, platform: string) {
  const normalized = platform.toLowerCase()
  if (normalized !== "ios" && normalized !== "android")
    throw badRequest("push.bad_platform", "Platform must be 'ios' or 'android'")
  await upsertDeviceToken(deps.database.db, {
    token,
    userId: principal.userId,
    sessionId: principal.sessionId,
    platform: normalized,
    now: deps.clock.now(),
  })
  await trimUserDeviceTokens(deps.database.db, principal.userId, maxDevicesPerUser)
  return { success: true, message: "Device token registered" }
}

/** DELETE /settings/notifications/unregister?token=: the app calls it on logout. */
export async function unregisterDevice(deps: Deps, principal: Principal, token: string) {
  if (!(await deleteUserDeviceToken(deps.database.db, principal.userId, token)))
    throw notFound("push.token_not_found", "Device token not found")
  return { success: true, message: "Device token unregistered" }
}

/** The push feature at run time: listens for sends, queues pushes, sends them in the background. */
export type PushService = {
  /** Subscribes to domain events (urge serve; the CLI never starts it). */
  start(): void
  /** Stops taking new work and waits (up to `timeoutMs`) for queued pushes. */
  stop(timeoutMs?: number): Promise<void>
  /** Resolves when nothing is queued or in flight (tests, shutdown). */
  idle(): Promise<void>
  /** For `urge doctor`: each configured driver, checked. */
  verify(): Promise<{ ok: boolean; text: string }>
}

/** Extra tries of a push that failed for a passing reason. */
const maxRetries = 2

/** Longest text shown in a notification body (CONTRACT §4.9). */
const previewLength = 100

/** The notification of a message for a recipient (CONTRACT §4.9). */
export function notificationFor(
  message: Record<string, unknown>,
  conversation: { type: string; name: string | null },
  recipient: { preview: boolean; sound: boolean },
): PushMessage {
  const sender =
    typeof message.sender_name === "string" && message.sender_name ? message.sender_name : "Someone"
  const isGroup = conversation.type === "GROUP"
  const type = String(message.message_type ?? "TEXT")
  const content = String(message.content ?? "")
  let body = "New message"
  if (recipient.preview && !message.is_encrypted) {
    if (type !== "TEXT") body = `Sent a ${type.toLowerCase()}`
    else {
      // By code points, so an emoji is never cut in half.
      const chars = Array.from(content)
      body = chars.length > previewLength ? chars.slice(0, previewLength).join("") + "..." : content
    }
  }
  return {
    title: isGroup ? `${sender} in ${conversation.name ?? "a group"}` : sender,
    body,
    image: typeof message.sender_avatar === "string" ? message.sender_avatar : null,
    data: {
      type: "new_message",
      conversation_id: String(message.conversation_id),
      message_id: String(message.id),
      sender_name: sender,
      is_group: isGroup ? "true" : "false",
    },
    sound: recipient.sound,
  }
}

/** Builds the push service over the configured drivers (one per platform). */
export function createPushService(deps: Deps, drivers: Record<DevicePlatform, PushDriver>): PushService {
  const { logger } = deps
  const db = deps.database.db
  const { concurrency, queue_limit: queueLimit } = deps.config.push
  const presence = deps.presence as typeof deps.presence & {
    entries?: Map<string, { instances: string[] | Set<string> }>
  }
  // A live socket on any instance, whether or not the user shows their online status (isOnline hides those).
  const hasLiveSocket = (userId: string) =>
    presence.entries
      ? idSetSize(presence.entries.get(userId)?.instances ?? []) > 0
      : presence.isOnline(userId)

  const queue: Array<() => Promise<void>> = []
  let active = 0
  let dropped = 0
  let accepting = false
  let idleWaiters: Array<() => void> = []
  let unsubscribe: (() => void) | undefined

  const pump = () => {
    while (active < concurrency && queue.length) {
      const task = queue.shift()!
      active++
      task()
        .catch((error) => logger.error("push: task failed", { error: (error as Error).message }))
        .finally(() => {
          active--
          pump()
          if (active === 0 && queue.length === 0) {
            const waiters = idleWaiters
            idleWaiters = []
            for (const wake of waiters) wake()
          }
        })
    }
  }
  const enqueue = (task: () => Promise<void>) => {
    if (queue.length >= queueLimit) {
      // Logged once per burst, not per push.
      if (dropped++ === 0) logger.warn("push: queue full, dropping pushes", { queue_limit: queueLimit })
      return
    }
    if (dropped) {
      logger.warn("push: queue has room again", { dropped })
      dropped = 0
    }
    queue.push(task)
    pump()
  }

  /**
   * One device: send; a passing failure is tried again (twice at most, after the wait the provider asks for,
   * else 1 s then 2 s, holding its worker: a struggling provider slows the queue rather than being flooded);
   * then log a failure and forget a token the provider called dead.
   */
  const deliver = async (
    device: { token: string; platform: DevicePlatform; user_id: string },
    message: PushMessage,
  ) => {
    const driver = drivers[device.platform]
    let result = await driver.send(device, message)
    for (let retry = 0; !result.ok && result.retryAfterMs !== undefined && retry < maxRetries; retry++) {
      if (!accepting) break
      await Bun.sleep(result.retryAfterMs * (retry + 1))
      result = await driver.send(device, message)
    }
    if (result.ok) return
    logger.warn("push: not delivered", {
      driver: driver.name,
      user_id: device.user_id,
      token: shortToken(device.token),
      invalid_token: result.invalidToken,
      error: result.error,
    })
    if (result.invalidToken) await deleteDeviceTokens(db, [device.token])
  }

  /** A committed message waiting for its fan-out. */
  type Sent = { conversationId: string; message: Record<string, unknown>; only?: string[] }

  /**
   * Committed messages: their candidate devices (one query for all of them), less owners with a live socket,
   * switches off, or a block; one task per device.
   */
  const fanOut = async (sent: Sent[]) => {
    const sources = sent.map((s) => ({
      conversationId: s.conversationId,
      senderId: String(s.message.sender_id),
    }))
    const candidates = await pushCandidates(deps.database, sources, deps.clock.now())
    if (!candidates.size) return
    for (const [index, { message, only }] of sent.entries()) {
      const { conversationId, senderId } = sources[index]!
      const onlySet = only ? new Set(only) : null
      const targets = (candidates.get(`${conversationId}\n${senderId}`) ?? []).filter(
        (t) =>
          (!onlySet || onlySet.has(t.user_id)) &&
          t.enabled &&
          (t.conversation_type === "GROUP" ? t.groups : t.messages) &&
          !hasLiveSocket(t.user_id),
      )
      if (!targets.length) continue
      const blocked = new Set<string>()
      const owners = [...new Set(targets.map((t) => t.user_id))]
      // Chunked to stay under the databases' bound-parameter limits in very large groups.
      for (let i = 0; i < owners.length; i += 500)
        for (const id of await blockedEitherWayAmong(db, senderId, owners.slice(i, i + 500))) blocked.add(id)
      for (const target of targets) {
        if (blocked.has(target.user_id)) continue
        const conversation = { type: target.conversation_type, name: target.conversation_name }
        const notification = notificationFor(message, conversation, target)
        enqueue(() => deliver(target, notification))
      }
    }
  }

  // The messages of one send batch are announced in the same turn: they share one fan-out (and one query).
  let sent: Sent[] = []
  const onEvent = (event: DomainEvent) => {
    if (!accepting) return
    if (event.type === "conversation" && event.name === "message:received") {
      const { conversationId, data, userIds } = event
      // What people send, not what the server records ("<name> left the group"): CONTRACT §2.4 pushes sends.
      if (data.message_type === "SYSTEM") return
      // Everyone it is for has a live socket (a chat between two people online): nothing to look up.
      if (event.recipients?.every(hasLiveSocket)) return
      if (sent.push({ conversationId, message: data, only: userIds }) === 1)
        setImmediate(() => {
          const batch = sent
          sent = []
          enqueue(() => fanOut(batch))
        })
    } else if (event.type === "session.ended") {
      const { sessionIds } = event
      enqueue(() => deleteSessionDeviceTokens(db, sessionIds))
    }
  }

  const idle = () =>
    active === 0 && queue.length === 0 && sent.length === 0
      ? Promise.resolve()
      : new Promise<void>((resolve) => idleWaiters.push(resolve))

  return {
    start() {
      accepting = true
      unsubscribe ??= deps.events.subscribe(onEvent)
    },
    async stop(timeoutMs = 5000) {
      accepting = false
      unsubscribe?.()
      unsubscribe = undefined
      let timer: ReturnType<typeof setTimeout> | undefined
      const timedOut = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), timeoutMs)))
      const late = await Promise.race([idle().then(() => false), timedOut])
      clearTimeout(timer)
      if (late) {
        logger.warn("push: stopped with pushes unsent", { queued: queue.length, in_flight: active })
        queue.length = 0
      }
    },
    idle,
    async verify() {
      const lines: string[] = []
      let ok = true
      const byDriver = new Map<PushDriver, DevicePlatform[]>()
      for (const platform of ["android", "ios"] as const)
        byDriver.set(drivers[platform], [...(byDriver.get(drivers[platform]) ?? []), platform])
      for (const [driver, platforms] of byDriver) {
        const which = byDriver.size > 1 ? `${platforms.join(", ")}: ` : ""
        try {
          lines.push(which + (await driver.verify()))
        } catch (error) {
          ok = false
          lines.push(`${which}${driver.name} failed (${(error as Error).message.split("\n")[0]})`)
        }
      }
      return { ok, text: lines.join("; ") }
    },
  }
}
