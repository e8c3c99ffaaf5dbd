import { Command, Option } from "commander"
import pkg from "../package.json" with { type: "json" }
import { type Config, ConfigError, type ConfigKey, loadConfig } from "../src/config.ts"
import { createDeps, type Deps } from "../src/deps.ts"
import { AppError } from "../src/errors.ts"
import { backupCommand } from "./backup.command.ts"
import { configCommand } from "./config.command.ts"
import { doctorCommand } from "./doctor.command.ts"
import { migrateCommand } from "./migrate.command.ts"
import { serveCommand } from "./serve.command.ts"
import { usersCommand } from "./users.command.ts"

/** What every command gets: a way to load the config (with its own flag overrides) and build deps. */
export type CliContext = {
  loadConfig(overrides?: Partial<Record<ConfigKey, unknown>>): Config
  /** Builds deps from the config; the command closes them. */
  deps(overrides?: Partial<Record<ConfigKey, unknown>>): Deps
  /** Where commands write their results (stdout; tests capture it). */
  print(line: string): void
  /** The directory relative paths given on the command line are resolved against. */
  cwd: string
}

export type ProgramOptions = {
  env?: Record<string, string | undefined>
  cwd?: string
  print?: (line: string) => void
}

/** The `urge` command line: one binary for the server and its administration. */
export function buildProgram(options: ProgramOptions = {}): Command {
  const program = new Command("urge")
    .description("URGE server: messaging backend for the URGE app, and its admin CLI")
    .version(pkg.version, "-v, --version")
    .addOption(new Option("-c, --config <path>", "config file (default: ./config.toml if present)"))
    .showHelpAfterError()

  const context: CliContext = {
    loadConfig: (overrides) =>
      loadConfig({ configPath: program.opts().config, env: options.env, cwd: options.cwd, overrides }),
    deps: (overrides) => createDeps(context.loadConfig(overrides)),
    print: options.print ?? ((line) => console.log(line)),
    cwd: options.cwd ?? process.cwd(),
  }
  program.addCommand(serveCommand(context))
  program.addCommand(migrateCommand(context))
  program.addCommand(configCommand(context))
  program.addCommand(doctorCommand(context))
  program.addCommand(usersCommand(context))
  program.addCommand(backupCommand(context))
  return program
}

/** Runs the program; known errors print `error: <detail>` and exit 1. */
export async function runCli(argv: string[], options: ProgramOptions = {}): Promise<void> {
  try {
    await buildProgram(options).parseAsync(argv)
  } catch (error) {
    // An operator gets one line, not a stack: a bad value, an unreachable database, a refused action.
    const message =
      error instanceof AppError ? error.detail : error instanceof Error ? error.message : String(error)
    console.error(`error: ${message}`)
    if (!(error instanceof ConfigError || error instanceof AppError) && process.env.URGE_DEBUG)
      console.error(error)
    process.exit(1)
  }
}
