import { buildProgram } from "../../cli/program.ts"

/** Runs `urge <args>` in-process with a fresh commander program; returns what it printed. Throws on a CLI error. */
export async function runCli(args: string[], env: Record<string, string | undefined> = {}, cwd?: string) {
  const out: string[] = []
  const program = buildProgram({ env, cwd, print: (line) => out.push(line) })
  program.exitOverride()
  program.configureOutput({ writeOut: (s) => out.push(s), writeErr: (s) => out.push(s) })
  for (const sub of program.commands) sub.exitOverride()
  await program.parseAsync(["node", "urge", ...args])
  return out.join("\n")
}
