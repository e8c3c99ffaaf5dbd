import { Elysia } from "elysia"
import { authPlugin } from "../auth/auth.plugin.ts"
import type { Deps } from "../deps.ts"
import { badRequest } from "../errors.ts"
import { listConversationMessages, markConversationRead } from "../messages/messages.service.ts"
import {
  createBody,
  favoriteBody,
  historyQuery,
  listQuery,
  muteBody,
  readBody,
} from "./conversations.schemas.ts"
import {
  createConversation,
  type FlagOperation,
  getConversation,
  leaveConversation,
  listConversations,
  updateConversationFlag,
} from "./conversations.service.ts"

/** `/conversations`: the caller's list, one conversation, history, and their own flags (CONTRACT §2.3). */
export const conversationsRoutes = (deps: Deps) => {
  const flag = (op: FlagOperation["op"], summary: string) =>
    [
      `/:id/${op}`,
      ({ principal, params }: { principal: { userId: string }; params: { id: string } }) =>
        updateConversationFlag(deps, principal.userId, params.id, { op } as FlagOperation),
      { auth: true as const, detail: { summary } },
    ] as const
  return new Elysia({ name: "conversations", prefix: "/conversations", detail: { tags: ["conversations"] } })
    .use(authPlugin(deps))
    .get(
      "",
      ({ principal, query }) => listConversations(deps, principal.userId, { ...query, archived: false }),
      {
        auth: true,
        query: listQuery,
        detail: { summary: "The caller's conversations: pinned, then newest activity first" },
      },
    )
    .get(
      "/archived",
      ({ principal, query }) => listConversations(deps, principal.userId, { ...query, archived: true }),
      { auth: true, query: listQuery, detail: { summary: "The caller's archived conversations" } },
    )
    .post("", ({ principal, body }) => createConversation(deps, principal.userId, body), {
      auth: true,
      body: createBody,
      detail: {
        summary: "Create a group, or open the direct conversation with one user (existing one returned)",
      },
    })
    .get("/:id", ({ principal, params }) => getConversation(deps, principal.userId, params.id), {
      auth: true,
      detail: { summary: "One conversation (members only)" },
    })
    .delete("/:id", ({ principal, params }) => leaveConversation(deps, principal.userId, params.id), {
      auth: true,
      detail: { summary: "Leave a group; delete a direct chat for the caller" },
    })
    .get(
      "/:id/messages",
      ({ principal, params, query }) => listConversationMessages(deps, principal.userId, params.id, query),
      {
        auth: true,
        query: historyQuery,
        detail: {
          summary: "A page of history, ascending (keyset on seq: limit + before, or after / since_seq)",
        },
      },
    )
    .put(
      "/:id/read",
      ({ principal, params, body }) => markConversationRead(deps, principal.userId, params.id, body?.seq),
      {
        auth: true,
        body: readBody,
        detail: { summary: "Mark read (the caller's read watermark moves to the newest message, or to seq)" },
      },
    )
    .put(...flag("archive", "Archive for the caller"))
    .put(...flag("unarchive", "Unarchive for the caller"))
    .put(
      "/:id/mute",
      ({ principal, params, body }) => {
        let until: number | null = null
        if (body?.until) until = Date.parse(body.until)
        else if (body?.duration) until = deps.clock.now() + body.duration * 1000
        if (until !== null && !Number.isFinite(until))
          throw badRequest("conversation.invalid_mute", "until is not a date")
        return updateConversationFlag(deps, principal.userId, params.id, { op: "mute", until })
      },
      {
        auth: true,
        body: muteBody,
        detail: { summary: "Mute for the caller (until a time, or until unmuted)" },
      },
    )
    .put(...flag("unmute", "Unmute for the caller"))
    .put(
      "/:id/favorite",
      ({ principal, params, body }) =>
        updateConversationFlag(deps, principal.userId, params.id, {
          op: "favorite",
          value: body?.favorite ?? body?.is_favorite,
        }),
      { auth: true, body: favoriteBody, detail: { summary: "Toggle (or set) favourite for the caller" } },
    )
    .put(
      "/:id/favourite",
      ({ principal, params, body }) =>
        updateConversationFlag(deps, principal.userId, params.id, {
          op: "favorite",
          value: body?.favorite ?? body?.is_favorite,
        }),
      { auth: true, body: favoriteBody, detail: { summary: "Alias of /favorite" } },
    )
    .put(...flag("pin", "Pin for the caller"))
    .put(...flag("unpin", "Unpin for the caller"))
    .delete(
      "/:id/clear",
      ({ principal, params }) => updateConversationFlag(deps, principal.userId, params.id, { op: "clear" }),
      { auth: true, detail: { summary: "Clear history for the caller only" } },
    )
}
