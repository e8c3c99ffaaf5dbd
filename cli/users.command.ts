import { Command } from "commander"
import {
  createUserByAdmin,
  listUsersForAdmin,
  pendingVerificationsForAdmin,
  reviewVerificationByPhone,
  revokeSessionsByPhone,
  setRoleByPhone,
} from "../src/accounts/admin.service.ts"
import type { Deps } from "../src/deps.ts"
import type { CliContext } from "./program.ts"

/** `urge users set-role | create | list | revoke-sessions | verification-requests | review-verification`. */
export function usersCommand(cli: CliContext): Command {
  const withDeps =
    <A extends unknown[]>(run: (deps: Deps, ...args: A) => Promise<void>) =>
    async (...args: A) => {
      const deps = cli.deps()
      try {
        await run(deps, ...args)
      } finally {
        await deps.close()
      }
    }
  const command = new Command("users").description("manage accounts: roles, creation, sessions")
  command
    .command("set-role")
    .description("set an account's role: FOUNDER, CO_FOUNDER, VERIFIED or REGULAR")
    .argument("<phone>", "the account's phone number")
    .argument("<role>", "FOUNDER | CO_FOUNDER | VERIFIED | REGULAR")
    .action(
      withDeps(async (deps, phone: string, role: string) => {
        const changed = await setRoleByPhone(deps, phone, role)
        cli.print(`${changed.phone_number}: ${changed.from} -> ${changed.to}`)
      }),
    )
  command
    .command("create")
    .description("create an account (its phone number counts as verified)")
    .argument("<phone>", "phone number, international format")
    .option("--name <name>", "display name")
    .option("--password <password>", "password (8+ characters); without one the user signs in with SMS codes")
    .option("--role <role>", "FOUNDER | CO_FOUNDER | VERIFIED | REGULAR", "REGULAR")
    .action(
      withDeps(async (deps, phone: string, opts: { name?: string; password?: string; role?: string }) => {
        const user = await createUserByAdmin(deps, {
          phone,
          displayName: opts.name,
          password: opts.password,
          role: opts.role,
        })
        cli.print(`created ${user.id} ${user.phone_number} ${user.role}`)
      }),
    )
  command
    .command("list")
    .description("list accounts, oldest first")
    .option("--search <text>", "only names or phone numbers containing this")
    .option("--limit <n>", "at most this many", "100")
    .action(
      withDeps(async (deps, opts: { search?: string; limit: string }) => {
        const limit = Math.max(1, Math.min(10_000, Number.parseInt(opts.limit, 10) || 100))
        const users = await listUsersForAdmin(deps, { limit, search: opts.search })
        for (const u of users)
          cli.print(
            [
              u.id,
              u.phone_number,
              u.role,
              u.is_verified ? "verified" : "unverified",
              u.created_at,
              u.display_name ?? "",
            ].join("\t"),
          )
        if (!users.length) cli.print("no users")
      }),
    )
  command
    .command("revoke-sessions")
    .description("end every session of an account (its tokens stop working at once)")
    .argument("<phone>", "the account's phone number")
    .action(
      withDeps(async (deps, phone: string) => {
        const result = await revokeSessionsByPhone(deps, phone)
        cli.print(`${result.phone_number}: ${result.ended} session(s) ended`)
      }),
    )
  command
    .command("verification-requests")
    .description("list pending verification (badge) requests")
    .action(
      withDeps(async (deps) => {
        const { requests } = await pendingVerificationsForAdmin(deps)
        for (const r of requests)
          cli.print(
            [r.user.phone_number, r.created_at, r.full_name, r.reason, r.social_proof ?? ""].join("\t"),
          )
        if (!requests.length) cli.print("no pending requests")
      }),
    )
  command
    .command("review-verification")
    .description("approve (grants VERIFIED) or reject an account's pending verification request")
    .argument("<phone>", "the account's phone number")
    .argument("<decision>", "approve | reject")
    .option("--reason <text>", "why it was rejected (shown to the user)")
    .action(
      withDeps(async (deps, phone: string, decision: string, opts: { reason?: string }) => {
        const result = await reviewVerificationByPhone(deps, phone, decision, opts.reason)
        cli.print(`${result.phone_number}: ${result.verification_status}`)
      }),
    )
  return command
}
