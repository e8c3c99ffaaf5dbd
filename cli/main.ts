#!/usr/bin/env bun
import { runCli } from "./program.ts"

await runCli(process.argv)
