// Copies what the .vsix ships from the repository: the JSON Schema of *.quant.json and
// the licence. Set COREMLQ_BUNDLE_SERVER=<path to coremlq-lsp> to bundle the server too.
"use strict";
const fs = require("fs");
const path = require("path");

const ext = path.resolve(__dirname, "..");
const repo = path.resolve(ext, "..", "..");

function copy(from, to) {
  fs.mkdirSync(path.dirname(to), { recursive: true });
  fs.copyFileSync(from, to);
  console.log(`prepare-package: ${path.relative(repo, from)} -> ${path.relative(repo, to)}`);
}

copy(path.join(repo, "LICENSE"), path.join(ext, "LICENSE"));

const schema = path.join(repo, "schemas", "quant.schema.json");
const shipped = path.join(ext, "schemas", "quant.schema.json");
if (fs.existsSync(schema)) {
  copy(schema, shipped);
} else if (process.env.COREMLQ_REQUIRE_SCHEMA) {
  console.error(`prepare-package: ${path.relative(repo, schema)} is missing`);
  process.exit(1);
} else {
  // The schema is generated from the config engine's key table; until it exists the
  // extension ships a permissive one so that packaging still works.
  console.warn(`prepare-package: WARNING ${path.relative(repo, schema)} is missing; shipping a permissive schema`);
  fs.mkdirSync(path.dirname(shipped), { recursive: true });
  fs.writeFileSync(
    shipped,
    JSON.stringify(
      {
        $schema: "http://json-schema.org/draft-07/schema#",
        title: "coremlq quantization config",
        type: "object",
        required: ["model", "nbits"],
      },
      null,
      2,
    ) + "\n",
  );
}

const server = process.env.COREMLQ_BUNDLE_SERVER;
const bundled = path.join(ext, "server", process.platform === "win32" ? "coremlq-lsp.exe" : "coremlq-lsp");
if (server) {
  copy(server, bundled);
  fs.chmodSync(bundled, 0o755);
} else if (fs.existsSync(bundled)) {
  fs.rmSync(bundled);
  console.log("prepare-package: removed a previously bundled server");
}
