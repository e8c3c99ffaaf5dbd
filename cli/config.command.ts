import { Command } from "commander"
import { renderExampleConfig } from "../src/config.ts"
import type { CliContext } from "./program.ts"

/** `urge config example | check`. */
export function configCommand(cli: CliContext): Command {
  const command = new Command("config").description("show or check the configuration")
  command
    .command("example")
    .description("print a config file with every key, its default and what it does")
    .action(() => cli.print(renderExampleConfig().trimEnd()))
  command
    .command("check")
    .description("validate the configuration (file, environment) and print where it came from")
    .action(() => {
      const config = cli.loadConfig()
      cli.print(`ok: ${config.source ?? "no config file, defaults and environment"}`)
    })
  return command
}
