import { t } from "elysia"

/** Body of `POST /messages` (CONTRACT §2.4); `content` may be empty (media). */
export const sendBody = t.Object({
  conversation_id: t.String(),
  content: t.Optional(t.Nullable(t.String({ maxLength: 65536 }))),
  message_type: t.Optional(
    t.String({
      description:
        "TEXT, IMAGE, VIDEO, AUDIO, DOCUMENT, VOICE, LOCATION, CONTACT or SYSTEM (any case; unknown: TEXT)",
    }),
  ),
  media_url: t.Optional(t.Nullable(t.String({ maxLength: 4000 }))),
  thumbnail_url: t.Optional(t.Nullable(t.String({ maxLength: 4000 }))),
  audio_duration: t.Optional(t.Nullable(t.Number())),
  reply_to_id: t.Optional(
    t.Nullable(
      t.String({ description: "a message of the same conversation; others (temp ids) are ignored" }),
    ),
  ),
  is_encrypted: t.Optional(t.Boolean()),
  client_message_id: t.Optional(
    t.Nullable(
      t.String({ maxLength: 200, description: "makes the send idempotent: a retry returns the original" }),
    ),
  ),
})

/** Body of `PUT /messages/:id`. */
export const editBody = t.Object({ content: t.String({ maxLength: 65536 }) })

/** `DELETE /messages/:id?scope=me|everyone` (default: everyone when allowed, else me). */
export const deleteQuery = t.Object({ scope: t.Optional(t.Union([t.Literal("me"), t.Literal("everyone")])) })

/** Body of `POST /messages/forward`. */
export const forwardBody = t.Object({
  message_ids: t.Array(t.String(), { maxItems: 100 }),
  conversation_id: t.String(),
})

/** `?limit&offset` of the starred list. */
export const starredQuery = t.Object({
  limit: t.Optional(t.Numeric({ minimum: 1, maximum: 200 })),
  offset: t.Optional(t.Numeric({ minimum: 0 })),
})

/** `GET /messages/search`: `conversationId` (the app) or `conversation_id`. */
export const searchQuery = t.Object({
  q: t.String({ minLength: 1, maxLength: 500 }),
  conversationId: t.Optional(t.String()),
  conversation_id: t.Optional(t.String()),
  limit: t.Optional(t.Numeric({ minimum: 1, maximum: 100 })),
  cursor: t.Optional(t.String()),
})

/** Body of `PUT /messages/:id/status`. */
export const statusBody = t.Object({ status: t.String() })

/** Body of `POST /messages/read`. */
export const readMessagesBody = t.Object({
  message_ids: t.Array(t.String(), { maxItems: 1000 }),
  conversation_id: t.Optional(t.String()),
})
