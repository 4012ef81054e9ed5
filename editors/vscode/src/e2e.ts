// End-to-end checks run inside a real VS Code (code-server) by tests/e2e/run.sh.
//
// Enabled only when the environment variable COREMLQ_E2E_OUT names a directory: then the
// command `coremlq.e2e.run` exists and runs once by itself after activation. It drives the
// workspace's fixture configs through the VS Code API, asks the browser driver for
// screenshots through files in that directory (`request-<name>` → `done-<name>`), and
// writes `results.json` (`{done, checks: [{name, ok, detail}]}`).

import * as fs from "fs";
import * as path from "path";
import * as vscode from "vscode";
import type { Api } from "./extension";
import { parseArrowEstimate } from "./parse";

interface Check {
  name: string;
  ok: boolean;
  detail: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor<T>(
  what: () => T | undefined | Promise<T | undefined>,
  timeoutMs: number,
): Promise<T | undefined> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await what();
    if (v !== undefined && v !== null && v !== false) {
      return v;
    }
    if (Date.now() > end) {
      return undefined;
    }
    await sleep(100);
  }
}

export function registerE2e(context: vscode.ExtensionContext, api: Api): void {
  const out = process.env.COREMLQ_E2E_OUT;
  if (!out) {
    return;
  }
  let running: Promise<void> | undefined;
  const run = () => (running ??= new Runner(out, api).run());
  context.subscriptions.push(vscode.commands.registerCommand("coremlq.e2e.run", run));
  setTimeout(run, 500);
}

class Runner {
  private readonly checks: Check[] = [];
  /** Where the hover with the estimate was found (text to find, character offset). */
  private hoverAt: [string, number] = ['"nbits": 8', 10];
  private readonly folder: vscode.Uri;

  constructor(
    private readonly out: string,
    private readonly api: Api,
  ) {
    const folder = vscode.workspace.workspaceFolders?.[0]?.uri;
    if (!folder) {
      throw new Error("e2e: no workspace folder");
    }
    this.folder = folder;
  }

  private record(name: string, ok: boolean, detail: unknown): void {
    const text = typeof detail === "string" ? detail : JSON.stringify(detail);
    this.checks.push({ name, ok, detail: text.length > 2000 ? text.slice(0, 2000) + "…" : text });
    this.flush(false);
  }

  private flush(done: boolean): void {
    fs.mkdirSync(this.out, { recursive: true });
    const file = path.join(this.out, "results.json");
    fs.writeFileSync(file + ".tmp", JSON.stringify({ done, checks: this.checks }, null, 2));
    fs.renameSync(file + ".tmp", file);
  }

  /** Asks the browser driver for a screenshot and waits until it is taken. */
  private async screenshot(name: string): Promise<boolean> {
    const done = path.join(this.out, `done-${name}`);
    fs.writeFileSync(path.join(this.out, `request-${name}`), "");
    return (await waitFor(() => fs.existsSync(done), 30000)) === true;
  }

  private uri(name: string): vscode.Uri {
    return vscode.Uri.joinPath(this.folder, name);
  }

  private async open(name: string): Promise<vscode.TextEditor> {
    const doc = await vscode.workspace.openTextDocument(this.uri(name));
    return vscode.window.showTextDocument(doc, { preview: false });
  }

  /** Position of the `nth` occurrence of `needle` in the document, plus `delta` characters. */
  private pos(doc: vscode.TextDocument, needle: string, delta = 0): vscode.Position {
    const offset = doc.getText().indexOf(needle);
    if (offset < 0) {
      throw new Error(`e2e: ${needle} not in ${doc.uri.path}`);
    }
    return doc.positionAt(offset + delta);
  }

  private async step(name: string, body: () => Promise<void>): Promise<void> {
    try {
      await body();
    } catch (err) {
      this.record(name, false, `exception: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    }
  }

  async run(): Promise<void> {
    this.flush(false);
    const client = await waitFor(() => {
      const c = this.api.client();
      return c && c.isRunning() ? c : undefined;
    }, 30000);
    this.record("vscode: language server running", !!client, client ? "running" : "not running after 30 s");
    if (client) {
      await this.step("vscode: diagnostics", () => this.diagnostics());
      await this.step("vscode: completion of layer names", () => this.completion());
      let estimate: number | undefined;
      await this.step("vscode: hover shows the estimate", async () => {
        estimate = await this.hover();
      });
      await this.step("vscode: status bar shows the estimate", () => this.statusBar(estimate));
      await this.step("vscode: quantize writes the estimated size", () => this.quantize(estimate));
      await this.step("vscode: Reveal in explorer", () => this.reveal());
      await this.step("vscode: Show model summary", () => this.summary());
      await this.step("vscode: Restart server command", () => this.restart());
      await this.step("vscode: screenshots", () => this.screenshots());
    }
    this.flush(true);
  }

  private async diagnostics(): Promise<void> {
    const editor = await this.open("bad.quant.json");
    const doc = editor.document;
    // Wait for the three expected (the checks below say which are missing).
    await waitFor(() => {
      const d = vscode.languages.getDiagnostics(doc.uri);
      return d.length >= 3 ? d : undefined;
    }, 30000);
    const all = vscode.languages.getDiagnostics(doc.uri);
    const summary = all.map((d) => ({
      code: typeof d.code === "object" ? d.code.value : d.code,
      severity: vscode.DiagnosticSeverity[d.severity],
      range: [d.range.start.line, d.range.start.character, d.range.end.line, d.range.end.character],
      message: d.message,
    }));
    const at = (needle: string, delta: number) => this.pos(doc, needle, delta);
    const covers = (d: vscode.Diagnostic, p: vscode.Position) => d.range.contains(p);

    const nbits = at(": 9", 2);
    const nbitsDiag = all.find((d) => d.severity === vscode.DiagnosticSeverity.Error && covers(d, nbits));
    this.record(
      "vscode: diagnostic for a bad nbits (error on the value 9)",
      !!nbitsDiag && /nbits|1.*8.*16|16/i.test(nbitsDiag.message),
      nbitsDiag ? summary[all.indexOf(nbitsDiag)] : { none: "no error covering the value 9", got: summary },
    );

    const layer = at('"fc_1"', 1);
    const layerDiag = all.find((d) => covers(d, layer) && d.severity <= vscode.DiagnosticSeverity.Warning);
    this.record(
      "vscode: diagnostic for an unknown layer (fc_1, on the key)",
      !!layerDiag && /fc_1/.test(layerDiag.message),
      layerDiag ? summary[all.indexOf(layerDiag)] : { none: "no diagnostic on fc_1", got: summary },
    );

    // After non-ASCII text on the same line: the range must start at the string (UTF-16
    // columns here, whatever encoding was negotiated with the server).
    const quote = at('"clasifier"', 0);
    const ascii = all.find((d) => d.range.start.line === quote.line && /clasifier/.test(d.message));
    const startOk =
      !!ascii &&
      (ascii.range.start.character === quote.character || ascii.range.start.character === quote.character + 1);
    this.record(
      "vscode: range after non-ASCII text (clasifier) starts at the string",
      startOk,
      ascii
        ? { expectedStart: [quote.character, quote.character + 1], got: summary[all.indexOf(ascii)] }
        : { none: "no diagnostic naming clasifier on its line", got: summary },
    );

    // The quick fix for fc_1, applied as the light bulb would.
    const actions =
      (await vscode.commands.executeCommand<(vscode.CodeAction | vscode.Command)[]>(
        "vscode.executeCodeActionProvider",
        doc.uri,
        new vscode.Range(layer, layer),
        vscode.CodeActionKind.QuickFix.value,
      )) ?? [];
    const titles = actions.map((a) => a.title);
    const fix = actions.find((a) => /fc1/.test(a.title)) as vscode.CodeAction | vscode.Command | undefined;
    if (!fix) {
      this.record("vscode: quick fix fc_1 → fc1 applied", false, { none: "no quick fix naming fc1", titles });
      return;
    }
    if ("edit" in fix && fix.edit) {
      await vscode.workspace.applyEdit(fix.edit);
    }
    const command =
      "edit" in fix || "diagnostics" in fix ? (fix as vscode.CodeAction).command : (fix as vscode.Command);
    if (command) {
      await vscode.commands.executeCommand(command.command, ...(command.arguments ?? []));
    }
    const fixed = doc.getText().includes('"fc1"') && !doc.getText().includes('"fc_1"');
    const cleared = await waitFor(() => {
      const d = vscode.languages.getDiagnostics(doc.uri);
      return d.some((x) => /fc_1/.test(x.message)) ? undefined : true;
    }, 15000);
    this.record("vscode: quick fix fc_1 → fc1 applied", fixed && !!cleared, {
      title: fix.title,
      textFixed: fixed,
      diagnosticCleared: !!cleared,
      titles,
    });
    await vscode.commands.executeCommand("workbench.action.files.revert");
  }

  private async completion(): Promise<void> {
    const editor = await this.open("complete.quant.json");
    const doc = editor.document;
    const p = this.pos(doc, '[""]', 2);
    const list = await waitFor(async () => {
      const l = await vscode.commands.executeCommand<vscode.CompletionList>(
        "vscode.executeCompletionItemProvider",
        doc.uri,
        p,
      );
      return l && l.items.length > 0 ? l : undefined;
    }, 20000);
    const labels = (list?.items ?? []).map((i) => (typeof i.label === "string" ? i.label : i.label.label));
    const plain = labels.map((l) => l.replace(/^"|"$/g, ""));
    const want = ["conv1", "dw1", "pw4", "fc1", "classifier"];
    const missing = want.filter((w) => !plain.includes(w));
    this.record("vscode: completion of layer names", missing.length === 0, { missing, labels: labels.slice(0, 40) });
  }

  private async hover(): Promise<number | undefined> {
    const editor = await this.open("good.quant.json");
    const doc = editor.document;
    const tries: [string, number][] = [
      ['"nbits": 8', 2],
      ['"nbits": 8', 10],
      ['"quantization_mode"', 2],
      ['"output"', 2],
      ['"MobileNetMini.e2e.mlmodel"', 3],
      ['"model"', 2],
    ];
    const seen: string[] = [];
    let found: number | undefined;
    for (const [needle, delta] of tries) {
      const p = this.pos(doc, needle, delta);
      const hovers =
        (await waitFor(
          async () => {
            const h = await vscode.commands.executeCommand<vscode.Hover[]>("vscode.executeHoverProvider", doc.uri, p);
            return h && h.length ? h : undefined;
          },
          needle === tries[0][0] ? 15000 : 3000,
        )) ?? [];
      const text = hovers
        .flatMap((h) => h.contents)
        .map((c) => (typeof c === "string" ? c : "value" in c ? c.value : ""))
        .join("\n");
      seen.push(`${needle}+${delta}: ${text.slice(0, 300)}`);
      const est = parseArrowEstimate(text);
      if (text.includes("→") && est?.output !== undefined) {
        this.record("vscode: hover shows the estimate", true, { at: needle, estimate: est, text: text.slice(0, 500) });
        found = est.output;
        this.hoverAt = [needle, delta];
        break;
      }
    }
    if (found === undefined) {
      this.record("vscode: hover shows the estimate", false, { none: "no hover with 'N → M bytes'", seen });
    }
    // The server has analysed the valid config by now: it must carry no error.
    await sleep(1000);
    const errors = vscode.languages
      .getDiagnostics(doc.uri)
      .filter((d) => d.severity === vscode.DiagnosticSeverity.Error)
      .map((d) => d.message);
    this.record("vscode: no error diagnostics on the valid config", errors.length === 0, errors);
    return found;
  }

  private async statusBar(estimate: number | undefined): Promise<void> {
    await this.open("good.quant.json");
    const text = await waitFor(async () => {
      await this.api.refreshStatus();
      const t = this.api.statusText();
      return t.includes("→") ? t : undefined;
    }, 10000);
    this.record("vscode: status bar shows the estimate", !!text, {
      text: this.api.statusText(),
      hoverEstimate: estimate,
    });
  }

  private async quantize(estimate: number | undefined): Promise<void> {
    const target = this.uri("MobileNetMini.e2e.mlmodel");
    await vscode.workspace.fs.delete(target).then(
      () => undefined,
      () => undefined,
    );
    const outcome = await this.api.quantize(this.uri("good.quant.json"));
    let size: number | undefined;
    try {
      size = (await vscode.workspace.fs.stat(target)).size;
    } catch {
      size = undefined;
    }
    const ok = outcome.ok && size !== undefined && estimate !== undefined && size === estimate;
    this.record("vscode: quantize writes the estimated size", ok, {
      outcome: { ok: outcome.ok, error: outcome.error, output: outcome.output?.toString(), bytes: outcome.bytes },
      fileSize: size,
      estimate,
    });
  }

  /** The palette command as a user runs it; the driver clicks the result's button. */
  private async reveal(): Promise<void> {
    await this.open("good.quant.json");
    await vscode.commands.executeCommand("coremlq.quantizeModel");
    await sleep(500);
    // The driver records the check ("Reveal in explorer" clicked, file selected).
    await this.screenshot("reveal");
    await vscode.commands.executeCommand("notifications.clearAll");
    await vscode.commands.executeCommand("workbench.action.closeSidebar");
  }

  private async summary(): Promise<void> {
    await this.open("good.quant.json");
    const doc = await vscode.commands.executeCommand<vscode.Uri | undefined>("coremlq.showModelSummary");
    const text = doc ? (await vscode.workspace.openTextDocument(doc)).getText() : "";
    this.record(
      "vscode: Show model summary opens the summary with the estimate",
      /MobileNetMini/.test(text) && text.includes("→"),
      text.slice(0, 600) || "no summary document",
    );
    await vscode.commands.executeCommand("workbench.action.closeAllEditors");
  }

  private async restart(): Promise<void> {
    const before = this.api.client();
    await vscode.commands.executeCommand("coremlq.restartServer");
    const after = await waitFor(() => {
      const c = this.api.client();
      return c && c !== before && c.isRunning() ? c : undefined;
    }, 20000);
    this.record("vscode: Restart server command restarts the client", !!after, {
      running: !!after,
      newInstance: !!after && after !== before,
    });
  }

  private async screenshots(): Promise<void> {
    await vscode.commands.executeCommand("workbench.action.closeAllEditors");
    await vscode.commands.executeCommand("workbench.action.closeSidebar").then(undefined, () => undefined);
    await vscode.commands.executeCommand("workbench.action.closePanel").then(undefined, () => undefined);

    // The hover with the estimate, where the hover check found it.
    const good = await this.open("good.quant.json");
    const hp = this.pos(good.document, ...this.hoverAt);
    good.selection = new vscode.Selection(hp, hp);
    // After the restart the new server must load the model before the hover has the estimate.
    await waitFor(async () => {
      const h = await vscode.commands.executeCommand<vscode.Hover[]>(
        "vscode.executeHoverProvider",
        good.document.uri,
        hp,
      );
      const text = (h ?? [])
        .flatMap((x) => x.contents)
        .map((c) => (typeof c === "string" ? c : "value" in c ? c.value : ""))
        .join("\n");
      return text.includes("→") ? true : undefined;
    }, 15000);
    await vscode.commands.executeCommand("editor.action.showHover");
    await sleep(1500);
    const hoverOk = await this.screenshot("hover");

    const complete = await this.open("complete.quant.json");
    const cp = this.pos(complete.document, '[""]', 2);
    complete.selection = new vscode.Selection(cp, cp);
    await vscode.commands.executeCommand("editor.action.triggerSuggest");
    await sleep(2000);
    const completionOk = await this.screenshot("completion");
    this.record("vscode: screenshots of hover and completion", hoverOk && completionOk, {
      hover: hoverOk,
      completion: completionOk,
    });
  }
}
