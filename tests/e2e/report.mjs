// Prints every check of the end-to-end run and the closing line `e2e: N passed, M failed`.
// Usage: node report.mjs results-nvim.jsonl results-vscode.jsonl …  (exit 1 on any failure)
import fs from "node:fs";

let passed = 0;
let failed = 0;
for (const file of process.argv.slice(2)) {
  const lines = fs.existsSync(file)
    ? fs
        .readFileSync(file, "utf8")
        .split("\n")
        .filter((l) => l.trim())
    : [];
  for (const line of lines) {
    let check;
    try {
      check = JSON.parse(line);
    } catch {
      check = { name: `unreadable result in ${file}`, ok: false, detail: line };
    }
    if (check.ok) {
      passed++;
      console.log(`ok    ${check.name}`);
    } else {
      failed++;
      console.log(`FAIL  ${check.name}\n        ${String(check.detail).replace(/\n/g, "\n        ")}`);
    }
  }
}
console.log(`e2e: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 && passed > 0 ? 0 : 1);
