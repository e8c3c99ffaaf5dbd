import { badRequest } from "../errors.ts"

/**
 * Feed cursors are opaque to clients: a version tag and the position in base 36. Never a timestamp.
 * An empty cursor means "from the beginning".
 */
export const encodeCursor = (pos: number): string => `v1.${pos.toString(36)}`

/** The position of a cursor; throws 400 `sync.invalid_cursor` on anything we did not issue. */
export function decodeCursor(cursor: string | undefined | null): number {
  if (cursor === undefined || cursor === null || cursor === "" || cursor === "0") return 0
  const match = /^v1\.([0-9a-z]{1,12})$/.exec(cursor)
  if (!match) throw badRequest("sync.invalid_cursor", "The sync cursor is not one this server issued.")
  return parseInt(match[1]!, 36)
}
