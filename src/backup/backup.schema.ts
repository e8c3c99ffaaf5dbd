import { migrations } from "../../migrations/index.ts"
import { AppError } from "../errors.ts"

/** The schema version a backup carries, measured against the migrations this binary knows. */
export type SchemaVersion = {
  /** Migrations applied in the backup, in order. */
  applied: string[]
  /** Known to this binary but not applied in the backup: `urge serve` applies them after a restore. */
  pending: string[]
  /** Applied in the backup but unknown here: the backup comes from a newer urge. */
  unknown: string[]
}

export function schemaVersion(applied: string[]): SchemaVersion {
  const known = Object.keys(migrations)
  return {
    applied,
    pending: known.filter((name) => !applied.includes(name)),
    unknown: applied.filter((name) => !known.includes(name)),
  }
}

/** One line for the operator: "schema: 3 migrations, latest 0004_groups (current)". */
export function describeSchema(version: SchemaVersion): string {
  const latest = version.applied.at(-1) ?? "none"
  const state = version.unknown.length
    ? `newer than this urge: ${version.unknown.join(", ")} unknown here`
    : version.pending.length
      ? `${version.pending.length} migration(s) behind; urge serve applies them`
      : "current"
  return `schema: ${version.applied.length} migrations, latest ${latest} (${state})`
}

/** A backup made by a newer urge cannot be served by this one (Kysely refuses unknown applied migrations). */
export function assertRestorable(file: string, version: SchemaVersion) {
  if (version.unknown.length)
    throw new AppError(
      422,
      "backup.newer_schema",
      `${file} was made by a newer urge (migrations ${version.unknown.join(", ")} are unknown to this one); restore it with that version`,
    )
}
