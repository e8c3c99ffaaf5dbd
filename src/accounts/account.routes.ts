import { Elysia } from "elysia"
import { authPlugin } from "../auth/auth.plugin.ts"
import { requireUser, userFull } from "../auth/auth.service.ts"
import type { Deps } from "../deps.ts"
import { notImplemented } from "../errors.ts"
import {
  accountProfileQuery,
  socialLinksBody,
  verificationRequestBody,
  verificationReviewBody,
} from "./account.schemas.ts"
import * as account from "./account.service.ts"

const paymentsUnavailable = () => {
  throw notImplemented("Subscriptions and payments are not available on this server yet.")
}

/** `/account/*` (CONTRACT §2.8): profile, social links, verification requests; subscriptions answer 501 (A6). */
export const accountRoutes = (deps: Deps) =>
  new Elysia({ name: "account-routes", prefix: "/account", detail: { tags: ["account"] } })
    .use(authPlugin(deps))
    .get(
      "/profile",
      async ({ principal }) => ({
        success: true,
        data: await userFull(deps, await requireUser(deps, principal.userId)),
      }),
      { auth: true, detail: { summary: "The caller's full profile" } },
    )
    .put(
      "/profile",
      async ({ principal, query }) => ({
        success: true,
        message: "Profile updated",
        data: await account.updateProfile(deps, principal, query),
      }),
      {
        auth: true,
        query: accountProfileQuery,
        detail: { summary: "Change display name, email or bio (query parameters, no body)" },
      },
    )
    .get("/social-links", ({ principal }) => account.readSocialLinks(deps, principal), {
      auth: true,
      detail: { summary: "The caller's social links" },
    })
    .put("/social-links", ({ principal, body }) => account.replaceSocialLinks(deps, principal, body), {
      auth: true,
      body: socialLinksBody,
      detail: { summary: "Replace every social link (empty values are dropped, a leading @ is removed)" },
    })
    .delete(
      "/social-links/:platform",
      ({ principal, params }) => account.removeSocialLink(deps, principal, params.platform),
      { auth: true, detail: { summary: "Disconnect one platform" } },
    )
    .get("/verification/status", ({ principal }) => account.verificationStatus(deps, principal), {
      auth: true,
      detail: { summary: "The caller's verification (badge) status" },
    })
    .post(
      "/verification/request",
      ({ principal, body }) => account.requestVerification(deps, principal, body),
      {
        auth: true,
        body: verificationRequestBody,
        detail: { summary: "Ask for the VERIFIED badge (account at least 7 days old)" },
      },
    )
    .get("/verification/pending", ({ principal }) => account.pendingVerifications(deps, principal), {
      auth: true,
      detail: { summary: "Pending verification requests (FOUNDER or CO_FOUNDER)" },
    })
    .post(
      "/verification/review/:userId",
      ({ principal, params, body }) => account.reviewVerification(deps, principal, params.userId, body),
      {
        auth: true,
        body: verificationReviewBody,
        detail: { summary: "Approve (grants VERIFIED) or reject a request (FOUNDER or CO_FOUNDER)" },
      },
    )
    .get("/subscriptions", paymentsUnavailable, {
      auth: true,
      detail: { summary: "Not available yet: 501 feature.unavailable (CONTRACT A6)" },
    })
    .post("/subscriptions/*", paymentsUnavailable, {
      auth: true,
      detail: { summary: "Not available yet: 501 feature.unavailable (CONTRACT A6)" },
    })
    .get("/subscriptions/*", paymentsUnavailable, {
      auth: true,
      detail: { summary: "Not available yet: 501 feature.unavailable (CONTRACT A6)" },
    })
