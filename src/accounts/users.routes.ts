import { Elysia, t } from "elysia"
import { authPlugin } from "../auth/auth.plugin.ts"
import type { Deps } from "../deps.ts"
import * as users from "./users.service.ts"

const page = (defaultLimit: number) => ({
  limit: t.Optional(t.Numeric({ minimum: 1, maximum: 500, default: defaultLimit })),
  offset: t.Optional(t.Numeric({ minimum: 0, default: 0 })),
})

/** `/users*` (CONTRACT §2.2): directory, search, batch lookup, profiles and presence. Specific paths before `/:id`. */
export const usersRoutes = (deps: Deps) =>
  new Elysia({ name: "users-routes", prefix: "/users", detail: { tags: ["users"] } })
    .use(authPlugin(deps))
    .get(
      "/",
      ({ principal, query }) => users.listUsers(deps, principal, query.limit ?? 50, query.offset ?? 0),
      {
        auth: true,
        query: t.Object(page(50)),
        detail: { summary: "Everyone but the caller (`total` counts everyone)" },
      },
    )
    .get(
      "/search",
      ({ principal, query }) =>
        users.findUsers(deps, principal, query.q, query.limit ?? 20, query.offset ?? 0),
      {
        auth: true,
        query: t.Object({
          q: t.String({
            minLength: 1,
            maxLength: 100,
            error: "Search text is required (1 to 100 characters)",
          }),
          ...page(20),
        }),
        detail: { summary: "Users by name or phone number (case-insensitive substring)" },
      },
    )
    .post("/batch", ({ principal, body }) => users.usersByIds(deps, principal, body.user_ids), {
      auth: true,
      body: t.Object({ user_ids: t.Array(t.String({ maxLength: 64 }), { maxItems: 500 }) }),
      detail: { summary: "Several users by id (unknown ids are left out)" },
    })
    .get("/me", ({ principal }) => users.userById(deps, principal, principal.userId), {
      auth: true,
      detail: { summary: "The caller (UserLite)" },
    })
    .get("/:userId", ({ principal, params }) => users.userById(deps, principal, params.userId), {
      auth: true,
      detail: { summary: "One user (UserLite); 404 when unknown" },
    })
    .get("/:userId/status", ({ principal, params }) => users.userStatus(deps, principal, params.userId), {
      auth: true,
      detail: { summary: "Whether a user is online and when they were last seen" },
    })
