import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { history, send, signUpMany } from "./helpers/messaging.ts"
import { type TestServer, startTestServer } from "./helpers/server.ts"
import type { SignedUpUser } from "./helpers/users.ts"
import { transferOwnership } from "../src/groups/groups.service.ts"

let server: TestServer
beforeAll(async () => {
  server = await startTestServer()
})
afterAll(() => server.stop())

const api = (method: string, path: string, user?: SignedUpUser, body?: unknown) =>
  server.api(method, path, { token: user?.accessToken, body })

/** Records every domain event the server announces (what realtime and push see). */
function recordEvents() {
  const seen: any[] = []
  const stop = server.deps.events.subscribe((e) => seen.push(e))
  return { seen, stop }
}

async function createGroup(
  founder: SignedUpUser,
  members: SignedUpUser[],
  extra: Record<string, unknown> = {},
) {
  const res = await api("POST", "/api/groups", founder, {
    name: "Hikers",
    description: "Weekend walks",
    member_ids: members.map((m) => m.user.id),
    ...extra,
  })
  expect(res.status).toBe(200)
  return res.body
}

describe("the app's group flows", () => {
  test("create with members → get → update → settings one key at a time", async () => {
    const [founder, a, b] = await signUpMany(server, 3, "Flow")
    const created = await createGroup(founder!, [a!, b!])
    expect(created.id).toBe(created.conversation_id)
    expect(created.current_user_role).toBe("FOUNDER")
    expect(created.member_count).toBe(3)
    expect(created.founder_name).toBe(founder!.user.display_name)
    expect(created.settings).toMatchObject({
      is_public: false,
      allow_member_invites: true,
      require_admin_approval: false,
      only_admins_can_post: false,
      only_admins_can_edit_info: true,
      invite_link_enabled: true,
      mute_notifications: false,
      theme_color: null,
    })
    expect(created.settings.invite_link).toMatch(/^[A-Za-z0-9]{12}$/)

    // The group is a GROUP conversation in everyone's list.
    const list = await api("GET", "/api/conversations?limit=100", a)
    expect(list.body.conversations.map((c: any) => [c.id, c.type])).toContainEqual([created.id, "GROUP"])

    // Members by role priority; the app's GroupInfo and GroupChat keys.
    await api("PUT", `/api/groups/${created.id}/members/${b!.user.id}/role`, founder, { role: "MODERATOR" })
    const got = await api("GET", `/api/groups/${created.id}`, a)
    expect(got.status).toBe(200)
    expect(got.body.current_user_role).toBe("MEMBER")
    expect(got.body.members.map((m: any) => [m.user_id, m.role])).toEqual([
      [founder!.user.id, "FOUNDER"],
      [b!.user.id, "MODERATOR"],
      [a!.user.id, "MEMBER"],
    ])
    expect(got.body.members[1]).toMatchObject({
      userId: b!.user.id,
      display_name: b!.user.display_name,
      displayName: b!.user.display_name,
      role_display: "Moderator (Co-founder)",
      phone_number: b!.phone,
      is_verified: true,
    })
    expect(got.body.members[0].joined_at).toMatch(/Z$/)
    const byConversation = await api("GET", `/api/groups/conversation/${created.id}`, a)
    expect(byConversation.body.members).toEqual(got.body.members)
    const members = await api("GET", `/api/groups/${created.id}/members`, a)
    expect(members.body.map((m: any) => m.user_id)).toEqual(got.body.members.map((m: any) => m.user_id))

    // Update: admins (the moderator is a co-founder); a member only when only_admins_can_edit_info is off.
    expect((await api("PUT", `/api/groups/${created.id}`, b, { name: "Hill walkers" })).body.name).toBe(
      "Hill walkers",
    )
    const refused = await api("PUT", `/api/groups/${created.id}`, a, { description: "mine now" })
    expect([refused.status, refused.body.code]).toEqual([403, "group.not_allowed"])

    for (const [key, value] of [
      ["is_public", true],
      ["allow_member_invites", false],
      ["require_admin_approval", true],
      ["only_admins_can_post", true],
      ["invite_link_enabled", false],
      ["theme_color", "#7C3AED"],
      ["only_admins_can_edit_info", false],
      ["mute_notifications", true],
    ] as const) {
      const res = await api("PUT", `/api/groups/${created.id}/settings`, founder, { [key]: value })
      expect(res.status).toBe(200)
      expect(res.body[key]).toBe(value)
    }
    const after = (await api("GET", `/api/groups/${created.id}`, founder)).body.settings
    expect(after).toMatchObject({
      is_public: true,
      allow_member_invites: false,
      require_admin_approval: true,
      only_admins_can_post: true,
      invite_link_enabled: false,
      theme_color: "#7C3AED",
      only_admins_can_edit_info: false,
      mute_notifications: true,
    })
    expect(after.invite_link).toBe(created.settings.invite_link)
    // only_admins_can_edit_info off: a member may now edit.
    const edited = await api("PUT", `/api/groups/${created.id}`, a, { description: "All welcome" })
    expect([edited.status, edited.body.description]).toEqual([200, "All welcome"])
    // Settings stay the FOUNDER's.
    const notFounder = await api("PUT", `/api/groups/${created.id}/settings`, b, { is_public: false })
    expect([notFounder.status, notFounder.body.code]).toEqual([403, "group.founder_only"])
  })

  test("only_admins_can_post is enforced in the send path (REST and forwards)", async () => {
    const [founder, member, mod] = await signUpMany(server, 3, "Post")
    const g = await createGroup(founder!, [member!, mod!])
    await api("PUT", `/api/groups/${g.id}/members/${mod!.user.id}/role`, founder, { role: "SUPPORT" })
    await send(server, member!, g.id, "before the switch")
    await api("PUT", `/api/groups/${g.id}/settings`, founder, { only_admins_can_post: true })
    const refused = await api("POST", "/api/messages", member, { conversation_id: g.id, content: "hello?" })
    expect([refused.status, refused.body.code]).toEqual([403, "group.admins_only"])
    await send(server, founder!, g.id, "announcement")
    await send(server, mod!, g.id, "co-founders may post")
    // Forwarding into the group is posting too.
    const other = await createGroup(member!, [])
    const source = await send(server, member!, other.id, "forward me")
    const forwarded = await api("POST", "/api/messages/forward", member, {
      message_ids: [source.id],
      conversation_id: g.id,
    })
    expect(forwarded.status).toBe(403)
    expect((await history(server, founder!, g.id)).map((m) => m.content)).toEqual([
      "before the switch",
      "announcement",
      "co-founders may post",
    ])
    await api("PUT", `/api/groups/${g.id}/settings`, founder, { only_admins_can_post: false })
    await send(server, member!, g.id, "back again")
  })

  test("invite link: preview with is_member, join by code, disabled and regenerated links", async () => {
    const [founder, member, visitor] = await signUpMany(server, 3, "Invite")
    const g = await createGroup(founder!, [member!])
    const code = g.settings.invite_link

    const asVisitor = await api("GET", `/api/groups/join/${code}`, visitor)
    expect(asVisitor.status).toBe(200)
    expect(asVisitor.body).toMatchObject({ id: g.id, name: "Hikers", member_count: 2, is_member: false })
    expect(asVisitor.body.group).toMatchObject({ id: g.id, member_count: 2 })
    // Outsiders do not get the member list (phone numbers).
    expect(asVisitor.body.members).toEqual([])
    expect(JSON.stringify(asVisitor.body)).not.toContain(member!.phone)
    const asMember = await api("GET", `/api/groups/join/${code}`, member)
    expect(asMember.body.is_member).toBe(true)
    expect(asMember.body.members).toHaveLength(2)
    expect((await api("GET", `/api/groups/join/${code}`)).status).toBe(401)
    expect((await api("GET", `/api/groups/join/nope12345678`, visitor)).status).toBe(404)
    // Codes are exact (case-sensitive).
    const flipped = code === code.toLowerCase() ? code.toUpperCase() : code.toLowerCase()
    expect((await api("GET", `/api/groups/join/${flipped}`, visitor)).status).toBe(404)

    const events = recordEvents()
    const joined = await api("POST", `/api/groups/join/${code}`, visitor, {})
    events.stop()
    expect(joined.status).toBe(200)
    expect(joined.body).toMatchObject({ success: true, group_id: g.id })
    expect(
      events.seen.map((e) => (e.type === "membership.changed" ? [e.type, e.added] : [e.type, e.name])),
    ).toEqual([
      ["membership.changed", [visitor!.user.id]],
      ["conversation", "conversation:member_added"],
    ])
    expect(events.seen[1].cursor).toMatch(/^v1\./)
    const again = await api("POST", `/api/groups/join/${code}`, visitor, {})
    expect([again.status, again.body.code]).toEqual([400, "group.already_member"])
    expect((await api("GET", `/api/groups/${g.id}`, visitor)).body.current_user_role).toBe("MEMBER")
    // The joiner's feed says they were added.
    const feed = await api("GET", "/api/sync", visitor)
    expect(
      feed.body.changes.filter((c: any) => c.conversation_id === g.id).map((c: any) => c.type),
    ).toContain("member.added")

    // Disabled: 404 for preview and join; regenerated: the old code is dead.
    await api("PUT", `/api/groups/${g.id}/settings`, founder, { invite_link_enabled: false })
    const [late] = await signUpMany(server, 1, "Late")
    expect((await api("GET", `/api/groups/join/${code}`, late)).status).toBe(404)
    const disabled = await api("POST", `/api/groups/join/${code}`, late, {})
    expect([disabled.status, disabled.body.code]).toEqual([404, "group.invite_invalid"])
    await api("PUT", `/api/groups/${g.id}/settings`, founder, { invite_link_enabled: true })
    const regenerated = await api("POST", `/api/groups/${g.id}/regenerate-invite-link`, founder, {})
    expect(regenerated.body.invite_link).toMatch(/^[A-Za-z0-9]{12}$/)
    expect(regenerated.body.invite_link).not.toBe(code)
    expect((await api("POST", `/api/groups/join/${code}`, late, {})).status).toBe(404)
    expect((await api("POST", `/api/groups/join/${regenerated.body.invite_link}`, late, {})).status).toBe(200)
    const notFounder = await api("POST", `/api/groups/${g.id}/regenerate-invite-link`, member, {})
    expect(notFounder.status).toBe(403)
  })

  test("require_admin_approval: join requests that managers approve or reject", async () => {
    const [founder, recruiter, support, asker, other] = await signUpMany(server, 5, "Approve")
    const g = await createGroup(founder!, [recruiter!, support!], { require_admin_approval: true })
    expect(g.settings.require_admin_approval).toBe(true)
    await api("PUT", `/api/groups/${g.id}/members/${recruiter!.user.id}/role`, founder, { role: "RECRUITER" })
    await api("PUT", `/api/groups/${g.id}/members/${support!.user.id}/role`, founder, { role: "SUPPORT" })
    const code = g.settings.invite_link

    const pending = await api("POST", `/api/groups/join/${code}`, asker, {})
    expect(pending.status).toBe(202)
    expect(pending.body).toMatchObject({ success: true, status: "pending", group_id: g.id })
    // Not a member yet: no access to the group.
    expect((await api("GET", `/api/groups/${g.id}`, asker)).status).toBe(403)
    expect((await api("GET", `/api/groups/join/${code}`, asker)).body).toMatchObject({
      is_member: false,
      join_request_status: "pending",
    })
    // Asking twice keeps one request.
    expect((await api("POST", `/api/groups/join/${code}`, asker, {})).body.request_id).toBe(
      pending.body.request_id,
    )
    await api("POST", `/api/groups/join/${code}`, other, {})

    // A SUPPORT co-founder does not manage members; plain members even less.
    const bySupport = await api("GET", `/api/groups/${g.id}/join-requests`, support)
    expect([bySupport.status, bySupport.body.code]).toEqual([403, "group.not_allowed"])
    const list = await api("GET", `/api/groups/${g.id}/join-requests`, recruiter)
    expect(list.status).toBe(200)
    expect(list.body.requests.map((r: any) => [r.user_id, r.status])).toEqual([
      [asker!.user.id, "pending"],
      [other!.user.id, "pending"],
    ])
    expect(list.body.requests[0]).toMatchObject({
      display_name: asker!.user.display_name,
      id: pending.body.request_id,
    })

    const events = recordEvents()
    const approved = await api(
      "POST",
      `/api/groups/${g.id}/join-requests/${pending.body.request_id}/approve`,
      recruiter,
      {},
    )
    events.stop()
    expect(approved.status).toBe(200)
    expect(approved.body.request).toMatchObject({ status: "approved", decided_by: recruiter!.user.id })
    expect(events.seen.find((e) => e.type === "membership.changed")?.added).toEqual([asker!.user.id])
    expect((await api("GET", `/api/groups/${g.id}`, asker)).body.current_user_role).toBe("MEMBER")
    const twice = await api(
      "POST",
      `/api/groups/${g.id}/join-requests/${pending.body.request_id}/approve`,
      founder,
      {},
    )
    expect([twice.status, twice.body.code]).toEqual([409, "group.request_decided"])

    const otherId = list.body.requests[1].id
    const rejected = await api("POST", `/api/groups/${g.id}/join-requests/${otherId}/reject`, founder, {})
    expect(rejected.body.request.status).toBe("rejected")
    expect((await api("GET", `/api/groups/${g.id}`, other)).status).toBe(403)
    expect(
      (await api("GET", `/api/groups/${g.id}/join-requests?status=rejected`, founder)).body.requests,
    ).toHaveLength(1)
    expect((await api("GET", `/api/groups/${g.id}/join-requests`, founder)).body.requests).toHaveLength(0)
    expect((await api("POST", `/api/groups/${g.id}/join-requests/nope/approve`, founder, {})).status).toBe(
      404,
    )

    // A plain member adding someone while approval is required opens a request instead.
    const [friend] = await signUpMany(server, 1, "Friend")
    const proposed = await api("POST", `/api/groups/${g.id}/members`, asker, { user_ids: [friend!.user.id] })
    expect(proposed.body).toMatchObject({ success: true, added: 0, requested: 1 })
    expect((await api("GET", `/api/groups/${g.id}`, friend)).status).toBe(403)
    const queue = (await api("GET", `/api/groups/${g.id}/join-requests`, founder)).body.requests
    expect(queue.map((r: any) => [r.user_id, r.invited_by])).toEqual([[friend!.user.id, asker!.user.id]])
    // A manager adds directly.
    const [direct] = await signUpMany(server, 1, "Direct")
    const added = await api("POST", `/api/groups/${g.id}/members`, recruiter, { user_ids: [direct!.user.id] })
    expect(added.body).toMatchObject({ success: true, added: 1 })
  })

  test("roles: assign, invalid roles, transfer ownership", async () => {
    const [founder, a, b] = await signUpMany(server, 3, "Roles")
    const g = await createGroup(founder!, [a!, b!])
    const path = (u: SignedUpUser) => `/api/groups/${g.id}/members/${u.user.id}/role`
    const assigned = await api("PUT", path(a!), founder, { role: "ACCOUNTANT" })
    expect(assigned.body).toMatchObject({
      success: true,
      role: "ACCOUNTANT",
      role_display: "Accountant (Co-founder)",
    })
    for (const role of ["FOUNDER", "ADMIN", "member", ""]) {
      const res = await api("PUT", path(b!), founder, { role })
      expect([role, res.status, res.body.code]).toEqual([role, 400, "group.invalid_role"])
    }
    expect((await api("PUT", path(b!), founder, {})).status).toBe(422)
    expect((await api("PUT", path(b!), founder, { role: 7 })).status).toBe(422)
    expect((await api("PUT", path(b!), a, { role: "MODERATOR" })).status).toBe(403)
    expect((await api("PUT", path(founder!), founder, { role: "MEMBER" })).status).toBe(403)
    expect(
      (await api("PUT", `/api/groups/${g.id}/members/nobody/role`, founder, { role: "MEMBER" })).status,
    ).toBe(404)

    expect((await api("POST", `/api/groups/${g.id}/transfer-ownership`, founder, {})).status).toBe(400)
    expect(
      (await api("POST", `/api/groups/${g.id}/transfer-ownership`, a, { new_founder_id: a!.user.id })).status,
    ).toBe(403)
    expect(
      (await api("POST", `/api/groups/${g.id}/transfer-ownership`, founder, { new_founder_id: "nobody" }))
        .status,
    ).toBe(404)
    const moved = await api("POST", `/api/groups/${g.id}/transfer-ownership`, founder, {
      new_founder_id: b!.user.id,
    })
    expect(moved.status).toBe(200)
    const after = (await api("GET", `/api/groups/${g.id}`, founder)).body
    expect(after.current_user_role).toBe("MEMBER")
    expect(after.created_by).toBe(b!.user.id)
    expect(after.members.map((m: any) => [m.user_id, m.role])).toEqual([
      [b!.user.id, "FOUNDER"],
      [a!.user.id, "ACCOUNTANT"],
      [founder!.user.id, "MEMBER"],
    ])
    // The old founder can leave now; the new one cannot.
    expect((await api("POST", `/api/groups/${g.id}/leave`, founder, {})).status).toBe(200)
    const stuck = await api("POST", `/api/groups/${g.id}/leave`, b, {})
    expect([stuck.status, stuck.body.code]).toEqual([403, "group.founder_cannot_leave"])
  })

  test("remove member: managers only, never the founder; the removed user is told", async () => {
    const [founder, mod, a, b] = await signUpMany(server, 4, "Remove")
    const g = await createGroup(founder!, [mod!, a!, b!])
    await api("PUT", `/api/groups/${g.id}/members/${mod!.user.id}/role`, founder, { role: "MODERATOR" })
    const byMember = await api("DELETE", `/api/groups/${g.id}/members/${b!.user.id}`, a)
    expect([byMember.status, byMember.body.code]).toEqual([403, "group.not_allowed"])
    const founderProtected = await api("DELETE", `/api/groups/${g.id}/members/${founder!.user.id}`, mod)
    expect([founderProtected.status, founderProtected.body.code]).toEqual([403, "group.founder_protected"])
    const events = recordEvents()
    const removed = await api("DELETE", `/api/groups/${g.id}/members/${b!.user.id}`, mod)
    events.stop()
    expect(removed.body).toEqual({ success: true, message: "Member removed" })
    expect(events.seen[0]).toEqual({
      type: "membership.changed",
      conversationId: g.id,
      added: [],
      removed: [b!.user.id],
    })
    expect(events.seen.filter((e) => e.name === "conversation:member_removed").map((e) => e.type)).toEqual([
      "users",
      "conversation",
    ])
    expect((await api("GET", `/api/groups/${g.id}`, b)).status).toBe(403)
    expect((await api("DELETE", `/api/groups/${g.id}/members/${b!.user.id}`, mod)).status).toBe(404)
    const feed = await api("GET", "/api/sync", b)
    expect(feed.body.changes.at(-1)).toMatchObject({ type: "member.removed", conversation_id: g.id })
    // Removing oneself is leaving.
    expect((await api("DELETE", `/api/groups/${g.id}/members/${a!.user.id}`, a)).status).toBe(200)
    expect((await api("DELETE", `/api/groups/${g.id}/members/${founder!.user.id}`, founder)).status).toBe(403)
  })

  test("leave creates the SYSTEM message, announced dual-case to those who stay", async () => {
    const [founder, leaver] = await signUpMany(server, 2, "Leave")
    const g = await createGroup(founder!, [leaver!])
    await send(server, leaver!, g.id, "bye all")
    const events = recordEvents()
    const left = await api("POST", `/api/groups/${g.id}/leave`, leaver, {})
    events.stop()
    expect(left.body).toEqual({ success: true, message: "Left group" })
    const received = events.seen.find((e) => e.name === "message:received")
    expect(received.conversationId).toBe(g.id)
    expect(received.data).toMatchObject({
      content: `${leaver!.user.display_name} left the group`,
      message_type: "SYSTEM",
      messageType: "SYSTEM",
      type: "SYSTEM",
      conversation_id: g.id,
      conversationId: g.id,
      sender_id: leaver!.user.id,
      senderId: leaver!.user.id,
    })
    // Membership moved before the message went out, so the leaver's sockets do not get it.
    const order = events.seen.map((e) => e.name ?? e.type)
    expect(order.indexOf("membership.changed")).toBeLessThan(order.indexOf("message:received"))
    const rest = await history(server, founder!, g.id)
    expect(rest.map((m) => [m.content, m.message_type])).toEqual([
      ["bye all", "TEXT"],
      [`${leaver!.user.display_name} left the group`, "SYSTEM"],
    ])
    const item = (await api("GET", `/api/conversations/${g.id}`, founder)).body
    expect(item.lastMessage.content).toBe(`${leaver!.user.display_name} left the group`)
    const again = await api("POST", `/api/groups/${g.id}/leave`, leaver, {})
    expect(again.status).toBe(404)
    const founderLeaves = await api("POST", `/api/groups/${g.id}/leave`, founder, {})
    expect([founderLeaves.status, founderLeaves.body.code]).toEqual([403, "group.founder_cannot_leave"])
  })

  test("delete: FOUNDER only; members get group:deleted and a feed row; everything goes", async () => {
    const [founder, a] = await signUpMany(server, 2, "Delete")
    const g = await createGroup(founder!, [a!])
    await send(server, a!, g.id, "soon gone")
    await api("POST", `/api/groups/${g.id}/events`, founder, {
      title: "Walk",
      start_time: "2030-05-01T09:00:00Z",
    })
    expect((await api("DELETE", `/api/groups/${g.id}`, a)).status).toBe(403)
    const before = (await api("GET", "/api/sync", a)).body.cursor
    const events = recordEvents()
    const deleted = await api("DELETE", `/api/groups/${g.id}`, founder)
    events.stop()
    expect(deleted.body).toEqual({ success: true, message: "Group deleted" })
    const announced = events.seen.find((e) => e.name === "group:deleted")
    expect(announced.userIds.sort()).toEqual([founder!.user.id, a!.user.id].sort())
    expect(announced.data).toMatchObject({
      group_id: g.id,
      message: "This group has been deleted by the founder",
    })
    expect(events.seen.at(-1)).toMatchObject({ type: "membership.changed", removed: announced.userIds })
    for (const u of [founder!, a!]) {
      expect((await api("GET", `/api/groups/${g.id}`, u)).status).toBe(404)
      expect((await api("GET", `/api/conversations/${g.id}`, u)).status).toBe(404)
    }
    const feed = (await api("GET", `/api/sync?since=${before}`, a)).body.changes
    expect(feed.map((c: any) => [c.type, c.data.group_id])).toEqual([["group.deleted", g.id]])
    const { db } = server.deps.database
    for (const table of ["messages", "group_settings", "group_events", "conversation_members"] as const) {
      const rows = await db
        .selectFrom(table)
        .select("conversation_id")
        .where("conversation_id", "=", g.id)
        .execute()
      expect({ table, rows: rows.length }).toEqual({ table, rows: 0 })
    }
    expect((await api("DELETE", `/api/groups/${g.id}`, founder)).status).toBe(404)
  })

  test("events: UTC times, create by admins, attend, delete by creator or founder", async () => {
    const [founder, cheer, member] = await signUpMany(server, 3, "Events")
    const g = await createGroup(founder!, [cheer!, member!])
    await api("PUT", `/api/groups/${g.id}/members/${cheer!.user.id}/role`, founder, { role: "CHEERLEADER" })
    const later = await api("POST", `/api/groups/${g.id}/events`, cheer, {
      title: "Summit",
      description: "Bring water",
      start_time: "2030-06-01T10:00:00+02:00",
      end_time: "2030-06-01T16:00:00.000Z",
      is_online: false,
      max_attendees: 20,
    })
    expect(later.status).toBe(200)
    expect(later.body).toMatchObject({
      title: "Summit",
      start_time: "2030-06-01T08:00:00.000Z",
      end_time: "2030-06-01T16:00:00.000Z",
      attendees_count: 0,
      created_by: cheer!.user.id,
      creator_name: cheer!.user.display_name,
      conversation_id: g.id,
    })
    const sooner = await api("POST", `/api/groups/${g.id}/events`, founder, {
      title: "Meet-up call",
      start_time: "2030-05-01T18:30:00", // no zone: read as UTC, never the server's zone
      is_online: true,
      meeting_link: "https://meet.example/abc",
    })
    expect(sooner.body.start_time).toBe("2030-05-01T18:30:00.000Z")
    const byMember = await api("POST", `/api/groups/${g.id}/events`, member, {
      title: "Mine",
      start_time: "2030-01-01T00:00:00Z",
    })
    expect(byMember.status).toBe(403)
    for (const bad of [
      { title: "x", start_time: "tomorrow" },
      { title: "x", start_time: "2030-13-45T00:00:00Z" },
      { title: "x", start_time: "2030-01-02T00:00:00Z", end_time: "2030-01-01T00:00:00Z" },
      { title: "", start_time: "2030-01-01T00:00:00Z" },
      { start_time: "2030-01-01T00:00:00Z" },
    ]) {
      const res = await api("POST", `/api/groups/${g.id}/events`, founder, bad)
      expect({ bad, status: res.status }).toEqual({ bad, status: 422 })
    }
    const list = await api("GET", `/api/groups/${g.id}/events`, member)
    expect(list.body.map((e: any) => e.title)).toEqual(["Meet-up call", "Summit"])

    const attend = (u: SignedUpUser, status: string) =>
      api("POST", `/api/groups/${g.id}/events/${later.body.id}/attend`, u, { status })
    expect((await attend(member!, "going")).body).toMatchObject({
      success: true,
      status: "going",
      attendees_count: 1,
    })
    expect((await attend(founder!, "not_going")).body.attendees_count).toBe(1)
    expect((await attend(member!, "maybe")).body.attendees_count).toBe(0)
    expect((await attend(member!, "yes please")).status).toBe(422)
    const mine = (await api("GET", `/api/groups/${g.id}/events`, member)).body[1]
    expect(mine).toMatchObject({ my_status: "maybe", maybe_count: 1, not_going_count: 1 })
    expect(
      (await api("POST", `/api/groups/${g.id}/events/nope/attend`, member, { status: "going" })).status,
    ).toBe(404)

    // Delete: not by another member; by the creator; the founder deletes anyone's.
    expect((await api("DELETE", `/api/groups/${g.id}/events/${later.body.id}`, member)).status).toBe(403)
    expect((await api("DELETE", `/api/groups/${g.id}/events/${later.body.id}`, cheer)).status).toBe(200)
    const another = await api("POST", `/api/groups/${g.id}/events`, cheer, {
      title: "Picnic",
      start_time: "2030-07-01T12:00:00Z",
    })
    expect((await api("DELETE", `/api/groups/${g.id}/events/${another.body.id}`, founder)).status).toBe(200)
    expect((await api("DELETE", `/api/groups/${g.id}/events/${another.body.id}`, founder)).status).toBe(404)
    expect((await api("GET", `/api/groups/${g.id}/events`, member)).body.map((e: any) => e.title)).toEqual([
      "Meet-up call",
    ])
    // Answers of people who left no longer count.
    for (const u of [member!, founder!])
      await api("POST", `/api/groups/${g.id}/events/${sooner.body.id}/attend`, u, { status: "going" })
    const going = async () => (await api("GET", `/api/groups/${g.id}/events`, founder)).body[0].going_count
    expect(await going()).toBe(2)
    await api("POST", `/api/groups/${g.id}/leave`, member, {})
    expect(await going()).toBe(1)
  })

  test("groups made through POST /conversations get settings on first read", async () => {
    const [founder, a] = await signUpMany(server, 2, "Lazy")
    const res = await api("POST", "/api/conversations", founder, {
      type: "GROUP",
      name: "Old way",
      participant_ids: [a!.user.id],
    })
    const g = await api("GET", `/api/groups/${res.body.id}`, a)
    expect(g.status).toBe(200)
    expect(g.body.settings.invite_link).toMatch(/^[A-Za-z0-9]{12}$/)
    expect(g.body.current_user_role).toBe("MEMBER")
    expect((await api("GET", `/api/groups/${res.body.id}`, founder)).body.settings.invite_link).toBe(
      g.body.settings.invite_link,
    )
  })
})

describe("races", () => {
  test("two transfers at once leave exactly one FOUNDER", async () => {
    const [founder, a, b, c] = await signUpMany(server, 4, "Race")
    const g = await createGroup(founder!, [a!, b!, c!])
    // Called side by side in one tick (the service the route calls), so both pass the role check before
    // either commits: only the conditional step-down keeps the second one out.
    const outcomes = await Promise.allSettled(
      [a!, b!, c!].map((u) => transferOwnership(server.deps, founder!.user.id, g.id, u.user.id)),
    )
    expect(outcomes.map((o) => o.status).sort()).toEqual(["fulfilled", "rejected", "rejected"])
    const roles = (await api("GET", `/api/groups/${g.id}`, a)).body.members.map((m: any) => m.role)
    expect(roles.filter((r: string) => r === "FOUNDER")).toHaveLength(1)
  })

  test("joins, requests and events racing the group's deletion never 500", async () => {
    const people = await signUpMany(server, 4, "Racer")
    const [founder, ...others] = people as SignedUpUser[]
    for (let round = 0; round < 3; round++) {
      const g = await createGroup(founder, [others[0]!])
      const event = await api("POST", `/api/groups/${g.id}/events`, founder, {
        title: "Race",
        start_time: "2030-01-01T00:00:00Z",
      })
      const calls = [
        api("POST", `/api/groups/join/${g.settings.invite_link}`, others[1], {}),
        api("POST", `/api/groups/${g.id}/events/${event.body.id}/attend`, others[0], { status: "going" }),
        api("POST", `/api/groups/${g.id}/events`, founder, {
          title: "Late",
          start_time: "2030-01-01T00:00:00Z",
        }),
        api("POST", `/api/groups/${g.id}/members`, others[0], { user_ids: [others[2]!.user.id] }),
        api("DELETE", `/api/groups/${g.id}`, founder),
        api("GET", `/api/groups/${g.id}`, others[0]),
      ]
      const statuses = (await Promise.all(calls)).map((r) => r.status)
      expect(statuses.filter((s) => s >= 500)).toEqual([])
      expect(statuses[4]).toBe(200)
    }
  })
})
