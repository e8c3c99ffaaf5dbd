import type { Deps } from "../deps.ts"
import { forbidden, notFound } from "../errors.ts"
import { conversationExists, findMembership, type MembershipView } from "./conversations.repository.ts"

/** Errors of the conversations feature. */
export const conversationErrors = {
  notFound: () => notFound("conversation.not_found", "Conversation not found"),
  notMember: () => forbidden("conversation.not_member", "You are not a participant in this conversation"),
}

/**
 * The caller's membership, or an error: 404 when the conversation does not exist (malformed ids included),
 * 403 when it exists and the caller is not in it — or 404 for both when `hide` is set (endpoints where the
 * contract answers 404 to non-participants).
 */
export async function requireMembership(
  deps: Deps,
  conversationId: string,
  userId: string,
  options: { hide?: boolean } = {},
): Promise<MembershipView> {
  const db = deps.database.db
  const membership = await findMembership(db, conversationId, userId)
  if (membership) return membership
  if (options.hide || !(await conversationExists(db, conversationId))) throw conversationErrors.notFound()
  throw conversationErrors.notMember()
}
