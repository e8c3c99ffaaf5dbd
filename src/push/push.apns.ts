import { sign } from "node:crypto"
import http2 from "node:http2"
import { type PushDriver, type PushResult, retryDelay } from "./push.driver.ts"

/**
 * APNs with token-based auth: an ES256 JWT from the team's .p8 key (renewed every 50 minutes; Apple accepts
 * one up to an hour old and refuses renewals more often than every 20), sent over one HTTP/2 connection
 * (APNs speaks only HTTP/2), reopened when it drops.
 */
export function apnsDriver(options: {
  /** PEM text of the .p8 key. */
  key: string
  keyId: string
  teamId: string
  /** The app's bundle id. */
  topic: string
  /** https://api.push.apple.com, the sandbox, or a test double (http:// speaks cleartext HTTP/2). */
  url: string
  now?: () => number
}): PushDriver {
  const now = options.now ?? Date.now
  let jwt: { value: string; madeAt: number } | undefined
  let session: http2.ClientHttp2Session | undefined

  const bearer = () => {
    if (!jwt || now() - jwt.madeAt > 50 * 60_000) {
      const b64 = (v: string | Buffer) => Buffer.from(v).toString("base64url")
      const input = `${b64(JSON.stringify({ alg: "ES256", kid: options.keyId }))}.${b64(
        JSON.stringify({ iss: options.teamId, iat: Math.floor(now() / 1000) }),
      )}`
      const signature = sign("sha256", Buffer.from(input), { key: options.key, dsaEncoding: "ieee-p1363" })
      jwt = { value: `${input}.${b64(signature)}`, madeAt: now() }
    }
    return jwt.value
  }
  const connection = () => {
    if (!session || session.closed || session.destroyed) {
      const opened = http2.connect(options.url)
      // A failed connection fails its requests; the next send opens a new one.
      opened.on("error", () => opened.destroy())
      opened.on("goaway", () => opened.close())
      // Idle connections must not keep the process alive.
      opened.unref()
      session = opened
    }
    return session
  }
  const request = (token: string, body: string) =>
    new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = connection().request({
        ":method": "POST",
        ":path": `/3/device/${encodeURIComponent(token)}`,
        authorization: `bearer ${bearer()}`,
        "apns-topic": options.topic,
        "apns-push-type": "alert",
        "apns-priority": "10",
        "content-type": "application/json",
      })
      req.setTimeout(10_000, () => req.close(http2.constants.NGHTTP2_CANCEL))
      let status = 0
      let text = ""
      req.setEncoding("utf8")
      req.on("response", (headers) => (status = Number(headers[":status"])))
      req.on("data", (chunk: string) => (text += chunk))
      req.on("end", () => resolve({ status, text }))
      req.on("close", () => status || reject(new Error("APNs stream closed without a response")))
      req.on("error", reject)
      req.end(body)
    })

  return {
    name: "apns",
    async verify() {
      // Signing proves the key is a usable ES256 key; only a push can prove Apple accepts it.
      jwt = undefined
      bearer()
      return `apns (${options.url}, topic ${options.topic}, key ${options.keyId}, team ${options.teamId}: key loads)`
    },
    async send(device, message): Promise<PushResult> {
      const aps: Record<string, unknown> = { alert: { title: message.title, body: message.body } }
      if (message.sound) aps.sound = "default"
      // Lets a notification service extension fetch the image.
      if (message.image) aps["mutable-content"] = 1
      const body = JSON.stringify({
        aps,
        ...message.data,
        ...(message.image ? { image: message.image } : {}),
      })
      try {
        let res = await request(device.token, body)
        if (res.status === 403 && reasonOf(res.text) === "ExpiredProviderToken") {
          jwt = undefined
          res = await request(device.token, body)
        }
        if (res.status === 200) return { ok: true }
        const reason = reasonOf(res.text)
        const invalidToken = res.status === 410 || (res.status === 400 && reason === "BadDeviceToken")
        return {
          ok: false,
          invalidToken,
          error: `HTTP ${res.status} ${reason ?? res.text.slice(0, 200)}`,
          retryAfterMs: retryDelay(res.status, null),
        }
      } catch (error) {
        return { ok: false, invalidToken: false, error: (error as Error).message, retryAfterMs: 1000 }
      }
    },
  }
}

const reasonOf = (text: string): string | undefined => {
  try {
    return JSON.parse(text).reason
  } catch {
    return undefined
  }
}
