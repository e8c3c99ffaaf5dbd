import { t } from "elysia"

/** `GET /sync?since=<cursor>&limit=`. */
export const syncQuery = t.Object({
  since: t.Optional(
    t.String({ description: "cursor from the previous page or a realtime event; empty: from the start" }),
  ),
  cursor: t.Optional(t.String({ description: "alias of since" })),
  limit: t.Optional(t.Numeric({ minimum: 1, maximum: 1000 })),
})
