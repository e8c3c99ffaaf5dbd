import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test"
import { loadConfig } from "../src/config.ts"
import { startServer } from "../src/server.ts"
import { createDeps } from "../src/deps.ts"
import { createLogger } from "../src/logger.ts"
import { startTestServer } from "./helpers/server.ts"
import { uniquePhone } from "./helpers/users.ts"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

// argon2id (64 MiB per hash) on a loaded 2-core machine can take seconds: no speed is asserted here.
setDefaultTimeout(30_000)

const sid = "AC0123456789abcdef0123456789abcdef"
const authToken = "twilio-auth-token-for-tests"

/** A stand-in for api.twilio.com: records each request and answers like Twilio does. */
type Seen = {
  method: string
  path: string
  authorization: string | null
  contentType: string | null
  form: URLSearchParams
}
let seen: Seen[] = []
let failNext = false
let twilio: ReturnType<typeof Bun.serve>
beforeAll(() => {
  twilio = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    async fetch(request) {
      const url = new URL(request.url)
      seen.push({
        method: request.method,
        path: url.pathname,
        authorization: request.headers.get("authorization"),
        contentType: request.headers.get("content-type"),
        form: new URLSearchParams(await request.text()),
      })
      if (failNext) {
        failNext = false
        return Response.json(
          { code: 21211, message: "The 'To' number is not a valid phone number.", status: 400 },
          { status: 400 },
        )
      }
      return Response.json(
        { sid: "SM" + "0".repeat(32), status: "queued", account_sid: sid, to: "x", body: "x" },
        { status: 201 },
      )
    },
  })
})
afterAll(() => twilio.stop(true))

const twilioConfig = (extra: Record<string, unknown> = {}) => ({
  "sms.driver": "twilio",
  "sms.twilio_account_sid": sid,
  "sms.twilio_auth_token": authToken,
  "sms.twilio_api_url": `http://127.0.0.1:${twilio.port}`,
  ...extra,
})

describe("twilio driver", () => {
  test("sends the exact request Twilio's Messages API expects (From number)", async () => {
    seen = []
    const server = await startTestServer({ config: twilioConfig({ "sms.twilio_from": "+15005550006" }) })
    try {
      const phone = uniquePhone()
      const res = await server.api("POST", "/api/auth/send-verification", { body: { phone_number: phone } })
      expect(res.status).toBe(200)
      expect(seen).toHaveLength(1)
      const [req] = seen
      expect(req!.method).toBe("POST")
      expect(req!.path).toBe(`/2010-04-01/Accounts/${sid}/Messages.json`)
      expect(req!.authorization).toBe(`Basic ${Buffer.from(`${sid}:${authToken}`).toString("base64")}`)
      expect(req!.contentType).toStartWith("application/x-www-form-urlencoded")
      expect(req!.form.get("To")).toBe(phone)
      expect(req!.form.get("From")).toBe("+15005550006")
      expect(req!.form.get("Body")).toMatch(/^Your URGE code is \d{6}\. It expires in 5 minutes\.$/)
      // The code went by SMS, not to the log.
      const code = /\d{6}/.exec(req!.form.get("Body")!)![0]
      expect(server.logs.join("\n")).not.toContain(code)
      // And it works.
      const login = await server.api("POST", "/api/auth/verify-phone", {
        body: { phone_number: phone, code },
      })
      expect(login.status).toBe(200)
    } finally {
      await server.stop()
    }
  })

  test("a messaging service is used instead of From when configured", async () => {
    seen = []
    const server = await startTestServer({
      config: twilioConfig({
        "sms.twilio_from": "+15005550006",
        "sms.twilio_messaging_service_sid": "MG123",
      }),
    })
    try {
      await server.api("POST", "/api/auth/send-verification", { body: { phone_number: uniquePhone() } })
      expect(seen[0]!.form.get("MessagingServiceSid")).toBe("MG123")
      expect(seen[0]!.form.has("From")).toBe(false)
    } finally {
      await server.stop()
    }
  })

  test("Twilio refusing the message gives 503 sms.unavailable, never a 500", async () => {
    const server = await startTestServer({ config: twilioConfig({ "sms.twilio_from": "+15005550006" }) })
    try {
      failNext = true
      const res = await server.api("POST", "/api/auth/send-verification", {
        body: { phone_number: uniquePhone() },
      })
      expect(res.status).toBe(503)
      expect(res.body.code).toBe("sms.unavailable")
      expect(server.logs.join("\n")).not.toContain(authToken)
    } finally {
      await server.stop()
    }
  })

  test("missing credentials or sender are configuration errors naming the key", () => {
    const dir = mkdtempSync(join(tmpdir(), "urge-sms-"))
    const build = (overrides: Record<string, unknown>) => () =>
      createDeps(
        loadConfig({ env: {}, overrides: { "data.dir": dir, "auth.jwt_secret": "x", ...overrides } }),
        {
          logger: createLogger("error"),
        },
      )
    expect(build({ "sms.driver": "twilio" })).toThrow(/sms.twilio_account_sid/)
    expect(
      build({ "sms.driver": "twilio", "sms.twilio_account_sid": sid, "sms.twilio_auth_token": "t" }),
    ).toThrow(/sms.twilio_from/)
  })
})

describe("production mode", () => {
  test("refuses to serve with the console driver unless allowed", async () => {
    const dir = mkdtempSync(join(tmpdir(), "urge-prod-"))
    const config = (extra: Record<string, unknown>) =>
      loadConfig({
        env: {},
        overrides: {
          "data.dir": dir,
          "server.host": "127.0.0.1",
          "server.port": 0,
          "server.mode": "production",
          "auth.jwt_secret": "x",
          ...extra,
        },
      })
    const refused = createDeps(config({}), { logger: createLogger("error") })
    await expect(startServer(refused)).rejects.toThrow(/sms.driver is console in production/)
    await refused.close()
    const allowed = createDeps(config({ "sms.allow_console_in_production": true }), {
      logger: createLogger("error"),
    })
    const running = await startServer(allowed)
    expect((await fetch(`${running.url}/health`)).status).toBe(200)
    await running.stop()
  })
})
