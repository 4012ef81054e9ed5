// Reading the results of the server's commands. The server returns JSON objects; these
// helpers accept the field spellings below (camelCase or snake_case) and plain strings.

import * as vscode from "vscode";

/** Sizes in bytes: the model as it is and the estimated quantized output. */
export interface Estimate {
  input?: number;
  output?: number;
}

const OUTPUT_KEYS = [
  "estimatedOutputBytes",
  "estimated_output_bytes",
  "outputBytes",
  "output_bytes",
  "estimatedBytes",
  "estimated_bytes",
  "after",
];
const INPUT_KEYS = [
  "modelBytes",
  "model_bytes",
  "inputBytes",
  "input_bytes",
  "originalBytes",
  "original_bytes",
  "before",
];
const NESTED_KEYS = ["estimate", "estimates", "size", "sizes", "summary"];

function numberAt(obj: Record<string, unknown>, keys: string[]): number | undefined {
  for (const key of keys) {
    const v = obj[key];
    if (typeof v === "number" && Number.isFinite(v)) {
      return v;
    }
  }
  return undefined;
}

/** The estimate in a `coremlq.modelSummary` result (object or markdown text). */
export function extractEstimate(raw: unknown): Estimate | undefined {
  if (typeof raw === "number") {
    return { output: raw };
  }
  if (typeof raw === "string") {
    return parseArrowEstimate(raw);
  }
  if (!raw || typeof raw !== "object") {
    return undefined;
  }
  const obj = raw as Record<string, unknown>;
  const direct: Estimate = { input: numberAt(obj, INPUT_KEYS), output: numberAt(obj, OUTPUT_KEYS) };
  if (direct.output !== undefined) {
    return direct;
  }
  for (const key of NESTED_KEYS) {
    const nested = obj[key];
    if (nested && typeof nested === "object") {
      const found = extractEstimate(nested);
      if (found?.output !== undefined) {
        return { input: found.input ?? direct.input, output: found.output };
      }
    }
  }
  for (const key of ["markdown", "text", "value"]) {
    if (typeof obj[key] === "string") {
      const found = parseArrowEstimate(obj[key] as string);
      if (found) {
        return found;
      }
    }
  }
  return undefined;
}

const NUMBER = String.raw`(\d{1,3}(?:[,_\u202f\u00a0 ]\d{3})+|\d+)`;

function toInt(s: string): number {
  return Number(s.replace(/[^\d]/g, ""));
}

/**
 * Sizes written as `1,279,267 B → 336,546 B` or `1,279,267 → 336,546 bytes`: the exact
 * byte count after the first arrow that is followed by one (a number with the unit `B` or
 * `bytes`), and the last number before that arrow. Rounded units (KB, MiB…) are not exact
 * and are not taken.
 */
export function parseArrowEstimate(text: string): Estimate | undefined {
  const exact = new RegExp(`${NUMBER}\\s*(?:B|bytes)\\b`, "g");
  const any = new RegExp(NUMBER, "g");
  for (const line of text.split(/\r?\n/)) {
    const arrow = line.indexOf("→");
    if (arrow < 0) {
      continue;
    }
    const right = [...line.slice(arrow + 1).matchAll(exact)][0];
    if (right) {
      const left = [...line.slice(0, arrow).matchAll(any)].pop();
      return { input: left ? toInt(left[1]) : undefined, output: toInt(right[1]) };
    }
  }
  return undefined;
}

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
  const bytes = numberAt(obj, [
    "bytes",
    "size",
    "outputBytes",
    "output_bytes",
    "written",
    "writtenBytes",
    "written_bytes",
  ]);
  return { uri, bytes };
}

/** Markdown for the summary document. */
export function summaryText(raw: unknown, name: string): string {
  if (typeof raw === "string") {
    return raw;
  }
  if (raw && typeof raw === "object") {
    const obj = raw as Record<string, unknown>;
    for (const key of ["markdown", "text", "summary"]) {
      if (typeof obj[key] === "string") {
        return obj[key] as string;
      }
    }
  }
  return `# coremlq: ${name}\n\n\`\`\`json\n${JSON.stringify(raw, null, 2)}\n\`\`\`\n`;
}

/** `336,546 bytes` below 10 kB, else `329.2 KiB` style. */
export function formatBytes(n: number): string {
  if (n < 10 * 1024) {
    return `${n.toLocaleString("en-US")} B`;
  }
  const units = ["KiB", "MiB", "GiB"];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)} ${units[i]}`;
}
