// coremlq for VS Code: starts `coremlq-lsp` for `*.quant.json` configs and adds the
// palette commands, the status bar estimate and the server log channel.

import * as vscode from "vscode";
import {
  ExecuteCommandRequest,
  LanguageClient,
  LanguageClientOptions,
  ServerOptions,
  State,
  TransportKind,
  WorkDoneProgress,
  WorkDoneProgressCancelNotification,
} from "vscode-languageclient/node";
import { registerE2e } from "./e2e";
import { extractEstimate, formatBytes, summaryText } from "./parse";
import { extractOutput } from "./results";
import { resolveServer } from "./server";

/** The language id contributed for `*.quant.json`. */
export const LANGUAGE_ID = "coremlq-config";
/** Server commands (`workspace/executeCommand`), each taking `[config uri]`. */
export const SERVER_QUANTIZE = "coremlq.quantize";
export const SERVER_SUMMARY = "coremlq.modelSummary";

let client: LanguageClient | undefined;
let output: vscode.OutputChannel;
let status: StatusEstimate;
let watcher: vscode.FileSystemWatcher | undefined;

/** What the end-to-end test needs to see from the outside. */
export interface Api {
  client(): LanguageClient | undefined;
  quantize(uri: vscode.Uri): Promise<QuantizeOutcome>;
  statusText(): string;
  refreshStatus(): Promise<void>;
}

/** The outcome of one quantization run. */
export interface QuantizeOutcome {
  ok: boolean;
  cancelled?: boolean;
  output?: vscode.Uri;
  bytes?: number;
  error?: string;
  raw?: unknown;
}

export async function activate(context: vscode.ExtensionContext): Promise<Api> {
  output = vscode.window.createOutputChannel("coremlq");
  status = new StatusEstimate();
  context.subscriptions.push(
    output,
    status,
    summaryChanged,
    vscode.workspace.registerTextDocumentContentProvider(SUMMARY_SCHEME, summaryProvider),
  );

  context.subscriptions.push(
    vscode.commands.registerCommand("coremlq.quantizeModel", async (uri?: vscode.Uri) => {
      const target = configUri(uri);
      if (target) {
        await quantize(target, true);
      }
    }),
    vscode.commands.registerCommand("coremlq.showModelSummary", async (uri?: vscode.Uri) => {
      const target = configUri(uri);
      return target ? showSummary(target) : undefined;
    }),
    vscode.commands.registerCommand("coremlq.restartServer", async () => {
      await restart(context);
    }),
    vscode.commands.registerCommand("coremlq.showOutput", () => output.show(true)),
    vscode.workspace.onDidChangeConfiguration(async (e) => {
      if (e.affectsConfiguration("coremlq.server")) {
        output.appendLine("[client] server settings changed: restarting");
        await restart(context);
      }
      if (e.affectsConfiguration("coremlq.statusBar")) {
        status.schedule(0);
      }
    }),
  );

  await startClient(context);

  const api: Api = {
    client: () => client,
    quantize: (uri) => quantize(uri, false),
    statusText: () => status.text(),
    refreshStatus: () => status.refresh(),
  };
  registerE2e(context, api);
  return api;
}

export async function deactivate(): Promise<void> {
  if (client) {
    await client.stop().catch(() => undefined);
    client = undefined;
  }
  watcher?.dispose();
  watcher = undefined;
}

async function startClient(context: vscode.ExtensionContext): Promise<void> {
  const server = resolveServer(context);
  output.appendLine(`[client] starting ${server.command} (${server.origin})`);
  const config = vscode.workspace.getConfiguration("coremlq");
  const serverOptions: ServerOptions = {
    command: server.command,
    args: config.get<string[]>("server.extraArgs", []),
    // The client appends `--stdio` to the arguments.
    transport: TransportKind.stdio,
  };
  watcher?.dispose();
  watcher = vscode.workspace.createFileSystemWatcher("**/*.{mlmodel,quant.json}");
  const clientOptions: LanguageClientOptions = {
    documentSelector: [{ language: LANGUAGE_ID }, { scheme: "file", pattern: "**/*.quant.json" }],
    outputChannel: output,
    traceOutputChannel: output,
    synchronize: {
      // The server re-checks configs when a model they name changes on disk.
      fileEvents: watcher,
      // Settings changes reach the server (it also pulls the `coremlq` section).
      configurationSection: "coremlq",
    },
    middleware: {
      // Code lenses and code actions that run the server's quantize command go through
      // the same progress notification as the palette command.
      executeCommand: async (command, args, next) => {
        if (command === SERVER_QUANTIZE && typeof args[0] === "string") {
          return quantize(vscode.Uri.parse(args[0]), true);
        }
        return next(command, args);
      },
    },
  };
  client = new LanguageClient("coremlq", "coremlq language server", serverOptions, clientOptions);
  client.onDidChangeState((e) => {
    if (e.newState === State.Running) {
      status.schedule(0);
    }
  });
  try {
    await client.start();
  } catch (err) {
    const message = `coremlq: could not start the language server "${server.command}": ${errorText(err)}`;
    output.appendLine(`[client] ${message}`);
    void vscode.window.showErrorMessage(message, "Open settings", "Show log").then((choice) => {
      if (choice === "Open settings") {
        void vscode.commands.executeCommand("workbench.action.openSettings", "coremlq.server.path");
      } else if (choice === "Show log") {
        output.show(true);
      }
    });
  }
}

async function restart(context: vscode.ExtensionContext): Promise<void> {
  const old = client;
  client = undefined;
  if (old) {
    await old.stop().catch((err) => output.appendLine(`[client] stop failed: ${errorText(err)}`));
    await old.dispose().catch(() => undefined);
  }
  await startClient(context);
  status.schedule(0);
}

/** The config to act on: the argument, else the active editor's `*.quant.json`. */
function configUri(uri?: vscode.Uri): vscode.Uri | undefined {
  const candidate = uri instanceof vscode.Uri ? uri : vscode.window.activeTextEditor?.document.uri;
  if (candidate && candidate.path.endsWith(".quant.json")) {
    return candidate;
  }
  void vscode.window.showWarningMessage("coremlq: open a *.quant.json config first.");
  return undefined;
}

async function runningClient(): Promise<LanguageClient> {
  if (!client) {
    throw new Error("the language server is not running (see the coremlq output)");
  }
  if (client.state === State.Starting) {
    await new Promise<void>((resolve) => {
      const sub = client!.onDidChangeState((e) => {
        if (e.newState !== State.Starting) {
          sub.dispose();
          resolve();
        }
      });
    });
  }
  if (client.state !== State.Running) {
    throw new Error("the language server is not running (see the coremlq output)");
  }
  return client;
}

async function quantize(uri: vscode.Uri, interactive: boolean): Promise<QuantizeOutcome> {
  const name = uri.path.split("/").pop() ?? uri.toString();
  const outcome = await vscode.window.withProgress(
    {
      location: vscode.ProgressLocation.Notification,
      title: `coremlq: quantizing ${name}`,
      cancellable: true,
    },
    async (progress, token): Promise<QuantizeOutcome> => {
      let lc: LanguageClient;
      try {
        lc = await runningClient();
      } catch (err) {
        return { ok: false, error: errorText(err) };
      }
      const workDoneToken = `coremlq-quantize-${Date.now()}-${Math.random().toString(36).slice(2)}`;
      let last = 0;
      const sub = lc.onProgress(WorkDoneProgress.type, workDoneToken, (value) => {
        if (value.kind === "end") {
          return;
        }
        const pct = value.percentage ?? last;
        progress.report({ message: value.message, increment: Math.max(0, pct - last) });
        last = pct;
      });
      // Besides $/cancelRequest (sent by sendRequest), tell the server which job to stop.
      const onCancel = token.onCancellationRequested(() => {
        void lc.sendNotification(WorkDoneProgressCancelNotification.type, { token: workDoneToken });
      });
      try {
        const raw: unknown = await lc.sendRequest(
          ExecuteCommandRequest.type,
          { command: SERVER_QUANTIZE, arguments: [uri.toString()], workDoneToken },
          token,
        );
        // `{written: false, cancelled?, message?}`: the server wrote nothing.
        const r = raw && typeof raw === "object" ? (raw as Record<string, unknown>) : {};
        if (r.written === false) {
          const message = typeof r.message === "string" ? r.message : "nothing was written";
          return { ok: false, cancelled: r.cancelled === true, error: message, raw };
        }
        const out = extractOutput(raw, uri);
        return { ok: true, output: out.uri, bytes: out.bytes, raw };
      } catch (err) {
        if (token.isCancellationRequested) {
          return { ok: false, cancelled: true, error: "cancelled" };
        }
        return { ok: false, error: errorText(err) };
      } finally {
        sub.dispose();
        onCancel.dispose();
      }
    },
  );

  if (outcome.ok && outcome.output && outcome.bytes === undefined) {
    try {
      outcome.bytes = (await vscode.workspace.fs.stat(outcome.output)).size;
    } catch {
      // The server named a file that is not there: reported below as written anyway.
    }
  }
  output.appendLine(`[client] quantize ${uri.toString()}: ${JSON.stringify(outcome)}`);
  if (interactive) {
    if (outcome.ok) {
      const what = outcome.output ? vscode.workspace.asRelativePath(outcome.output) : "the model";
      const size = outcome.bytes !== undefined ? ` (${formatBytes(outcome.bytes)})` : "";
      const actions = outcome.output ? ["Reveal in explorer"] : [];
      // Not awaited: the notification stays until the user dismisses it.
      void vscode.window.showInformationMessage(`coremlq: wrote ${what}${size}`, ...actions).then((choice) => {
        if (choice === "Reveal in explorer" && outcome.output) {
          void vscode.commands.executeCommand("revealInExplorer", outcome.output);
        }
      });
    } else if (outcome.cancelled) {
      void vscode.window.showInformationMessage("coremlq: quantization cancelled; no file was written.");
    } else {
      void vscode.window
        .showErrorMessage(`coremlq: quantization failed: ${outcome.error}`, "Show log")
        .then((choice) => choice && output.show(true));
    }
  }
  status.schedule(0);
  return outcome;
}

async function summary(uri: vscode.Uri): Promise<unknown> {
  const lc = await runningClient();
  return lc.sendRequest(ExecuteCommandRequest.type, {
    command: SERVER_SUMMARY,
    arguments: [uri.toString()],
  });
}

/** Read-only documents holding model summaries (`coremlq-summary:` URIs). */
export const SUMMARY_SCHEME = "coremlq-summary";
const summaries = new Map<string, string>();
const summaryChanged = new vscode.EventEmitter<vscode.Uri>();
const summaryProvider: vscode.TextDocumentContentProvider = {
  onDidChange: summaryChanged.event,
  provideTextDocumentContent: (uri) => summaries.get(uri.toString()) ?? "",
};

/** Opens the model summary of a config: a read-only markdown preview beside the editor. */
async function showSummary(uri: vscode.Uri): Promise<vscode.Uri | undefined> {
  try {
    const raw = await summary(uri);
    const name = uri.path.split("/").pop() ?? "config";
    const doc = vscode.Uri.from({ scheme: SUMMARY_SCHEME, path: `/${name} summary.md`, query: uri.toString() });
    summaries.set(doc.toString(), summaryText(raw, name));
    summaryChanged.fire(doc);
    await vscode.workspace.openTextDocument(doc);
    try {
      await vscode.commands.executeCommand("markdown.showPreviewToSide", doc);
    } catch {
      // No markdown preview (a minimal editor build): show the text.
      await vscode.window.showTextDocument(doc, { viewColumn: vscode.ViewColumn.Beside, preview: true });
    }
    return doc;
  } catch (err) {
    void vscode.window.showErrorMessage(`coremlq: model summary failed: ${errorText(err)}`);
    return undefined;
  }
}

/** The status bar item: estimated output size of the active config. */
class StatusEstimate implements vscode.Disposable {
  private readonly item = vscode.window.createStatusBarItem("coremlq.estimate", vscode.StatusBarAlignment.Right, 100);
  private timer: NodeJS.Timeout | undefined;
  private generation = 0;
  private readonly subs: vscode.Disposable[] = [];

  constructor() {
    this.item.name = "coremlq estimate";
    this.item.command = "coremlq.showModelSummary";
    this.subs.push(
      vscode.window.onDidChangeActiveTextEditor(() => this.schedule(0)),
      vscode.workspace.onDidChangeTextDocument((e) => {
        if (e.document === vscode.window.activeTextEditor?.document) {
          this.schedule(500);
        }
      }),
      vscode.languages.onDidChangeDiagnostics((e) => {
        const active = vscode.window.activeTextEditor?.document.uri.toString();
        if (active && e.uris.some((u) => u.toString() === active)) {
          this.schedule(200);
        }
      }),
    );
  }

  text(): string {
    return this.item.text;
  }

  schedule(delayMs: number): void {
    if (this.timer) {
      clearTimeout(this.timer);
    }
    this.timer = setTimeout(() => void this.refresh(), delayMs);
  }

  async refresh(): Promise<void> {
    const generation = ++this.generation;
    const doc = vscode.window.activeTextEditor?.document;
    const enabled = vscode.workspace.getConfiguration("coremlq").get<boolean>("statusBar.enabled", true);
    if (!enabled || !doc || !doc.uri.path.endsWith(".quant.json") || !client || client.state !== State.Running) {
      this.item.hide();
      return;
    }
    let text: string;
    let tooltip: string;
    try {
      const estimate = extractEstimate(await summary(doc.uri));
      if (generation !== this.generation) {
        return; // a newer refresh is running
      }
      if (estimate?.output !== undefined) {
        const before = estimate.input !== undefined ? `${formatBytes(estimate.input)} → ` : "→ ";
        text = `$(package) ${before}${formatBytes(estimate.output)}`;
        tooltip =
          `coremlq: estimated output size ${estimate.output.toLocaleString("en-US")} bytes` +
          (estimate.input !== undefined ? ` (model: ${estimate.input.toLocaleString("en-US")} bytes)` : "") +
          "\nClick for the model summary.";
      } else {
        text = "$(package) coremlq";
        tooltip = "coremlq: no estimate for this config (see its diagnostics)";
      }
    } catch (err) {
      if (generation !== this.generation) {
        return;
      }
      text = "$(package) coremlq: no estimate";
      tooltip = `coremlq: ${errorText(err)}`;
    }
    this.item.text = text;
    this.item.tooltip = tooltip;
    this.item.show();
  }

  dispose(): void {
    if (this.timer) {
      clearTimeout(this.timer);
    }
    this.subs.forEach((s) => s.dispose());
    this.item.dispose();
  }
}

export function errorText(err: unknown): string {
  if (err instanceof Error) {
    return err.message;
  }
  if (err && typeof err === "object" && "message" in err) {
    return String((err as { message: unknown }).message);
  }
  return String(err);
}
