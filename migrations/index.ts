import type { Migration } from "kysely"
import * as m0001 from "./0001_users.ts"
import * as m0003 from "./0003_messaging.ts"
import * as m0004 from "./0004_groups.ts"
import * as m0005 from "./0005_search_prefix4.ts"
import * as m0006 from "./0006_media.ts"
import * as m0007 from "./0007_push.ts"
import * as m0008 from "./0008_search_deferred.ts"
import * as m0009 from "./0009_search_newest_first.ts"
import * as m0010 from "./0010_search_database.ts"
import * as m0011 from "./0011_search_window.ts"

/**
 * Every migration, in order. Imported statically so the compiled binary carries them (no folder is read at
 * run time). Append-only: a released migration is never edited; each has a `down`.
 */
export const migrations: Record<string, Migration> = {
  "0001_users": m0001,
  "0003_messaging": m0003,
  "0004_groups": m0004,
  "0005_search_prefix4": m0005,
  "0006_media": m0006,
  "0007_push": m0007,
  "0008_search_deferred": m0008,
  "0009_search_newest_first": m0009,
  "0010_search_database": m0010,
  "0011_search_window": m0011,
}
