/**
 * A set of ids that is an array while small and a Set past `smallIdSet` entries. The realtime index keeps
 * several per connected user (their conversations, each conversation's local members, a socket's topics) and
 * most are small: an array of 25 ids costs about a tenth of a Set of 25 (JSC), and scanning it is as quick.
 */
export type IdSet<T = string> = T[] | Set<T>

export const smallIdSet = 32

export const idSetHas = <T>(set: IdSet<T>, id: T): boolean =>
  Array.isArray(set) ? set.includes(id) : set.has(id)

/** Adds `id` (if absent); returns the set to keep, which is a new Set once the array grows past the limit. */
export function idSetAdd<T>(set: IdSet<T>, id: T): IdSet<T> {
  if (!Array.isArray(set)) return set.add(id)
  if (set.includes(id)) return set
  set.push(id)
  return set.length > smallIdSet ? new Set(set) : set
}

/** Removes `id`; whether it was there. */
export function idSetDelete<T>(set: IdSet<T>, id: T): boolean {
  if (!Array.isArray(set)) return set.delete(id)
  const at = set.indexOf(id)
  if (at === -1) return false
  // Order does not matter: the last entry fills the hole.
  const last = set.pop()!
  if (at < set.length) set[at] = last
  return true
}

export const idSetSize = <T>(set: IdSet<T>): number => (Array.isArray(set) ? set.length : set.size)
