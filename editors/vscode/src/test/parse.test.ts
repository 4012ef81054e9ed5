// Unit tests of the result parsing (`npm test`: bundled by esbuild, run by node --test).

import assert from "node:assert/strict";
import { test } from "node:test";
import { extractEstimate, formatBytes, parseArrowEstimate, summaryText } from "../parse";

test("estimate from the server's hover text (exact bytes after the arrow)", () => {
  const hover = [
    "**nbits** (required)",
    "",
    "Weights 1.2 MB → 310 KB (−75%)",
    "",
    "Output file: 1,279,267 → 336,546 bytes (−74%)",
  ].join("\n");
  assert.deepEqual(parseArrowEstimate(hover), { input: 1279267, output: 336546 });
});

test("estimate with units on both sides and other separators", () => {
  assert.deepEqual(parseArrowEstimate("1\u202f279\u202f267 B → 336_546 B"), { input: 1279267, output: 336546 });
  assert.deepEqual(parseArrowEstimate("→ 512 B"), { input: undefined, output: 512 });
});

test("no estimate from rounded units or text without an arrow", () => {
  assert.equal(parseArrowEstimate("Weights 1.2 MB → 310 KB"), undefined);
  assert.equal(parseArrowEstimate("1,000 bytes"), undefined);
  assert.equal(parseArrowEstimate(""), undefined);
});

test("estimate from summary objects in either spelling, nested or as markdown", () => {
  assert.deepEqual(extractEstimate({ fileBytes: 10, estimate: { bytesBefore: 10, bytesAfter: 4 } }), {
    input: 10,
    output: 4,
  });
  assert.deepEqual(extractEstimate({ modelBytes: 10, estimatedOutputBytes: 4 }), { input: 10, output: 4 });
  assert.deepEqual(extractEstimate({ model_bytes: 10, estimated_output_bytes: 4 }), { input: 10, output: 4 });
  assert.deepEqual(extractEstimate({ model_bytes: 10, estimate: { bytes_after: 4 } }), { input: 10, output: 4 });
  assert.deepEqual(extractEstimate({ markdown: "File: 10 → 4 bytes" }), { input: 10, output: 4 });
  assert.deepEqual(extractEstimate(7), { output: 7 });
  assert.equal(extractEstimate({ layers: [] }), undefined);
  assert.equal(extractEstimate(null), undefined);
});

test("sizes for people, in the server's decimal units", () => {
  assert.equal(formatBytes(0), "0 B");
  assert.equal(formatBytes(999), "999 B");
  assert.equal(formatBytes(9800), "9.8 KB");
  assert.equal(formatBytes(336546), "337 KB");
  assert.equal(formatBytes(1279267), "1.3 MB");
});

test("summary text: markdown as is, objects as JSON", () => {
  assert.equal(summaryText("# s", "a.quant.json"), "# s");
  assert.equal(summaryText({ markdown: "# m" }, "a.quant.json"), "# m");
  assert.match(summaryText({ layers: 3 }, "a.quant.json"), /```json\n\{\n {2}"layers": 3\n\}\n```/);
  const md = summaryText(
    {
      path: "/m/MobileNetMini.mlmodel",
      modelType: "neuralNetworkClassifier",
      specificationVersion: 4,
      fileBytes: 1279267,
      layers: 33,
      layerTypes: [{ type: "convolution", layers: 9, weightBytes: 1000 }],
      estimate: { bytesBefore: 1279267, bytesAfter: 336546 },
    },
    "a.quant.json",
  );
  assert.match(md, /^# MobileNetMini\.mlmodel/);
  assert.match(md, /\| Estimated output \| 1,279,267 → 336,546 bytes \|/);
  assert.match(md, /\| convolution \| 9 \| 1,000 \|/);
});
