import { t } from "elysia"

const nullable = <T extends Parameters<typeof t.Union>[0][number]>(schema: T, error: string) =>
  t.Union([t.Null(), schema], { error })

const emailError = "Invalid email address"
const emailSchema = t.String({ format: "email", maxLength: 254, error: emailError })

/** Body of PUT /auth/profile: every field the app's screens send (CONTRACT §2.1); null clears. */
export const profileBody = t.Object({
  display_name: t.Optional(
    t.String({ minLength: 1, maxLength: 100, error: "Display name must be 1 to 100 characters" }),
  ),
  bio: t.Optional(nullable(t.String({ maxLength: 500 }), "Bio must be at most 500 characters")),
  avatar: t.Optional(nullable(t.String({ maxLength: 2048 }), "Avatar URL must be at most 2048 characters")),
  avatar_url: t.Optional(
    nullable(t.String({ maxLength: 2048 }), "Avatar URL must be at most 2048 characters"),
  ),
  email: t.Optional(t.Union([t.Null(), t.Literal(""), emailSchema], { error: emailError })),
  social_links: t.Optional(
    nullable(
      t.Record(t.String(), t.Union([t.Null(), t.String({ maxLength: 100 })])),
      "Social links must map a platform to a handle of at most 100 characters",
    ),
  ),
})

/** Query of PUT /account/profile (the app sends these as query parameters, no body). */
export const accountProfileQuery = t.Object({
  display_name: t.Optional(
    t.String({ minLength: 2, maxLength: 100, error: "Display name must be 2 to 100 characters" }),
  ),
  email: t.Optional(emailSchema),
  bio: t.Optional(t.String({ maxLength: 500, error: "Bio must be at most 500 characters" })),
})

const handle = t.Optional(
  t.Union([t.Null(), t.String({ maxLength: 100 })], { error: "At most 100 characters" }),
)

/** Body of PUT /account/social-links. */
export const socialLinksBody = t.Object({
  instagram: handle,
  twitter: handle,
  linkedin: handle,
  tiktok: handle,
  youtube: handle,
  facebook: handle,
})

/** Body of POST /account/verification/request. */
export const verificationRequestBody = t.Object({
  full_name: t.String({ minLength: 2, maxLength: 100, error: "Full name must be 2 to 100 characters" }),
  reason: t.String({ minLength: 10, maxLength: 1000, error: "Reason must be 10 to 1000 characters" }),
  social_proof: t.Optional(
    t.Union([t.Null(), t.String({ maxLength: 500 })], { error: "At most 500 characters" }),
  ),
})

/** Body of POST /account/verification/review/:userId. */
export const verificationReviewBody = t.Object({
  action: t.Union([t.Literal("approve"), t.Literal("reject")], {
    error: 'action must be "approve" or "reject"',
  }),
  rejection_reason: t.Optional(
    t.Union([t.Null(), t.String({ maxLength: 500 })], { error: "At most 500 characters" }),
  ),
})
