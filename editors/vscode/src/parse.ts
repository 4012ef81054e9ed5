// Reading the results of the server's commands. The server returns JSON objects; these
// helpers accept the field spellings below (camelCase or snake_case) and plain strings.
// No VS Code API here, so that `npm test` runs them in plain Node.

/** Sizes in bytes: the model as it is and the estimated quantized output. */
export interface Estimate {
  input?: number;
  output?: number;
}

const OUTPUT_KEYS = ["bytesAfter", "bytes_after", "estimatedOutputBytes", "estimated_output_bytes"];
const INPUT_KEYS = ["bytesBefore", "bytes_before", "fileBytes", "file_bytes", "modelBytes", "model_bytes"];
const NESTED_KEYS = ["estimate"];

export function numberAt(obj: Record<string, unknown>, keys: string[]): number | undefined {
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

const count = (n: unknown): string => (typeof n === "number" ? n.toLocaleString("en-US") : "—");

function table(rows: Record<string, unknown>[], columns: [string, string][]): string {
  const head = `| ${columns.map(([, title]) => title).join(" | ")} |\n|${columns.map(() => "---").join("|")}|\n`;
  const body = rows
    .map(
      (r) =>
        `| ${columns.map(([key]) => (typeof r[key] === "number" ? count(r[key]) : String(r[key] ?? ""))).join(" | ")} |`,
    )
    .join("\n");
  return head + body + "\n";
}

/**
 * Markdown for the summary document: the server's `coremlq.modelSummary` object (model
 * facts, the estimate, layer types, largest layers) as tables; a string as it is; anything
 * else as JSON.
 */
export function summaryText(raw: unknown, name: string): string {
  if (typeof raw === "string") {
    return raw;
  }
  if (!raw || typeof raw !== "object") {
    return `# coremlq: ${name}\n\n\`\`\`json\n${JSON.stringify(raw, null, 2)}\n\`\`\`\n`;
  }
  const o = raw as Record<string, unknown>;
  for (const key of ["markdown", "text"]) {
    if (typeof o[key] === "string") {
      return o[key] as string;
    }
  }
  if (typeof o.modelType !== "string") {
    return `# coremlq: ${name}\n\n\`\`\`json\n${JSON.stringify(raw, null, 2)}\n\`\`\`\n`;
  }
  const model = typeof o.path === "string" ? o.path : name;
  let md = `# ${model.split(/[\\/]/).pop()}\n\nConfig: \`${name}\`\n\n`;
  md += `| | |\n|---|---|\n`;
  md += `| Model type | \`${o.modelType}\`, specification version ${o.specificationVersion ?? "?"}${o.isUpdatable ? ", updatable" : ""} |\n`;
  md += `| File | ${count(o.fileBytes)} bytes |\n`;
  md += `| Weights | ${count(o.weightBytes)} bytes (${o.storage ?? ""}) |\n`;
  md += `| Layers | ${count(o.layers)} (${count(o.layersWithWeights)} with weights) |\n`;
  const est = extractEstimate(o);
  if (est?.output !== undefined) {
    md += `| Estimated output | ${count(est.input)} → ${count(est.output)} bytes |\n`;
  }
  if (typeof o.output === "string") {
    md += `| Output file | \`${o.output}\` |\n`;
  }
  if (Array.isArray(o.layerTypes) && o.layerTypes.length) {
    md += `\n## Layer types\n\n${table(o.layerTypes, [
      ["type", "type"],
      ["layers", "layers"],
      ["weightBytes", "weight bytes"],
    ])}`;
  }
  if (Array.isArray(o.largestLayers) && o.largestLayers.length) {
    md += `\n## Largest layers\n\n${table(o.largestLayers, [
      ["name", "layer"],
      ["type", "type"],
      ["weights", "weights"],
      ["weightBytes", "weight bytes"],
    ])}`;
  }
  return md;
}

/** A size for people, in the server's decimal units: `512 B`, `9.8 KB`, `337 KB`, `1.3 MB`. */
export function formatBytes(n: number): string {
  if (n < 1000) {
    return `${n} B`;
  }
  const units = ["KB", "MB", "GB", "TB"];
  let v = n / 1000;
  let i = 0;
  while (v >= 999.95 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${v < 9.95 ? v.toFixed(1) : v.toFixed(0)} ${units[i]}`;
}
