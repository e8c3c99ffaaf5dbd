import { t } from "elysia"

const text = (maxLength: number, description?: string) =>
  t.Optional(t.Nullable(t.String({ maxLength, description })))

/** Body of `POST /groups` (CreateGroup sends name, description and `member_ids` with at least one id). */
export const createGroupBody = t.Object({
  name: t.String({ minLength: 1, maxLength: 200 }),
  description: text(2000),
  avatar_url: text(2000),
  member_ids: t.Optional(t.Array(t.String(), { maxItems: 1000, default: [] })),
  is_public: t.Optional(t.Boolean()),
  allow_member_invites: t.Optional(t.Boolean()),
  require_admin_approval: t.Optional(t.Boolean()),
})

/** Body of `PUT /groups/:id`: any of name, description, avatar. */
export const updateGroupBody = t.Object({
  name: t.Optional(t.String({ minLength: 1, maxLength: 200 })),
  description: text(2000),
  avatar_url: text(2000),
})

/** Body of `PUT /groups/:id/settings`: any subset (the app sends one key at a time). */
export const settingsBody = t.Object({
  is_public: t.Optional(t.Boolean()),
  allow_member_invites: t.Optional(t.Boolean()),
  require_admin_approval: t.Optional(t.Boolean()),
  only_admins_can_post: t.Optional(t.Boolean()),
  only_admins_can_edit_info: t.Optional(t.Boolean()),
  invite_link_enabled: t.Optional(t.Boolean()),
  mute_notifications: t.Optional(t.Boolean()),
  theme_color: text(50, "a colour string, e.g. #7C3AED"),
})

/** Body of `POST /groups/:id/members`. */
export const addMembersBody = t.Object({ user_ids: t.Array(t.String(), { minItems: 1, maxItems: 1000 }) })

/** Body of `PUT /groups/:id/members/:userId/role`; FOUNDER or an unknown role is a 400. */
export const roleBody = t.Object({
  role: t.String({
    maxLength: 50,
    description: "ACCOUNTANT, MODERATOR, RECRUITER, SUPPORT, CHEERLEADER or MEMBER",
  }),
})

/** Body of `POST /groups/:id/transfer-ownership` (a missing id is a 400, as the original). */
export const transferBody = t.Object({ new_founder_id: t.Optional(t.String({ maxLength: 100 })) })

/** Body of `POST /groups/:id/events` (times ISO 8601; the app sends UTC with Z). */
export const eventBody = t.Object({
  title: t.String({ minLength: 1, maxLength: 200 }),
  description: text(5000),
  location: text(500),
  start_time: t.String({ maxLength: 40, description: "ISO 8601; without a zone it is read as UTC" }),
  end_time: text(40),
  is_online: t.Optional(t.Boolean()),
  meeting_link: text(2000),
  max_attendees: t.Optional(t.Nullable(t.Integer({ minimum: 1, maximum: 1_000_000 }))),
})

/** Body of `POST /groups/:id/events/:eventId/attend`. */
export const attendBody = t.Object({
  status: t.Union([t.Literal("going"), t.Literal("maybe"), t.Literal("not_going")]),
})

/** `GET /groups/:id/join-requests?status=` (default pending). */
export const joinRequestsQuery = t.Object({
  status: t.Optional(t.Union([t.Literal("pending"), t.Literal("approved"), t.Literal("rejected")])),
})
