import { createSign } from "node:crypto"
import { readFileSync } from "node:fs"
import { ConfigError } from "../config.ts"
import type { Logger } from "../logger.ts"
import { type PushDriver, type PushResult, retryDelay } from "./push.driver.ts"

/** The fields of a Google service account key file that FCM needs. */
export type ServiceAccount = {
  project_id: string
  client_email: string
  private_key: string
  token_uri: string
}

/** Reads a service account JSON file; a missing file or field is a config error naming the key. */
export function readServiceAccount(path: string): ServiceAccount {
  let parsed: Record<string, unknown>
  try {
    parsed = JSON.parse(readFileSync(path, "utf8"))
  } catch (error) {
    throw new ConfigError(`config: push.fcm_service_account ${path}: ${(error as Error).message}`)
  }
  for (const field of ["project_id", "client_email", "private_key"])
    if (typeof parsed[field] !== "string" || !parsed[field])
      throw new ConfigError(`config: push.fcm_service_account ${path} has no ${field}`)
  return {
    project_id: parsed.project_id as string,
    client_email: parsed.client_email as string,
    private_key: parsed.private_key as string,
    token_uri:
      typeof parsed.token_uri === "string" ? parsed.token_uri : "https://oauth2.googleapis.com/token",
  }
}

const scope = "https://www.googleapis.com/auth/firebase.messaging"
const b64url = (value: string | Buffer) => Buffer.from(value).toString("base64url")

/** The OAuth 2.0 JWT-bearer assertion of a service account (RS256, valid one hour). */
export function serviceAccountAssertion(account: ServiceAccount, nowSeconds: number): string {
  const header = b64url(JSON.stringify({ alg: "RS256", typ: "JWT" }))
  const claims = b64url(
    JSON.stringify({
      iss: account.client_email,
      scope,
      aud: account.token_uri,
      iat: nowSeconds,
      exp: nowSeconds + 3600,
    }),
  )
  const signature = createSign("RSA-SHA256").update(`${header}.${claims}`).sign(account.private_key)
  return `${header}.${claims}.${b64url(signature)}`
}

/** FCM HTTP v1: an access token from the service account (cached until shortly before it expires), then messages:send. */
export function fcmDriver(options: {
  account: ServiceAccount
  /** Empty: https://fcm.googleapis.com. */
  apiUrl: string
  logger: Logger
  now?: () => number
}): PushDriver {
  const { account, logger } = options
  const now = options.now ?? Date.now
  const sendUrl = `${(options.apiUrl || "https://fcm.googleapis.com").replace(/\/+$/, "")}/v1/projects/${encodeURIComponent(account.project_id)}/messages:send`
  let cached: { token: string; expiresAt: number } | undefined
  let fetching: Promise<string> | undefined

  const fetchAccessToken = async (): Promise<string> => {
    const res = await fetch(account.token_uri, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({
        grant_type: "urn:ietf:params:oauth:grant-type:jwt-bearer",
        assertion: serviceAccountAssertion(account, Math.floor(now() / 1000)),
      }),
      signal: AbortSignal.timeout(10_000),
    })
    const body = (await res.json().catch(() => ({}))) as { access_token?: string; expires_in?: number }
    if (!res.ok || !body.access_token)
      throw new Error(`token exchange failed: HTTP ${res.status} ${JSON.stringify(body).slice(0, 200)}`)
    // A minute early, so a token never expires between the check and its use.
    cached = { token: body.access_token, expiresAt: now() + ((body.expires_in ?? 3600) - 60) * 1000 }
    return body.access_token
  }
  const accessToken = () => {
    if (cached && cached.expiresAt > now()) return Promise.resolve(cached.token)
    // Concurrent sends share one exchange.
    return (fetching ??= fetchAccessToken().finally(() => (fetching = undefined)))
  }

  const post = async (payload: unknown) =>
    fetch(sendUrl, {
      method: "POST",
      headers: { authorization: `Bearer ${await accessToken()}`, "content-type": "application/json" },
      body: JSON.stringify(payload),
      signal: AbortSignal.timeout(10_000),
    })

  return {
    name: "fcm",
    async verify() {
      cached = undefined
      await accessToken()
      return `fcm (project ${account.project_id}, ${account.client_email}: credentials accepted)`
    },
    async send(device, message): Promise<PushResult> {
      const notification: Record<string, string> = { title: message.title, body: message.body }
      if (message.image) notification.image = message.image
      const payload = {
        message: {
          token: device.token,
          notification,
          data: message.data,
          android: {
            priority: "high",
            notification: message.sound ? { sound: "default" } : {},
          },
          apns: {
            headers: { "apns-priority": "10" },
            payload: { aps: message.sound ? { sound: "default" } : {} },
          },
        },
      }
      try {
        let res = await post(payload)
        if (res.status === 401) {
          // Revoked or rotated early: one fresh token, one more try.
          cached = undefined
          res = await post(payload)
        }
        if (res.ok) return { ok: true }
        const text = await res.text()
        return {
          ok: false,
          invalidToken: isInvalidToken(res.status, text),
          retryAfterMs: retryDelay(res.status, res.headers.get("retry-after")),
          error: `HTTP ${res.status} ${text.slice(0, 300)}`,
        }
      } catch (error) {
        logger.debug("push: fcm request failed", { error: (error as Error).message })
        return { ok: false, invalidToken: false, error: (error as Error).message, retryAfterMs: 1000 }
      }
    },
  }
}

/** FCM's answers that mean "this token is dead": 404 UNREGISTERED, or 400 INVALID_ARGUMENT about the token itself. */
function isInvalidToken(status: number, text: string): boolean {
  let error: { status?: string; message?: string; details?: Array<Record<string, any>> } = {}
  try {
    error = JSON.parse(text).error ?? {}
  } catch {}
  const codes = (error.details ?? []).map((d) => d.errorCode).filter(Boolean)
  // A bare 404 (no UNREGISTERED) is a wrong project id, not a dead token.
  if (status === 404) return codes.includes("UNREGISTERED")
  if (status === 400 && (codes.includes("INVALID_ARGUMENT") || error.status === "INVALID_ARGUMENT")) {
    const aboutToken = (error.details ?? []).some((d) =>
      (d.fieldViolations ?? []).some((v: { field?: string }) => v.field === "message.token"),
    )
    return aboutToken || /registration token/i.test(error.message ?? "")
  }
  return false
}
