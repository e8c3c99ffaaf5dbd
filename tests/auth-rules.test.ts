import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test"
import type { DomainEvent } from "../src/events.ts"
import { type TestServer, startTestServer } from "./helpers/server.ts"
import { lastCodeFor, requestCode, signUp, uniquePhone } from "./helpers/users.ts"

// argon2id (64 MiB per hash) on a loaded 2-core machine can take seconds: no speed is asserted here.
setDefaultTimeout(30_000)

let server: TestServer
const events: DomainEvent[] = []
beforeAll(async () => {
  server = await startTestServer()
  server.deps.events.subscribe((e) => events.push(e))
})
afterAll(() => server.stop())

const verify = (phone: string, code: string) =>
  server.api("POST", "/api/auth/verify-phone", { body: { phone_number: phone, code } })
const login = (phone: string, code: string) =>
  server.api("POST", "/api/auth/login", { body: { phone_number: phone, verification_code: code } })
const wrong = (code: string) => String((Number(code) + 1) % 1_000_000).padStart(6, "0")

describe("one-time codes", () => {
  test("a code expires after 5 minutes", async () => {
    const { phone } = await signUp(server)
    server.clock.advance(60_000)
    const code = await requestCode(server, phone)
    server.clock.advance(5 * 60 * 1000 - 1)
    expect((await verify(phone, code)).status).toBe(200)
    server.clock.advance(1)
    const expired = await login(phone, code)
    expect(expired.status).toBe(401)
    expect(expired.body.code).toBe("auth.code_expired")
  })

  test("5 wrong tries kill the code, even the right one after", async () => {
    const phone = uniquePhone()
    const code = await requestCode(server, phone)
    for (let i = 0; i < 4; i++) {
      const res = await verify(phone, wrong(code))
      expect(res.status).toBe(400)
      expect(res.body.code).toBe("auth.code_invalid")
    }
    // A right try in between is not counted against the limit.
    expect((await verify(phone, code)).status).toBe(200)
    expect((await verify(phone, wrong(code))).status).toBe(400)
    const dead = await verify(phone, code)
    expect(dead.status).toBe(400)
    expect(dead.body.code).toBe("auth.code_exhausted")
  })

  test("parallel guesses cannot exceed the limit", async () => {
    const phone = uniquePhone()
    const code = await requestCode(server, phone)
    const guesses = Array.from({ length: 20 }, (_, i) =>
      String((Number(code) + 1 + i) % 1_000_000).padStart(6, "0"),
    )
    const answers = await Promise.all(guesses.map((g) => verify(phone, g)))
    // Exactly 5 guesses were compared; the other 15 found the code already dead.
    expect(answers.filter((a) => a.body.code === "auth.code_invalid")).toHaveLength(5)
    expect(answers.filter((a) => a.body.code === "auth.code_exhausted")).toHaveLength(15)
    expect((await verify(phone, code)).body.code).toBe("auth.code_exhausted")
  })

  test("resend cool-down: 429 with Retry-After, then a new code replaces the old", async () => {
    const phone = uniquePhone()
    const first = await requestCode(server, phone)
    const again = await server.api("POST", "/api/auth/send-verification", { body: { phone_number: phone } })
    expect(again.status).toBe(429)
    expect(again.body.code).toBe("auth.code_cooldown")
    expect(Number(again.headers.get("retry-after"))).toBe(30)
    server.clock.advance(30_000)
    const second = await requestCode(server, phone)
    if (second !== first) expect((await verify(phone, first)).status).toBe(400)
    expect((await verify(phone, second)).status).toBe(200)
  })

  test("no universal code: 123456 and any 6 characters fail", async () => {
    const phone = uniquePhone()
    const code = await requestCode(server, phone)
    for (const guess of ["123456", "000000", "abcdef"].filter((g) => g !== code))
      expect((await verify(phone, guess)).status).toBe(400)
    expect((await verify(uniquePhone(), "123456")).status).toBe(400)
  })

  test("codes are stored hashed", async () => {
    const phone = uniquePhone()
    const code = await requestCode(server, phone)
    const row = await server.deps.database.db
      .selectFrom("otp_codes")
      .selectAll()
      .where("phone_number", "=", phone)
      .executeTakeFirstOrThrow()
    expect(JSON.stringify(row)).not.toContain(code)
  })

  test("a login code for a number with no account: User not found only once the code is right", async () => {
    const phone = uniquePhone()
    const code = await requestCode(server, phone)
    expect((await login(phone, wrong(code))).body.code).toBe("auth.code_invalid")
    const res = await login(phone, code)
    expect(res.status).toBe(401)
    expect(res.body.code).toBe("auth.user_not_found")
    // The code was not used up: the person registers and signs in with it.
    expect((await server.api("POST", "/api/auth/register", { body: { phone_number: phone } })).status).toBe(
      200,
    )
    expect((await login(phone, code)).status).toBe(200)
  })

  test("someone who registered another person's number loses it when the owner signs in with a code", async () => {
    const phone = uniquePhone()
    // The squatter registers without any code, with a password.
    const squat = await server.api("POST", "/api/auth/register", {
      body: { phone_number: phone, password: "squatter-password" },
    })
    expect(squat.status).toBe(200)
    server.clock.advance(1000)
    // The owner gets a code on their phone and logs in.
    const owner = await login(phone, await requestCode(server, phone))
    expect(owner.status).toBe(200)
    expect(owner.body.user.is_verified).toBe(true)
    expect((await server.api("GET", "/api/auth/me", { token: squat.body.access_token })).status).toBe(401)
    const squatterAgain = await server.api("POST", "/api/auth/login", {
      body: { phone_number: phone, password: "squatter-password" },
    })
    expect(squatterAgain.status).toBe(401)
    expect((await server.api("GET", "/api/auth/me", { token: owner.body.access_token })).status).toBe(200)
  })
})

describe("forgot / verify-reset-code / reset-password", () => {
  test("full reset: same answer for unknown numbers, sessions end, new password works", async () => {
    const u = await signUp(server, { password: "old password 1" })
    const other = await server.api("POST", "/api/auth/login", {
      body: { phone_number: u.phone, password: "old password 1" },
    })
    const stranger = uniquePhone()
    const known = await server.api("POST", "/api/auth/forgot-password", { body: { phone_number: u.phone } })
    const unknown = await server.api("POST", "/api/auth/forgot-password", {
      body: { phone_number: stranger },
    })
    expect(known.status).toBe(200)
    expect(unknown.status).toBe(200)
    expect(unknown.body).toEqual(known.body)
    expect(lastCodeFor(server, stranger)).toBeUndefined()
    // Asking again inside the cool-down answers the same (no 429 that would tell the number has an account).
    expect(
      (await server.api("POST", "/api/auth/forgot-password", { body: { phone_number: u.phone } })).body,
    ).toEqual(known.body)

    const { waitFor } = await import("./helpers/wait.ts")
    const code = await waitFor(() => {
      const line = server.logs.findLast((l) => l.includes("reset code") && l.includes(u.phone))
      return line && /\b(\d{6})\b/.exec(JSON.parse(line).text)?.[1]
    })
    expect(
      (
        await server.api("POST", "/api/auth/verify-reset-code", {
          body: { phone_number: u.phone, code: wrong(code) },
        })
      ).status,
    ).toBe(400)
    const checked = await server.api("POST", "/api/auth/verify-reset-code", {
      body: { phone_number: u.phone, code },
    })
    expect(checked.status).toBe(200)
    expect(checked.body.success).toBe(true)
    // A reset code is not a sign-in code.
    expect((await login(u.phone, code)).status).toBe(401)

    const short = await server.api("POST", "/api/auth/reset-password", {
      body: { phone_number: u.phone, code, new_password: "short" },
    })
    expect(short.status).toBe(422)
    const reset = await server.api("POST", "/api/auth/reset-password", {
      body: { phone_number: u.phone, code, new_password: "new password 2" },
    })
    expect(reset.status).toBe(200)
    // Consumed.
    const twice = await server.api("POST", "/api/auth/reset-password", {
      body: { phone_number: u.phone, code, new_password: "new password 3" },
    })
    expect(twice.status).toBe(400)

    for (const token of [u.accessToken, other.body.access_token])
      expect((await server.api("GET", "/api/auth/me", { token })).status).toBe(401)
    const ended = events.find((e) => e.type === "session.ended" && e.userId === u.user.id)
    const sid = (token: string) => JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString()).sid
    expect(ended && ended.type === "session.ended" && ended.sessionIds).toEqual(
      expect.arrayContaining([sid(u.accessToken), sid(other.body.access_token)]),
    )
    const oldPw = await server.api("POST", "/api/auth/login", {
      body: { phone_number: u.phone, password: "old password 1" },
    })
    expect(oldPw.status).toBe(401)
    const newPw = await server.api("POST", "/api/auth/login", {
      body: { phone_number: u.phone, password: "new password 2" },
    })
    expect(newPw.status).toBe(200)
  })

  test("verify-reset-code for a number with no account reads like a wrong code", async () => {
    const res = await server.api("POST", "/api/auth/verify-reset-code", {
      body: { phone_number: uniquePhone(), code: "123456" },
    })
    expect(res.status).toBe(400)
    expect(res.body.code).toBe("auth.code_invalid")
  })
})

describe("sessions", () => {
  test("list shows each login with its device; revoking one stops its token at once", async () => {
    const u = await signUp(server)
    const phone2 = await server.api("POST", "/api/auth/login", {
      body: {
        phone_number: u.phone,
        verification_code: await (async () => {
          server.clock.advance(31_000)
          return requestCode(server, u.phone)
        })(),
        device_name: "Pixel 9",
        platform: "android",
      },
      headers: { "user-agent": "okhttp/4" },
    })
    expect(phone2.status).toBe(200)
    const list = await server.api("GET", "/api/auth/sessions", { token: u.accessToken })
    expect(list.status).toBe(200)
    const pixel = list.body.sessions.find((s: any) => s.device_name === "Pixel 9")
    expect(pixel).toMatchObject({ platform: "android", ip: "127.0.0.1", current: false })
    expect(list.body.sessions.filter((s: any) => s.current)).toHaveLength(1)
    expect(pixel.created_at).toMatch(/Z$/)

    // Someone else's session id, an unknown id, a malformed id: 404.
    const stranger = await signUp(server)
    for (const id of [pixel.id, "nope", Bun.randomUUIDv7()]) {
      const res = await server.api("DELETE", `/api/auth/sessions/${id}`, { token: stranger.accessToken })
      expect(res.status).toBe(404)
    }
    expect((await server.api("GET", "/api/auth/me", { token: phone2.body.access_token })).status).toBe(200)

    const revoked = await server.api("DELETE", `/api/auth/sessions/${pixel.id}`, { token: u.accessToken })
    expect(revoked.status).toBe(200)
    expect((await server.api("GET", "/api/auth/me", { token: phone2.body.access_token })).status).toBe(401)
    expect(
      (await server.api("POST", "/api/auth/refresh", { body: { refresh_token: phone2.body.refresh_token } }))
        .status,
    ).toBe(401)
    expect(events).toContainEqual({ type: "session.ended", userId: u.user.id, sessionIds: [pixel.id] })
    expect((await server.api("GET", "/api/auth/me", { token: u.accessToken })).status).toBe(200)
    expect((await server.api("GET", "/api/auth/sessions")).status).toBe(401)
  })

  test("refresh slides the session: it lives 7 days after the last refresh", async () => {
    const u = await signUp(server)
    server.clock.advance(6 * 86_400_000)
    expect(
      (await server.api("POST", "/api/auth/refresh", { body: { refresh_token: u.refreshToken } })).status,
    ).toBe(200)
    server.clock.advance(6 * 86_400_000)
    expect(
      (await server.api("POST", "/api/auth/refresh", { body: { refresh_token: u.refreshToken } })).status,
    ).toBe(200)
    server.clock.advance(7 * 86_400_000)
    expect(
      (await server.api("POST", "/api/auth/refresh", { body: { refresh_token: u.refreshToken } })).status,
    ).toBe(401)
  })

  test("a refresh token is not an access token, and garbage is refused", async () => {
    const u = await signUp(server)
    expect((await server.api("GET", "/api/auth/me", { token: u.refreshToken })).status).toBe(401)
    expect(
      (await server.api("POST", "/api/auth/refresh", { body: { refresh_token: "garbage" } })).status,
    ).toBe(401)
  })
})

describe("configuration", () => {
  test("rotation on: a new refresh token each time, the old one retired", async () => {
    const rotating = await startTestServer({ config: { "auth.rotate_refresh_tokens": true } })
    try {
      const u = await signUp(rotating)
      const first = await rotating.api("POST", "/api/auth/refresh", {
        body: { refresh_token: u.refreshToken },
      })
      expect(first.status).toBe(200)
      expect(first.body.refresh_token).not.toBe(u.refreshToken)
      expect(
        (await rotating.api("POST", "/api/auth/refresh", { body: { refresh_token: u.refreshToken } })).status,
      ).toBe(401)
      expect(
        (
          await rotating.api("POST", "/api/auth/refresh", {
            body: { refresh_token: first.body.refresh_token },
          })
        ).status,
      ).toBe(200)
    } finally {
      await rotating.stop()
    }
  })

  test("access tokens can live seconds", async () => {
    const strict = await startTestServer({ config: { "auth.access_token_ttl": "5s" } })
    try {
      const u = await signUp(strict)
      expect((await strict.api("GET", "/api/auth/me", { token: u.accessToken })).status).toBe(200)
      strict.clock.advance(5000)
      expect((await strict.api("GET", "/api/auth/me", { token: u.accessToken })).status).toBe(401)
    } finally {
      await strict.stop()
    }
  })
})

describe("rate limits", () => {
  let limited: TestServer
  beforeAll(async () => {
    limited = await startTestServer({
      config: {
        "rate_limit.enabled": true,
        "rate_limit.login_per_ip": "3/1m",
        "rate_limit.send_code_per_phone": "2/1h",
        "auth.otp_resend_cooldown": 0,
        "server.trust_proxy": true,
      },
    })
  })
  afterAll(() => limited.stop())

  const loginFrom = (ip: string) =>
    limited.api("POST", "/api/auth/login", {
      body: { phone_number: "+15550000001", password: "whatever1" },
      headers: { "x-forwarded-for": `203.0.113.99, ${ip}` },
    })

  test("per IP: 429 with Retry-After once over, other IPs unaffected, open again after the window", async () => {
    for (let i = 0; i < 3; i++) expect((await loginFrom("198.51.100.1")).status).toBe(401)
    const over = await loginFrom("198.51.100.1")
    expect(over.status).toBe(429)
    expect(over.body.code).toBe("auth.rate_limited")
    expect(Number(over.headers.get("retry-after"))).toBe(60)
    // The last X-Forwarded-For entry is the client (trust_proxy): another one has its own budget.
    expect((await loginFrom("198.51.100.2")).status).toBe(401)
    limited.clock.advance(60_000)
    expect((await loginFrom("198.51.100.1")).status).toBe(401)
  })

  test("per phone: the same number from many IPs is limited", async () => {
    const phone = uniquePhone()
    const send = (ip: string) =>
      limited.api("POST", "/api/auth/send-verification", {
        body: { phone_number: phone },
        headers: { "x-forwarded-for": ip },
      })
    expect((await send("192.0.2.1")).status).toBe(200)
    expect((await send("192.0.2.2")).status).toBe(200)
    const over = await send("192.0.2.3")
    expect(over.status).toBe(429)
    expect(Number(over.headers.get("retry-after"))).toBeGreaterThan(0)
  })

  test("per IP through the root alias (the app's production base URL has no /api), without a proxy", async () => {
    const direct = await startTestServer({
      config: { "rate_limit.enabled": true, "rate_limit.login_per_ip": "2/1m" },
    })
    try {
      const login = () =>
        direct.api("POST", "/auth/login", { body: { phone_number: "+15550000002", password: "whatever1" } })
      expect((await login()).status).toBe(401)
      expect((await login()).status).toBe(401)
      expect((await login()).status).toBe(429)
    } finally {
      await direct.stop()
    }
  })

  test("defaults are on", async () => {
    const { loadConfig } = await import("../src/config.ts")
    const config = loadConfig({ env: {} })
    expect(config.rate_limit.enabled).toBe(true)
    expect(config.rate_limit.login_per_ip).toEqual({ limit: 30, windowSeconds: 600 })
  })
})
