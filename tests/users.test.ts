import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test"
import { runCli } from "./helpers/cli.ts"
import { type TestServer, startTestServer } from "./helpers/server.ts"
import { signUp, type SignedUpUser, uniquePhone } from "./helpers/users.ts"

// argon2id (64 MiB per hash) on a loaded 2-core machine can take seconds: no speed is asserted here.
setDefaultTimeout(30_000)

let server: TestServer
let ada: SignedUpUser
let bo: SignedUpUser
let cy: SignedUpUser
beforeAll(async () => {
  server = await startTestServer()
  ada = await signUp(server, { displayName: "Ada Lovelace" })
  bo = await signUp(server, { displayName: "Bo Diddley" })
  cy = await signUp(server, { displayName: "Cy Twombly" })
})
afterAll(() => server.stop())

const liteKeys = ["avatar_url", "bio", "display_name", "id", "is_online", "last_seen", "phone_number"]

describe("/users", () => {
  test("list: everyone but the caller, total counts everyone, paginated", async () => {
    const res = await server.api("GET", "/api/users?limit=50&offset=0", { token: ada.accessToken })
    expect(res.status).toBe(200)
    expect(res.body).toMatchObject({ total: 3, limit: 50, offset: 0 })
    expect(res.body.users.map((u: any) => u.id)).toEqual([bo.user.id, cy.user.id])
    expect(Object.keys(res.body.users[0]).sort()).toEqual(liteKeys)
    const page = await server.api("GET", "/api/users?limit=1&offset=1", { token: ada.accessToken })
    expect(page.body.users.map((u: any) => u.id)).toEqual([cy.user.id])
    expect((await server.api("GET", "/users?limit=100", { token: ada.accessToken })).status).toBe(200)
    expect((await server.api("GET", "/api/users?limit=0", { token: ada.accessToken })).status).toBe(422)
    expect((await server.api("GET", "/api/users?limit=abc", { token: ada.accessToken })).status).toBe(422)
    expect((await server.api("GET", "/api/users")).status).toBe(401)
  })

  test("search: name or phone, case-insensitive, self excluded, wildcards literal", async () => {
    const byName = await server.api("GET", "/api/users/search?q=dIdD", { token: ada.accessToken })
    expect(byName.body.users.map((u: any) => u.id)).toEqual([bo.user.id])
    expect(byName.body.total).toBe(1)
    const self = await server.api("GET", "/api/users/search?q=lovelace", { token: ada.accessToken })
    expect(self.body.users).toEqual([])
    const digits = cy.phone.slice(-7)
    const byPhone = await server.api("GET", `/api/users/search?q=${encodeURIComponent(digits)}`, {
      token: ada.accessToken,
    })
    expect(byPhone.body.users.map((u: any) => u.id)).toEqual([cy.user.id])
    const wildcard = await server.api("GET", "/api/users/search?q=%25", { token: ada.accessToken })
    expect(wildcard.body.users).toEqual([])
    const missing = await server.api("GET", "/api/users/search", { token: ada.accessToken })
    expect(missing.status).toBe(422)
  })

  test("batch, me, by id, status; unknown or malformed ids are 404", async () => {
    const batch = await server.api("POST", "/api/users/batch", {
      token: ada.accessToken,
      body: { user_ids: [cy.user.id, "temp-123", bo.user.id, cy.user.id] },
    })
    expect(batch.body.users.map((u: any) => u.id)).toEqual([cy.user.id, bo.user.id])
    const me = await server.api("GET", "/api/users/me", { token: ada.accessToken })
    expect(me.body).toMatchObject({ id: ada.user.id, phone_number: ada.phone, display_name: "Ada Lovelace" })
    expect(Object.keys(me.body).sort()).toEqual(liteKeys)
    const one = await server.api("GET", `/api/users/${bo.user.id}`, { token: ada.accessToken })
    expect(one.body.id).toBe(bo.user.id)
    const status = await server.api("GET", `/api/users/${bo.user.id}/status`, { token: ada.accessToken })
    expect(status.body).toEqual({
      user_id: bo.user.id,
      is_online: false,
      last_seen: expect.stringMatching(/Z$/),
    })
    for (const id of [Bun.randomUUIDv7(), "nope"]) {
      const res = await server.api("GET", `/api/users/${id}`, { token: ada.accessToken })
      expect(res.status).toBe(404)
      expect(res.body).toEqual({ detail: "User not found", code: "user.not_found" })
      expect((await server.api("GET", `/api/users/${id}/status`, { token: ada.accessToken })).status).toBe(
        404,
      )
    }
  })
})

describe("profile", () => {
  test("PUT /auth/profile accepts every field the app sends; null clears", async () => {
    const u = await signUp(server)
    const res = await server.api("PUT", "/api/auth/profile", {
      token: u.accessToken,
      body: {
        display_name: "  New Name ",
        email: "New@Example.com",
        bio: "Hello",
        avatar_url: "https://cdn.example/a.jpg",
        social_links: { instagram: "@insta", twitter: "tw", linkedin: null, myspace: "x" },
      },
    })
    expect(res.status).toBe(200)
    expect(res.body.success).toBe(true)
    expect(res.body.data).toMatchObject({
      display_name: "New Name",
      email: "new@example.com",
      bio: "Hello",
      avatar_url: "https://cdn.example/a.jpg",
      social_links: { instagram: "insta", twitter: "tw" },
    })
    // ProfileScreen sends {avatar}; EditProfile sends null to clear.
    const avatar = await server.api("PUT", "/api/auth/profile", {
      token: u.accessToken,
      body: { avatar: "https://cdn.example/b.jpg", social_links: { twitter: null } },
    })
    expect(avatar.body.data).toMatchObject({
      avatar_url: "https://cdn.example/b.jpg",
      social_links: { instagram: "insta" },
    })
    const cleared = await server.api("PUT", "/api/auth/profile", {
      token: u.accessToken,
      body: { email: null, bio: null },
    })
    expect(cleared.body.data).toMatchObject({ email: null, bio: null, display_name: "New Name" })
    const me = await server.api("GET", "/api/auth/me", { token: u.accessToken })
    expect(me.body).toMatchObject({
      avatar_url: "https://cdn.example/b.jpg",
      social_links: { instagram: "insta" },
    })
  })

  test("bad profile input: 422 with a message; taken email 409", async () => {
    const u = await signUp(server)
    const badEmail = await server.api("PUT", "/api/auth/profile", {
      token: u.accessToken,
      body: { email: "nope" },
    })
    expect(badEmail.status).toBe(422)
    expect(badEmail.body.detail[0].msg).toBe("Invalid email address")
    const long = await server.api("PUT", "/api/auth/profile", {
      token: u.accessToken,
      body: { bio: "x".repeat(501) },
    })
    expect(long.status).toBe(422)
    const wrongType = await server.api("PUT", "/api/auth/profile", {
      token: u.accessToken,
      body: { display_name: 42 },
    })
    expect(wrongType.status).toBe(422)
    const empty = await server.api("PUT", "/api/auth/profile", {
      token: u.accessToken,
      body: { display_name: "   " },
    })
    expect(empty.status).toBe(400)
    await server.api("PUT", "/api/auth/profile", {
      token: ada.accessToken,
      body: { email: "ada@example.com" },
    })
    const taken = await server.api("PUT", "/api/auth/profile", {
      token: u.accessToken,
      body: { email: "ADA@example.com" },
    })
    expect(taken.status).toBe(409)
    expect(taken.body.code).toBe("user.email_taken")
    expect((await server.api("PUT", "/api/auth/profile", { body: { bio: "x" } })).status).toBe(401)
  })

  test("/account/profile GET and PUT with query parameters", async () => {
    const u = await signUp(server)
    const got = await server.api("GET", "/api/account/profile", { token: u.accessToken })
    expect(got.body).toMatchObject({ success: true, data: { id: u.user.id, subscription_plan: "free" } })
    const put = await server.api("PUT", "/api/account/profile?display_name=Zed&bio=Hi%20there", {
      token: u.accessToken,
    })
    expect(put.status).toBe(200)
    expect(put.body).toMatchObject({ success: true, data: { display_name: "Zed", bio: "Hi there" } })
    expect(
      (await server.api("PUT", "/api/account/profile?display_name=Z", { token: u.accessToken })).status,
    ).toBe(422)
    expect(
      (await server.api("PUT", "/api/account/profile?email=nope", { token: u.accessToken })).status,
    ).toBe(422)
  })

  test("/account/social-links: replace, read, delete one", async () => {
    const u = await signUp(server)
    const put = await server.api("PUT", "/api/account/social-links", {
      token: u.accessToken,
      body: { instagram: " @me ", twitter: "", tiktok: "tok", other: "x" },
    })
    expect(put.body).toMatchObject({ success: true, social_links: { instagram: "me", tiktok: "tok" } })
    expect(Object.keys(put.body.social_links).sort()).toEqual(["instagram", "tiktok"])
    expect((await server.api("GET", "/api/account/social-links", { token: u.accessToken })).body).toEqual({
      social_links: { instagram: "me", tiktok: "tok" },
    })
    const del = await server.api("DELETE", "/api/account/social-links/tiktok", { token: u.accessToken })
    expect(del.body.social_links).toEqual({ instagram: "me" })
    const again = await server.api("DELETE", "/api/account/social-links/tiktok", { token: u.accessToken })
    expect(again.status).toBe(404)
    expect(again.body.detail).toBe("tiktok is not connected")
    expect(
      (await server.api("DELETE", "/api/account/social-links/myspace", { token: u.accessToken })).status,
    ).toBe(400)
  })
})

describe("roles and verification", () => {
  const cliEnv = () => ({
    URGE_DATA_DIR: server.deps.config.data.dir,
    URGE_DATABASE_URL: server.deps.config.database.url,
    URGE_AUTH_JWT_SECRET: "test-secret-test-secret-test-secret",
  })

  test("urge users set-role grants FOUNDER; it applies to live tokens at once", async () => {
    const founder = await signUp(server)
    const out = await runCli(["users", "set-role", founder.phone, "founder"], cliEnv())
    expect(out).toBe(`${founder.phone}: REGULAR -> FOUNDER`)
    expect((await server.api("GET", "/api/auth/me", { token: founder.accessToken })).body.role).toBe(
      "FOUNDER",
    )
    // The reviewer-only route accepts the old token: the role is read from the database, not the token.
    expect(
      (await server.api("GET", "/api/account/verification/pending", { token: founder.accessToken })).status,
    ).toBe(200)
    await expect(runCli(["users", "set-role", founder.phone, "KING"], cliEnv())).rejects.toMatchObject({
      code: "user.invalid_role",
    })
    await expect(runCli(["users", "set-role", uniquePhone(), "REGULAR"], cliEnv())).rejects.toMatchObject({
      status: 404,
    })
  })

  test("request → pending → approve grants VERIFIED; refusals along the way", async () => {
    const reviewer = await signUp(server)
    await runCli(["users", "set-role", reviewer.phone, "CO_FOUNDER"], cliEnv())
    const u = await signUp(server, { displayName: "Wants Badge" })
    const body = { full_name: "Wants Badge", reason: "I am a public figure, really." }
    const young = await server.api("POST", "/api/account/verification/request", {
      token: u.accessToken,
      body,
    })
    expect(young.status).toBe(400)
    expect(young.body.detail).toBe("Your account must be at least 7 days old. Current age: 0 days")
    const short = await server.api("POST", "/api/account/verification/request", {
      token: u.accessToken,
      body: { full_name: "W", reason: "short" },
    })
    expect(short.status).toBe(422)

    // A week later (sessions kept alive by refreshing, as the app does).
    const refresh = async (token: string) =>
      (await server.api("POST", "/api/auth/refresh", { body: { refresh_token: token } })).body
        .access_token as string
    server.clock.advance(4 * 86_400_000)
    await refresh(u.refreshToken)
    await refresh(reviewer.refreshToken)
    server.clock.advance(3 * 86_400_000)
    const accessToken = await refresh(u.refreshToken)
    const reviewerToken = await refresh(reviewer.refreshToken)
    const requested = await server.api("POST", "/api/account/verification/request", {
      token: accessToken,
      body,
    })
    expect(requested.status).toBe(200)
    expect(requested.body).toMatchObject({
      success: true,
      verification_status: "pending",
      request_id: expect.any(String),
    })
    const twice = await server.api("POST", "/api/account/verification/request", { token: accessToken, body })
    expect(twice.status).toBe(400)
    const status = await server.api("GET", "/api/account/verification/status", { token: accessToken })
    expect(status.body).toEqual({
      is_verified: false,
      verification_status: "pending",
      requested_at: expect.any(String),
    })

    // A regular user cannot review.
    expect(
      (await server.api("GET", "/api/account/verification/pending", { token: accessToken })).status,
    ).toBe(403)
    const forbidden = await server.api("POST", `/api/account/verification/review/${u.user.id}`, {
      token: accessToken,
      body: { action: "approve" },
    })
    expect(forbidden.status).toBe(403)

    const pending = await server.api("GET", "/api/account/verification/pending", { token: reviewerToken })
    const mine = pending.body.requests.find((r: any) => r.user_id === u.user.id)
    expect(mine).toMatchObject({
      full_name: "Wants Badge",
      status: "pending",
      user: { display_name: "Wants Badge" },
    })

    const review = await server.api("POST", `/api/account/verification/review/${u.user.id}`, {
      token: reviewerToken,
      body: { action: "approve" },
    })
    expect(review.status).toBe(200)
    expect(review.body).toMatchObject({ success: true, verification_status: "approved", is_verified: true })
    const me = await server.api("GET", "/api/auth/me", { token: accessToken })
    expect(me.body).toMatchObject({ role: "VERIFIED", verification_status: "approved" })
    const none = await server.api("POST", `/api/account/verification/review/${u.user.id}`, {
      token: reviewerToken,
      body: { action: "reject" },
    })
    expect(none.status).toBe(404)
    const badAction = await server.api("POST", `/api/account/verification/review/${u.user.id}`, {
      token: reviewerToken,
      body: { action: "maybe" },
    })
    expect(badAction.status).toBe(422)
  })
})

describe("urge users CLI", () => {
  test("verification-requests lists pending ones; review-verification decides", async () => {
    const u = await signUp(server, { displayName: "Cli Badge" })
    const env = {
      URGE_DATA_DIR: server.deps.config.data.dir,
      URGE_DATABASE_URL: server.deps.config.database.url,
      URGE_AUTH_JWT_SECRET: "test-secret-test-secret-test-secret",
    }
    await server.deps.database.db
      .updateTable("users")
      .set({ created_at: server.clock.now() - 8 * 86_400_000 })
      .where("id", "=", u.user.id)
      .execute()
    const requested = await server.api("POST", "/api/account/verification/request", {
      token: u.accessToken,
      body: { full_name: "Cli Badge", reason: "Well known on the command line." },
    })
    expect(requested.status).toBe(200)
    expect(await runCli(["users", "verification-requests"], env)).toContain(`${u.phone}\t`)
    await expect(runCli(["users", "review-verification", u.phone, "maybe"], env)).rejects.toMatchObject({
      code: "verification.invalid_action",
    })
    expect(
      await runCli(["users", "review-verification", u.phone, "reject", "--reason", "Not enough proof"], env),
    ).toBe(`${u.phone}: rejected`)
    const status = await server.api("GET", "/api/account/verification/status", { token: u.accessToken })
    expect(status.body).toMatchObject({ is_verified: false, verification_status: "rejected" })
    expect((await server.api("GET", "/api/auth/me", { token: u.accessToken })).body.role).toBe("REGULAR")
    await expect(runCli(["users", "review-verification", u.phone, "approve"], env)).rejects.toMatchObject({
      status: 404,
    })
  })

  const cliEnv = () => ({
    URGE_DATA_DIR: server.deps.config.data.dir,
    URGE_DATABASE_URL: server.deps.config.database.url,
    URGE_AUTH_JWT_SECRET: "test-secret-test-secret-test-secret",
  })

  test("create, list, and the created account logs in with its password", async () => {
    const phone = uniquePhone()
    const out = await runCli(
      ["users", "create", phone, "--name", "Op Made", "--password", "operator pw 1", "--role", "VERIFIED"],
      cliEnv(),
    )
    expect(out).toMatch(new RegExp(`^created [0-9a-f-]{36} \\${phone} VERIFIED$`))
    const login = await server.api("POST", "/api/auth/login", {
      body: { phone_number: phone, password: "operator pw 1" },
    })
    expect(login.status).toBe(200)
    expect(login.body.user).toMatchObject({ display_name: "Op Made", role: "VERIFIED", is_verified: true })
    const list = await runCli(["users", "list", "--search", "op made"], cliEnv())
    expect(list).toContain(phone)
    await expect(runCli(["users", "create", phone], cliEnv())).rejects.toMatchObject({
      code: "auth.phone_taken",
    })
    await expect(runCli(["users", "create", "12ab"], cliEnv())).rejects.toMatchObject({
      code: "user.invalid_phone",
    })
  })

  test("revoke-sessions ends every session; tokens stop at once", async () => {
    const u = await signUp(server)
    expect((await server.api("GET", "/api/auth/me", { token: u.accessToken })).status).toBe(200)
    const out = await runCli(["users", "revoke-sessions", u.phone], cliEnv())
    expect(out).toBe(`${u.phone}: 1 session(s) ended`)
    expect((await server.api("GET", "/api/auth/me", { token: u.accessToken })).status).toBe(401)
    expect(
      (await server.api("POST", "/api/auth/refresh", { body: { refresh_token: u.refreshToken } })).status,
    ).toBe(401)
  })
})
