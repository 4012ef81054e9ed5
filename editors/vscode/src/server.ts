// Where the language server binary comes from: the setting, else a copy bundled in the
// extension (`server/coremlq-lsp`), else `coremlq-lsp` on PATH.

import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as vscode from "vscode";

/** The command to run and where it came from (for the log). */
export interface ServerCommand {
  command: string;
  origin: "setting" | "bundled" | "PATH";
}

export function resolveServer(context: vscode.ExtensionContext): ServerCommand {
  const exe = process.platform === "win32" ? "coremlq-lsp.exe" : "coremlq-lsp";
  const configured = vscode.workspace.getConfiguration("coremlq").get<string>("server.path", "").trim();
  if (configured) {
    let p = configured.startsWith("~/") ? path.join(os.homedir(), configured.slice(2)) : configured;
    const folder = vscode.workspace.workspaceFolders?.[0];
    if (!path.isAbsolute(p) && p.includes(path.sep) && folder) {
      p = path.join(folder.uri.fsPath, p);
    }
    return { command: p, origin: "setting" };
  }
  const bundled = context.asAbsolutePath(path.join("server", exe));
  if (fs.existsSync(bundled)) {
    return { command: bundled, origin: "bundled" };
  }
  return { command: exe, origin: "PATH" };
}
