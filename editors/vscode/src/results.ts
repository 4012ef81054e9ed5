// The output of `coremlq.quantize` as VS Code URIs.

import * as vscode from "vscode";
import { numberAt } from "./parse";

/** The output file (and its size, when given) in a `coremlq.quantize` result. */
export function extractOutput(raw: unknown, config: vscode.Uri): { uri?: vscode.Uri; bytes?: number } {
  const toUri = (s: string): vscode.Uri => {
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(s)) {
      return vscode.Uri.parse(s);
    }
    if (s.startsWith("/")) {
      return vscode.Uri.file(s);
    }
    return vscode.Uri.joinPath(config, "..", s);
  };
  if (typeof raw === "string") {
    return { uri: toUri(raw) };
  }
  if (!raw || typeof raw !== "object") {
    return {};
  }
  const obj = raw as Record<string, unknown>;
  let uri: vscode.Uri | undefined;
  for (const key of ["outputUri", "output_uri", "uri", "output", "outputPath", "output_path", "path"]) {
    if (typeof obj[key] === "string") {
      uri = toUri(obj[key] as string);
      break;
    }
  }
  const bytes = numberAt(obj, ["bytesAfter", "bytes_after", "bytes", "size", "outputBytes", "output_bytes"]);
  return { uri, bytes };
}
