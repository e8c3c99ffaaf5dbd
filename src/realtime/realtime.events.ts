import type { Deps } from "../deps.ts"
import { AppError, badRequest, forbidden } from "../errors.ts"
import type { Connection, Hub } from "./realtime.hub.ts"
import { messagingClientEvents } from "./realtime.messaging.ts"

/**
 * Client → server events shared by both protocols. Each handler takes the event's payload as the client sent
 * it (the app sends bare ids for some events and camelCase objects for others; snake_case is accepted too)
 * and returns the acknowledgement data, or throws an AppError that the adapter turns into an error frame.
 */
export type ClientEventHandler = (connection: Connection, payload: unknown) => Promise<unknown>

/** Reads a field from a payload that may be an object with snake_case or camelCase keys, or a bare string. */
export function field(payload: unknown, snake: string, camel: string, bare = false): string | undefined {
  if (bare && typeof payload === "string") return payload
  if (!payload || typeof payload !== "object") return undefined
  const record = payload as Record<string, unknown>
  const value = record[snake] ?? record[camel]
  return typeof value === "string" && value !== "" ? value : undefined
}

const conversationIdOf = (payload: unknown): string => {
  const id = field(payload, "conversation_id", "conversationId", true) ?? field(payload, "id", "id")
  if (!id) throw badRequest("realtime.invalid_payload", "conversation_id is required.")
  return id
}

const notMember = () => forbidden("conversation.not_member", "You are not a member of this conversation.")

/** The client event table: every event name (with the original server's underscore aliases) → handler. */
export function createClientEvents(deps: Deps, hub: Hub): Map<string, ClientEventHandler> {
  const requireMember = async (connection: Connection, conversationId: string) => {
    if (!(await hub.isMember(connection.userId, conversationId))) throw notMember()
  }
  const handlers: Record<string, ClientEventHandler> = {
    /** Marks the conversation open on this socket (delivery does not depend on it: it is by membership). */
    "join:conversation": async (connection, payload) => {
      const conversationId = conversationIdOf(payload)
      await requireMember(connection, conversationId)
      connection.open ??= new Set()
      connection.open.add(conversationId)
      return { conversation_id: conversationId, conversationId }
    },
    "leave:conversation": async (connection, payload) => {
      const conversationId = conversationIdOf(payload)
      connection.open?.delete(conversationId)
      return { conversation_id: conversationId, conversationId }
    },
    "typing:start": async (connection, payload) => {
      const conversationId = conversationIdOf(payload)
      await requireMember(connection, conversationId)
      await hub.startTyping(connection, conversationId)
      return { conversation_id: conversationId, conversationId }
    },
    "typing:stop": async (connection, payload) => {
      const conversationId = conversationIdOf(payload)
      await requireMember(connection, conversationId)
      hub.stopTyping(connection, conversationId)
      return { conversation_id: conversationId, conversationId }
    },
    ...messagingClientEvents(deps),
  }
  const table = new Map<string, ClientEventHandler>()
  for (const [name, handler] of Object.entries(handlers)) {
    table.set(name, handler)
    // The original server also answered `join_conversation`, `typing_start`, …
    table.set(name.replace(":", "_"), handler)
  }
  return table
}

/** An error as both protocols report it: `{code, detail, status}` (no stack, no SQL). */
export function errorPayload(error: unknown): { code: string; detail: string; status: number } {
  if (error instanceof AppError) return { code: error.code, detail: error.detail, status: error.status }
  return { code: "internal", detail: "Internal server error", status: 500 }
}
