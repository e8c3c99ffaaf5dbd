import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { directChat, signUpMany } from "./helpers/messaging.ts"
import { type TestServer, startTestServer } from "./helpers/server.ts"
import type { SignedUpUser } from "./helpers/users.ts"

let server: TestServer
/** founder, then a MEMBER, a co-founder who does not manage members (SUPPORT), a MODERATOR, an outsider. */
let founder: SignedUpUser, member: SignedUpUser, cofounder: SignedUpUser, moderator: SignedUpUser
let outsider: SignedUpUser, target: SignedUpUser, asker: SignedUpUser, newcomer: SignedUpUser
beforeAll(async () => {
  server = await startTestServer()
  ;[founder, member, cofounder, moderator, outsider, target, asker, newcomer] = (await signUpMany(
    server,
    8,
    "GAuthz",
  )) as SignedUpUser[]
})
afterAll(() => server.stop())

/** A fresh group per call: roles set, one event by the founder, one pending join request, a member to act on. */
type Fixture = { groupId: string; eventId: string; requestId: string; code: string; targetId: string }

async function fixture(): Promise<Fixture> {
  const as = (u: SignedUpUser) => ({ token: u.accessToken })
  const created = await server.api("POST", "/api/groups", {
    ...as(founder),
    body: {
      name: "Secret society",
      member_ids: [member, cofounder, moderator, target].map((u) => u.user.id),
    },
  })
  expect(created.status).toBe(200)
  const groupId = created.body.id
  for (const [u, role] of [
    [cofounder, "SUPPORT"],
    [moderator, "MODERATOR"],
  ] as const)
    await server.api("PUT", `/api/groups/${groupId}/members/${u.user.id}/role`, {
      ...as(founder),
      body: { role },
    })
  const event = await server.api("POST", `/api/groups/${groupId}/events`, {
    ...as(founder),
    body: { title: "Secret meeting", start_time: "2031-01-01T00:00:00Z" },
  })
  const code = created.body.settings.invite_link
  await server.api("PUT", `/api/groups/${groupId}/settings`, {
    ...as(founder),
    body: { require_admin_approval: true },
  })
  const pending = await server.api("POST", `/api/groups/join/${code}`, { ...as(asker), body: {} })
  expect(pending.status).toBe(202)
  await server.api("PUT", `/api/groups/${groupId}/settings`, {
    ...as(founder),
    body: { require_admin_approval: false },
  })
  return {
    groupId,
    eventId: event.body.id,
    requestId: pending.body.request_id,
    code,
    targetId: target.user.id,
  }
}

type Actor = "outsider" | "member" | "cofounder" | "moderator" | "founder"
type Row = {
  name: string
  method: string
  path: (f: Fixture) => string
  body?: (f: Fixture) => unknown
  expect: Record<Actor, number>
  /** Which path parts are ids that must 404 when malformed. */
  ids?: (f: Fixture, bad: string) => string
}

const all = (status: number): Record<Actor, number> => ({
  outsider: status,
  member: status,
  cofounder: status,
  moderator: status,
  founder: status,
})
const read = { outsider: 403, member: 200, cofounder: 200, moderator: 200, founder: 200 }
const founderOnly = { outsider: 403, member: 403, cofounder: 403, moderator: 403, founder: 200 }
const admins = { outsider: 403, member: 403, cofounder: 200, moderator: 200, founder: 200 }
const managers = { outsider: 403, member: 403, cofounder: 403, moderator: 200, founder: 200 }

const g = (f: Fixture) => `/api/groups/${f.groupId}`
const rows: Row[] = [
  {
    name: "create",
    method: "POST",
    path: () => "/api/groups",
    body: () => ({ name: "Mine", member_ids: [] }),
    expect: all(200),
  },
  { name: "get", method: "GET", path: g, expect: read, ids: (_, x) => `/api/groups/${x}` },
  {
    name: "get by conversation",
    method: "GET",
    path: (f) => `/api/groups/conversation/${f.groupId}`,
    expect: read,
    ids: (_, x) => `/api/groups/conversation/${x}`,
  },
  {
    name: "members",
    method: "GET",
    path: (f) => `${g(f)}/members`,
    expect: read,
    ids: (_, x) => `/api/groups/${x}/members`,
  },
  {
    name: "events",
    method: "GET",
    path: (f) => `${g(f)}/events`,
    expect: read,
    ids: (_, x) => `/api/groups/${x}/events`,
  },
  {
    name: "update",
    method: "PUT",
    path: g,
    body: () => ({ name: "Renamed" }),
    expect: admins,
    ids: (_, x) => `/api/groups/${x}`,
  },
  {
    name: "settings",
    method: "PUT",
    path: (f) => `${g(f)}/settings`,
    body: () => ({ is_public: true }),
    expect: founderOnly,
    ids: (_, x) => `/api/groups/${x}/settings`,
  },
  {
    name: "regenerate invite link",
    method: "POST",
    path: (f) => `${g(f)}/regenerate-invite-link`,
    body: () => ({}),
    expect: founderOnly,
    ids: (_, x) => `/api/groups/${x}/regenerate-invite-link`,
  },
  {
    name: "add members",
    method: "POST",
    path: (f) => `${g(f)}/members`,
    body: () => ({ user_ids: [newcomer.user.id] }),
    // allow_member_invites is on by default: every member may add (see the test below for off).
    expect: read,
    ids: (_, x) => `/api/groups/${x}/members`,
  },
  {
    name: "remove member",
    method: "DELETE",
    path: (f) => `${g(f)}/members/${f.targetId}`,
    expect: { outsider: 403, member: 403, cofounder: 403, moderator: 200, founder: 200 },
    ids: (f, x) => `${g(f)}/members/${x}`,
  },
  {
    name: "assign role",
    method: "PUT",
    path: (f) => `${g(f)}/members/${f.targetId}/role`,
    body: () => ({ role: "RECRUITER" }),
    expect: founderOnly,
    ids: (f, x) => `${g(f)}/members/${x}/role`,
  },
  {
    name: "transfer ownership",
    method: "POST",
    path: (f) => `${g(f)}/transfer-ownership`,
    body: (f) => ({ new_founder_id: f.targetId }),
    expect: founderOnly,
    ids: (_, x) => `/api/groups/${x}/transfer-ownership`,
  },
  {
    name: "create event",
    method: "POST",
    path: (f) => `${g(f)}/events`,
    body: () => ({ title: "Party", start_time: "2031-02-01T20:00:00Z" }),
    expect: admins,
    ids: (_, x) => `/api/groups/${x}/events`,
  },
  {
    name: "delete someone else's event",
    method: "DELETE",
    path: (f) => `${g(f)}/events/${f.eventId}`,
    expect: founderOnly,
    ids: (f, x) => `${g(f)}/events/${x}`,
  },
  {
    name: "attend",
    method: "POST",
    path: (f) => `${g(f)}/events/${f.eventId}/attend`,
    body: () => ({ status: "going" }),
    expect: read,
    ids: (f, x) => `${g(f)}/events/${x}/attend`,
  },
  {
    name: "list join requests",
    method: "GET",
    path: (f) => `${g(f)}/join-requests`,
    expect: managers,
    ids: (_, x) => `/api/groups/${x}/join-requests`,
  },
  {
    name: "approve join request",
    method: "POST",
    path: (f) => `${g(f)}/join-requests/${f.requestId}/approve`,
    body: () => ({}),
    expect: managers,
    ids: (f, x) => `${g(f)}/join-requests/${x}/approve`,
  },
  {
    name: "reject join request",
    method: "POST",
    path: (f) => `${g(f)}/join-requests/${f.requestId}/reject`,
    body: () => ({}),
    expect: managers,
    ids: (f, x) => `${g(f)}/join-requests/${x}/reject`,
  },
  { name: "delete group", method: "DELETE", path: g, expect: founderOnly, ids: (_, x) => `/api/groups/${x}` },
  {
    name: "leave",
    method: "POST",
    path: (f) => `${g(f)}/leave`,
    body: () => ({}),
    expect: { outsider: 404, member: 200, cofounder: 200, moderator: 200, founder: 403 },
    ids: (_, x) => `/api/groups/${x}/leave`,
  },
  {
    name: "invite preview",
    method: "GET",
    path: (f) => `/api/groups/join/${f.code}`,
    expect: all(200),
    ids: (_, x) => `/api/groups/join/${x}`,
  },
  {
    name: "join by code",
    method: "POST",
    path: (f) => `/api/groups/join/${f.code}`,
    body: () => ({}),
    expect: { outsider: 200, member: 400, cofounder: 400, moderator: 400, founder: 400 },
    ids: (_, x) => `/api/groups/join/${x}`,
  },
]

const actors = (): Record<Actor, SignedUpUser> => ({ outsider, member, cofounder, moderator, founder })

describe("authorization of every group endpoint", () => {
  for (const row of rows) {
    test(`${row.method} ${row.name}: guest 401, ${Object.entries(row.expect)
      .map(([a, s]) => `${a} ${s}`)
      .join(", ")}`, async () => {
      const f = await fixture()
      const call = (token?: string) => server.api(row.method, row.path(f), { token, body: row.body?.(f) })
      const guest = await call()
      expect(guest.status).toBe(401)
      expect(guest.headers.get("www-authenticate")).toContain("Bearer")
      expect((await call("not-a-token")).status).toBe(401)
      for (const [actor, user] of Object.entries(actors()) as [Actor, SignedUpUser][]) {
        // Each actor on a fresh group: some rows change or destroy it.
        const own = actor === "outsider" ? f : await fixture()
        const res = await server.api(row.method, row.path(own), {
          token: user.accessToken,
          body: row.body?.(own),
        })
        expect({ actor, status: res.status }).toEqual({ actor, status: row.expect[actor] })
        if (actor === "outsider" && res.status >= 400) {
          // A refusal tells nothing about the group.
          const text = JSON.stringify(res.body)
          for (const secret of [f.code, member.phone, "Secret society", "Secret meeting"])
            expect(text).not.toContain(secret)
        }
      }
    })
  }

  test("the outsider's attempts changed nothing", async () => {
    const f = await fixture()
    for (const row of rows.filter((r) => r.name !== "join by code" && r.name !== "create"))
      await server.api(row.method, row.path(f), { token: outsider.accessToken, body: row.body?.(f) })
    const group = (await server.api("GET", g(f), { token: founder.accessToken })).body
    expect(group.name).toBe("Secret society")
    expect(group.settings.is_public).toBe(false)
    expect(group.settings.invite_link).toBe(f.code)
    expect(group.members.map((m: any) => [m.user_id, m.role]).sort()).toEqual(
      [
        [founder.user.id, "FOUNDER"],
        [cofounder.user.id, "SUPPORT"],
        [moderator.user.id, "MODERATOR"],
        [member.user.id, "MEMBER"],
        [target.user.id, "MEMBER"],
      ].sort(),
    )
    const events = (await server.api("GET", `${g(f)}/events`, { token: founder.accessToken })).body
    expect(events.map((e: any) => [e.title, e.attendees_count])).toEqual([["Secret meeting", 0]])
    const requests = (await server.api("GET", `${g(f)}/join-requests`, { token: founder.accessToken })).body
    expect(requests.requests.map((r: any) => r.status)).toEqual(["pending"])
  })

  test("unknown and malformed ids are 404 on every id route (group, member, event, request, code)", async () => {
    const f = await fixture()
    for (const bad of ["x", "temp-123", "00000000-0000-7000-8000-000000000000", "a%2Fb", "%20"]) {
      for (const row of rows.filter((r) => r.ids)) {
        const res = await server.api(row.method, row.ids!(f, bad), {
          token: founder.accessToken,
          body: row.body?.(f),
        })
        expect({ row: row.name, bad, status: res.status }).toEqual({ row: row.name, bad, status: 404 })
      }
    }
  })

  test("a direct conversation is not a group (404), even for its members", async () => {
    const direct = await directChat(server, founder, member)
    for (const path of [
      `/api/groups/${direct}`,
      `/api/groups/conversation/${direct}`,
      `/api/groups/${direct}/members`,
    ])
      expect((await server.api("GET", path, { token: founder.accessToken })).status).toBe(404)
    const leave = await server.api("POST", `/api/groups/${direct}/leave`, {
      token: member.accessToken,
      body: {},
    })
    expect(leave.status).toBe(404)
    const outsiderRead = await server.api("GET", `/api/groups/${direct}`, { token: outsider.accessToken })
    expect(outsiderRead.status).toBe(404)
  })

  test("allow_member_invites off: only FOUNDER, MODERATOR and RECRUITER add members", async () => {
    const f = await fixture()
    await server.api("PUT", `${g(f)}/settings`, {
      token: founder.accessToken,
      body: { allow_member_invites: false },
    })
    for (const [user, status] of [
      [member, 403],
      [cofounder, 403],
      [moderator, 200],
    ] as const) {
      const res = await server.api("POST", `${g(f)}/members`, {
        token: user.accessToken,
        body: { user_ids: [newcomer.user.id] },
      })
      expect({ who: user.user.display_name, status: res.status }).toEqual({
        who: user.user.display_name,
        status,
      })
    }
    const unknown = await server.api("POST", `${g(f)}/members`, {
      token: founder.accessToken,
      body: { user_ids: ["no-such-user"] },
    })
    expect(unknown.status).toBe(404)
    expect(
      (await server.api("POST", `${g(f)}/members`, { token: founder.accessToken, body: { user_ids: [] } }))
        .status,
    ).toBe(422)
  })

  test("blocks: a blocked user cannot add the blocker to a group (nor the blocker them)", async () => {
    const [blocker, blocked, host] = await signUpMany(server, 3, "Block")
    const blockRes = await server.api("POST", `/api/settings/privacy/block/${blocked!.user.id}`, {
      token: blocker!.accessToken,
    })
    expect(blockRes.status).toBe(200)
    // Creating a group with the blocker in it.
    const create = await server.api("POST", "/api/groups", {
      token: blocked!.accessToken,
      body: { name: "Trap", member_ids: [blocker!.user.id] },
    })
    expect([create.status, create.body.code]).toEqual([403, "group.blocked"])
    // Adding the blocker to an existing group (member invites on).
    const other = await server.api("POST", "/api/groups", {
      token: host!.accessToken,
      body: { name: "Open", member_ids: [blocked!.user.id] },
    })
    const add = await server.api("POST", `/api/groups/${other.body.id}/members`, {
      token: blocked!.accessToken,
      body: { user_ids: [blocker!.user.id] },
    })
    expect([add.status, add.body.code]).toEqual([403, "group.blocked"])
    const members = (
      await server.api("GET", `/api/groups/${other.body.id}/members`, { token: host!.accessToken })
    ).body
    expect(members.map((m: any) => m.user_id)).not.toContain(blocker!.user.id)
    // The blocker cannot pull the blocked user in either.
    const reverse = await server.api("POST", "/api/groups", {
      token: blocker!.accessToken,
      body: { name: "Reverse", member_ids: [blocked!.user.id] },
    })
    expect(reverse.status).toBe(403)
    // Someone else may still add both.
    const byHost = await server.api("POST", `/api/groups/${other.body.id}/members`, {
      token: host!.accessToken,
      body: { user_ids: [blocker!.user.id] },
    })
    expect(byHost.body.added).toBe(1)
  })
})
