import type { Migration } from "kysely"
import * as m0001 from "./0001_users.ts"
import * as m0003 from "./0003_messaging.ts"
import * as m0004 from "./0004_groups.ts"
import * as m0007 from "./0007_push.ts"

/**
 * Every migration, in order. Imported statically so the compiled binary carries them (no folder is read at
 * run time). Append-only: a released migration is never edited; each has a `down`.
 */
export const migrations: Record<string, Migration> = {
  "0001_users": m0001,
  "0003_messaging": m0003,
  "0004_groups": m0004,
  "0007_push": m0007,
}
