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
const fmtTime = (iso) => iso ? new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" }) : "–";
const fmtClock = (iso) => new Date(iso).toLocaleTimeString(undefined, { hour12: false });
const fmtDuration = (s) => s == null ? "–" : s < 60 ? `${s.toFixed(1)} s` : s < 3600 ? `${Math.floor(s / 60)} min ${String(Math.round(s % 60)).padStart(2, "0")} s` : `${Math.floor(s / 3600)} h ${String(Math.round((s % 3600) / 60)).padStart(2, "0")} min`;
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
const views = ["models", "optimize", "recommend", "recommendation", "runs", "run", "results", "deployments", "metrics", "playground"];
let poller = null;
function show() {
  const [view, arg] = (location.hash.slice(1) || "models").split("/");
  for (const v of views) $("#view-" + v).hidden = v !== view;
  for (const a of document.querySelectorAll("nav a")) a.toggleAttribute("aria-current", a.dataset.view === ({ run: "runs", results: "runs", recommendation: "recommend" }[view] ?? view)) && a.setAttribute("aria-current", "page");
  clearInterval(poller);
  ({ models: loadModels, optimize: loadOptimize, recommend: () => { loadRecommend(); poller = setInterval(loadRecommendations, 2000); },
     recommendation: () => { const id = decodeURIComponent(arg || ""); loadRecommendation(id); poller = setInterval(() => loadRecommendation(id), 1500); }, runs: () => { loadRuns(); poller = setInterval(loadRuns, 1000); },
     run: () => { const id = decodeURIComponent(arg || ""); loadRun(id); poller = setInterval(() => loadRun(id), 1000); },
     results: () => loadResults(decodeURIComponent(arg || "")), deployments: loadDeployments,
     metrics: () => { drawMetrics(); poller = setInterval(drawMetrics, 2000); }, playground: loadPlayground })[view]?.();
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
const fill = (sel, options) => { const keep = sel.value; sel.replaceChildren(...options.map(([v, t]) => el("option", { value: v, text: t }))); if ([...sel.options].some(o => o.value === keep)) sel.value = keep; };
const modelChoices = () => [...uploads.filter(u => isModelUpload(u.name)).map(u => ["uploads/" + u.name, "upload: " + u.name]), ...models.map(m => [m.reference, `imported: ${m.name} (${m.dtype})`])];
const datasetChoices = () => uploads.filter(u => isDataset(u.name)).map(u => ["uploads/" + u.name, u.name]);
async function loadOptimize() {
  await refreshLists();
  fill($("#opt-model"), modelChoices());
  fill($("#opt-draft"), models.map(m => [m.reference, `${m.name} (${m.dtype}, ${m.vocabSize ?? "?"} tokens)`]));
  fill($("#opt-dataset"), datasetChoices());
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
    gates: { maxPerplexityIncreasePercent: num("#gate-ppl"), minSpeedup: num("#gate-speedup"), maxPricePerMillionTokens: num("#gate-price"), maxKld: num("#gate-kld"), minSameTopToken: num("#gate-top1") },
    benchmark: { concurrency: $("#bench-concurrency").value.split(",").map(x => Number(x.trim())).filter(x => x > 0), requests: num("#bench-requests"), maxNewTokens: num("#bench-tokens") },
    instance: $("#opt-instance").value || null, pricePerHour: num("#opt-price"),
    target: $("#gate-target").value === "stack" ? null : $("#gate-target").value,
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

// ---- recommendations: a search over what sio can build, ranked for a target ---------------------
async function loadRecommend() {
  await refreshLists();
  fill($("#rec-model"), modelChoices());
  fill($("#rec-dataset"), datasetChoices());
  await loadRecommendations();
}
async function loadRecommendations() {
  const { recommendations } = await api("/api/recommendations");
  recommendations.sort((a, b) => (b.createdAt ?? "").localeCompare(a.createdAt ?? ""));
  $("#recs-table tbody").replaceChildren(...recommendations.map(r => {
    const actions = el("td", { class: "actions" }, el("a", { href: `#recommendation/${encodeURIComponent(r.id)}`, text: "View", "aria-label": `View recommendation ${r.id}` }));
    if (isRunning(r)) {
      const b = el("button", { type: "button", class: "secondary", text: "Cancel", "aria-label": `Cancel recommendation ${r.id}` });
      b.onclick = async () => { b.disabled = true; await api(`/api/recommendations/${r.id}`, { method: "DELETE" }).catch(() => {}); loadRecommendations(); };
      actions.append(b);
    }
    return el("tr", { "data-recommendation": r.id }, el("td", {}, el("code", { text: r.id })), el("td", { text: r.input?.model ?? "" }), el("td", { text: r.input?.target ?? "" }),
      el("td", { class: statusClass(r), text: r.runtimeStatus }), el("td", { class: "nowrap", text: fmtTime(r.createdAt) }),
      el("td", { class: "nowrap", text: fmtDuration(r.durationSeconds) }), el("td", { class: r.failedStep ? "error" : "", text: stepText(r) }), actions);
  }));
}
function recommendationRequest() {
  const list = (id) => $(id).value.split(",").map(x => x.trim()).filter(x => x);
  const text = (id) => $(id).value.trim() || null;
  return {
    model: $("#rec-model").value, dataset: $("#rec-dataset").value, target: $("#rec-target").value, inputTokens: text("#rec-input"), outputTokens: text("#rec-output"),
    slo: text("#rec-slo"), quality: text("#rec-quality") ?? "none", requestRate: $("#rec-rate").value === "" ? null : Number($("#rec-rate").value), budget: text("#rec-budget") ?? "30m",
    space: { quantization: list("#rec-quant"), drafters: list("#rec-drafters"), engines: list("#rec-engines"), concurrency: list("#rec-concurrency").map(Number) },
  };
}
$("#recommend-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const box = $("#rec-errors"); box.replaceChildren();
  try {
    const started = await api("/api/recommendations", { method: "POST", body: JSON.stringify(recommendationRequest()) });
    location.hash = `#recommendation/${encodeURIComponent(started.id)}`;
  } catch (e) {
    const errors = Object.entries(e.body?.errors ?? { request: [e.message] });
    box.append(el("p", { class: "error", text: "Fix these before starting:" }), el("ul", {}, ...errors.flatMap(([f, ms]) => ms.map(m => el("li", { class: "error", text: `${f}: ${m}` })))));
  }
});
const metric = (e, name, statistic) => e.expected.find(m => m.metric === name && (!statistic || m.statistic === statistic));
async function loadRecommendation(id) {
  const r = await api(`/api/recommendations/${encodeURIComponent(id)}`);
  $("#rec-id").textContent = id;
  const rec = r.recommendation;
  $("#rec-summary").textContent = isRunning(r) ? `Searching: ${stepText(r)} · ${fmtDuration(r.durationSeconds)} of ${r.input?.budget ?? "?"}`
    : r.runtimeStatus !== "Completed" ? `${r.runtimeStatus}: ${r.error ?? ""}`
    : rec.ranked.length ? `${rec.ranked.length} ${rec.ranked.length === 1 ? "entry" : "entries"} for ${rec.target} in ${fmtDuration(rec.seconds)}; workload: ${rec.workload}; objectives: ${rec.slo}; quality: ${rec.quality}; measured on ${rec.measuredOn}.`
    : "No configuration met the objectives; the list below says why each candidate lost.";
  $("#rec-summary").className = r.runtimeStatus === "Completed" ? (rec.ranked.length ? "pass" : "fail") : statusClass(r);
  $("#rec-events").replaceChildren(...r.events.map(e => el("li", { class: /failed|could not/.test(e.message) ? "error" : "" }, el("time", { datetime: e.at, text: fmtClock(e.at) }), " ", e.message)));
  if (isRunning(r)) return;
  clearInterval(poller);
  if (!rec) return;
  $("#rec-ranked tbody").replaceChildren(...rec.ranked.map(e => {
    const t = metric(e, "output_throughput"), price = metric(e, "price_per_1m_output_tokens");
    const deploy = el("button", { type: "button", class: "secondary", text: "Deploy", "aria-label": `Deploy entry ${e.rank}` });
    deploy.onclick = async () => {
      deploy.disabled = true; deploy.textContent = "Deploying…";
      try { await api("/api/deployments", { method: "POST", body: JSON.stringify({ runId: id, variant: e.variant }) }); deploy.textContent = "Deployed"; location.hash = "#deployments"; }
      catch (err) { deploy.textContent = "Failed: " + err.message; }
    };
    return el("tr", { "data-rank": e.rank }, el("td", { text: e.rank }), el("td", {}, el("span", { text: e.candidate.name }), el("br"), el("code", { class: "muted", text: e.serve })),
      el("td", { text: e.concurrency }), el("td", { class: "nowrap", text: `${e.instance} × ${e.replicas}` }),
      el("td", { class: "nowrap", text: `${t.value.toFixed(1)}${t.ci95 == null ? "" : " ± " + t.ci95.toFixed(1)}` }),
      el("td", { text: ms(metric(e, "ttft", "p99").value) }), el("td", { text: ms(metric(e, "tpot", "p99").value) }),
      el("td", { text: price ? price.value.toPrecision(4) : "–" }), el("td", { text: e.quality.meanKld.toPrecision(3) }), el("td", {}, deploy));
  }));
  const byCandidate = {};
  for (const p of rec.pareto) (byCandidate[p.candidate] ??= []).push([p.perUserTokensPerSecond, p.perInstanceTokensPerSecond]);
  const series = [...Object.entries(byCandidate).map(([name, points]) => ({ name, points })),
    { name: "Pareto front", points: rec.pareto.filter(p => p.onFront).map(p => [p.perUserTokensPerSecond, p.perInstanceTokensPerSecond]) }];
  const xmax = Math.max(1, ...rec.pareto.map(p => p.perUserTokensPerSecond)) * 1.05;
  plot($("#chart-pareto"), series, "tokens/s per instance",
    { label: "tokens/s per user", ticks: [0, 1, 2, 3, 4].map(i => xmax * i / 4), pos: (v) => v / xmax, format: (v) => v.toFixed(0) });
  $("#rec-discarded").replaceChildren(...[...rec.discarded.map(d => el("li", {}, el("strong", { text: d.candidate }), ` (${d.stage}): ${d.reason}`)),
    ...rec.instancesNotMeasured.map(i => el("li", { class: "muted", text: `instance not measured: ${i}` }))]);
}

// ---- runs -------------------------------------------------------------------------------------
const isRunning = (r) => ["Running", "Pending", "Suspended"].includes(r.runtimeStatus);
const statusClass = (r) => r.runtimeStatus === "Completed" ? "pass" : ["Failed", "Terminated"].includes(r.runtimeStatus) ? "fail" : "";
const stepText = (r) => r.failedStep ? `${r.failedStep} failed: ${r.error}` : r.step ? `${r.step} (${r.stepNumber}/${r.steps})${r.detail ? " · " + r.detail : ""}` : "";
function cancelButton(r, after) {
  const b = el("button", { type: "button", class: "secondary", text: "Cancel", "aria-label": `Cancel run ${r.id}` });
  b.onclick = async () => { b.disabled = true; await api(`/api/optimizations/${r.id}`, { method: "DELETE" }).catch(() => {}); after(); };
  return b;
}
async function loadRuns() {
  const { optimizations } = await api("/api/optimizations");
  optimizations.sort((a, b) => (b.createdAt ?? "").localeCompare(a.createdAt ?? ""));
  const tb = $("#runs-table tbody"); tb.replaceChildren();
  for (const r of optimizations) {
    const actions = el("td", { class: "actions" }, el("a", { href: `#run/${encodeURIComponent(r.id)}`, text: "Details", "aria-label": `Details of run ${r.id}` }));
    if (r.runtimeStatus === "Completed") actions.append(el("a", { href: `#results/${encodeURIComponent(r.id)}`, text: "Results", "aria-label": `Results of run ${r.id}` }));
    if (isRunning(r)) actions.append(cancelButton(r, loadRuns));
    tb.append(el("tr", { "data-run": r.id }, el("td", {}, el("code", { text: r.id })), el("td", { text: r.input?.model ?? "" }), el("td", { text: r.input?.recipe ?? "" }),
      el("td", { class: statusClass(r), text: r.runtimeStatus }), el("td", { class: "nowrap", text: fmtTime(r.createdAt) }),
      el("td", { class: "nowrap", text: fmtDuration(r.durationSeconds) }), el("td", { class: r.failedStep ? "error" : "", text: stepText(r) }), actions));
  }
}

// ---- one run: its steps with their timings, and its event log ---------------------------------
async function loadRun(id) {
  const r = await api(`/api/optimizations/${encodeURIComponent(id)}`);
  $("#run-id").textContent = id;
  const facts = [["Status", el("span", { class: statusClass(r), text: r.runtimeStatus })], ["Model", r.input?.model ?? "–"], ["Recipe", r.input?.recipe || "(baseline only)"],
    ["Dataset", r.input?.dataset ?? "–"], ["Started", fmtTime(r.createdAt)], [isRunning(r) ? "Running for" : "Duration", fmtDuration(r.durationSeconds)],
    ["Step", stepText(r) || "–"]];
  $("#run-summary").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", {}, v)]));
  const links = $("#run-links"); links.replaceChildren();
  if (r.runtimeStatus === "Completed") links.append(el("a", { href: `#results/${encodeURIComponent(id)}`, text: "Results" }));
  if (isRunning(r)) links.append(cancelButton(r, () => loadRun(id)));
  // the finished steps, then the one under way (its time so far, from its "started" event)
  const rows = r.stepTimes.map(s => ({ number: s.number, step: s.step, started: s.started, seconds: s.seconds, running: false }));
  if (isRunning(r) && r.step && !rows.some(s => s.number === r.stepNumber)) {
    const since = [...r.events].reverse().find(e => e.message.startsWith(r.step + " started"))?.at;
    rows.push({ number: r.stepNumber, step: r.step, started: since, seconds: since ? (Date.now() - Date.parse(since)) / 1000 : null, running: true });
  }
  const longest = Math.max(1e-9, ...rows.map(s => s.seconds ?? 0)), total = rows.reduce((a, s) => a + (s.seconds ?? 0), 0) || 1;
  $("#run-steps tbody").replaceChildren(...rows.map(s => el("tr", { "data-step": s.step },
    el("td", { text: `${s.number}/${r.steps}` }), el("td", { text: s.step + (s.running ? " (running)" : "") + (r.failedStep === s.step ? " (failed)" : "") }),
    el("td", { class: "nowrap", text: s.started ? fmtClock(s.started) : "–" }), el("td", { class: "nowrap", text: fmtDuration(s.seconds) }),
    el("td", { class: "bar-col" }, el("span", { class: "bar" + (s.running ? " running" : ""), style: `width:${(100 * (s.seconds ?? 0) / longest).toFixed(1)}%`, title: `${(100 * (s.seconds ?? 0) / total).toFixed(0)} % of the run` })))));
  $("#run-events").replaceChildren(...r.events.map(e => el("li", { class: /failed|refused/.test(e.message) ? "error" : "" }, el("time", { datetime: e.at, text: fmtClock(e.at) }), " ", e.message)));
  if (!isRunning(r)) clearInterval(poller);
}

// ---- results ----------------------------------------------------------------------------------
const palette = ["#0b5cad", "#d9480f", "#2b8a3e", "#862e9c", "#e67700", "#1098ad"];
// A line chart with y from zero. xAxis: { label, ticks, pos (a value to 0..1), format }.
function plot(svg, series, yLabel, xAxis) {
  const W = 420, H = 260, L = 56, R = 12, T = 12, B = 64;
  const top = Math.max(0, ...series.flatMap(s => s.points.map(p => p[1])));
  const ymax = top > 0 ? top * 1.1 : 1;
  const x = (v) => L + xAxis.pos(v) * (W - L - R), y = (v) => T + (1 - v / ymax) * (H - T - B);
  const ns = "http://www.w3.org/2000/svg", n = (tag, a, text) => { const e = document.createElementNS(ns, tag); for (const [k, v] of Object.entries(a)) e.setAttribute(k, v); if (text !== undefined) e.textContent = text; return e; };
  svg.replaceChildren(n("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#888" }), n("line", { x1: L, y1: T, x2: L, y2: H - B, stroke: "#888" }));
  for (let i = 0; i <= 4; i++) { const v = ymax * i / 4; svg.append(n("text", { x: L - 4, y: y(v) + 4, "text-anchor": "end", "font-size": 10 }, v >= 100 ? v.toFixed(0) : v.toFixed(2))); }
  for (const c of xAxis.ticks) svg.append(n("text", { x: x(c), y: H - B + 14, "text-anchor": "middle", "font-size": 10 }, xAxis.format(c)));
  svg.append(n("text", { x: (L + W - R) / 2, y: H - B + 28, "text-anchor": "middle", "font-size": 11 }, xAxis.label));
  svg.append(n("text", { x: 12, y: (T + H - B) / 2, "font-size": 11, transform: `rotate(-90 12 ${(T + H - B) / 2})`, "text-anchor": "middle" }, yLabel));
  if (!series.some(s => s.points.length)) svg.append(n("text", { x: (L + W - R) / 2, y: (T + H - B) / 2, "text-anchor": "middle", "font-size": 12, fill: "#57606a" }, "no data yet"));
  series.forEach((s, i) => {
    const color = palette[i % palette.length];
    const pts = s.points.sort((a, b) => a[0] - b[0]).map(p => `${x(p[0])},${y(p[1])}`).join(" ");
    const line = n("polyline", { points: pts, fill: "none", stroke: color, "stroke-width": 2, class: "series" });
    line.append(n("title", {}, s.name));
    svg.append(line);
    if (s.points.length <= 40) for (const p of s.points) svg.append(n("circle", { cx: x(p[0]), cy: y(p[1]), r: 3, fill: color }));
    svg.append(n("rect", { x: L + (i % 2) * 180, y: H - 30 + Math.floor(i / 2) * 13, width: 10, height: 3, fill: color }));
    svg.append(n("text", { x: L + 14 + (i % 2) * 180, y: H - 26 + Math.floor(i / 2) * 13, "font-size": 10 }, s.name));
  });
}
// concurrency on a log2 axis (1, 2, 4, 8 equally spaced; 1 and 4 two steps apart)
function lineChart(svg, series, yLabel) {
  const xs = [...new Set(series.flatMap(s => s.points.map(p => p[0])))].sort((a, b) => a - b);
  const lo = Math.log2(xs[0] ?? 1), span = Math.log2(xs[xs.length - 1] ?? 1) - lo;
  plot(svg, series, yLabel, { label: "concurrency (log2 scale)", ticks: xs, pos: (v) => span > 0 ? (Math.log2(v) - lo) / span : 0.5, format: String });
}
// time: seconds before now
const timeAxis = (windowSeconds) => ({ label: "seconds ago", ticks: [0, 1, 2, 3, 4].map(i => -windowSeconds + i * windowSeconds / 4),
  pos: (v) => (v + windowSeconds) / windowSeconds, format: (v) => String(Math.round(-v)) });

async function loadResults(id) {
  $("#results-run").textContent = id;
  const report = await api(`/api/optimizations/${encodeURIComponent(id)}/report`);
  const checks = Object.fromEntries(report.gate.checks.map(c => [c.variant, c]));
  const by = { latency: " for the lowest latency", throughput: " for the most throughput", cost: " for the lowest cost" }[report.gate.target] ?? "";
  $("#results-gate").textContent = report.passed ? `The gate chose ${report.chosen}${by}.` : "No variant passed the gate.";
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
    const d = v.fromBaseline;
    tb.append(el("tr", {}, el("td", { text: v.variant }), el("td", { text: v.drafter.startsWith("datastore:") ? "datastore" : v.drafter }), el("td", { text: `${v.perplexity.toFixed(4)} (${delta >= 0 ? "+" : ""}${delta} %)` }),
      el("td", { class: "nowrap", text: d ? `${d.meanKld.toPrecision(3)} (${d.p99Kld.toPrecision(3)}) · ${(100 * d.sameTopToken).toFixed(1)} %` : "–" }),
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

// ---- deployments: a card per published deployment; deploying an earlier one is the roll back ---
const ms = (v) => v == null ? "–" : `${v.toFixed(v < 10 ? 2 : 1)} ms`;
async function loadDeployments() {
  const [d, served] = await Promise.all([api("/api/deployments"), api("/v1/models").catch(() => ({ data: [] }))]);
  const servedIds = new Set(served.data.map(m => m.id));
  $("#deployment-current").textContent = d.current ? `Live: ${d.current.variant} from run ${d.current.runId}.` : "Nothing is deployed yet: deploy a variant from a run's results.";
  const cards = d.deployments.map(c => {
    const badge = c.live ? (servedIds.has(c.servedModel) ? el("span", { class: "badge live", text: "live" }) : el("span", { class: "badge", text: "live, loading" })) : null;
    const m = c.measured, one = m?.concurrency1, best = m?.best;
    const facts = [["Model", el("code", { text: c.model.slice(0, 12) + "…", title: c.model })], ["Served as", el("code", { text: c.servedModel })], ["Drafter", c.drafter.startsWith("datastore:") ? "datastore" : c.drafter],
      ["Speedup", `${c.speedup.toFixed(2)}x`], ["Output tok/s", one ? `${one.outputTokensPerSecond.toFixed(1)} at concurrency ${one.concurrency}` : "–"],
      ["Best", best ? `${best.outputTokensPerSecond.toFixed(1)} tok/s at concurrency ${best.concurrency}` : "–"], ["TTFT p50", ms(one?.ttftP50Ms)], ["Time per token p50", ms(one?.tpotP50Ms)],
      ["$ / 1M tokens", Number.isFinite(c.pricePerMillionTokens) ? c.pricePerMillionTokens.toPrecision(4) : "–"], ["Perplexity", m ? m.perplexity.toFixed(3) : "–"],
      ["Acceptance", m?.acceptanceRate == null ? "–" : `${(100 * m.acceptanceRate).toFixed(1)} %`], ["Published", fmtTime(c.createdUtc)], ["Last deployed", c.deployedUtc ? fmtTime(c.deployedUtc) : "never"]];
    const card = el("article", { class: "card deployment" + (c.live ? " is-live" : ""), "data-deployment": c.deployment, "aria-label": `Deployment ${c.variant} from run ${c.runId}` },
      el("h3", {}, c.variant, ...(badge ? [" ", badge] : [])), el("p", { class: "muted", text: `run ${c.runId}` }),
      el("ul", { class: "techniques", "aria-label": "Techniques" }, ...(c.techniques.length ? c.techniques.map(t => el("li", { text: t })) : [el("li", { text: "no technique (baseline)" })])),
      el("dl", { class: "facts" }, ...facts.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", {}, v)])));
    if (!c.live) {
      const verb = c.deployedUtc ? "Roll back to this" : "Deploy";
      const b = el("button", { type: "button", class: "secondary", text: verb, "aria-label": `${verb}: ${c.variant} from run ${c.runId}` });
      b.onclick = async () => {
        b.disabled = true; b.textContent = "Deploying…";
        try { await api("/api/deployments", { method: "POST", body: JSON.stringify({ deployment: c.deployment }) }); await loadDeployments(); }
        catch (e) { b.textContent = "Failed: " + e.message; }
      };
      card.append(b);
    }
    return card;
  });
  $("#deployment-cards").replaceChildren(...cards);
}

// ---- metrics: sampled from the server's own /metrics while the console is open -----------------
const samples = [];
function parseMetrics(text) {
  const out = new Map();
  for (const line of text.split("\n")) {
    if (!line || line[0] === "#") continue;
    const brace = line.indexOf("{"), close = line.lastIndexOf("}");
    const name = brace >= 0 ? line.slice(0, brace) : line.slice(0, line.indexOf(" "));
    const labels = {};
    if (brace >= 0) for (const m of line.slice(brace + 1, close).matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[m[1]] = m[2];
    const value = line.slice((brace >= 0 ? close : name.length) + 1).trim().split(" ")[0];
    if (!out.has(name)) out.set(name, []);
    out.get(name).push({ labels, value: value === "+Inf" ? Infinity : Number(value) });
  }
  return out;
}
const total = (m, name) => (m.get(name) ?? []).reduce((a, s) => a + s.value, 0);
function histogram(m, name) {
  const buckets = new Map();
  for (const s of m.get(name + "_bucket") ?? []) { const le = s.labels.le === "+Inf" ? Infinity : Number(s.labels.le); buckets.set(le, (buckets.get(le) ?? 0) + s.value); }
  return { buckets, sum: total(m, name + "_sum"), count: total(m, name + "_count") };
}
async function sampleMetrics() {
  const r = await fetch("/metrics", { headers: auth() }); // never prompts for the key itself: the views do
  if (!r.ok) return;
  const m = parseMetrics(await r.text());
  samples.push({ t: Date.now(), generated: total(m, "sio_generation_tokens_total"), prompt: total(m, "sio_prompt_tokens_total"), requests: total(m, "sio_requests_total"),
    running: total(m, "sio_num_requests_running"), waiting: total(m, "sio_num_requests_waiting"), kv: Math.max(0, ...(m.get("sio_kv_cache_usage_ratio") ?? []).map(s => s.value)),
    ttft: histogram(m, "sio_time_to_first_token_seconds"), itl: histogram(m, "sio_inter_token_latency_seconds"), queue: histogram(m, "sio_request_queue_time_seconds") });
  while (samples.length && samples[0].t < Date.now() - 16 * 60_000) samples.shift();
}
// What a counter gained over a run of samples; a drop is a restart (a new deployment's counters), as PromQL's increase() reads it.
function increase(seq, f) { let sum = 0; for (let i = 1; i < seq.length; i++) { const a = f(seq[i - 1]), b = f(seq[i]); sum += b >= a ? b - a : b; } return sum; }
// A quantile of the observations a histogram gained over a run of samples, interpolated within its bucket (as histogram_quantile).
function quantile(q, seq, h) {
  const les = [...seq[seq.length - 1][h].buckets.keys()].sort((x, y) => x - y);
  const cum = les.map(le => increase(seq, s => s[h].buckets.get(le) ?? 0));
  const n = cum[cum.length - 1] ?? 0;
  if (n <= 0) return null;
  const rank = q * n;
  for (let i = 0; i < les.length; i++) {
    if (cum[i] < rank) continue;
    const lo = i ? les[i - 1] : 0, below = i ? cum[i - 1] : 0;
    if (!Number.isFinite(les[i])) return 1000 * lo;
    return 1000 * (lo + (les[i] - lo) * ((rank - below) / Math.max(1e-12, cum[i] - below)));
  }
  return null;
}
function between(seq) {
  const secs = (seq[seq.length - 1].t - seq[0].t) / 1000, finished = increase(seq, s => s.requests);
  return { tokensPerSecond: increase(seq, s => s.generated) / secs, finished, ttft50: quantile(0.5, seq, "ttft"), ttft99: quantile(0.99, seq, "ttft"),
    itl50: quantile(0.5, seq, "itl"), itl99: quantile(0.99, seq, "itl"), queue50: quantile(0.5, seq, "queue") };
}
function drawMetrics() {
  const windowSeconds = Number($("#metrics-window").value), now = Date.now();
  const shown = samples.filter(s => s.t >= now - windowSeconds * 1000);
  const last = samples[samples.length - 1];
  const tiles = [];
  if (shown.length >= 2) {
    const w = between(shown);
    tiles.push(["Output tok/s", w.tokensPerSecond.toFixed(1)], ["Requests finished", String(w.finished)], ["TTFT p50", ms(w.ttft50)], ["TTFT p99", ms(w.ttft99)],
      ["ITL p50", ms(w.itl50)], ["ITL p99", ms(w.itl99)], ["Queue p50", ms(w.queue50)], ["Running", String(last.running)], ["Waiting", String(last.waiting)],
      ["KV cache", `${(100 * last.kv).toFixed(1)} %`]);
  } else tiles.push(["Collecting", "the first samples arrive within 2 s"]);
  $("#metrics-tiles").replaceChildren(...tiles.map(([k, v]) => el("div", {}, el("dt", { text: k }), el("dd", { text: v }))));
  // each point: the 10 s before it
  const points = shown.map(b => { const seq = samples.filter(s => s.t >= b.t - 10_000 && s.t <= b.t); return { t: (b.t - now) / 1000, b, w: seq.length < 2 ? null : between(seq) }; }).filter(p => p.w);
  const series = (name, f) => ({ name, points: points.map(p => [p.t, f(p)]).filter(p => p[1] != null && Number.isFinite(p[1])) });
  const x = timeAxis(windowSeconds);
  plot($("#chart-m-throughput"), [series("output tok/s", p => p.w.tokensPerSecond)], "tokens/s", x);
  plot($("#chart-m-ttft"), [series("p50", p => p.w.ttft50), series("p99", p => p.w.ttft99)], "ms", x);
  plot($("#chart-m-itl"), [series("p50", p => p.w.itl50), series("p99", p => p.w.itl99)], "ms", x);
  plot($("#chart-m-queue"), [series("p50", p => p.w.queue50)], "ms", x);
  plot($("#chart-m-requests"), [series("running", p => p.b.running), series("waiting", p => p.b.waiting)], "requests", x);
  plot($("#chart-m-kv"), [series("KV cache", p => 100 * p.b.kv)], "%", x);
}
$("#metrics-window").addEventListener("change", drawMetrics);
setInterval(() => sampleMetrics().catch(() => {}), 2000);
sampleMetrics().catch(() => {});

// ---- playground: a chat through the model's template (system prompt, turns, streaming), or plain completion ----
let conversation = [];
async function loadPlayground() {
  const m = await api("/v1/models");
  $("#play-model").textContent = m.data.length ? `Model: ${m.data[0].id}` : "Nothing is deployed yet: deploy a variant first.";
  $("#play-send").disabled = m.data.length === 0;
}
const playMode = () => document.querySelector("input[name=play-mode]:checked").value;
function bubble(role, text) {
  const body = el("div", { class: "text", text });
  const b = el("div", { class: `msg ${role}`, "data-role": role }, el("span", { class: "role", text: role }), body);
  $("#chat-log").append(b);
  return body;
}
function newConversation() { conversation = []; $("#chat-log").replaceChildren(); $("#play-stats").textContent = "tokens/s: – · acceptance: –"; delete $("#play-stats").dataset.done; }
$("#play-new").addEventListener("click", newConversation);
for (const r of document.querySelectorAll("input[name=play-mode]")) r.addEventListener("change", () => { $("#play-system").disabled = playMode() !== "chat"; newConversation(); });
async function draftCounters() {
  const m = parseMetrics(await (await fetch("/metrics", { headers: auth() })).text());
  return { proposed: total(m, "sio_draft_tokens_proposed_total"), accepted: total(m, "sio_draft_tokens_accepted_total") };
}
// Reads an OpenAI stream of server-sent events, calling onChunk with each parsed chunk.
async function readEvents(response, onChunk) {
  const reader = response.body.getReader(), dec = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += dec.decode(value, { stream: true });
    let i;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      const line = buf.slice(0, i).trim(); buf = buf.slice(i + 2);
      if (!line.startsWith("data:")) continue;
      const data = line.slice(5).trim();
      if (data !== "[DONE]") onChunk(JSON.parse(data));
    }
  }
}
$("#play-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const stats = $("#play-stats"), chat = playMode() === "chat", text = $("#play-prompt").value;
  if (!text.trim()) { stats.textContent = "Write a message first."; return; }
  delete stats.dataset.done;
  $("#play-send").disabled = true;
  if (!chat) $("#chat-log").replaceChildren();
  bubble(chat ? "user" : "prompt", text);
  const out = bubble("assistant", "");
  const before = await draftCounters().catch(() => null);
  let tokens = 0, first = 0, acceptance = "–", answer = "";
  const t0 = performance.now();
  const live = setInterval(async () => {
    const now = await draftCounters().catch(() => null);
    if (before && now && now.proposed > before.proposed) acceptance = (100 * (now.accepted - before.accepted) / (now.proposed - before.proposed)).toFixed(1) + " % (live)";
  }, 300);
  const render = () => {
    const secs = (performance.now() - (first || t0)) / 1000;
    stats.textContent = `tokens: ${tokens} · first token: ${first ? ((first - t0) / 1000).toFixed(2) + " s" : "–"} · tokens/s: ${tokens > 1 && secs > 0 ? ((tokens - 1) / secs).toFixed(1) : "–"} · acceptance: ${acceptance}`;
  };
  try {
    const request = { max_tokens: Number($("#play-tokens").value), temperature: Number($("#play-temperature").value), stream: true, stream_options: { include_usage: true } };
    if (chat) {
      const system = $("#play-system").value.trim();
      request.messages = [...(system ? [{ role: "system", content: system }] : []), ...conversation, { role: "user", content: text }];
    } else request.prompt = text;
    const r = await authFetch(chat ? "/v1/chat/completions" : "/v1/completions", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(request) });
    if (!r.ok) { const b = await r.json().catch(() => ({})); throw new Error(b.error?.message ?? r.statusText); }
    await readEvents(r, (chunk) => {
      const piece = (chat ? chunk.choices?.[0]?.delta?.content : chunk.choices?.[0]?.text) ?? "";
      if (piece) { if (!first) first = performance.now(); answer += piece; out.textContent = answer; }
      if (chunk.usage) tokens = chunk.usage.completion_tokens; else if (piece) tokens++;
      const spec = chunk.sio?.speculative;
      if (spec) acceptance = spec.proposed > 0 ? `${(100 * spec.acceptance_rate).toFixed(1)} % (${spec.accepted}/${spec.proposed} drafted tokens, ${spec.drafter})` : `– (${spec.drafter} drafted nothing)`;
      render();
    });
    if (chat) { conversation.push({ role: "user", content: text }, { role: "assistant", content: answer }); $("#play-prompt").value = ""; }
    render();
    stats.dataset.done = "true";
  } catch (e) { stats.textContent = "Failed: " + e.message; out.parentElement.remove(); }
  finally { clearInterval(live); $("#play-send").disabled = false; }
});

show();
