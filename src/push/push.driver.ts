import { readFileSync } from "node:fs"
import { type Config, ConfigError } from "../config.ts"
import type { Logger } from "../logger.ts"
import { apnsDriver } from "./push.apns.ts"
import { fcmDriver, readServiceAccount } from "./push.fcm.ts"
import type { DevicePlatform } from "./push.tables.ts"

/** One notification for one device (CONTRACT §4.9), independent of the provider. */
export type PushMessage = {
  title: string
  body: string
  /** The sender's avatar URL, shown by the notification when set. */
  image?: string | null
  /** The app's tap payload; FCM data values must be strings. */
  data: Record<string, string>
  /** The recipient's notification_sound switch. */
  sound: boolean
}

export type PushDevice = { token: string; platform: DevicePlatform }

/**
 * What the provider said. `invalidToken`: the token will never work again and should be forgotten;
 * `retryAfterMs`: a passing failure (throttled, unavailable, no connection) worth another try after that long.
 */
export type PushResult =
  { ok: true } | { ok: false; invalidToken: boolean; error: string; retryAfterMs?: number }

/** The wait a throttled or unavailable provider asks for (Retry-After in seconds), else `fallbackMs`; at most 30 s. */
export function retryDelay(status: number, retryAfter: string | null, fallbackMs = 1000): number | undefined {
  if (status !== 429 && status < 500) return undefined
  const seconds = Number(retryAfter)
  return Math.min(
    30_000,
    retryAfter !== null && Number.isFinite(seconds) && seconds >= 0 ? seconds * 1000 : fallbackMs,
  )
}

/** Sends pushes through one provider. Never throws: failures come back as a result. */
export type PushDriver = {
  readonly name: "log" | "fcm" | "apns"
  send(device: PushDevice, message: PushMessage): Promise<PushResult>
  /** For `urge doctor`: proves what can be proved without pushing (throws when it cannot), says what it is. */
  verify(): Promise<string>
}

/** The driver per platform, as configured (push.driver, push.ios_driver). Only deps.ts calls this. */
export function createPushDrivers(config: Config, logger: Logger): Record<DevicePlatform, PushDriver> {
  const built = new Map<string, PushDriver>()
  const driver = (name: "log" | "fcm" | "apns"): PushDriver => {
    let d = built.get(name)
    if (!d) {
      d =
        name === "fcm"
          ? fcmDriverFromConfig(config, logger)
          : name === "apns"
            ? apnsDriverFromConfig(config)
            : logPushDriver(logger, { redact: config.server.mode === "production" })
      built.set(name, d)
    }
    return d
  }
  return { android: driver(config.push.driver), ios: driver(config.push.ios_driver || config.push.driver) }
}

/**
 * Development driver: writes the push it would send to the server log (the token shortened). `redact`
 * (production mode) leaves out the title and body, which carry message text and names.
 */
export function logPushDriver(logger: Logger, options: { redact?: boolean } = {}): PushDriver {
  return {
    name: "log",
    async send(device, message) {
      const text = options.redact ? {} : { title: message.title, body: message.body }
      logger.info("push (log driver)", {
        platform: device.platform,
        token: shortToken(device.token),
        ...text,
        conversation_id: message.data.conversation_id,
        message_id: message.data.message_id,
      })
      return { ok: true }
    },
    verify: async () => "log (pushes are written to the server log, not sent)",
  }
}

/** Enough of a token to tell devices apart in a log, not enough to push to it. */
export const shortToken = (token: string) => (token.length > 12 ? `${token.slice(0, 8)}…` : "…")

function fcmDriverFromConfig(config: Config, logger: Logger): PushDriver {
  const path = config.push.fcm_service_account
  if (!path) throw new ConfigError("config: push.driver = fcm needs push.fcm_service_account")
  return fcmDriver({ account: readServiceAccount(path), apiUrl: config.push.fcm_api_url, logger })
}

function apnsDriverFromConfig(config: Config): PushDriver {
  const { apns_key_path, apns_key_id, apns_team_id, apns_topic, apns_production, apns_url } = config.push
  if (!apns_key_path || !apns_key_id || !apns_team_id || !apns_topic)
    throw new ConfigError(
      "config: push.ios_driver = apns needs push.apns_key_path, push.apns_key_id, push.apns_team_id and push.apns_topic",
    )
  let key: string
  try {
    key = readFileSync(apns_key_path, "utf8")
  } catch (error) {
    throw new ConfigError(`config: push.apns_key_path cannot be read: ${(error as Error).message}`)
  }
  return apnsDriver({
    key,
    keyId: apns_key_id,
    teamId: apns_team_id,
    topic: apns_topic,
    url: apns_url || (apns_production ? "https://api.push.apple.com" : "https://api.sandbox.push.apple.com"),
  })
}
