import { Elysia } from "elysia"
import { authPlugin } from "../auth/auth.plugin.ts"
import type { Deps } from "../deps.ts"
import {
  deleteQuery,
  editBody,
  forwardBody,
  readMessagesBody,
  searchQuery,
  sendBody,
  starredQuery,
  statusBody,
} from "./messages.schemas.ts"
import { searchMessages } from "./messages.search.ts"
import {
  deleteMessage,
  editMessage,
  forwardMessages,
  listStarred,
  markMessagesRead,
  sendMessage,
  setMessageStatus,
  setStar,
} from "./messages.service.ts"

/** `/messages`: send, edit, delete, forward, star, search, receipts (CONTRACT §2.4). */
export const messagesRoutes = (deps: Deps) =>
  new Elysia({ name: "messages", prefix: "/messages", detail: { tags: ["messages"] } })
    .use(authPlugin(deps))
    .post("", async ({ principal, body }) => (await sendMessage(deps, principal.userId, body)).message, {
      auth: true,
      body: sendBody,
      detail: {
        summary: "Send a message (answered after it is committed; idempotent with client_message_id)",
      },
    })
    .get(
      "/starred",
      ({ principal, query }) => listStarred(deps, principal.userId, query.limit, query.offset),
      {
        auth: true,
        query: starredQuery,
        detail: { summary: "The caller's starred messages, newest star first" },
      },
    )
    .get(
      "/search",
      ({ principal, query }) =>
        searchMessages(deps, principal.userId, {
          q: query.q,
          conversationId: query.conversationId ?? query.conversation_id,
          limit: query.limit,
          cursor: query.cursor,
        }),
      {
        auth: true,
        query: searchQuery,
        detail: { summary: "Full-text search in the caller's conversations, newest first" },
      },
    )
    .post(
      "/forward",
      ({ principal, body }) =>
        forwardMessages(deps, principal.userId, body.message_ids, body.conversation_id),
      {
        auth: true,
        body: forwardBody,
        detail: { summary: "Forward messages into a conversation of the caller" },
      },
    )
    .post(
      "/read",
      ({ principal, body }) =>
        markMessagesRead(deps, principal.userId, body.message_ids, body.conversation_id),
      {
        auth: true,
        body: readMessagesBody,
        detail: { summary: "Mark messages read (moves the read watermark)" },
      },
    )
    .put(
      "/:id",
      ({ principal, params, body }) => editMessage(deps, principal.userId, params.id, body.content),
      {
        auth: true,
        body: editBody,
        detail: { summary: "Edit the caller's own message" },
      },
    )
    .delete(
      "/:id",
      ({ principal, params, query }) => deleteMessage(deps, principal.userId, params.id, query.scope),
      {
        auth: true,
        query: deleteQuery,
        detail: { summary: "Delete for everyone (sender, group FOUNDER/MODERATOR) or hide for the caller" },
      },
    )
    .post("/:id/star", ({ principal, params }) => setStar(deps, principal.userId, params.id, true), {
      auth: true,
      detail: { summary: "Star for the caller" },
    })
    .delete("/:id/star", ({ principal, params }) => setStar(deps, principal.userId, params.id, false), {
      auth: true,
      detail: { summary: "Unstar for the caller" },
    })
    .put(
      "/:id/status",
      ({ principal, params, body }) => setMessageStatus(deps, principal.userId, params.id, body.status),
      {
        auth: true,
        body: statusBody,
        detail: { summary: "DELIVERED or READ: moves the caller's watermark" },
      },
    )
