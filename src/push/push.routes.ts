import { Elysia, t } from "elysia"
import { authPlugin } from "../auth/auth.plugin.ts"
import type { Deps } from "../deps.ts"
import { registerDevice, unregisterDevice } from "./push.service.ts"

const token = t.String({ minLength: 1, maxLength: 4096, error: "Must be a non-empty string" })
// Checked by the service, so a wrong value gets the contract's 400 message rather than a validation 422.
const platform = t.Optional(t.String())

/** Device tokens for push (CONTRACT §2.7, A5). */
export const pushRoutes = (deps: Deps) =>
  new Elysia({ name: "push-routes", detail: { tags: ["settings"] } })
    .use(authPlugin(deps))
    .post(
      "/settings/notifications/register",
      ({ principal, body }) => registerDevice(deps, principal, body.token, body.platform ?? ""),
      {
        auth: true,
        body: t.Object({ token, platform }),
        detail: {
          summary:
            'Register this device\'s push token (platform "ios" or "android"; a token registered by another user moves to the caller)',
        },
      },
    )
    .delete(
      "/settings/notifications/unregister",
      ({ principal, query }) => unregisterDevice(deps, principal, query.token),
      {
        auth: true,
        query: t.Object({ token }),
        detail: { summary: "Forget one of the caller's push tokens (the app calls it on logout)" },
      },
    )
    .post(
      "/notifications/register",
      ({ principal, body }) => registerDevice(deps, principal, body.device_token, body.platform ?? ""),
      {
        auth: true,
        body: t.Object({ device_token: token, platform }),
        detail: { summary: 'The seed\'s alias: `{device_token, platform: "IOS"|"ANDROID"}`' },
      },
    )
