import { rmSync } from "node:fs"
import pg from "pg"
import { AppError } from "../errors.ts"
import { draftName, publishNew } from "./backup.files.ts"
import { type SchemaVersion, schemaVersion } from "./backup.schema.ts"

/**
 * Postgres backups are pg_dump custom-format archives (compressed, one consistent snapshot taken in a
 * repeatable-read transaction while the server keeps writing, readable by the standard pg_restore). The
 * PostgreSQL client tools must be on PATH, of the server's major version or newer: pg_dump refuses a newer
 * server. The password never reaches a command line (`ps` shows those) nor the output: the tools get the URL
 * without it and the password in PGPASSWORD, and their messages are scrubbed of it anyway.
 */

type Connection = { dbname: string; env: Record<string, string | undefined>; secret: string }

function connection(url: string): Connection {
  const u = new URL(url)
  const secret = u.password ? decodeURIComponent(u.password) : (u.searchParams.get("password") ?? "")
  u.password = ""
  u.searchParams.delete("password")
  const env: Record<string, string | undefined> = {
    ...process.env,
    PGCONNECT_TIMEOUT: process.env.PGCONNECT_TIMEOUT ?? "10",
  }
  // Without one in the URL, a PGPASSWORD (or ~/.pgpass) the operator set still applies.
  if (secret) env.PGPASSWORD = secret
  return { dbname: u.toString(), env, secret }
}

/** The database's URL without its password, for messages. */
export const safeUrl = (url: string) => connection(url).dbname

function tool(name: "pg_dump" | "pg_restore" | "psql"): string {
  const path = Bun.which(name)
  if (!path)
    throw new AppError(
      503,
      "backup.tool_missing",
      `${name} not found on PATH: Postgres backups need the PostgreSQL client tools (pg_dump, pg_restore, psql) of the server's major version or newer (Debian/Ubuntu: apt install postgresql-client)`,
    )
  return path
}

/** Runs a client tool to the end; throws its first error lines (password scrubbed) unless it exits 0. */
async function run(args: string[], conn: Connection | null, what: string): Promise<string> {
  const proc = Bun.spawn(args, {
    env: conn?.env ?? process.env,
    stdout: "pipe",
    stderr: "pipe",
    stdin: "ignore",
  })
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ])
  if (code !== 0) throw toolFailed(what, stderr, conn)
  return stdout
}

function toolFailed(what: string, stderr: string, conn: Connection | null) {
  let message = stderr.trim().split("\n").slice(0, 3).join(" / ") || "no message"
  if (conn?.secret) message = message.replaceAll(conn.secret, "***")
  return new AppError(502, "backup.tool_failed", `${what}: ${message}`)
}

export async function createPostgresBackup(url: string, target: string) {
  const conn = connection(url)
  const draft = draftName(target)
  try {
    await run(
      [tool("pg_dump"), "--format=custom", `--file=${draft}`, `--dbname=${conn.dbname}`],
      conn,
      "pg_dump failed",
    )
  } catch (error) {
    rmSync(draft, { force: true })
    throw error
  }
  publishNew(draft, target)
}

/**
 * Reads the whole archive (pg_restore decompresses every block to /dev/null: a truncated or damaged file
 * fails), checks that it holds the migrations table, and reads the migrations applied.
 */
export async function verifyPostgresBackup(file: string): Promise<SchemaVersion> {
  const pgRestore = tool("pg_restore")
  const invalid = (why: string) => new AppError(422, "backup.invalid", `${file} failed verification: ${why}`)
  const failed = (error: unknown) => (error instanceof AppError ? invalid(error.detail) : error)
  const toc = await run([pgRestore, "--list", file], null, "unreadable archive").catch((e) => {
    throw failed(e)
  })
  if (!/^\d+; \d+ \d+ TABLE \S+ kysely_migration /m.test(toc))
    throw invalid("no kysely_migration table: not a URGE database")
  await run([pgRestore, "--file=/dev/null", file], null, "damaged archive").catch((e) => {
    throw failed(e)
  })
  const data = await run(
    [pgRestore, "--data-only", "--table=kysely_migration", "--file=-", file],
    null,
    "pg_restore",
  ).catch((e) => {
    throw failed(e)
  })
  // COPY public.kysely_migration (name, "timestamp") FROM stdin; then one tab-separated row a line, then \.
  const rows = /^COPY \S*kysely_migration \(name[^\n]*\n([\s\S]*?)^\\\.$/m.exec(data)?.[1] ?? ""
  const names = rows
    .split("\n")
    .filter(Boolean)
    .map((line) => line.split("\t")[0]!)
    .sort()
  return schemaVersion(names)
}

/**
 * What holds the database now: other client sessions (waiting up to a second for them to go, as a session
 * that just disconnected leaves pg_stat_activity a moment later), and whether it has any tables of its own.
 * A server's pool closes idle connections after 10 s, so an idle server can go unseen: this is a safety net,
 * the operator still stops servers first.
 */
export async function inspectPostgres(url: string): Promise<{ otherSessions: number; tables: number }> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    for (let attempt = 0; ; attempt++) {
      const { rows } = await client.query<{ sessions: number; tables: number }>(
        `select
           (select count(*)::int from pg_stat_activity
             where datname = current_database() and pid <> pg_backend_pid() and backend_type = 'client backend') as sessions,
           (select count(*)::int from pg_tables where schemaname = 'public') as tables`,
      )
      const { sessions, tables } = rows[0]!
      if (sessions === 0 || attempt === 10) return { otherSessions: sessions, tables }
      await Bun.sleep(100)
    }
  } finally {
    await client.end()
  }
}

/**
 * Before the archive's script: drop every relation and function of the public schema (not those of
 * extensions), so the database ends up exactly as backed up, tables added by later migrations included
 * (pg_restore --clean only drops what is in the archive), and the archive's functions can be created.
 */
const dropPublicRelations = `
do $$
declare r record;
begin
  for r in
    select c.relname, c.relkind from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where n.nspname = 'public' and c.relkind in ('r', 'p', 'v', 'm', 'S', 'f')
      and not exists (select 1 from pg_depend d
                      where d.classid = 'pg_class'::regclass and d.objid = c.oid and d.deptype = 'e')
  loop
    execute format('drop %s if exists public.%I cascade',
      case r.relkind when 'v' then 'view' when 'm' then 'materialized view' when 'S' then 'sequence'
                     when 'f' then 'foreign table' else 'table' end,
      r.relname);
  end loop;
  -- Functions too (urge_search_messages, migration 0009); not those of extensions (btree_gin's).
  for r in
    select p.proname, pg_get_function_identity_arguments(p.oid) as args, p.prokind
    from pg_proc p join pg_namespace n on n.oid = p.pronamespace
    where n.nspname = 'public'
      and not exists (select 1 from pg_depend d
                      where d.classid = 'pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e')
  loop
    execute format('drop %s if exists public.%I(%s) cascade',
      case r.prokind when 'p' then 'procedure' when 'a' then 'aggregate' else 'function' end, r.proname, r.args);
  end loop;
end $$;
`

/**
 * Replaces the configured database's contents with the archive's, in one transaction: psql runs
 * `begin`, the drops above, pg_restore's script (streamed, never on disk), and `commit` only once pg_restore
 * has exited 0. Any error, or a script cut short, ends the session with the transaction open: nothing changed.
 */
export async function restorePostgresBackup(url: string, file: string) {
  const conn = connection(url)
  const pgRestore = tool("pg_restore")
  const psqlPath = tool("psql")
  // --no-owner/--no-privileges: restore as the configured role, into a database another role may own.
  const restore = Bun.spawn([pgRestore, "--no-owner", "--no-privileges", "--no-comments", "--file=-", file], {
    env: conn.env,
    stdout: "pipe",
    stderr: "pipe",
    stdin: "ignore",
  })
  const restoreErrors = new Response(restore.stderr).text()
  const reader = restore.stdout.getReader()
  const encode = (text: string) => new TextEncoder().encode(text)
  const script = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(encode(`begin;\n${dropPublicRelations}\n`))
    },
    async pull(controller) {
      const { value, done } = await reader.read()
      if (!done) return controller.enqueue(value)
      if ((await restore.exited) === 0) controller.enqueue(encode("\ncommit;\n"))
      controller.close()
    },
  })
  const psql = Bun.spawn(
    [psqlPath, "--no-psqlrc", "--quiet", "--set=ON_ERROR_STOP=1", `--dbname=${conn.dbname}`],
    { env: conn.env, stdin: script, stdout: "ignore", stderr: "pipe" },
  )
  const [psqlErrors, psqlCode] = await Promise.all([new Response(psql.stderr).text(), psql.exited])
  // psql stopped early (an error): pg_restore may be blocked writing to a pipe nobody reads.
  if (restore.exitCode === null) restore.kill()
  const restoreCode = await restore.exited
  if (psqlCode !== 0) throw toolFailed("restore failed, nothing was changed", psqlErrors, conn)
  if (restoreCode !== 0) throw toolFailed("pg_restore failed, nothing was changed", await restoreErrors, conn)
}
