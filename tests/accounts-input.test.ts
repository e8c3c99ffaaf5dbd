import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test"
import { type TestServer, startTestServer } from "./helpers/server.ts"
import { signUp, type SignedUpUser } from "./helpers/users.ts"

// argon2id (64 MiB per hash) on a loaded 2-core machine can take seconds: no speed is asserted here.
setDefaultTimeout(30_000)

/** Every accounts route gets hostile input: the answer is a 4xx in the error shape, never a 5xx. */
let server: TestServer
let user: SignedUpUser
beforeAll(async () => {
  server = await startTestServer()
  user = await signUp(server)
})
afterAll(() => server.stop())

const routes: [string, string][] = [
  ["POST", "/api/auth/send-verification"],
  ["POST", "/api/auth/send-code"],
  ["POST", "/api/auth/register"],
  ["POST", "/api/auth/verify-phone"],
  ["POST", "/api/auth/login"],
  ["POST", "/api/auth/refresh"],
  ["POST", "/api/auth/forgot-password"],
  ["POST", "/api/auth/verify-reset-code"],
  ["POST", "/api/auth/reset-password"],
  ["PUT", "/api/auth/profile"],
  ["POST", "/api/users/batch"],
  ["PUT", "/api/account/social-links"],
  ["POST", "/api/account/verification/request"],
  ["POST", "/api/account/verification/review/x"],
  ["PUT", "/api/settings/notifications"],
]

const bodies: unknown[] = [
  null,
  [],
  [1, 2],
  "text",
  42,
  true,
  { phone_number: null },
  { phone_number: ["+12345678901"] },
  { phone_number: { $gt: "" } },
  { phone_number: "+1".padEnd(5000, "9") },
  { phone_number: "+12345678901", code: 123456 },
  { phone_number: "+12345678901", code: "1".repeat(5000) },
  { phone_number: "+12345678901", verification_code: null, password: null },
  { phone_number: "+12345678901", password: { toString: 1 } },
  { refresh_token: 5 },
  { refresh_token: "" },
  { user_ids: "abc" },
  { user_ids: Array.from({ length: 501 }, (_, i) => String(i)) },
  { display_name: "\u0000" },
  { social_links: [1] },
  { social_links: { instagram: 5 } },
  { email: 5 },
  { action: null },
  { full_name: 5, reason: [] },
  { enabled: "yes" },
  { __proto__: { admin: true }, constructor: { prototype: {} } },
]

describe("hostile input on accounts routes", () => {
  test("never a 5xx; errors keep the {detail, code} shape", async () => {
    for (const [method, path] of routes)
      for (const body of bodies) {
        const res = await server.api(method, path, { token: user.accessToken, body })
        if (res.status >= 500) throw new Error(`${method} ${path} ${JSON.stringify(body)} → ${res.status}`)
        if (res.status >= 400) {
          expect(res.body.detail).toBeDefined()
          expect(typeof res.body.code).toBe("string")
        }
      }
  })

  test("odd paths and query strings", async () => {
    const paths = [
      "/api/users/%00",
      "/api/users/..%2F..%2Fetc",
      "/api/users/search?q=%27%20or%201%3D1--",
      "/api/users/search?q=" + "a".repeat(101),
      "/api/users?limit=-1",
      "/api/users?offset=abc",
      "/api/settings/privacy/blocked/check/%ZZ",
      "/api/account/social-links/%00",
    ]
    for (const path of paths) {
      const res = await server.api("GET", path, { token: user.accessToken })
      if (res.status >= 500) throw new Error(`GET ${path} → ${res.status}`)
    }
    for (const path of ["/api/auth/sessions/%00", "/api/settings/privacy/unblock/' or 1=1"]) {
      const res = await server.api("DELETE", path, { token: user.accessToken })
      expect(res.status).toBe(404)
    }
    const put = await server.api("PUT", "/api/settings/privacy?show_last_seen=", { token: user.accessToken })
    expect(put.status).toBeLessThan(500)
  })
})

describe("NUL characters (Postgres text cannot hold them)", () => {
  test("refused the same on both databases: 422 in a body or query, 404 in a path", async () => {
    const body = await server.api("PUT", "/api/auth/profile", {
      token: user.accessToken,
      body: { bio: "a\u0000b" },
    })
    expect(body.status).toBe(422)
    expect(body.body.code).toBe("request.invalid")
    const query = await server.api("GET", "/api/users/search?q=a%00b", { token: user.accessToken })
    expect(query.status).toBe(422)
    const path = await server.api("GET", "/api/users/a%00b", { token: user.accessToken })
    expect(path.status).toBe(404)
    // A harmless body is not touched by the check.
    const fine = await server.api("PUT", "/api/auth/profile", {
      token: user.accessToken,
      body: { bio: "u0000 \\u0000" },
    })
    expect(fine.status).toBe(200)
    expect(fine.body.data.bio).toBe("u0000 \\u0000")
  })
})
