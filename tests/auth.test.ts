import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test"
import { createHmac } from "node:crypto"
import { verifyAccessToken } from "../src/auth/auth.plugin.ts"
import type { DomainEvent } from "../src/events.ts"
import { type TestServer, startTestServer } from "./helpers/server.ts"
import { waitFor } from "./helpers/wait.ts"
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

const secret = "test-secret-test-secret-test-secret"
const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url")
const sign = (header: unknown, payload: unknown, key = secret) => {
  const body = `${b64(header)}.${b64(payload)}`
  return `${body}.${createHmac(header && (header as any).alg === "HS512" ? "sha512" : "sha256", key)
    .update(body)
    .digest("base64url")}`
}
const claimsOf = (token: string) => JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString())

describe("the app's sign-up flow", () => {
  test("send code → register → verify-phone → login with the same code → me → refresh ×2 → logout", async () => {
    const phone = uniquePhone()
    const code = await requestCode(server, phone)
    expect(code).toMatch(/^\d{6}$/)

    const registered = await server.api("POST", "/api/auth/register", {
      body: { phone_number: phone, display_name: "Ada" },
    })
    expect(registered.status).toBe(200)
    expect(registered.body).toMatchObject({
      token_type: "bearer",
      user: { phone_number: phone, display_name: "Ada" },
    })
    expect(registered.body.user).toMatchObject({ role: "REGULAR", is_verified: false, social_links: {} })

    const verified = await server.api("POST", "/api/auth/verify-phone", {
      body: { phone_number: phone, code },
    })
    expect(verified.status).toBe(200)
    expect(verified.body).toMatchObject({ success: true, user: { phone_number: phone, is_verified: true } })
    for (const key of ["token", "access_token", "refresh_token"])
      expect(typeof verified.body[key]).toBe("string")

    const login = await server.api("POST", "/api/auth/login", {
      body: { phone_number: phone, verification_code: code },
    })
    expect(login.status).toBe(200)
    const { access_token, refresh_token, user } = login.body
    expect(user).toMatchObject({
      id: registered.body.user.id,
      is_verified: true,
      verification_status: "none",
    })
    expect(user.created_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
    const claims = claimsOf(access_token)
    expect(claims).toMatchObject({ sub: user.id, role: "REGULAR", type: "access" })
    expect(claims.exp - claims.iat).toBe(15 * 60)

    // The code was consumed by the login.
    const again = await server.api("POST", "/api/auth/login", {
      body: { phone_number: phone, verification_code: code },
    })
    expect(again.status).toBe(401)
    expect(again.body.code).toBe("auth.code_invalid")

    const me = await server.api("GET", "/api/auth/me", { token: access_token })
    expect(me.status).toBe(200)
    expect(me.body).toMatchObject({ id: user.id, phone_number: phone })
    // The root alias answers too (the app's production base URL has no /api).
    expect((await server.api("GET", "/auth/me", { token: access_token })).status).toBe(200)

    // Refresh twice with the same refresh token (the app never stores a new one); an expired bearer is ignored.
    server.clock.advance(16 * 60 * 1000)
    expect((await server.api("GET", "/api/auth/me", { token: access_token })).status).toBe(401)
    let latest = ""
    for (let i = 0; i < 2; i++) {
      const refreshed = await server.api("POST", "/api/auth/refresh", {
        token: access_token,
        body: { refresh_token },
      })
      expect(refreshed.status).toBe(200)
      expect(refreshed.body.refresh_token).toBe(refresh_token)
      expect(refreshed.body.user.id).toBe(user.id)
      latest = refreshed.body.access_token
      expect((await server.api("GET", "/api/auth/me", { token: latest })).status).toBe(200)
    }

    const logout = await server.api("POST", "/api/auth/logout", { token: latest })
    expect(logout.status).toBe(200)
    expect(logout.body).toEqual({ success: true, message: "Logged out successfully" })
    const after = await server.api("GET", "/api/auth/me", { token: latest })
    expect(after.status).toBe(401)
    expect(after.headers.get("www-authenticate")).toBe("Bearer")
    expect(after.body).toEqual({ detail: expect.any(String), code: "auth.session_ended" })
    expect((await server.api("POST", "/api/auth/refresh", { body: { refresh_token } })).status).toBe(401)
    expect(events).toContainEqual({ type: "session.ended", userId: user.id, sessionIds: [claims.sid] })
  })

  test("the app's flow, which sends its stored token on every call, leaves one session", async () => {
    const phone = uniquePhone()
    const code = await requestCode(server, phone)
    const registered = await server.api("POST", "/api/auth/register", { body: { phone_number: phone } })
    const token = registered.body.access_token
    const verified = await server.api("POST", "/api/auth/verify-phone", {
      token,
      body: { phone_number: phone, code },
    })
    const login = await server.api("POST", "/api/auth/login", {
      token,
      body: { phone_number: phone, verification_code: code },
    })
    expect(login.status).toBe(200)
    expect(verified.body.refresh_token).toBe(registered.body.refresh_token)
    expect(login.body.refresh_token).toBe(registered.body.refresh_token)
    expect(claimsOf(login.body.access_token).sid).toBe(claimsOf(token).sid)
    const sessions = await server.api("GET", "/api/auth/sessions", { token: login.body.access_token })
    expect(sessions.body.sessions).toHaveLength(1)
    // The session slid: still refreshable with the one refresh token.
    expect(
      (await server.api("POST", "/api/auth/refresh", { body: { refresh_token: login.body.refresh_token } }))
        .status,
    ).toBe(200)

    // Another user's token, or an ended session's, does not lend its session: a new one opens.
    const other = await signUp(server)
    server.clock.advance(31_000)
    const code2 = await requestCode(server, phone)
    const withOthers = await server.api("POST", "/api/auth/login", {
      token: other.accessToken,
      body: { phone_number: phone, verification_code: code2 },
    })
    expect(withOthers.status).toBe(200)
    expect(claimsOf(withOthers.body.access_token).sid).not.toBe(claimsOf(token).sid)
    expect(claimsOf(withOthers.body.access_token).sid).not.toBe(claimsOf(other.accessToken).sid)
    await server.api("POST", "/api/auth/logout", { token: login.body.access_token })
    server.clock.advance(31_000)
    const code3 = await requestCode(server, phone)
    const afterLogout = await server.api("POST", "/api/auth/login", {
      token: login.body.access_token,
      body: { phone_number: phone, verification_code: code3 },
    })
    expect(afterLogout.status).toBe(200)
    expect(claimsOf(afterLogout.body.access_token).sid).not.toBe(claimsOf(token).sid)
    expect(afterLogout.body.refresh_token).not.toBe(registered.body.refresh_token)
  })

  test("send-code is an alias, and phone numbers are normalised to E.164 everywhere", async () => {
    const digits = uniquePhone().slice(1)
    const pretty = `+${digits.slice(0, 1)} (${digits.slice(1, 4)}) ${digits.slice(4, 7)}-${digits.slice(7)}`
    const sent = await server.api("POST", "/api/auth/send-code", { body: { phone_number: pretty } })
    expect(sent.status).toBe(200)
    expect(sent.body).toEqual({ success: true, message: "Verification code sent" })
    const code = lastCodeFor(server, `+${digits}`)!
    const registered = await server.api("POST", "/api/auth/register", { body: { phone_number: pretty } })
    expect(registered.body.user.phone_number).toBe(`+${digits}`)
    const login = await server.api("POST", "/api/auth/login", {
      body: { phone_number: ` +${digits} `, verification_code: code },
    })
    expect(login.status).toBe(200)
  })

  test("register may carry the code: the number is verified at once; a wrong code is refused", async () => {
    const phone = uniquePhone()
    const code = await requestCode(server, phone)
    const wrongCode = String((Number(code) + 1) % 1_000_000).padStart(6, "0")
    const refused = await server.api("POST", "/api/auth/register", {
      body: { phone_number: phone, verification_code: wrongCode },
    })
    expect(refused.status).toBe(400)
    expect(refused.body.code).toBe("auth.code_invalid")
    const ok = await server.api("POST", "/api/auth/register", {
      body: { phone_number: phone, verification_code: code },
    })
    expect(ok.status).toBe(200)
    expect(ok.body.user.is_verified).toBe(true)
  })

  test("registering a taken number is refused", async () => {
    const { phone } = await signUp(server)
    const res = await server.api("POST", "/api/auth/register", { body: { phone_number: phone } })
    expect(res.status).toBe(409)
    expect(res.body).toEqual({ detail: "Phone number already registered", code: "auth.phone_taken" })
  })

  test("signUp helper gives distinct working users", async () => {
    const [a, b] = await Promise.all([signUp(server), signUp(server)])
    expect(a.user.id).not.toBe(b.user.id)
    expect((await server.api("GET", "/api/auth/me", { token: a.accessToken })).body.id).toBe(a.user.id)
  })
})

describe("password login", () => {
  test("register with a password, log in with it; wrong password and unknown number read the same", async () => {
    const { phone, user } = await signUp(server, { password: "correct horse battery" })
    const ok = await server.api("POST", "/api/auth/login", {
      body: { phone_number: phone, password: "correct horse battery" },
    })
    expect(ok.status).toBe(200)
    expect(ok.body.user.id).toBe(user.id)
    const wrong = await server.api("POST", "/api/auth/login", {
      body: { phone_number: phone, password: "nope nope" },
    })
    const unknown = await server.api("POST", "/api/auth/login", {
      body: { phone_number: uniquePhone(), password: "nope nope" },
    })
    expect(wrong.status).toBe(401)
    expect(unknown.status).toBe(401)
    expect(wrong.body).toEqual(unknown.body)
    expect(wrong.headers.get("www-authenticate")).toBe("Bearer")
  })

  test("neither code nor password: 400", async () => {
    const res = await server.api("POST", "/api/auth/login", { body: { phone_number: uniquePhone() } })
    expect(res.status).toBe(400)
    expect(res.body.code).toBe("auth.credentials_required")
  })

  test("a stored password is argon2id", async () => {
    const { user } = await signUp(server, { password: "argon two id please" })
    const row = await server.deps.database.db
      .selectFrom("users")
      .select("password_hash")
      .where("id", "=", user.id)
      .executeTakeFirstOrThrow()
    expect(row.password_hash).toStartWith("$argon2id$")
  })
})

describe("access tokens", () => {
  let alice: Awaited<ReturnType<typeof signUp>>
  beforeAll(async () => {
    alice = await signUp(server)
  })

  const status = async (token: string | undefined, headers: Record<string, string> = {}) => {
    const res = await server.api("GET", "/api/auth/me", { token, headers })
    if (res.status === 401) {
      expect(res.headers.get("www-authenticate")).toBe("Bearer")
      expect(typeof res.body.detail).toBe("string")
      expect(res.body.code).toStartWith("auth.")
    }
    return res.status
  }

  test("valid token works", async () => {
    expect(await status(alice.accessToken)).toBe(200)
  })

  test("a request a minute or more after the last marks the session used", async () => {
    const user = await signUp(server)
    const lastUsed = async () =>
      (await server.api("GET", "/api/auth/sessions", { token: user.accessToken })).body.sessions[0]
        .last_used_at as string
    const before = await lastUsed()
    server.clock.advance(61_000)
    expect(await status(user.accessToken)).toBe(200)
    // Written off the request's path.
    const after = (await waitFor(async () => {
      const t = await lastUsed()
      return t !== before && t
    })) as string
    expect(Date.parse(after) - Date.parse(before)).toBe(61_000)
  })

  test("missing, malformed, garbage → 401", async () => {
    expect(await status(undefined)).toBe(401)
    expect(await status(undefined, { authorization: "Basic abc" })).toBe(401)
    expect(await status("not.a.jwt")).toBe(401)
    expect(await status("x".repeat(5000))).toBe(401)
  })

  test("alg none, HS512, RS256 header and a tampered payload → 401", async () => {
    const claims = claimsOf(alice.accessToken)
    const [h, p] = alice.accessToken.split(".")
    expect(await status(`${b64({ alg: "none", typ: "JWT" })}.${p}.`)).toBe(401)
    expect(await status(`${b64({ alg: "none", typ: "JWT" })}.${p}.${alice.accessToken.split(".")[2]}`)).toBe(
      401,
    )
    expect(await status(sign({ alg: "HS512", typ: "JWT" }, claims))).toBe(401)
    expect(await status(sign({ alg: "RS256", typ: "JWT" }, claims))).toBe(401)
    const elevated = b64({ ...claims, role: "FOUNDER" })
    expect(await status(`${h}.${elevated}.${alice.accessToken.split(".")[2]}`)).toBe(401)
    // Signed with another key.
    expect(await status(sign({ alg: "HS256", typ: "JWT" }, claims, "another-secret"))).toBe(401)
    // A correctly signed token of the right shape is accepted (the checks above are not vacuous).
    expect(await status(sign({ alg: "HS256", typ: "JWT" }, claims))).toBe(200)
    // ... but not as another type, or for a session that does not exist.
    expect(await status(sign({ alg: "HS256" }, { ...claims, type: "refresh" }))).toBe(401)
    expect(await status(sign({ alg: "HS256" }, { ...claims, sid: Bun.randomUUIDv7() }))).toBe(401)
  })

  // On Postgres concurrent lookups share one query: each request must still get its own session's answer.
  test("concurrent requests of different users, one of them logged out, each get their own answer", async () => {
    const users = await Promise.all(Array.from({ length: 12 }, () => signUp(server)))
    const out = users.pop()!
    await server.api("POST", "/api/auth/logout", { token: out.accessToken })
    const answers = await Promise.all(
      [...users, out, ...users].map((u) => server.api("GET", "/api/auth/me", { token: u.accessToken })),
    )
    const ids = answers.map((r) => (r.status === 200 ? r.body.id : r.status))
    const expected = users.map((u) => u.user.id)
    expect(ids).toEqual([...expected, 401, ...expected])
  })

  test("expired → 401; allowExpired accepts it while the session lives (realtime reconnect)", async () => {
    const user = await signUp(server)
    server.clock.advance(15 * 60 * 1000)
    expect(await status(user.accessToken)).toBe(401)
    const principal = await verifyAccessToken(server.deps, user.accessToken, { allowExpired: true })
    expect(principal).toEqual({
      userId: user.user.id,
      role: "REGULAR",
      sessionId: claimsOf(user.accessToken).sid,
    })
    await expect(verifyAccessToken(server.deps, user.accessToken)).rejects.toMatchObject({ status: 401 })
    await server.api("POST", "/api/auth/logout", {
      token: (await server.api("POST", "/api/auth/refresh", { body: { refresh_token: user.refreshToken } }))
        .body.access_token,
    })
    await expect(
      verifyAccessToken(server.deps, user.accessToken, { allowExpired: true }),
    ).rejects.toMatchObject({
      status: 401,
      code: "auth.session_ended",
    })
    await expect(verifyAccessToken(server.deps, "garbage", { allowExpired: true })).rejects.toMatchObject({
      status: 401,
    })
  })
})

describe("request foundations on a real POST route", () => {
  test("malformed JSON → 400 request.malformed", async () => {
    const res = await server.api("POST", "/api/auth/send-verification", {
      raw: "{not json",
      headers: { "content-type": "application/json" },
    })
    expect(res.status).toBe(400)
    expect(res.body).toEqual({ detail: expect.any(String), code: "request.malformed" })
  })

  test("body over server.body_limit → 413", async () => {
    const res = await server.api("POST", "/api/auth/send-verification", {
      body: { phone_number: "+12345678901", padding: "x".repeat(1024 * 1024 + 10) },
    })
    expect(res.status).toBe(413)
    expect(res.body.code).toBe("request.too_large")
  })

  test("missing field, wrong type, bad phone, over-long name → 422 in the documented shape", async () => {
    const missing = await server.api("POST", "/api/auth/register", { body: {} })
    expect(missing.status).toBe(422)
    expect(missing.body.code).toBe("request.invalid")
    expect(missing.body.detail[0]).toMatchObject({ loc: ["body", "phone_number"], msg: expect.any(String) })
    expect(missing.body.message).toStartWith("phone_number: ")

    const wrongType = await server.api("POST", "/api/auth/register", { body: { phone_number: 12345678901 } })
    expect(wrongType.status).toBe(422)

    const badPhone = await server.api("POST", "/api/auth/send-verification", {
      body: { phone_number: "12ab" },
    })
    expect(badPhone.status).toBe(422)
    expect(badPhone.body.detail[0].msg).toBe(
      "Invalid phone number format. Use international format like +1234567890",
    )

    const longName = await server.api("POST", "/api/auth/register", {
      body: { phone_number: uniquePhone(), display_name: "x".repeat(101) },
    })
    expect(longName.status).toBe(422)
    expect(longName.body.message).toStartWith("display_name: ")

    const noBody = await server.api("POST", "/api/auth/login")
    expect(noBody.status).toBe(422)
  })

  test("unknown body keys are ignored", async () => {
    const res = await server.api("POST", "/api/auth/send-verification", {
      body: { phone_number: uniquePhone(), something: "else" },
    })
    expect(res.status).toBe(200)
  })

  test("no token, refresh token, password or code reaches the log (except the console SMS line)", async () => {
    const password = "very secret password 42"
    const u = await signUp(server, { password })
    const login = await server.api("POST", "/api/auth/login", { body: { phone_number: u.phone, password } })
    await server.api("GET", `/api/auth/me?token=${login.body.access_token}`, {
      token: login.body.access_token,
    })
    await server.api("POST", "/api/auth/refresh", { body: { refresh_token: u.refreshToken } })
    const code = lastCodeFor(server, u.phone)!
    const lines = server.logs.filter((l) => !l.includes("sms (console driver)"))
    const all = lines.join("\n")
    for (const secret of [
      password,
      u.accessToken,
      u.refreshToken,
      login.body.access_token,
      login.body.refresh_token,
    ])
      expect(all).not.toContain(secret)
    expect(lines.filter((l) => l.includes(code) && !/"(duration_ms|time)"/.test(l))).toEqual([])
  })
})
