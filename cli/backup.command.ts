import { resolve } from "node:path"
import { Command } from "commander"
import { backupDir, formatBytes, listBackups } from "../src/backup/backup.files.ts"
import { describeSchema } from "../src/backup/backup.schema.ts"
import { createBackup, restoreBackup, verifyBackup } from "../src/backup/backup.service.ts"
import type { CliContext } from "./program.ts"

/** `urge backup create | verify | restore | list`. */
export function backupCommand(cli: CliContext): Command {
  const command = new Command("backup").description(
    "back up the database while it serves, check a backup, restore one (server stopped)",
  )
  command
    .command("create")
    .description(
      "take a consistent snapshot of the database (SQLite: VACUUM INTO; Postgres: pg_dump) while the server runs",
    )
    .option("--out <file>", "where to write it (default: <backup.dir>/urge-<UTC time>.db|.pgdump)")
    .action(async (opts: { out?: string }) => {
      const config = cli.loadConfig()
      const created = await createBackup(config, { out: opts.out && resolve(cli.cwd, opts.out) })
      cli.print(`created ${created.file} (${formatBytes(created.bytes)}, ${created.kind})`)
      cli.print(created.secret)
      cli.print(created.media)
      for (const file of created.pruned) cli.print(`deleted ${file} (backup.keep = ${config.backup.keep})`)
    })
  command
    .command("verify")
    .description("check a backup's integrity and report its schema version (exit 1 if it is damaged)")
    .argument("<file>", "a backup file (SQLite or pg_dump custom format)")
    .action(async (file: string) => {
      const verified = await verifyBackup(resolve(cli.cwd, file))
      cli.print(`ok: ${verified.file} (${formatBytes(verified.bytes)}, ${verified.kind})`)
      cli.print(describeSchema(verified.version))
    })
  command
    .command("restore")
    .description(
      "replace the configured database with a backup (refused while a server uses it; the previous one is kept)",
    )
    .argument("<file>", "a backup file made by urge backup create")
    .action(async (file: string) => {
      const restored = await restoreBackup(cli.loadConfig(), resolve(cli.cwd, file))
      cli.print(`restored ${restored.file} into ${restored.target}`)
      cli.print(
        restored.previous
          ? `previous database kept at ${restored.previous}`
          : "there was no previous database",
      )
      cli.print(describeSchema(restored.version))
      cli.print(restored.secret)
      cli.print(restored.media)
    })
  command
    .command("list")
    .description("list the backups in backup.dir, newest first")
    .action(() => {
      const dir = backupDir(cli.loadConfig())
      const backups = listBackups(dir)
      if (!backups.length) return cli.print(`no backups in ${dir}`)
      for (const b of backups)
        cli.print(
          [
            b.file,
            b.createdAt.toISOString(),
            formatBytes(b.bytes),
            b.kind,
            b.hasSecret ? "with jwt-secret" : "",
          ]
            .join("\t")
            .trimEnd(),
        )
    })
  return command
}
