// Drives the VS Code end-to-end test: installs the .vsix into a fresh code-server, starts
// it on the workspace, connects headless Chromium (which starts the extension host), takes
// the screenshots the extension's test command asks for, and converts the extension's
// results.json into JSON lines.
//
// Environment (set by tests/e2e/run.sh):
//   E2E_CODE_SERVER  code-server executable        E2E_PLAYWRIGHT  playwright-core folder
//   E2E_VSIX         the packaged extension        E2E_WORKSPACE   folder to open
//   E2E_HOME         scratch folder (profiles)     E2E_ARTIFACTS   screenshots, logs
//   E2E_RESULTS      JSON-lines file to write      COREMLQ_LSP     the server binary
//   E2E_CHROMIUM     browser (default /usr/bin/chromium)
//   E2E_TIMEOUT      seconds for the whole run (default 240)

import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { createRequire } from "node:module";

const env = (name, fallback) => {
  const v = process.env[name] ?? fallback;
  if (v === undefined) {
    throw new Error(`${name} is not set`);
  }
  return v;
};

const codeServer = env("E2E_CODE_SERVER");
const vsix = env("E2E_VSIX");
const workspace = env("E2E_WORKSPACE");
const home = env("E2E_HOME");
const artifacts = env("E2E_ARTIFACTS");
const resultsFile = env("E2E_RESULTS");
const lsp = env("COREMLQ_LSP");
const chromiumPath = env("E2E_CHROMIUM", "/usr/bin/chromium");
const timeoutMs = Number(env("E2E_TIMEOUT", "240")) * 1000;
const { chromium } = createRequire(path.join(env("E2E_PLAYWRIGHT"), "noop.js"))("playwright-core");

const userData = path.join(home, "user-data");
const extensions = path.join(home, "extensions");
const out = path.join(home, "out");
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (...a) => console.log(`${new Date().toISOString().slice(11, 19)} vscode:`, ...a);
const extra = []; // checks of the driver itself

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function prepareProfile() {
  fs.rmSync(home, { recursive: true, force: true });
  for (const d of [userData, extensions, out, path.join(userData, "User"), artifacts]) {
    fs.mkdirSync(d, { recursive: true });
  }
  const settings = {
    "coremlq.server.path": lsp,
    "coremlq.trace.server": "messages",
    "workbench.startupEditor": "none",
    "workbench.tips.enabled": false,
    "workbench.welcomePage.walkthroughs.openOnInstall": false,
    "workbench.colorTheme": "Default Light Modern",
    "security.workspace.trust.enabled": false,
    "telemetry.telemetryLevel": "off",
    "extensions.autoCheckUpdates": false,
    "extensions.autoUpdate": false,
    "update.mode": "none",
    "editor.minimap.enabled": false,
    "editor.fontSize": 14,
    "editor.hover.delay": 100,
    "breadcrumbs.enabled": false,
    "chat.commandCenter.enabled": false,
    "workbench.secondarySideBar.defaultVisibility": "hidden",
    "git.enabled": false,
    "git.openRepositoryInParentFolders": "never",
  };
  fs.writeFileSync(path.join(userData, "User", "settings.json"), JSON.stringify(settings, null, 2));
}

function installExtension() {
  const r = spawnSync(
    codeServer,
    ["--user-data-dir", userData, "--extensions-dir", extensions, "--install-extension", vsix],
    { encoding: "utf8", timeout: 120000 },
  );
  const text = `${r.stdout}\n${r.stderr}`;
  fs.writeFileSync(path.join(artifacts, "vscode-install-extension.log"), text);
  const ok = r.status === 0 && /successfully installed/i.test(text);
  extra.push({
    name: "vscode: .vsix installs offline into code-server",
    ok,
    detail: text.trim().slice(-500),
  });
  return ok;
}

async function waitHttp(url, ms) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    try {
      const r = await fetch(url);
      if (r.status < 500) {
        return true;
      }
    } catch {
      // not up yet
    }
    await sleep(250);
  }
  return false;
}

function readResults() {
  try {
    return JSON.parse(fs.readFileSync(path.join(out, "results.json"), "utf8"));
  } catch {
    return undefined;
  }
}

async function screenshot(page, name) {
  const file = path.join(artifacts, `vscode-${name}.png`);
  let clip;
  try {
    const box = await page.locator(".part.editor").first().boundingBox({ timeout: 2000 });
    if (box) {
      clip = {
        x: box.x,
        y: box.y,
        width: Math.min(box.width, 860),
        height: Math.min(box.height, 440),
      };
    }
  } catch {
    clip = undefined;
  }
  await page.screenshot({ path: file, clip });
  log(`screenshot ${path.relative(process.cwd(), file)}`);
}

// What the screenshot shows, read back from the page: the hover widget with the estimate,
// the suggest widget with layer names (the API checks do not see VS Code's own filtering).
async function checkWidget(page, name) {
  try {
    if (name === "reveal") {
      await revealInExplorer(page);
    } else if (name === "hover") {
      const text = (await page.locator(".monaco-hover:visible").allInnerTexts()).join("\n");
      extra.push({
        name: "vscode: hover widget shows the estimate on screen",
        ok: text.includes("→"),
        detail: text.slice(0, 300),
      });
    } else if (name === "completion") {
      const rows = await page.locator(".suggest-widget.visible .monaco-list-row").allInnerTexts();
      const ok = rows.some((r) => /conv1|dw1|pw1|fc1|classifier/.test(r));
      extra.push({
        name: "vscode: completion list shows layer names on screen",
        ok,
        detail: rows.slice(0, 12).join(" | ") || "empty",
      });
    }
  } catch (err) {
    extra.push({
      name: `vscode: ${name} widget on screen`,
      ok: false,
      detail: String(err),
    });
  }
}

// Clicks "Reveal in explorer" on the result of Quantize model (a toast, or in the
// notification center: headless, VS Code sometimes files it there without a toast); the
// output file must then be the selected row of the explorer.
async function revealInExplorer(page) {
  const name = "vscode: Reveal in explorer selects the output file";
  const button = page.getByRole("button", { name: "Reveal in explorer" }).first();
  if (!(await button.isVisible().catch(() => false))) {
    await sleep(2000);
  }
  if (!(await button.isVisible().catch(() => false))) {
    await page
      .locator("#status\\.notifications")
      .click()
      .catch(() => undefined);
  }
  let selected = [];
  for (let attempt = 0; attempt < 3 && !selected.some((t) => t.includes("MobileNetMini.e2e.mlmodel")); attempt++) {
    await button.click({ timeout: 5000 }).catch(() => undefined);
    await sleep(1500);
    selected = await page.locator(".explorer-folders-view .monaco-list-row.selected").allInnerTexts();
  }
  await page.screenshot({ path: path.join(artifacts, "vscode-reveal.png") });
  extra.push({
    name,
    ok: selected.some((t) => t.includes("MobileNetMini.e2e.mlmodel")),
    detail: `selected in the explorer: ${selected.join(" | ") || "none"}`,
  });
}

async function main() {
  prepareProfile();
  if (!installExtension()) {
    return;
  }
  const port = await freePort();
  const config = path.join(home, "code-server.yaml");
  fs.writeFileSync(config, `bind-addr: 127.0.0.1:${port}\nauth: none\ncert: false\n`);
  const serverLog = fs.openSync(path.join(artifacts, "vscode-code-server.log"), "w");
  const server = spawn(
    codeServer,
    [
      "--config",
      config,
      "--auth",
      "none",
      "--bind-addr",
      `127.0.0.1:${port}`,
      "--user-data-dir",
      userData,
      "--extensions-dir",
      extensions,
      "--disable-telemetry",
      "--disable-update-check",
      "--disable-workspace-trust",
      "--disable-getting-started-override",
      workspace,
    ],
    {
      env: { ...process.env, COREMLQ_E2E_OUT: out },
      stdio: ["ignore", serverLog, serverLog],
      detached: true,
    },
  );
  let browser;
  try {
    if (!(await waitHttp(`http://127.0.0.1:${port}/healthz`, 60000))) {
      extra.push({
        name: "vscode: code-server starts",
        ok: false,
        detail: "no answer on /healthz in 60 s",
      });
      return;
    }
    log(`code-server on port ${port}`);
    browser = await chromium.launch({
      executablePath: chromiumPath,
      headless: true,
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
    const page = await browser.newPage({
      viewport: { width: 1100, height: 640 },
    });
    await page.goto(`http://127.0.0.1:${port}/?folder=${encodeURIComponent(workspace)}`);
    log("browser connected");

    const end = Date.now() + timeoutMs;
    const taken = new Set();
    let results;
    while (Date.now() < end) {
      for (const f of fs.readdirSync(out)) {
        const m = /^request-(.+)$/.exec(f);
        if (m && !taken.has(m[1])) {
          taken.add(m[1]);
          if (m[1] !== "reveal") {
            // Let the widget appear before the picture (headless rendering can lag).
            const widget = { hover: ".monaco-hover:visible", completion: ".suggest-widget.visible .monaco-list-row" }[
              m[1]
            ];
            if (widget) {
              await page
                .locator(widget)
                .first()
                .waitFor({ state: "visible", timeout: 5000 })
                .catch(() => undefined);
            }
            await screenshot(page, m[1]);
          }
          await checkWidget(page, m[1]);
          fs.writeFileSync(path.join(out, `done-${m[1]}`), "");
        }
      }
      results = readResults();
      if (results?.done) {
        break;
      }
      await sleep(200);
    }
    await page.screenshot({ path: path.join(artifacts, "vscode-final.png") });
    if (!results) {
      extra.push({
        name: "vscode: extension test command ran",
        ok: false,
        detail: "no results.json: the extension did not activate (see vscode-code-server.log)",
      });
    } else if (!results.done) {
      extra.push({
        name: "vscode: extension test command finished",
        ok: false,
        detail: `timeout after ${timeoutMs / 1000} s`,
      });
    }
  } finally {
    if (browser) {
      await browser.close().catch(() => undefined);
    }
    try {
      process.kill(-server.pid, "SIGTERM");
    } catch {
      // already gone
    }
    // Keep the extension host's log: the client's output channel holds the server's stderr.
    const logs = path.join(userData, "logs");
    if (fs.existsSync(logs)) {
      fs.cpSync(logs, path.join(artifacts, "vscode-logs"), { recursive: true });
    }
  }
}

try {
  await main();
} catch (err) {
  extra.push({
    name: "vscode: driver",
    ok: false,
    detail: String(err?.stack ?? err),
  });
}
const checks = [...extra, ...(readResults()?.checks ?? [])];
fs.writeFileSync(resultsFile, checks.map((c) => JSON.stringify(c)).join("\n") + (checks.length ? "\n" : ""));
process.exit(0);
