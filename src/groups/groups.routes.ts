import { Elysia } from "elysia"
import { authPlugin } from "../auth/auth.plugin.ts"
import type { Deps } from "../deps.ts"
import {
  addMembersBody,
  attendBody,
  createGroupBody,
  eventBody,
  joinRequestsQuery,
  roleBody,
  settingsBody,
  transferBody,
  updateGroupBody,
} from "./groups.schemas.ts"
import * as groups from "./groups.service.ts"

/**
 * `/groups` (CONTRACT §2.5, §4.4, A3): a group is a GROUP conversation (same id). Reads need membership, except
 * the invite preview. `/groups/conversation/:id` and `/groups/join/:code` are matched before `/groups/:id/*`.
 */
export const groupsRoutes = (deps: Deps) =>
  new Elysia({ name: "groups", prefix: "/groups", detail: { tags: ["groups"] } })
    .use(authPlugin(deps))
    .post("", ({ principal, body }) => groups.createGroup(deps, principal.userId, body), {
      auth: true,
      body: createGroupBody,
      detail: { summary: "Create a group: the caller is FOUNDER, member_ids become MEMBER" },
    })
    .get(
      "/conversation/:conversationId",
      ({ principal, params }) => groups.getGroup(deps, principal.userId, params.conversationId),
      {
        auth: true,
        detail: { summary: "The group of a conversation (same as GET /groups/:id; members only)" },
      },
    )
    .get(
      "/join/:code",
      ({ principal, params }) => groups.previewInvite(deps, principal.userId, params.code),
      {
        auth: true,
        detail: {
          summary:
            "Preview an invite: the group (top level and as `group`), `is_member`, `join_request_status`",
        },
      },
    )
    .post(
      "/join/:code",
      async ({ principal, params, set }) => {
        const result = await groups.joinByInvite(deps, principal.userId, params.code)
        if (result.accepted) set.status = 202
        return result.body
      },
      {
        auth: true,
        detail: {
          summary:
            "Join by invite code; 202 {status: pending} when the group requires admin approval (a join request is opened)",
        },
      },
    )
    .get("/:id", ({ principal, params }) => groups.getGroup(deps, principal.userId, params.id), {
      auth: true,
      detail: {
        summary: "GroupResponse with members by role, settings and current_user_role (members only)",
      },
    })
    .put(
      "/:id",
      ({ principal, params, body }) => groups.updateGroup(deps, principal.userId, params.id, body),
      {
        auth: true,
        body: updateGroupBody,
        detail: {
          summary:
            "Update name, description, avatar (admins; any member if only_admins_can_edit_info is off)",
        },
      },
    )
    .delete("/:id", ({ principal, params }) => groups.deleteGroup(deps, principal.userId, params.id), {
      auth: true,
      detail: { summary: "Delete the group and its history (FOUNDER); members get group:deleted" },
    })
    .put(
      "/:id/settings",
      ({ principal, params, body }) => groups.changeSettings(deps, principal.userId, params.id, body),
      {
        auth: true,
        body: settingsBody,
        detail: { summary: "Change settings, any subset (FOUNDER); returns them" },
      },
    )
    .post(
      "/:id/regenerate-invite-link",
      ({ principal, params }) => groups.regenerateInviteLink(deps, principal.userId, params.id),
      { auth: true, detail: { summary: "A new invite code; the old one stops working (FOUNDER)" } },
    )
    .get("/:id/members", ({ principal, params }) => groups.getMembers(deps, principal.userId, params.id), {
      auth: true,
      detail: { summary: "Members by role priority (bare array; members only)" },
    })
    .post(
      "/:id/members",
      ({ principal, params, body }) => groups.addMembers(deps, principal.userId, params.id, body.user_ids),
      {
        auth: true,
        body: addMembersBody,
        detail: {
          summary:
            "Add members (FOUNDER/MODERATOR/RECRUITER; others while allow_member_invites is on, as join requests when require_admin_approval is on)",
        },
      },
    )
    .delete(
      "/:id/members/:userId",
      ({ principal, params }) => groups.removeMember(deps, principal.userId, params.id, params.userId),
      {
        auth: true,
        detail: { summary: "Remove a member (FOUNDER/MODERATOR/RECRUITER); oneself: leave" },
      },
    )
    .put(
      "/:id/members/:userId/role",
      ({ principal, params, body }) =>
        groups.assignRole(deps, principal.userId, params.id, params.userId, body.role),
      { auth: true, body: roleBody, detail: { summary: "Assign a role other than FOUNDER (FOUNDER only)" } },
    )
    .post("/:id/leave", ({ principal, params }) => groups.leaveGroup(deps, principal.userId, params.id), {
      auth: true,
      detail: { summary: 'Leave (not the FOUNDER); posts the SYSTEM message "<name> left the group"' },
    })
    .post(
      "/:id/transfer-ownership",
      ({ principal, params, body }) =>
        groups.transferOwnership(deps, principal.userId, params.id, body?.new_founder_id),
      { auth: true, body: transferBody, detail: { summary: "Make another member FOUNDER (FOUNDER only)" } },
    )
    .get(
      "/:id/join-requests",
      ({ principal, params, query }) =>
        groups.getJoinRequests(deps, principal.userId, params.id, query.status),
      {
        auth: true,
        query: joinRequestsQuery,
        detail: { summary: "Join requests, pending by default, oldest first (FOUNDER/MODERATOR/RECRUITER)" },
      },
    )
    .post(
      "/:id/join-requests/:requestId/approve",
      ({ principal, params }) =>
        groups.decideRequest(deps, principal.userId, params.id, params.requestId, "approved"),
      { auth: true, detail: { summary: "Approve a pending join request: the user joins as MEMBER" } },
    )
    .post(
      "/:id/join-requests/:requestId/reject",
      ({ principal, params }) =>
        groups.decideRequest(deps, principal.userId, params.id, params.requestId, "rejected"),
      { auth: true, detail: { summary: "Reject a pending join request" } },
    )
    .get("/:id/events", ({ principal, params }) => groups.getEvents(deps, principal.userId, params.id), {
      auth: true,
      detail: { summary: "Events, soonest first (bare array; members only); times in UTC" },
    })
    .post(
      "/:id/events",
      ({ principal, params, body }) => groups.createEvent(deps, principal.userId, params.id, body),
      { auth: true, body: eventBody, detail: { summary: "Create an event (FOUNDER and co-founders)" } },
    )
    .delete(
      "/:id/events/:eventId",
      ({ principal, params }) => groups.deleteEvent(deps, principal.userId, params.id, params.eventId),
      { auth: true, detail: { summary: "Delete an event (its creator or the FOUNDER)" } },
    )
    .post(
      "/:id/events/:eventId/attend",
      ({ principal, params, body }) =>
        groups.attendEvent(deps, principal.userId, params.id, params.eventId, body.status),
      { auth: true, body: attendBody, detail: { summary: "RSVP: going, maybe or not_going (members)" } },
    )
