#!/usr/bin/env node
// Runs the mcpgate binary of this platform, shipped in an optional dependency
// (mcpgate-<os>-<cpu>): npm installs only the one whose "os" and "cpu" match.
// stdin, stdout and stderr are the binary's own, so `mcpgate bridge` speaks
// MCP over this process's stdio.
"use strict";

const { spawnSync } = require("node:child_process");
const path = require("node:path");

const PLATFORMS = {
  "linux x64": "mcpgate-linux-x64",
};

function binaryPath() {
  const key = `${process.platform} ${process.arch}`;
  const pkg = PLATFORMS[key];
  if (!pkg) {
    throw new Error(
      `mcpgate has no prebuilt binary for ${key}; build it from source: cargo install --git https://github.com/mcpgate/mcpgate mcpgate`,
    );
  }
  let manifest;
  try {
    manifest = require.resolve(`${pkg}/package.json`);
  } catch {
    throw new Error(
      `the package ${pkg} (mcpgate's binary for ${key}) is not installed: reinstall mcpgate without --no-optional / --omit=optional`,
    );
  }
  return path.join(path.dirname(manifest), "bin", "mcpgate");
}

let bin;
try {
  bin = binaryPath();
} catch (e) {
  process.stderr.write(`mcpgate: ${e.message}\n`);
  process.exit(1);
}

const result = spawnSync(bin, process.argv.slice(2), { stdio: "inherit" });
if (result.error) {
  process.stderr.write(`mcpgate: cannot run ${bin}: ${result.error.message}\n`);
  process.exit(1);
}
if (result.signal) {
  // Die of the same signal, so the caller sees what the binary saw.
  process.kill(process.pid, result.signal);
}
process.exit(result.status ?? 1);
