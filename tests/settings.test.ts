import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test"
import {
  blockedEitherWayAmong,
  getNotificationSettings,
  getPrivacySettings,
  isBlockedEitherWay,
} from "../src/settings/settings.repository.ts"
import { type TestServer, startTestServer } from "./helpers/server.ts"
import { signUp, type SignedUpUser } from "./helpers/users.ts"

// argon2id (64 MiB per hash) on a loaded 2-core machine can take seconds: no speed is asserted here.
setDefaultTimeout(30_000)

let server: TestServer
let alice: SignedUpUser
let bob: SignedUpUser
let carol: SignedUpUser
beforeAll(async () => {
  server = await startTestServer()
  ;[alice, bob, carol] = await Promise.all([signUp(server), signUp(server), signUp(server)])
})
afterAll(() => server.stop())

describe("blocking", () => {
  test("block, check both ways, list, unblock", async () => {
    const db = server.deps.database.db
    expect(await isBlockedEitherWay(db, alice.user.id, bob.user.id)).toBe(false)
    const blocked = await server.api("POST", `/api/settings/privacy/block/${bob.user.id}`, {
      token: alice.accessToken,
    })
    expect(blocked.status).toBe(200)
    expect(blocked.body).toMatchObject({ success: true, blocked_users: [bob.user.id] })

    expect(await isBlockedEitherWay(db, alice.user.id, bob.user.id)).toBe(true)
    expect(await isBlockedEitherWay(db, bob.user.id, alice.user.id)).toBe(true)
    expect(await isBlockedEitherWay(db, alice.user.id, carol.user.id)).toBe(false)
    expect(await blockedEitherWayAmong(db, bob.user.id, [alice.user.id, carol.user.id])).toEqual(
      new Set([alice.user.id]),
    )

    const mine = await server.api("GET", `/api/settings/privacy/blocked/check/${bob.user.id}`, {
      token: alice.accessToken,
    })
    expect(mine.body).toEqual({ i_blocked_them: true, they_blocked_me: false, is_blocked: true })
    const theirs = await server.api("GET", `/api/settings/privacy/blocked/check/${alice.user.id}`, {
      token: bob.accessToken,
    })
    expect(theirs.body).toEqual({ i_blocked_them: false, they_blocked_me: true, is_blocked: true })
    const none = await server.api("GET", `/api/settings/privacy/blocked/check/${carol.user.id}`, {
      token: alice.accessToken,
    })
    expect(none.body).toEqual({ i_blocked_them: false, they_blocked_me: false, is_blocked: false })

    const list = await server.api("GET", "/api/settings/privacy/blocked", { token: alice.accessToken })
    expect(list.body).toEqual({
      blocked_users: [
        { id: bob.user.id, display_name: bob.user.display_name, phone_number: bob.phone, avatar_url: null },
      ],
    })
    expect(
      (await server.api("GET", "/api/settings/privacy", { token: alice.accessToken })).body
        .blocked_users_count,
    ).toBe(1)

    // A blocked user's view of the blocker hides presence details and photo.
    const seen = await server.api("GET", `/api/users/${alice.user.id}`, { token: bob.accessToken })
    expect(seen.body).toMatchObject({
      id: alice.user.id,
      is_online: false,
      last_seen: null,
      avatar_url: null,
    })

    const unblocked = await server.api("DELETE", `/api/settings/privacy/unblock/${bob.user.id}`, {
      token: alice.accessToken,
    })
    expect(unblocked.status).toBe(200)
    expect(unblocked.body).toMatchObject({ success: true, blocked_users: [] })
    expect(await isBlockedEitherWay(db, alice.user.id, bob.user.id)).toBe(false)
  })

  test("refusals: self, twice, unknown user, not blocked, guest", async () => {
    const self = await server.api("POST", `/api/settings/privacy/block/${carol.user.id}`, {
      token: carol.accessToken,
    })
    expect(self.status).toBe(400)
    expect(self.body).toEqual({ detail: "You cannot block yourself", code: "settings.block_self" })
    expect(
      (await server.api("POST", `/api/settings/privacy/block/${alice.user.id}`, { token: carol.accessToken }))
        .status,
    ).toBe(200)
    const twice = await server.api("POST", `/api/settings/privacy/block/${alice.user.id}`, {
      token: carol.accessToken,
    })
    expect(twice.status).toBe(400)
    expect(twice.body.detail).toBe("User is already blocked")
    for (const id of [Bun.randomUUIDv7(), "not-a-uuid"]) {
      const res = await server.api("POST", `/api/settings/privacy/block/${id}`, { token: carol.accessToken })
      expect(res.status).toBe(404)
      expect(res.body.detail).toBe("User not found")
    }
    const notBlocked = await server.api("DELETE", `/api/settings/privacy/unblock/${bob.user.id}`, {
      token: carol.accessToken,
    })
    expect(notBlocked.status).toBe(404)
    expect(notBlocked.body.detail).toBe("User is not blocked")
    expect((await server.api("POST", `/api/settings/privacy/block/${bob.user.id}`)).status).toBe(401)
    expect((await server.api("GET", "/api/settings/privacy/blocked")).status).toBe(401)
  })
})

describe("privacy settings", () => {
  test("defaults true; PUT with query strings, no body; the reader sees it", async () => {
    const initial = await server.api("GET", "/api/settings/privacy", { token: bob.accessToken })
    expect(initial.body).toEqual({
      show_online_status: true,
      show_last_seen: true,
      show_profile_photo: true,
      show_read_receipts: true,
      blocked_users_count: 0,
    })
    const put = await server.api(
      "PUT",
      "/api/settings/privacy?show_online_status=false&show_read_receipts=false",
      {
        token: bob.accessToken,
      },
    )
    expect(put.status).toBe(200)
    expect(put.body).toMatchObject({
      success: true,
      settings: {
        show_online_status: false,
        show_last_seen: true,
        show_profile_photo: true,
        show_read_receipts: false,
      },
    })
    expect(await getPrivacySettings(server.deps.database.db, bob.user.id)).toEqual({
      show_online_status: false,
      show_last_seen: true,
      show_profile_photo: true,
      show_read_receipts: false,
    })
    // Only what is given changes.
    await server.api("PUT", "/api/settings/privacy?show_last_seen=false", { token: bob.accessToken })
    const after = await server.api("GET", "/api/settings/privacy", { token: bob.accessToken })
    expect(after.body).toMatchObject({
      show_online_status: false,
      show_last_seen: false,
      show_read_receipts: false,
    })
    // Others no longer see Bob's last seen.
    const seen = await server.api("GET", `/api/users/${bob.user.id}/status`, { token: carol.accessToken })
    expect(seen.body).toEqual({ user_id: bob.user.id, is_online: false, last_seen: null })
    const own = await server.api("GET", "/api/users/me", { token: bob.accessToken })
    expect(own.body.last_seen).not.toBeNull()
  })

  test("a value that is not a boolean is 422", async () => {
    const res = await server.api("PUT", "/api/settings/privacy?show_last_seen=maybe", {
      token: bob.accessToken,
    })
    expect(res.status).toBe(422)
    expect(res.body.code).toBe("request.invalid")
    expect(res.body.detail[0].msg).toBe("Must be true or false")
  })
})

describe("notification settings", () => {
  test("GET gives both casings; PUT accepts snake (the app) and camel (the original)", async () => {
    const initial = await server.api("GET", "/api/settings/notifications", { token: carol.accessToken })
    expect(initial.body.settings).toMatchObject({
      enabled: true,
      show_preview: true,
      sound: true,
      vibration: true,
      message_notifications: true,
      group_notifications: true,
    })
    expect(initial.body).toMatchObject({ enabled: true, showPreview: true, messageNotifications: true })

    const snake = await server.api("PUT", "/api/settings/notifications", {
      token: carol.accessToken,
      body: { show_preview: false, group_notifications: false, unknown: 1 },
    })
    expect(snake.status).toBe(200)
    const camel = await server.api("PUT", "/api/settings/notifications", {
      token: carol.accessToken,
      body: { messageNotifications: false },
    })
    expect(camel.status).toBe(200)
    expect(await getNotificationSettings(server.deps.database.db, carol.user.id)).toEqual({
      enabled: true,
      show_preview: false,
      sound: true,
      vibration: true,
      message_notifications: false,
      group_notifications: false,
    })
    const after = await server.api("GET", "/api/settings/notifications", { token: carol.accessToken })
    expect(after.body).toMatchObject({
      settings: { show_preview: false, message_notifications: false, group_notifications: false },
      showPreview: false,
      messageNotifications: false,
      groupNotifications: false,
    })
    const bad = await server.api("PUT", "/api/settings/notifications", {
      token: carol.accessToken,
      body: { sound: "loud" },
    })
    expect(bad.status).toBe(422)
  })
})

describe("features not available yet answer 501 (CONTRACT A6)", () => {
  test("subscriptions and 2FA", async () => {
    for (const [method, path] of [
      ["GET", "/api/account/subscriptions"],
      ["POST", "/api/account/subscriptions/subscribe"],
      ["POST", "/api/account/subscriptions/cancel"],
      ["POST", "/api/account/subscriptions/verify-payment?reference=x"],
      ["GET", "/api/settings/security/2fa/status"],
      ["POST", "/api/settings/security/2fa/setup"],
      ["POST", "/api/settings/security/2fa/verify"],
    ] as const) {
      const res = await server.api(method, path, { token: alice.accessToken })
      expect(res.status).toBe(501)
      expect(res.body).toEqual({ detail: expect.any(String), code: "feature.unavailable" })
      expect((await server.api(method, path)).status).toBe(401)
    }
  })
})
