// sio console: a small front end over sio's public HTTP API (everything it does can be scripted with the same calls).
"use strict";
const $ = (s) => document.querySelector(s);
const el = (tag, attrs = {}, ...children) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) k === "text" ? (e.textContent = v) : e.setAttribute(k, v);
  for (const c of children) e.append(c);
  return e;
};
const fmtBytes = (n) => n >= 1 << 30 ? (n / (1 << 30)).toFixed(2) + " GiB" : n >= 1 << 20 ? (n / (1 << 20)).toFixed(1) + " MiB" : n >= 1024 ? (n / 1024).toFixed(1) + " KiB" : n + " B";
const isModelUpload = (n) => /\.zip$/i.test(n) || (/\.bin$/i.test(n) && !/(^|\/)tok[^/]*$/i.test(n));
const isDataset = (n) => /\.(jsonl|json|txt)$/i.test(n) && !/tokenizer\.json$/i.test(n);

// The API key, when the server requires one: asked for on the first 401, kept for this tab only (sessionStorage).
const auth = () => { const k = sessionStorage.getItem("sio-api-key"); return k ? { authorization: "Bearer " + k } : {}; };
function askForKey(wrong) {
  $("#key-status").textContent = wrong ? "That key was refused; enter the server's API key." : "This server requires an API key.";
  $("#key-form").hidden = false;
  $("#key-input").focus();
}
$("#key-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  sessionStorage.setItem("sio-api-key", $("#key-input").value.trim());
  $("#key-form").hidden = true;
  show();
});
async function authFetch(path, options = {}) {
  const r = await fetch(path, { ...options, headers: { ...(options.headers ?? {}), ...auth() } });
  if (r.status === 401) askForKey(sessionStorage.getItem("sio-api-key") !== null);
  return r;
}

async function api(path, options = {}) {
  const r = await authFetch(path, { headers: { "content-type": "application/json" }, ...options });
  const text = await r.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch { body = { detail: text }; }
  if (!r.ok) throw Object.assign(new Error(body?.detail || body?.error?.message || r.statusText), { status: r.status, body });
  return body;
}

// ---- navigation -------------------------------------------------------------------------------
const views = ["models", "optimize", "runs", "results", "deployments", "playground"];
let poller = null;
function show() {
  const [view, arg] = (location.hash.slice(1) || "models").split("/");
  for (const v of views) $("#view-" + v).hidden = v !== view;
  for (const a of document.querySelectorAll("nav a")) a.toggleAttribute("aria-current", a.dataset.view === view) && a.setAttribute("aria-current", "page");
  clearInterval(poller);
  ({ models: loadModels, optimize: loadOptimize, runs: () => { loadRuns(); poller = setInterval(loadRuns, 1000); },
     results: () => loadResults(decodeURIComponent(arg || "")), deployments: loadDeployments, playground: loadPlayground })[view]?.();
  $("#view-" + view)?.querySelector("h2")?.focus?.();
}
window.addEventListener("hashchange", show);

// ---- models -----------------------------------------------------------------------------------
let uploads = [], models = [];
async function refreshLists() {
  uploads = (await api("/api/uploads")).uploads;
  models = (await api("/api/models")).models;
}
async function loadModels() {
  await refreshLists();
  const ub = $("#uploads-table tbody"); ub.replaceChildren();
  for (const u of uploads) {
    const action = el("td");
    if (isModelUpload(u.name)) {
      const b = el("button", { type: "button", class: "secondary", text: "Import" });
      b.onclick = async () => {
        b.disabled = true; b.textContent = "Importing…";
        try { await api("/api/models", { method: "POST", body: JSON.stringify({ model: "uploads/" + u.name }) }); await loadModels(); }
        catch (e) { b.textContent = "Failed: " + e.message; }
      };
      action.append(b);
    }
    ub.append(el("tr", {}, el("td", { text: u.name }), el("td", { text: fmtBytes(u.size) }), action));
  }
  const mb = $("#models-table tbody"); mb.replaceChildren();
  for (const m of models)
    mb.append(el("tr", {}, el("td", { text: m.name ?? "" }), el("td", { text: m.dtype ?? "" }), el("td", { text: fmtBytes(m.bytes) }),
      el("td", { text: m.vocabSize ? `${m.vocabSize} tokens` : "" }), el("td", {}, el("code", { text: m.reference }))));
}

$("#upload-file").addEventListener("change", () => { const f = $("#upload-file").files[0]; if (f && !$("#upload-name").value) $("#upload-name").value = f.name; });
$("#upload-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const file = $("#upload-file").files[0], name = $("#upload-name").value.trim();
  if (!file || !name) { $("#upload-status").textContent = "Choose a file and a name."; return; }
  const xhr = new XMLHttpRequest();
  xhr.open("PUT", "/api/uploads/" + name.split("/").map(encodeURIComponent).join("/"));
  for (const [k, v] of Object.entries(auth())) xhr.setRequestHeader(k, v);
  xhr.upload.onprogress = (e) => { if (e.lengthComputable) $("#upload-progress").value = Math.round(100 * e.loaded / e.total); };
  xhr.onload = async () => {
    let body = {}; try { body = JSON.parse(xhr.responseText); } catch { }
    $("#upload-status").textContent = xhr.status === 201 ? `Uploaded ${body.name} (${fmtBytes(body.size)}).` : `Refused (${xhr.status}): ${body.detail ?? xhr.statusText}`;
    $("#upload-status").className = xhr.status === 201 ? "pass" : "error";
    $("#upload-progress").value = xhr.status === 201 ? 100 : 0;
    await loadModels();
  };
  xhr.onerror = () => { $("#upload-status").textContent = "The upload failed (network)."; $("#upload-status").className = "error"; };
  $("#upload-progress").value = 0;
  $("#upload-status").textContent = "Uploading…"; $("#upload-status").className = "";
  xhr.send(file);
});

// ---- new optimization -------------------------------------------------------------------------
let instancesLoaded = false;
async function loadOptimize() {
  await refreshLists();
  const fill = (sel, options) => { const keep = sel.value; sel.replaceChildren(...options.map(([v, t]) => el("option", { value: v, text: t }))); if ([...sel.options].some(o => o.value === keep)) sel.value = keep; };
  fill($("#opt-model"), [...uploads.filter(u => isModelUpload(u.name)).map(u => ["uploads/" + u.name, "upload: " + u.name]),
                         ...models.map(m => [m.reference, `imported: ${m.name} (${m.dtype})`])]);
  fill($("#opt-draft"), models.map(m => [m.reference, `${m.name} (${m.dtype}, ${m.vocabSize ?? "?"} tokens)`]));
  fill($("#opt-dataset"), uploads.filter(u => isDataset(u.name)).map(u => ["uploads/" + u.name, u.name]));
  if (!instancesLoaded) {
    const { instances } = await api("/api/instances");
    fill($("#opt-instance"), instances.map(i => [i.name, `${i.name} (${i.kind}, $${i.pricePerHour}/h)`]));
    instancesLoaded = true;
  }
  await validate();
}

function recipe() {
  const parts = [];
  const q = document.querySelector("input[name=quant]:checked").value;
  if (q !== "none") parts.push(`${q}-int4:g${$("#opt-group").value}`);
  if ($("#opt-compile").checked) parts.push(`compile:${$("#opt-target").value}`);
  const s = $("#opt-spec").value;
  if (s === "draft") parts.push(`speculative:draft:${$("#opt-draft").value}`);
  else if (s !== "none") parts.push(`speculative:${s}`);
  return parts.join(",");
}

function request() {
  const num = (id) => $(id).value === "" ? null : Number($(id).value);
  return {
    model: $("#opt-model").value, dataset: $("#opt-dataset").value, recipe: recipe(),
    gates: { maxPerplexityIncreasePercent: num("#gate-ppl"), minSpeedup: num("#gate-speedup"), maxPricePerMillionTokens: num("#gate-price") },
    benchmark: { concurrency: $("#bench-concurrency").value.split(",").map(x => Number(x.trim())).filter(x => x > 0), requests: num("#bench-requests"), maxNewTokens: num("#bench-tokens") },
    instance: $("#opt-instance").value || null, pricePerHour: num("#opt-price"),
  };
}

async function validate() {
  $("#opt-recipe").textContent = recipe() || "(nothing)";
  $("#opt-draft").disabled = $("#opt-spec").value !== "draft";
  $("#opt-group").disabled = document.querySelector("input[name=quant]:checked").value === "none";
  $("#opt-target").disabled = !$("#opt-compile").checked;
  const box = $("#opt-errors"); box.replaceChildren();
  let result;
  try { result = await api("/api/optimizations/validate", { method: "POST", body: JSON.stringify(request()) }); }
  catch (e) { result = { valid: false, errors: { request: [e.message] } }; }
  if (!result.valid) {
    box.append(el("p", { class: "error", text: "Fix these before starting:" }),
      el("ul", {}, ...Object.entries(result.errors).flatMap(([f, ms]) => ms.map(m => el("li", { class: "error", text: `${f}: ${m}` })))));
  }
  $("#opt-submit").disabled = !result.valid;
  return result.valid;
}
$("#optimize-form").addEventListener("input", validate);
$("#optimize-form").addEventListener("change", validate);
$("#optimize-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  if (!(await validate())) return;
  try {
    await api("/api/optimizations", { method: "POST", body: JSON.stringify(request()) });
    location.hash = "#runs";
  } catch (e) { $("#opt-errors").replaceChildren(el("p", { class: "error", text: e.message })); }
});

// ---- runs -------------------------------------------------------------------------------------
async function loadRuns() {
  const { optimizations } = await api("/api/optimizations");
  optimizations.sort((a, b) => (b.createdAt ?? "").localeCompare(a.createdAt ?? ""));
  const tb = $("#runs-table tbody"); tb.replaceChildren();
  for (const r of optimizations) {
    const running = ["Running", "Pending"].includes(r.runtimeStatus);
    const actions = el("td");
    if (running) {
      const b = el("button", { type: "button", class: "secondary", text: "Cancel", "aria-label": `Cancel run ${r.id}` });
      b.onclick = async () => { b.disabled = true; await api(`/api/optimizations/${r.id}`, { method: "DELETE" }).catch(() => {}); loadRuns(); };
      actions.append(b);
    }
    if (r.runtimeStatus === "Completed") actions.append(el("a", { href: `#results/${encodeURIComponent(r.id)}`, text: "Results" }));
    const step = r.failedStep ? `${r.failedStep} failed: ${r.error}` : r.step ? `${r.step} (${r.stepNumber}/${r.steps})${r.detail ? " · " + r.detail : ""}` : "";
    const status = el("td", { text: r.runtimeStatus, class: r.runtimeStatus === "Completed" ? "pass" : ["Failed", "Terminated"].includes(r.runtimeStatus) ? "fail" : "" });
    tb.append(el("tr", { "data-run": r.id }, el("td", {}, el("code", { text: r.id })), el("td", { text: r.input?.model ?? "" }), el("td", { text: r.input?.recipe ?? "" }),
      status, el("td", { class: r.failedStep ? "error" : "", text: step }), actions));
  }
}

// ---- results ----------------------------------------------------------------------------------
const palette = ["#0b5cad", "#d9480f", "#2b8a3e", "#862e9c", "#e67700", "#1098ad"];
function lineChart(svg, series, yLabel) {
  const W = 420, H = 260, L = 56, R = 12, T = 12, B = 64;
  const xs = [...new Set(series.flatMap(s => s.points.map(p => p[0])))].sort((a, b) => a - b);
  const ymax = Math.max(1e-9, ...series.flatMap(s => s.points.map(p => p[1]))) * 1.1;
  const x = (v) => L + (xs.length < 2 ? (W - L - R) / 2 : (xs.indexOf(v) / (xs.length - 1)) * (W - L - R));
  const y = (v) => T + (1 - v / ymax) * (H - T - B);
  const ns = "http://www.w3.org/2000/svg", n = (tag, a, text) => { const e = document.createElementNS(ns, tag); for (const [k, v] of Object.entries(a)) e.setAttribute(k, v); if (text !== undefined) e.textContent = text; return e; };
  svg.replaceChildren(n("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#888" }), n("line", { x1: L, y1: T, x2: L, y2: H - B, stroke: "#888" }));
  for (let i = 0; i <= 4; i++) { const v = ymax * i / 4; svg.append(n("text", { x: L - 4, y: y(v) + 4, "text-anchor": "end", "font-size": 10 }, v >= 100 ? v.toFixed(0) : v.toFixed(2))); }
  for (const c of xs) svg.append(n("text", { x: x(c), y: H - B + 14, "text-anchor": "middle", "font-size": 10 }, String(c)));
  svg.append(n("text", { x: (L + W - R) / 2, y: H - B + 28, "text-anchor": "middle", "font-size": 11 }, "concurrency"));
  svg.append(n("text", { x: 12, y: (T + H - B) / 2, "font-size": 11, transform: `rotate(-90 12 ${(T + H - B) / 2})`, "text-anchor": "middle" }, yLabel));
  series.forEach((s, i) => {
    const color = palette[i % palette.length];
    const pts = s.points.sort((a, b) => a[0] - b[0]).map(p => `${x(p[0])},${y(p[1])}`).join(" ");
    const line = n("polyline", { points: pts, fill: "none", stroke: color, "stroke-width": 2, class: "series" });
    line.append(n("title", {}, s.name));
    svg.append(line);
    for (const p of s.points) svg.append(n("circle", { cx: x(p[0]), cy: y(p[1]), r: 3, fill: color }));
    svg.append(n("rect", { x: L + (i % 2) * 180, y: H - 30 + Math.floor(i / 2) * 13, width: 10, height: 3, fill: color }));
    svg.append(n("text", { x: L + 14 + (i % 2) * 180, y: H - 26 + Math.floor(i / 2) * 13, "font-size": 10 }, s.name));
  });
}

async function loadResults(id) {
  $("#results-run").textContent = id;
  const report = await api(`/api/optimizations/${encodeURIComponent(id)}/report`);
  const checks = Object.fromEntries(report.gate.checks.map(c => [c.variant, c]));
  $("#results-gate").textContent = report.passed ? `The gate chose ${report.chosen}.` : "No variant passed the gate.";
  $("#results-gate").className = report.passed ? "pass" : "fail";
  lineChart($("#chart-throughput"), report.variants.map(v => ({ name: v.variant, points: v.levels.map(l => [l.concurrency, l.outputTokensPerSecond]) })), "output tokens/s");
  lineChart($("#chart-itl"), report.variants.map(v => ({ name: v.variant, points: v.levels.map(l => [l.concurrency, l.tpotP50Ms]) })), "p50 ms per output token");
  const base = report.variants[0];
  const tb = $("#variants-table tbody"); tb.replaceChildren();
  for (const v of report.variants) {
    const c = checks[v.variant];
    const price = Math.min(...v.levels.map(l => l.blendedPricePerMillionTokens));
    const deploy = el("button", { type: "button", class: "secondary", text: "Deploy", "aria-label": `Deploy ${v.variant}` });
    deploy.onclick = async () => {
      deploy.disabled = true; deploy.textContent = "Deploying…";
      try { await api("/api/deployments", { method: "POST", body: JSON.stringify({ runId: id, variant: v.variant }) }); deploy.textContent = "Deployed"; location.hash = "#deployments"; }
      catch (e) { deploy.textContent = "Failed: " + e.message; }
    };
    const delta = ((v.perplexity / base.perplexity - 1) * 100).toFixed(2);
    tb.append(el("tr", {}, el("td", { text: v.variant }), el("td", { text: v.drafter.startsWith("datastore:") ? "datastore" : v.drafter }), el("td", { text: `${v.perplexity.toFixed(4)} (${delta >= 0 ? "+" : ""}${delta} %)` }),
      el("td", { text: c ? c.speedup.toFixed(2) + "x" : "1.00x" }), el("td", { text: price.toPrecision(4) }),
      el("td", { text: v.acceptanceRate == null ? "–" : (100 * v.acceptanceRate).toFixed(1) + " %" }),
      el("td", { class: c ? (c.passed ? "pass" : "fail") : "", text: c ? (c.passed ? "pass" : c.failures.join("; ")) : "baseline" }), el("td", {}, deploy)));
  }
  const presets = $("#presets"); presets.replaceChildren();
  for (const [name, p] of Object.entries(report.presets ?? {}))
    presets.append(el("div", { class: "card preset" }, el("h3", { text: { lowestLatency: "Lowest latency", lowestCost: "Lowest cost", balanced: "Balanced" }[name] ?? name }),
      el("p", { text: `${p.variant} at concurrency ${p.concurrency}` }),
      el("p", { class: "muted", text: `${p.tpotP50Ms.toFixed(3)} ms/token p50 · TTFT p50 ${p.ttftP50Ms.toFixed(1)} ms · ${p.outputTokensPerSecond.toFixed(0)} tok/s · $${p.pricePerMillionTokens.toPrecision(3)}/1M` })));
}

// ---- deployments ------------------------------------------------------------------------------
async function loadDeployments() {
  const d = await api("/api/deployments");
  const box = $("#deployment-current");
  box.replaceChildren(d.current
    ? el("p", {}, "Serving ", el("strong", { text: d.current.variant }), ` from run ${d.current.runId} (model ${d.current.modelKey.slice(0, 12)}…, drafter ${d.current.drafter}).`)
    : el("p", { text: "Nothing is deployed yet." }));
  $("#deployments-table tbody").replaceChildren(...d.deployments.map(n => el("tr", {}, el("td", {}, el("code", { text: n })))));
}

// ---- playground -------------------------------------------------------------------------------
async function loadPlayground() {
  const m = await api("/v1/models");
  $("#play-model").textContent = m.data.length ? `Model: ${m.data[0].id}` : "Nothing is deployed yet: deploy a variant first.";
  $("#play-send").disabled = m.data.length === 0;
}
async function draftCounters() {
  const text = await (await authFetch("/metrics")).text();
  const get = (name) => text.split("\n").filter(l => l.startsWith(name)).reduce((s, l) => s + Number(l.split(" ").pop()), 0);
  return { proposed: get("sio_draft_tokens_proposed"), accepted: get("sio_draft_tokens_accepted") };
}
$("#play-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const out = $("#play-output"), stats = $("#play-stats");
  out.textContent = ""; $("#play-send").disabled = true;
  const before = await draftCounters().catch(() => null);
  let tokens = 0, first = 0, acceptance = "–";
  const t0 = performance.now();
  const live = setInterval(async () => {
    const now = await draftCounters().catch(() => null);
    if (before && now && now.proposed > before.proposed) acceptance = (100 * (now.accepted - before.accepted) / (now.proposed - before.proposed)).toFixed(1) + " % (live)";
  }, 300);
  const render = () => { const secs = (performance.now() - (first || t0)) / 1000; stats.textContent = `tokens: ${tokens} · tokens/s: ${tokens > 1 && secs > 0 ? ((tokens - 1) / secs).toFixed(1) : "–"} · acceptance: ${acceptance}`; };
  try {
    const chat = $("#play-chat").checked;
    const request = { max_tokens: Number($("#play-tokens").value), temperature: Number($("#play-temperature").value), stream: true };
    if (chat) request.messages = [{ role: "user", content: $("#play-prompt").value }]; else request.prompt = $("#play-prompt").value;
    const r = await authFetch(chat ? "/v1/chat/completions" : "/v1/completions", { method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify(request) });
    if (!r.ok) { const b = await r.json().catch(() => ({})); throw new Error(b.error?.message ?? r.statusText); }
    const reader = r.body.getReader(), dec = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let i;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        const line = buf.slice(0, i).trim(); buf = buf.slice(i + 2);
        if (!line.startsWith("data:")) continue;
        const data = line.slice(5).trim();
        if (data === "[DONE]") continue;
        const chunk = JSON.parse(data);
        const piece = (chat ? chunk.choices?.[0]?.delta?.content : chunk.choices?.[0]?.text) ?? "";
        if (piece) { if (!first) first = performance.now(); out.textContent += piece; }
        if (chunk.usage) tokens = chunk.usage.completion_tokens; else if (piece) tokens++;
        if (chunk.sio?.speculative) acceptance = `${(100 * chunk.sio.speculative.acceptance_rate).toFixed(1)} % (${chunk.sio.speculative.accepted}/${chunk.sio.speculative.proposed} drafts, ${chunk.sio.speculative.drafter})`;
        render();
      }
    }
    render();
    stats.dataset.done = "true";
  } catch (e) { stats.textContent = "Failed: " + e.message; }
  finally { clearInterval(live); $("#play-send").disabled = false; }
});

show();
