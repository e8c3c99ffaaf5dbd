import { t } from "elysia"

/** `?limit&offset` of the conversation lists. */
export const listQuery = t.Object({
  limit: t.Optional(t.Numeric({ minimum: 1, maximum: 500 })),
  offset: t.Optional(t.Numeric({ minimum: 0 })),
})

/** Body of `POST /conversations` (the app sends `{type: "DIRECT", participant_ids: [id]}`). */
export const createBody = t.Object({
  type: t.Optional(t.String({ description: '"GROUP" creates a group; anything else a direct chat' })),
  participant_ids: t.Array(t.String(), { maxItems: 1000 }),
  name: t.Optional(t.Nullable(t.String({ maxLength: 200 }))),
  avatar_url: t.Optional(t.Nullable(t.String({ maxLength: 2000 }))),
  description: t.Optional(t.Nullable(t.String({ maxLength: 2000 }))),
})

/** `GET /conversations/:id/messages`: the app's `limit` + `before`, plus `after` / `since_seq` / `before_seq` for catch-up. */
export const historyQuery = t.Object({
  limit: t.Optional(t.Numeric({ minimum: 1, maximum: 200 })),
  before: t.Optional(t.String({ description: "message id: the newest messages older than it" })),
  after: t.Optional(t.String({ description: "message id: the oldest messages newer than it" })),
  since_seq: t.Optional(t.Numeric({ minimum: 0, description: "the oldest messages with a greater seq" })),
  before_seq: t.Optional(t.Numeric({ minimum: 0 })),
})

/** Body of `PUT /conversations/:id/read` (the app sends `{}`); `seq` reads up to that message only. */
export const readBody = t.Optional(t.Object({ seq: t.Optional(t.Numeric({ minimum: 0 })) }))

/** Body of `PUT /conversations/:id/mute` (the app sends `{}`: muted until unmuted). */
export const muteBody = t.Optional(
  t.Object({
    until: t.Optional(t.Nullable(t.String({ format: "date-time", description: "ISO 8601 end of the mute" }))),
    duration: t.Optional(t.Numeric({ minimum: 1, description: "seconds from now" })),
  }),
)

/** Body of `PUT /conversations/:id/favorite` (the app sends `{}`: toggle). */
export const favoriteBody = t.Optional(
  t.Object({ favorite: t.Optional(t.Boolean()), is_favorite: t.Optional(t.Boolean()) }),
)
