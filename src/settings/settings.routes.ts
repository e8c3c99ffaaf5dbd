import { Elysia, t } from "elysia"
import { authPlugin } from "../auth/auth.plugin.ts"
import type { Deps } from "../deps.ts"
import { notImplemented } from "../errors.ts"
import * as settings from "./settings.service.ts"

const flag = t.Optional(t.Boolean())

const twoFactorUnavailable = () => {
  throw notImplemented("Two-factor authentication is not available on this server yet.")
}

/** `/settings/privacy*` and `/settings/notifications` (CONTRACT §2.7). */
export const settingsRoutes = (deps: Deps) =>
  new Elysia({ name: "settings-routes", prefix: "/settings", detail: { tags: ["settings"] } })
    .use(authPlugin(deps))
    .get("/privacy", ({ principal }) => settings.readPrivacy(deps, principal), {
      auth: true,
      detail: { summary: "Privacy switches and the number of blocked users" },
    })
    .put(
      "/privacy",
      ({ principal, query }) =>
        settings.writePrivacy(deps, principal, {
          show_online_status: query.show_online_status,
          show_last_seen: query.show_last_seen,
          show_profile_photo: query.show_profile_photo,
          show_read_receipts: query.show_read_receipts,
        }),
      {
        auth: true,
        query: t.Object({
          show_online_status: t.Optional(t.BooleanString({ error: "Must be true or false" })),
          show_last_seen: t.Optional(t.BooleanString({ error: "Must be true or false" })),
          show_profile_photo: t.Optional(t.BooleanString({ error: "Must be true or false" })),
          show_read_receipts: t.Optional(t.BooleanString({ error: "Must be true or false" })),
        }),
        detail: { summary: "Change privacy switches (query string, any subset; no body)" },
      },
    )
    .get("/privacy/blocked", ({ principal }) => settings.listBlocked(deps, principal), {
      auth: true,
      detail: { summary: "Users the caller blocked" },
    })
    .get(
      "/privacy/blocked/check/:userId",
      ({ principal, params }) => settings.checkBlocked(deps, principal, params.userId),
      { auth: true, detail: { summary: "Whether a block exists in either direction" } },
    )
    .post(
      "/privacy/block/:userId",
      ({ principal, params }) => settings.blockUser(deps, principal, params.userId),
      {
        auth: true,
        detail: { summary: "Block a user (no body)" },
      },
    )
    .delete(
      "/privacy/unblock/:userId",
      ({ principal, params }) => settings.unblockUser(deps, principal, params.userId),
      { auth: true, detail: { summary: "Unblock a user" } },
    )
    .get("/notifications", ({ principal }) => settings.readNotifications(deps, principal), {
      auth: true,
      detail: {
        summary: "Notification switches: `settings` with snake_case keys plus the flat camelCase keys",
      },
    })
    .put("/notifications", ({ principal, body }) => settings.writeNotifications(deps, principal, body), {
      auth: true,
      body: t.Object(
        {
          enabled: flag,
          show_preview: flag,
          sound: flag,
          vibration: flag,
          message_notifications: flag,
          group_notifications: flag,
          showPreview: flag,
          messageNotifications: flag,
          groupNotifications: flag,
        },
        { additionalProperties: true },
      ),
      detail: { summary: "Change notification switches (snake_case or camelCase keys)" },
    })
    .get("/security/2fa/status", twoFactorUnavailable, {
      auth: true,
      detail: { summary: "Not available yet: 501 feature.unavailable (CONTRACT A6)" },
    })
    .post("/security/2fa/*", twoFactorUnavailable, {
      auth: true,
      detail: { summary: "Not available yet: 501 feature.unavailable (CONTRACT A6)" },
    })
