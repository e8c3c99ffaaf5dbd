import type { Logger } from "./logger.ts"

/**
 * Domain events: what features announce after a commit, for whoever listens (the realtime hub fans them out to
 * sockets, push sends to offline members). Features never talk to sockets directly.
 *
 * `name` is the client-facing event name shared by both realtime protocols (`message:received`, `typing:start`,
 * …); `data` is its payload as the app expects it. `cursor`, on durable events, is the position in the
 * recipient's change feed (`GET /api/sync?since=`), so a client can resume without a gap.
 */
export type DomainEvent =
  /** Sessions ended (logout, revoke, password reset): their sockets must close. */
  | { type: "session.ended"; userId: string; sessionIds: string[] }
  /** An event for every member of a conversation (or only `userIds`, e.g. a delete-for-me). */
  | {
      type: "conversation"
      conversationId: string
      name: string
      data: Record<string, unknown>
      cursor?: string
      userIds?: string[]
      /** Not to be echoed to the socket that caused it. */
      exceptSocketId?: string
      /** Every member but the one who caused it, when the publisher read them anyway (a DIRECT send). */
      recipients?: string[]
    }
  /** Members joined or left a conversation (before the `conversation` events that follow from it). */
  | {
      type: "membership.changed"
      conversationId: string
      added: string[]
      removed: string[]
      /** A DIRECT chat (realtime delivers its events per socket, not through a topic); absent: a group. */
      direct?: boolean
    }
  /** An event for specific users, regardless of conversation. */
  | { type: "users"; userIds: string[]; name: string; data: Record<string, unknown>; cursor?: string }

export type DomainEventListener = (event: DomainEvent) => void

/** A synchronous in-process event bus; listeners must be quick and never throw (errors are logged). */
export type DomainEvents = {
  emit(event: DomainEvent): void
  subscribe(listener: DomainEventListener): () => void
}

/** Creates the in-process domain event bus. */
export function createDomainEvents(logger: Logger): DomainEvents {
  const listeners = new Set<DomainEventListener>()
  return {
    emit(event) {
      for (const listener of listeners) {
        try {
          listener(event)
        } catch (error) {
          logger.error("domain event listener failed", { event: event.type, error: (error as Error).message })
        }
      }
    },
    subscribe(listener) {
      listeners.add(listener)
      return () => listeners.delete(listener)
    },
  }
}
