import { Elysia, t } from "elysia"
import { profileBody } from "../accounts/account.schemas.ts"
import { updateProfile } from "../accounts/account.service.ts"
import type { Deps } from "../deps.ts"
import { authPlugin } from "./auth.plugin.ts"
import { codeBody, loginBody, phoneBody, refreshBody, registerBody, resetBody } from "./auth.schemas.ts"
import * as auth from "./auth.service.ts"
import { bearerSession, clientInfo } from "./client-info.ts"
import { normalizePhone } from "./phone.ts"

/** `/auth/*`: sign-up with SMS codes, login, tokens, sessions, password reset (CONTRACT §2.1, A2). */
export const authRoutes = (deps: Deps) =>
  new Elysia({ name: "auth-routes", prefix: "/auth", detail: { tags: ["auth"] } })
    .use(authPlugin(deps))
    .post(
      "/send-verification",
      ({ body, request, server }) =>
        auth.sendVerificationCode(deps, normalizePhone(body.phone_number), clientInfo(deps, request, server)),
      { body: phoneBody, detail: { summary: "Send a sign-in code by SMS (any number: no enumeration)" } },
    )
    .post(
      "/send-code",
      ({ body, request, server }) =>
        auth.sendVerificationCode(deps, normalizePhone(body.phone_number), clientInfo(deps, request, server)),
      { body: phoneBody, detail: { summary: "Alias of send-verification" } },
    )
    .post(
      "/register",
      ({ body, request, server }) =>
        auth.register(
          deps,
          {
            phone: normalizePhone(body.phone_number),
            password: body.password,
            displayName: body.display_name,
            email: body.email ?? undefined,
            code: body.verification_code,
          },
          clientInfo(deps, request, server, body),
        ),
      {
        body: registerBody,
        detail: {
          summary: "Create an account (password optional) and sign in",
          description:
            "Returns `{access_token, refresh_token, token, token_type, user}`. 409 `auth.phone_taken` when the number has an account.",
        },
      },
    )
    .post(
      "/verify-phone",
      async ({ body, request, server }) =>
        auth.verifyPhone(deps, normalizePhone(body.phone_number), body.code, {
          ...clientInfo(deps, request, server),
          session: await bearerSession(deps, request),
        }),
      {
        body: codeBody,
        detail: {
          summary: "Check a sign-in code without consuming it; signs in when the number has an account",
        },
      },
    )
    .post(
      "/login",
      async ({ body, request, server }) =>
        auth.login(
          deps,
          { phone: normalizePhone(body.phone_number), code: body.verification_code, password: body.password },
          { ...clientInfo(deps, request, server, body), session: await bearerSession(deps, request) },
        ),
      {
        body: loginBody,
        detail: {
          summary: "Sign in with a code (consumed) or a password; opens a session",
          description:
            "A bearer token of this user's live session (the app sends its stored one) keeps that session: same refresh token, no second device.",
        },
      },
    )
    .post("/refresh", ({ body }) => auth.refresh(deps, body.refresh_token), {
      body: refreshBody,
      detail: {
        summary: "New access token for a live session (same refresh token unless rotation is configured)",
      },
    })
    .get(
      "/me",
      async ({ principal }) => auth.userFull(deps, await auth.requireUser(deps, principal.userId)),
      {
        auth: true,
        detail: { summary: "The signed-in user (UserFull)" },
      },
    )
    .put(
      "/profile",
      async ({ principal, body }) => ({ success: true, data: await updateProfile(deps, principal, body) }),
      {
        auth: true,
        body: profileBody,
        detail: {
          summary:
            "Update the profile: display_name, bio, avatar/avatar_url, email, social_links (null clears)",
        },
      },
    )
    .post("/logout", ({ principal }) => auth.logout(deps, principal), {
      auth: true,
      detail: { summary: "End this session; its tokens stop working at once" },
    })
    .get("/sessions", ({ principal }) => auth.listSessions(deps, principal), {
      auth: true,
      detail: { summary: "The caller's live sessions (devices)" },
    })
    .delete("/sessions/:id", ({ principal, params }) => auth.revokeSession(deps, principal, params.id), {
      auth: true,
      params: t.Object({ id: t.String() }),
      detail: { summary: "End one of the caller's sessions" },
    })
    .post(
      "/forgot-password",
      ({ body, request, server }) =>
        auth.forgotPassword(deps, normalizePhone(body.phone_number), clientInfo(deps, request, server)),
      { body: phoneBody, detail: { summary: "Send a password reset code (same answer for any number)" } },
    )
    .post(
      "/verify-reset-code",
      ({ body, request, server }) =>
        auth.verifyResetCode(
          deps,
          normalizePhone(body.phone_number),
          body.code,
          clientInfo(deps, request, server),
        ),
      { body: codeBody, detail: { summary: "Check a reset code without consuming it" } },
    )
    .post(
      "/reset-password",
      ({ body, request, server }) =>
        auth.resetPassword(
          deps,
          { phone: normalizePhone(body.phone_number), code: body.code, newPassword: body.new_password },
          clientInfo(deps, request, server),
        ),
      { body: resetBody, detail: { summary: "Set a new password with a reset code; ends every session" } },
    )
