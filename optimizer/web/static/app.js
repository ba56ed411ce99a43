// procure what-if page: edits a scenario as a form, solves it through the JSON API, keeps the variants.
// No framework and no external assets: the charts are inline SVG drawn here.
"use strict";

const PRECISIONS = ["fp32", "bf16", "fp16", "fp8", "int8", "int4"];
const OBJECTIVES = ["capex", "tco", "coverage"];
const SVG = "http://www.w3.org/2000/svg";

const state = {
  doc: null,          // the scenario being edited, as JSON data (JSON is YAML: it is posted as the body)
  baseDoc: null,      // as loaded, to describe what each variant changed
  originalText: "",   // the loaded YAML text (downloaded as is while nothing changed)
  source: null,       // the scenario file it came from (anchors relative paths), or null when pasted
  fileName: "scenario.yaml",
  catalog: { gpus: [], servers: [], models: [] },
  variants: [],       // {name, text, source, fileName, plan, infeasible, doc}
  current: null,      // the variant shown in the plan panel
  solving: false,
  validateTimer: null,
  inputs: null,       // the last valid scenario's `procure validate --format json`: derived rates, buckets, warnings
};

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

// --- formatting ---------------------------------------------------------------------------------

function money(x, currency) {
  if (x === null || x === undefined || !isFinite(x)) return "–";
  try {
    return new Intl.NumberFormat("en-US", { style: "currency", currency: currency || "USD", maximumFractionDigits: 0 }).format(x);
  } catch (_e) {
    return `${Math.round(x).toLocaleString("en-US")} ${currency || ""}`.trim();
  }
}
function shortMoney(x, currency) {
  if (x === null || x === undefined || !isFinite(x)) return "–";
  const sym = money(0, currency).replace(/[\d.,\s]/g, "") || "";
  const a = Math.abs(x);
  if (a >= 1e9) return `${sym}${(x / 1e9).toFixed(2)}B`;
  if (a >= 1e6) return `${sym}${(x / 1e6).toFixed(2)}M`;
  if (a >= 1e3) return `${sym}${(x / 1e3).toFixed(0)}k`;
  return `${sym}${x.toFixed(0)}`;
}
const num = (x, d = 1) => (x === null || x === undefined || !isFinite(x)) ? "–" :
  x.toLocaleString("en-US", { maximumFractionDigits: d, minimumFractionDigits: 0 });
const pct = (x) => (x === null || x === undefined || !isFinite(x)) ? "–" : `${(x * 100).toFixed(1)}%`;

// --- paths into the scenario data: "workloads[0].slo.tpot_ms" -----------------------------------

function parsePath(path) {
  const out = [];
  for (const part of path.split(".")) {
    const m = part.match(/^([^[\]]*)((?:\[\d+\])*)$/);
    if (!m) { out.push(part); continue; }
    if (m[1]) out.push(m[1]);
    for (const idx of m[2].matchAll(/\[(\d+)\]/g)) out.push(Number(idx[1]));
  }
  return out;
}
function getPath(obj, path) {
  let cur = obj;
  for (const k of parsePath(path)) {
    if (cur === null || typeof cur !== "object") return undefined;
    cur = cur[k];
  }
  return cur;
}
function setPath(obj, path, value) {
  const keys = parsePath(path);
  let cur = obj;
  for (let i = 0; i < keys.length - 1; i++) {
    if (cur[keys[i]] === null || typeof cur[keys[i]] !== "object") {
      if (value === undefined) return;
      cur[keys[i]] = typeof keys[i + 1] === "number" ? [] : {};
    }
    cur = cur[keys[i]];
  }
  const last = keys[keys.length - 1];
  if (value === undefined) { if (Array.isArray(cur)) cur.splice(last, 1); else delete cur[last]; }
  else cur[last] = value;
}

// What the user typed, as the value a YAML file would hold: a number when it reads as one (YAML 1.2
// numbers), else the text itself, so that the server gives the CLI's message for it.
const NUMBER = /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/;
function typedValue(text, kind) {
  const t = text.trim();
  if (t === "") return undefined;
  if (kind === "number") return NUMBER.test(t) ? Number(t) : t;
  if (kind === "numbers") return t.split(/[\s,;]+/).filter((x) => x).map((x) => NUMBER.test(x) ? Number(x) : x);
  return t;
}
const shown = (v) => (v === undefined || v === null) ? "" : String(v);

// --- API ----------------------------------------------------------------------------------------

async function api(method, url, body) {
  const res = await fetch(url, { method, body, headers: body ? { "Content-Type": "text/yaml; charset=utf-8" } : {} });
  const type = res.headers.get("content-type") || "";
  let data = null;
  if (type.includes("json")) data = await res.json();
  else if (type.includes("yaml") || type.includes("text")) data = await res.text();
  else data = await res.blob();
  return { status: res.status, ok: res.ok, data, res };
}
const docText = () => JSON.stringify(state.doc);
const query = (params) => {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v) q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : "";
};

// --- errors beside their field ------------------------------------------------------------------

function clearErrors() {
  for (const f of document.querySelectorAll(".field.invalid")) f.classList.remove("invalid");
  for (const e of document.querySelectorAll(".field-error")) e.textContent = "";
  $("form-error").hidden = true;
  $("form-error").textContent = "";
}

function fieldFor(path) {
  if (!path) return null;
  const fields = [...document.querySelectorAll("[data-field]")];
  let best = null;
  for (const f of fields) {
    const p = f.dataset.field;
    const match = path === p || path.startsWith(p + ".") || path.startsWith(p + "[");
    if (match && (!best || p.length > best.dataset.field.length)) best = f;
  }
  return best;
}

// With a length mix the loader reports an incomplete bucket at its cell
// (workloads[i].lengths[j].input_tokens, "missing"), or, from older loaders, as a missing mean
// input_tokens/output_tokens: point at the bucket cell that is not a number, in plain words.
function bucketError(err) {
  const m = err && err.field && err.field.match(/^(workloads\[\d+\])\.(?:lengths\[\d+\]\.)?(input_tokens|output_tokens|share)$/);
  const w = m ? getPath(state.doc, m[1]) : null;
  if (!w || !Array.isArray(w.lengths)) return err;
  for (const [j, b] of w.lengths.entries()) {
    for (const k of ["input_tokens", "output_tokens", "share"]) {
      if (!b || typeof b[k] !== "number") {
        const message = `give a number: every bucket needs its prompt tokens, answer tokens and share`;
        const field = `${m[1]}.lengths[${j}].${k}`;
        return { ...err, field, message, hint: null, error: `${field}: ${message}` };
      }
    }
  }
  return err;
}

function showError(err) {
  clearErrors();
  if (!err) return;
  err = bucketError(err);
  const text = err.message + (err.hint ? `\nhint: ${err.hint}` : "");
  const input = fieldFor(err.field);
  const wrap = input ? input.closest(".field") : null;
  if (wrap) {
    wrap.classList.add("invalid");
    wrap.querySelector(":scope > .field-error").textContent = err.field === input.dataset.field ? text : `${err.field}: ${text}`;
  }
  const box = $("form-error");
  box.textContent = err.error || text;
  box.hidden = false;
}

// --- the form -----------------------------------------------------------------------------------

function fieldId(path) { return "f-" + path.replace(/[^A-Za-z0-9]+/g, "-"); }

function inputField(path, label, opts = {}) {
  const id = fieldId(path);
  const input = el("input", { type: "text", id, "data-field": path, "data-kind": opts.kind || "number",
    inputmode: (opts.kind || "number") === "number" ? "decimal" : null, placeholder: opts.placeholder || "" });
  const cur = getPath(state.doc, path);
  input.value = Array.isArray(cur) ? cur.join(", ") : shown(cur);
  input.addEventListener("input", () => {
    setPath(state.doc, path, typedValue(input.value, input.dataset.kind));
    if (opts.onInput) opts.onInput();
    changed();
  });
  return el("div", { class: "field" + (opts.wide ? " wide" : "") },
    el("label", { for: id }, label, opts.unit ? el("span", { class: "unit" }, ` (${opts.unit})`) : null),
    input, el("div", { class: "field-error" }));
}

function selectField(path, label, choices, opts = {}) {
  const id = fieldId(path);
  const select = el("select", { id, "data-field": path });
  if (opts.optional) select.append(el("option", { value: "" }, opts.optional));
  for (const c of choices) select.append(el("option", { value: c }, c));
  const cur = getPath(state.doc, path);
  select.value = cur === undefined ? (opts.optional ? "" : (opts.default || choices[0])) : String(cur);
  select.addEventListener("change", () => { setPath(state.doc, path, select.value || undefined); changed(); });
  return el("div", { class: "field" + (opts.wide ? " wide" : "") }, el("label", { for: id }, label), select,
    el("div", { class: "field-error" }));
}

function checksField(path, label, choices, opts = {}) {
  const id = fieldId(path);
  const cur = getPath(state.doc, path);
  const box = el("div", { class: "checks", id, "data-field": path, role: "group", "aria-label": label });
  const known = new Set(choices);
  const extra = Array.isArray(cur) ? cur.filter((c) => !known.has(c)) : [];
  for (const c of [...choices, ...extra]) {
    const cb = el("input", { type: "checkbox", value: c, "data-choice": c });
    cb.checked = Array.isArray(cur) && cur.includes(c);
    cb.addEventListener("change", () => {
      const picked = [...box.querySelectorAll("input:checked")].map((x) => x.value);
      setPath(state.doc, path, picked.length || !opts.emptyMeansAll ? picked : undefined);
      changed();
    });
    box.append(el("label", {}, cb, c));
  }
  return el("div", { class: "field wide" }, el("label", { for: id }, label,
    opts.note ? el("span", { class: "unit" }, ` — ${opts.note}`) : null), box, el("div", { class: "field-error" }));
}

function pricesField() {
  const wrap = el("div", { class: "field wide" });
  const rows = el("div", { "data-field": "prices", id: "prices-rows" });
  const prices = state.doc.prices && typeof state.doc.prices === "object" ? state.doc.prices : {};
  for (const name of Object.keys(prices)) {
    const input = el("input", { type: "text", inputmode: "decimal", "data-field": `prices.${name}`, "data-kind": "number",
      id: fieldId(`prices.${name}`), "aria-label": `price of ${name}` });
    input.value = shown(prices[name]);
    input.addEventListener("input", () => {
      state.doc.prices[name] = typedValue(input.value, "number");
      if (state.doc.prices[name] === undefined) delete state.doc.prices[name];
      changed();
    });
    const remove = el("button", { type: "button", class: "link", title: `remove the ${name} price`, onclick: () => {
      delete state.doc.prices[name];
      if (!Object.keys(state.doc.prices).length) delete state.doc.prices;
      renderForm(); changed();
    } }, "✕");
    rows.append(el("div", { class: "price-row field" }, el("label", { for: input.id }, name), input, remove,
      el("div", { class: "field-error" })));
  }
  const names = [...state.catalog.gpus.map((g) => g.name), ...state.catalog.servers.map((s) => s.name)]
    .filter((n) => !(n in prices));
  const pick = el("select", { id: "price-add-name", "aria-label": "item to price" },
    el("option", { value: "" }, "add a quote for…"), names.map((n) => el("option", { value: n }, n)));
  pick.addEventListener("change", () => {
    if (!pick.value) return;
    const item = [...state.catalog.gpus, ...state.catalog.servers].find((x) => x.name === pick.value);
    const usd = item ? (item.price || item.base_price || {}).usd : undefined;
    state.doc.prices = { ...(state.doc.prices || {}), [pick.value]: usd || 1 };
    renderForm(); changed();
  });
  wrap.append(el("label", {}, "Unit prices (scenario currency; catalog estimates otherwise)"), rows, pick,
    el("div", { class: "field-error" }));
  return wrap;
}

// --- a workload's peak rate: requests_per_s, or business volumes (demand:) ------------------------

const DEMAND_MODES = { rps: "requests/s", users: "users", daily: "requests a day", hourly: "hourly profile" };

function demandMode(w) {
  const d = w && w.demand;
  if (!d || typeof d !== "object") return "rps";
  if ("users" in d) return "users";
  if ("requests_per_day" in d) return "daily";
  if ("hourly_requests" in d) return "hourly";
  return "users";
}

// The workload's current peak rate (typed, or derived by the last validation), to carry across a switch.
function currentRate(w, i) {
  if (typeof w.requests_per_s === "number" && w.requests_per_s > 0) return w.requests_per_s;
  const known = state.inputs && state.inputs.workloads && state.inputs.workloads[i];
  return known && typeof known.requests_per_s === "number" ? known.requests_per_s : 1;
}

// Switching the form keeps the rate: volumes are prefilled so that they give the same peak rate.
function setDemandMode(i, mode) {
  const w = state.doc.workloads[i];
  const rate = currentRate(w, i);
  if (mode === "rps") {
    w.requests_per_s = Number(rate.toPrecision(6));
    delete w.demand;
  } else {
    if (mode === "users") w.demand = { users: Math.max(1, Math.round(rate * 3600)), requests_per_user_per_day: 10,
      peak_hour_share: 0.1 };  // users x 10 x 0.1 / 3600 s = rate
    if (mode === "daily") w.demand = { requests_per_day: Math.round(rate * 86400 / 2), peak_factor: 2 };
    if (mode === "hourly") w.demand = { hourly_requests: Array(24).fill(Math.round(rate * 3600)) };
    delete w.requests_per_s;
  }
  renderForm(); changed();
}

function demandFields(w, i) {
  const p = `workloads[${i}]`;
  const mode = demandMode(w);
  const pick = el("select", { id: fieldId(`${p}.demand-form`), "data-field": `${p}.demand` },
    Object.entries(DEMAND_MODES).map(([k, label]) => el("option", { value: k }, label)));
  pick.value = mode;
  pick.addEventListener("change", () => setDemandMode(i, pick.value));
  // a typed volume replaces a requests_per_s given beside it (the two must otherwise agree)
  const edits = { onInput: () => { delete state.doc.workloads[i].requests_per_s; } };
  const d = `${p}.demand`;
  const out = [el("div", { class: "field" }, el("label", { for: pick.id }, "Peak rate given as"), pick,
    el("div", { class: "field-error" }))];
  if (mode === "rps") out.push(inputField(`${p}.requests_per_s`, "Peak rate", { unit: "req/s" }));
  if (mode === "users") out.push(
    inputField(`${d}.users`, "Users", edits),
    inputField(`${d}.requests_per_user_per_day`, "Requests per user", { unit: "a day", ...edits }),
    inputField(`${d}.peak_hour_share`, "Peak-hour share", { unit: "of a day's requests, ≥ 1/24", ...edits }));
  if (mode === "daily") out.push(
    inputField(`${d}.requests_per_day`, "Requests a day", edits),
    inputField(`${d}.peak_factor`, "Peak factor", { unit: "peak / mean rate, ≥ 1", ...edits }));
  if (mode === "hourly") out.push(inputField(`${d}.hourly_requests`, "Requests in each hour", { kind: "numbers",
    wide: true, unit: "24 numbers, 00:00 first", ...edits }));
  if (mode !== "rps") out.push(el("div", { class: "derived wide", id: `derived-rate-${i}`, "data-derived": "rate" }));
  return out;
}

// --- a workload's lengths: one prompt/answer length, or a length mix (lengths: buckets) -------------

function lengthMode(w) {
  if (w && "lengths_file" in w) return "file";
  return w && Array.isArray(w.lengths) ? "mix" : "one";
}

function mixMeans(buckets) {
  const ok = buckets.filter((b) => b && [b.input_tokens, b.output_tokens, b.share].every((x) => typeof x === "number"));
  const total = ok.reduce((a, b) => a + b.share, 0);
  if (!total) return [1000, 200];
  const mean = (k) => Math.max(1, Math.round(ok.reduce((a, b) => a + b[k] * b.share, 0) / total));
  return [mean("input_tokens"), mean("output_tokens")];
}

function setLengthMode(i, mode) {
  const w = state.doc.workloads[i];
  if (mode === "mix") {
    const inp = typeof w.input_tokens === "number" ? w.input_tokens : 1000;
    const out = typeof w.output_tokens === "number" ? w.output_tokens : 200;
    if (!Array.isArray(w.lengths)) w.lengths = [{ input_tokens: inp, output_tokens: out, share: 1 }];
    // with a mix, input_tokens/output_tokens are its means, filled in by the loader
    delete w.input_tokens; delete w.output_tokens;
  } else if (mode === "one") {
    [w.input_tokens, w.output_tokens] = Array.isArray(w.lengths) ? mixMeans(w.lengths) : [1000, 200];
    delete w.lengths;
  }
  delete w.lengths_file; delete w.lengths_bins; delete w.lengths_source;
  renderForm(); changed();
}

function lengthFields(w, i) {
  const p = `workloads[${i}]`;
  const mode = lengthMode(w);
  const choices = { one: "one length", mix: "length mix", ...(mode === "file" ? { file: "lengths_file (not read here)" } : {}) };
  const pick = el("select", { id: fieldId(`${p}.lengths-form`), "data-field": mode === "file" ? `${p}.lengths_file` : null },
    Object.entries(choices).map(([k, label]) => el("option", { value: k }, label)));
  pick.value = mode;
  pick.addEventListener("change", () => setLengthMode(i, pick.value));
  const out = [el("div", { class: "field" }, el("label", { for: pick.id }, "Request lengths"), pick,
    el("div", { class: "field-error" }))];
  if (mode === "one") {
    out.push(inputField(`${p}.input_tokens`, "Prompt length", { unit: "tokens" }),
      inputField(`${p}.output_tokens`, "Answer length", { unit: "tokens" }));
  } else if (mode === "mix") {
    out.push(bucketTable(w, i));
  } else {
    out.push(el("div", { class: "derived wide" }, "The page does not read files named in a scenario: choose ",
      el("b", {}, "length mix"), " and type the buckets (procure validate FILE --format json prints them)."));
  }
  return out;
}

function cellInput(path, label) {
  const input = el("input", { type: "text", inputmode: "decimal", "data-field": path, "data-kind": "number",
    id: fieldId(path), "aria-label": label });
  input.value = shown(getPath(state.doc, path));
  input.addEventListener("input", () => { setPath(state.doc, path, typedValue(input.value, "number")); changed(); });
  return el("td", { class: "field" }, input, el("div", { class: "field-error" }));
}

// A new bucket splits the last one: twice its lengths, half its share each, so the shares still sum to 1.
function addBucket(buckets) {
  const last = buckets[buckets.length - 1] || {};
  const n = (x, d) => typeof x === "number" ? x : d;
  const share = n(last.share, 1) / 2;
  last.share = share;
  buckets.push({ input_tokens: 2 * n(last.input_tokens, 1000), output_tokens: 2 * n(last.output_tokens, 200), share });
}

function bucketTable(w, i) {
  const p = `workloads[${i}].lengths`;
  const rows = w.lengths.map((_b, j) => el("tr", { "data-bucket": j },
    cellInput(`${p}[${j}].input_tokens`, `bucket ${j + 1} prompt tokens`),
    cellInput(`${p}[${j}].output_tokens`, `bucket ${j + 1} answer tokens`),
    cellInput(`${p}[${j}].share`, `bucket ${j + 1} share`),
    el("td", { class: "derived-rps", id: `derived-bucket-${i}-${j}` }),
    el("td", {}, el("button", { type: "button", class: "link", title: `remove bucket ${j + 1}`, disabled: w.lengths.length < 2,
      onclick: () => { w.lengths.splice(j, 1); renderForm(); changed(); } }, "✕"))));
  const add = el("button", { type: "button", id: fieldId(`${p}-add`), class: "secondary",
    onclick: () => { addBucket(w.lengths); renderForm(); changed(); } }, "add bucket");
  return el("div", { class: "field wide" },
    el("label", {}, "Length mix", el("span", { class: "unit" }, " (shares sum to 1; each bucket is sized on its own lengths)")),
    el("table", { class: "grid buckets", "data-field": p, id: fieldId(p) },
      el("thead", {}, el("tr", {}, ["Prompt tokens", "Answer tokens", "Share", "req/s", ""].map((h) => el("th", {}, h)))),
      el("tbody", {}, rows)),
    add, el("div", { class: "field-error" }));
}

// --- what the server derived from the inputs (the last valid `procure validate --format json`) -----

function renderInputs() {
  const info = state.inputs;
  for (const node of document.querySelectorAll("[data-derived], .derived-rps")) node.textContent = "";
  const lines = [];
  if (info) {
    (info.workloads || []).forEach((w, i) => {
      const rate = $(`derived-rate-${i}`);
      if (rate && w.peak_rate) rate.textContent = w.peak_rate;
      if (w.peak_rate) lines.push(el("li", { class: "rate" }, w.peak_rate));
      if (w.lengths) {
        w.lengths.forEach((b, j) => { const c = $(`derived-bucket-${i}-${j}`); if (c) c.textContent = num(b.requests_per_s, 3); });
        lines.push(el("li", { class: "mix" }, `${w.name}: length mix of ${w.lengths.length} bucket${w.lengths.length === 1 ? "" : "s"} — ` +
          w.lengths.map((b) => `${num(b.input_tokens, 0)} → ${num(b.output_tokens, 0)} tokens ${pct(b.share)} ` +
            `(${num(b.requests_per_s, 3)} req/s)`).join("; ") + (w.lengths_source ? ` — ${w.lengths_source}` : "")));
      }
    });
    for (const text of info.warnings || []) lines.push(el("li", { class: "warn" }, `warning: ${text}`));
  }
  $("inputs").replaceChildren(...lines);
  $("inputs").hidden = !lines.length;
}

function workloadFieldset(w, i) {
  const p = `workloads[${i}]`;
  const kind = w && w.kind === "finetune" ? "finetune" : "inference";
  const models = "model-names";
  const model = inputField(`${p}.model`, "Model", { kind: "text", wide: true });
  model.querySelector("input").setAttribute("list", models);
  const fields = [model];
  if (kind === "inference") {
    fields.push(
      ...demandFields(w, i),
      inputField(`${p}.min_replicas`, "Min replicas"),
      ...lengthFields(w, i),
      inputField(`${p}.slo.ttft_ms`, "SLO: time to first token, mean", { unit: "ms" }),
      inputField(`${p}.slo.tpot_ms`, "SLO: time per output token, mean", { unit: "ms" }),
      inputField(`${p}.slo.ttft_p90_ms`, "SLO: time to first token, p90", { unit: "ms", placeholder: "optional" }),
      inputField(`${p}.slo.ttft_p99_ms`, "SLO: time to first token, p99", { unit: "ms", placeholder: "optional" }),
      inputField(`${p}.slo.tpot_p90_ms`, "SLO: time per output token, p90", { unit: "ms", placeholder: "optional" }),
      inputField(`${p}.slo.tpot_p99_ms`, "SLO: time per output token, p99", { unit: "ms", placeholder: "optional" }),
      inputField(`${p}.max_context`, "Max context", { unit: "tokens" }),
      inputField(`${p}.priority`, "Priority", { placeholder: "1" }),
      checksField(`${p}.precisions`, "Precisions", PRECISIONS),
    );
  } else {
    fields.push(
      inputField(`${p}.dataset_tokens`, "Dataset", { unit: "tokens/epoch" }),
      inputField(`${p}.epochs`, "Epochs", { placeholder: "1" }),
      inputField(`${p}.deadline_hours`, "Deadline", { unit: "hours" }),
      inputField(`${p}.seq_len`, "Sequence length", { unit: "tokens", placeholder: "4096" }),
    );
  }
  const name = w && typeof w.name === "string" ? w.name : `workload ${i + 1}`;
  return el("fieldset", { "data-field": p, id: fieldId(p) },
    el("legend", {}, name, el("span", { class: "muted" }, ` · ${kind}`)),
    el("div", { class: "fields" }, fields));
}

function renderForm() {
  const form = $("scenario-form");
  form.replaceChildren();
  if (!state.doc) return;
  const d = state.doc;
  form.append(
    el("fieldset", {}, el("legend", {}, "Scenario"), el("div", { class: "fields" },
      inputField("name", "Name", { kind: "text", wide: true }),
      selectField("objective", "Objective", OBJECTIVES, { default: "capex" }),
      inputField("currency", "Currency", { kind: "text", placeholder: "USD" }),
      inputField("horizon_years", "TCO horizon", { unit: "years", placeholder: "3" }),
      inputField("headroom", "Headroom", { unit: "max load per replica", placeholder: "0.8" }),
      inputField("confidence", "Confidence", { unit: "probability a replica reaches its planned capacity",
                                               placeholder: "0.5" }))),
    el("fieldset", {}, el("legend", {}, "Limits"), el("div", { class: "fields" },
      inputField("constraints.budget", "Budget (capex cap)", { unit: d.currency || "USD", placeholder: "no cap" }),
      inputField("constraints.max_gpu_types", "Max GPU types", { placeholder: "no limit" }),
      inputField("site.power_kw", "Site power", { unit: "kW IT" }),
      inputField("site.pue", "PUE", { placeholder: "1.4" }),
      inputField("site.racks", "Racks"),
      inputField("site.rack_power_kw", "Power per rack", { unit: "kW" }),
      inputField("site.rack_units", "Rack units", { unit: "U", placeholder: "42" }),
      inputField("site.electricity_per_kwh", "Electricity", { unit: `${d.currency || "USD"}/kWh`, placeholder: "0" }),
      checksField("constraints.gpus", "GPUs that may be bought", state.catalog.gpus.map((g) => g.name),
        { emptyMeansAll: true, note: "none ticked: any datacenter GPU" }))),
    el("fieldset", {}, el("legend", {}, "Prices"), el("div", { class: "fields" }, pricesField())),
    ...(Array.isArray(d.workloads) ? d.workloads.map(workloadFieldset) : []),
    el("datalist", { id: "model-names" }, state.catalog.models.map((m) => el("option", { value: m.hf_id || m.name }))),
  );
  renderInputs();
}

function changed() {
  $("download-yaml").disabled = !state.doc;
  clearTimeout(state.validateTimer);
  state.validateTimer = setTimeout(validate, 350);
}

async function validate() {
  if (!state.doc) return;
  const sent = docText();
  const r = await api("POST", "/api/validate" + query({ source: state.source }), sent);
  if (sent !== docText()) return;  // edited again meanwhile: the next check will tell
  showError(r.ok ? null : r.data);
  state.inputs = r.ok ? r.data : null;
  renderInputs();
}

// --- loading ------------------------------------------------------------------------------------

function setSourceLine() {
  $("source-line").textContent = state.source ? `from ${state.source}` : `from ${state.fileName} (pasted or uploaded)`;
}

async function loadText(text, source, fileName) {
  const r = await api("POST", "/api/scenario/parse" + query({ source }), text);
  if (!r.ok) {
    showError(r.data);
    return false;
  }
  state.doc = r.data.data;
  state.baseDoc = JSON.parse(JSON.stringify(state.doc));
  state.originalText = text;
  state.source = source;
  state.fileName = fileName || source || "scenario.yaml";
  renderForm();
  setSourceLine();
  showError(r.data.error);
  state.inputs = null;
  renderInputs();
  if (!r.data.error) validate();
  $("solve").disabled = false;
  $("download-yaml").disabled = false;
  $("variant-name").value = "";
  document.body.dataset.loads = String(Number(document.body.dataset.loads || 0) + 1);
  return true;
}

async function loadSelected() {
  const name = $("scenario-select").value;
  if (!name) return;
  const r = await api("GET", `/api/scenarios/${encodeURIComponent(name)}`);
  if (!r.ok) { showError(r.data); return; }
  await loadText(r.data, name, name);
}

// --- solving ------------------------------------------------------------------------------------

function setSolving(on) {
  state.solving = on;
  $("solve").disabled = on || !state.doc;
  $("progress").hidden = !on;
  if (on) {
    $("progress-text").textContent = "starting";
    $("progress-time").textContent = "";
    const t0 = performance.now();
    const tick = async () => {
      if (!state.solving) return;
      $("progress-time").textContent = `${((performance.now() - t0) / 1000).toFixed(1)} s`;
      try {
        const p = await api("GET", "/api/progress");
        if (state.solving && p.ok && p.data.busy) {
          $("progress-text").textContent = p.data.total ? `${p.data.message} (${p.data.done}/${p.data.total})` : p.data.message;
        }
      } catch (_e) { /* the next tick tries again */ }
      if (state.solving) setTimeout(tick, 250);
    };
    setTimeout(tick, 100);
  }
}

function defaultVariantName() {
  const changes = describeChanges(state.doc, true);
  if (!changes.length) return "as loaded";
  return changes.slice(0, 2).join("; ") + (changes.length > 2 ? ` (+${changes.length - 2})` : "");
}

async function solve() {
  if (!state.doc || state.solving) return;
  const text = docText();
  const source = state.source;
  setSolving(true);
  try {
    const r = await api("POST", "/api/solve" + query({ source }), text);
    if (r.status === 400) {
      showError(r.data);
      const bad = document.querySelector(".field.invalid") || $("form-error");
      bad.scrollIntoView({ block: "center" });
      return;
    }
    if (!r.ok) {
      clearErrors();
      $("form-error").textContent = (r.data && r.data.error) || `the server answered ${r.status}`;
      $("form-error").hidden = false;
      return;
    }
    clearErrors();
    let name = $("variant-name").value.trim() || defaultVariantName();
    const taken = new Set(state.variants.map((v) => v.name));
    for (let k = 2; taken.has(name); k++) name = `${name.replace(/ \(\d+\)$/, "")} (${k})`;
    const v = { name, text, source, fileName: state.fileName, doc: JSON.parse(text), plan: r.data,
      infeasible: r.data.status === "infeasible", changes: describeChanges(JSON.parse(text)) };
    state.variants.push(v);
    state.current = v;
    renderPlan(v);
    renderVariants();
    $("variant-name").value = "";
    $("plan").scrollIntoView({ block: "start" });
  } catch (e) {
    $("form-error").textContent = `cannot reach the procure server: ${e}`;
    $("form-error").hidden = false;
  } finally {
    setSolving(false);
  }
}

// What a variant changed against the scenario as loaded: "constraints.budget 6,000,000 → 1,200,000".
// With ``short``: the last key and the new value only ("budget 1,200,000"), for a variant's default name.
function describeChanges(doc, short = false) {
  const out = [];
  const removed = [];  // a short name leaves out what was unset when anything else changed
  const isObj = (x) => x && typeof x === "object" && !Array.isArray(x);
  const walk = (a, b, path) => {
    if (JSON.stringify(a) === JSON.stringify(b)) return;
    // a section added or removed whole (a workload's demand:) is described key by key
    if ((isObj(a) || a === undefined) && (isObj(b) || b === undefined)) {
      const x = a || {}, y = b || {};
      for (const k of new Set([...Object.keys(x), ...Object.keys(y)])) walk(x[k], y[k], path ? `${path}.${k}` : k);
      return;
    }
    if (Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.some((x) => x && typeof x === "object")) {
      a.forEach((x, i) => walk(x, b[i], `${path}[${i}]`));
      return;
    }
    const f = (x) => x === undefined ? "unset" :
      Array.isArray(x) && x.some((y) => y && typeof y === "object") ? `${x.length} buckets` :
      Array.isArray(x) ? x.join(", ") : x && typeof x === "object" ? JSON.stringify(x) :
      typeof x === "number" ? x.toLocaleString("en-US") : String(x);
    let label = path;
    const m = path.match(/^workloads\[(\d+)\]\.(.*)$/);
    if (m && state.baseDoc && state.baseDoc.workloads && state.baseDoc.workloads[m[1]]) {
      label = `${state.baseDoc.workloads[m[1]].name}.${m[2]}`;
    }
    (short && b === undefined ? removed : out).push(short ? `${label.split(".").pop()} ${f(b)}` : `${label} ${f(a)} → ${f(b)}`);
  };
  walk(state.baseDoc, doc, "");
  return out.length ? out : removed;
}

// --- the plan -----------------------------------------------------------------------------------

function card(key, label, value, sub, raw) {
  return el("div", { class: "card", "data-key": key, "data-value": raw === undefined ? null : String(raw) },
    el("div", { class: "k" }, label), el("div", { class: "v" }, value), sub ? el("div", { class: "s" }, sub) : null);
}

function table(node, headers, rows) {
  node.replaceChildren(
    el("thead", {}, el("tr", {}, headers.map((h, i) => el("th", { class: i === 0 || h.startsWith("~") ? "t" : null },
      h.replace(/^~/, ""))))),
    el("tbody", {}, rows.map((r) => el("tr", {}, r.map((c, i) => el("td", {
      class: i === 0 || (typeof headers[i] === "string" && headers[i].startsWith("~")) ? "t" : null }, c))))));
}

function servedWeighted(plan, doc) {
  const scheduled = new Set((plan.finetunes || []).map((f) => f.workload));
  const prio = {};
  for (const w of (doc.workloads || [])) prio[w.name] = typeof w.priority === "number" ? w.priority : 1;
  let total = 0, served = 0;
  for (const c of (plan.coverage || [])) {
    const p = prio[c.workload] === undefined ? 1 : prio[c.workload];
    const f = c.kind === "finetune" ? (scheduled.has(c.workload) ? 1 : 0) : c.served_fraction;
    total += p; served += p * f;
  }
  return total ? served / total : null;
}

function costCategories(plan) {
  let gpus = 0, chassis = 0;
  for (const s of plan.servers || []) {
    const g = s.count * s.gpus_per_server * s.gpu_unit_price;
    gpus += g;
    chassis += s.count * s.unit_price - g;
  }
  const cats = [["GPUs", gpus], ["Server chassis", chassis]];
  const byCat = {};
  for (const q of plan.quote_lines || []) byCat[q.category] = (byCat[q.category] || 0) + q.extended_price;
  const names = { network: "Network", storage: "Storage", rack: "Racks and PDUs", shipping: "Shipping and installation",
    support: "Support" };
  for (const [k, v] of Object.entries(byCat)) cats.push([names[k] || k, v]);
  const counted = cats.reduce((a, [, v]) => a + v, 0);
  if (plan.capex - counted > 0.5) cats.push(["Other", plan.capex - counted]);
  if (plan.contingency) cats.push(["Contingency", plan.contingency]);
  if (plan.tax) cats.push(["Tax", plan.tax]);
  const capexCats = cats.filter(([, v]) => v > 0.005);
  const running = [["Energy", plan.energy_cost], ["Support and opex", plan.opex_cost]].filter(([, v]) => v > 0.005);
  return { capexCats, running };
}

function barChart(container, groups, currency) {
  const rows = groups.flatMap((g) => [{ head: g.title }, ...g.items.map(([k, v]) => ({ k, v }))]);
  const max = Math.max(1, ...rows.filter((r) => r.v !== undefined).map((r) => r.v));
  const W = 560, left = 170, right = 90, rowH = 22;
  const H = rows.length * rowH + 8;
  const s = svg("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img", "aria-label": "cost by category" });
  const palette = ["#1f5fae", "#4f8bd6", "#7fb0e8", "#2e8b7a", "#6cbfae", "#c58b2a", "#b35c44", "#8a6fbf", "#999"];
  rows.forEach((r, i) => {
    const y = i * rowH + 4;
    if (r.head) { s.append(svg("text", { x: 0, y: y + 15, "font-weight": "600" }, r.head)); return; }
    const w = Math.max(1, (W - left - right) * r.v / max);
    s.append(svg("text", { x: 8, y: y + 15 }, r.k));
    const bar = svg("rect", { x: left, y: y + 3, width: w, height: rowH - 8, rx: 2, fill: palette[i % palette.length] });
    bar.append(svg("title", {}, `${r.k}: ${money(r.v, currency)}`));
    s.append(bar);
    s.append(svg("text", { x: left + w + 6, y: y + 15 }, shortMoney(r.v, currency)));
  });
  container.replaceChildren(s);
}

function renderPlan(v) {
  $("plan-empty").hidden = true;
  $("plan").hidden = false;
  const plan = v.plan;
  $("plan-title").textContent = `Plan — ${v.name}`;
  const badge = $("plan-status");
  badge.textContent = plan.status;
  badge.className = `badge ${plan.status}`;
  $("download-plan").disabled = v.infeasible;
  $("plan-reason").hidden = !v.infeasible;
  $("plan-body").hidden = v.infeasible;
  if (v.infeasible) { $("plan-reason").textContent = plan.reason; return; }
  const cur = plan.currency;
  const budget = v.doc.constraints && v.doc.constraints.budget;
  const site = v.doc.site || {};
  const gpuCount = Object.values(plan.gpus_by_type).reduce((a, b) => a + b, 0);
  const served = servedWeighted(plan, v.doc);
  $("plan-cards").replaceChildren(
    card("capex", "Capex", money(plan.capex, cur), typeof budget === "number" ? `budget ${money(budget, cur)}` : "no budget cap", plan.capex),
    card("tco", `TCO, ${num(plan.horizon_years)} years`, money(plan.tco, cur), "capex + energy + opex", plan.tco),
    card("power", "IT power", `${num(plan.power_kw)} kW`, `facility ${num(plan.facility_power_kw)} kW` +
      (typeof site.power_kw === "number" ? ` · site ${num(site.power_kw)} kW` : ""), plan.power_kw),
    card("racks", "Racks", `${plan.racks_used}`, `${plan.rack_units_used} U` + (typeof site.racks === "number" ? ` of ${site.racks} racks` : ""), plan.racks_used),
    card("gpus", "GPUs", `${gpuCount}`, Object.entries(plan.gpus_by_type).map(([g, n]) => `${n} × ${g}`).join(", "), gpuCount),
    card("served", "Served demand", pct(served), "priority-weighted", served),
  );
  const { capexCats, running } = costCategories(plan);
  barChart($("cost-chart"), [{ title: `Capex ${shortMoney(plan.capex + (plan.contingency || 0) + (plan.tax || 0), cur)}`, items: capexCats },
    ...(running.length ? [{ title: `Running costs over ${num(plan.horizon_years)} years`, items: running }] : [])], cur);
  table($("bought"), ["~Server", "~GPU", "Servers", "GPUs each", "Unit price", "Extended", "kW each"],
    [...(plan.servers || []).map((s) => [s.chassis, s.gpu, s.count, s.gpus_per_server, money(s.unit_price, cur),
      money(s.unit_price * s.count, cur), num(s.power_w / 1000, 2)]),
     ...(plan.quote_lines || []).map((q) => [q.description || q.item, q.category, num(q.quantity, 2), q.unit,
      money(q.unit_price, cur), money(q.extended_price, cur), ""])]);
  table($("deployments"), ["~Workload", "~Model", "~GPU", "TP×PP", "~Precision", "Replicas", "req/s each", "Planned req/s",
    "TTFT ms", "TPOT ms"],
    [...(plan.deployments || []).map((d) => [d.workload, d.model, d.gpu, `${d.tp}×${d.pp}`, d.precision, d.replicas,
      num(d.capacity_rps, 2), num(d.planned_rps, 2), num(d.ttft_ms, 0), num(d.tpot_ms, 1)]),
     ...(plan.finetunes || []).map((f) => [f.workload, f.model, f.gpu, `${f.gpus} GPUs`, f.method, "", "", "",
      `${num(f.hours, 1)} h`, `of ${num(f.deadline_hours, 0)} h`])]);
  const routed = (plan.deployments || []).flatMap((d) => (d.buckets || []).map((b) => [d.workload, d.gpu,
    `${d.tp}×${d.pp}`, d.precision, `${num(b.input_tokens, 0)} → ${num(b.output_tokens, 0)}`, num(b.planned_rps, 3),
    num(b.capacity_rps, 2), num(b.ttft_ms, 0), num(b.tpot_ms, 1)]));
  $("routed-head").hidden = $("routed").hidden = !routed.length;
  table($("routed"), ["~Workload", "~GPU", "TP×PP", "~Precision", "~Bucket tokens", "Routed req/s", "req/s each",
    "TTFT ms", "TPOT ms"], routed);
  table($("coverage"), ["~Workload", "~Kind", "Demand req/s", "Capacity req/s", "Served"],
    (plan.coverage || []).map((c) => [c.workload, c.kind, num(c.demand_rps, 2), num(c.capacity_rps, 2),
      el("span", {}, el("span", { class: "bar-under", style: `width:${Math.round(40 * c.served_fraction)}px` }), " ", pct(c.served_fraction))]));
  $("plan-notes").replaceChildren(...(plan.notes || []).map((n) => el("li", {}, n)),
    el("li", {}, `solver ${plan.solver.solver}: ${plan.solver.status}, gap ${pct(plan.gap)}, stopped by ${plan.solver.stopped_by}`));
}

// --- the variants -------------------------------------------------------------------------------

function renderVariants() {
  const vs = state.variants;
  $("variants-empty").hidden = vs.length > 0;
  $("variant-count").textContent = vs.length ? `(${vs.length})` : "";
  $("download-compare").disabled = !vs.some((v) => !v.infeasible);
  const node = $("variants-table");
  if (!vs.length) { node.replaceChildren(); $("served-chart").replaceChildren(); return; }
  const cur = (vs[0].plan && vs[0].plan.currency) || "USD";
  const metric = (label, f) => el("tr", {}, el("th", { class: "t" }, label), vs.map((v) => el("td", {}, f(v))));
  const budgetOf = (v) => v.doc.constraints && typeof v.doc.constraints.budget === "number" ? v.doc.constraints.budget : null;
  const ok = (f) => (v) => v.infeasible ? "–" : f(v.plan, v);
  node.replaceChildren(
    el("thead", {}, el("tr", {}, el("th", { class: "t" }, "Variant"), vs.map((v, i) => el("th", { "data-variant": v.name },
      el("button", { type: "button", class: "link", title: "show this plan", onclick: () => { state.current = v; renderPlan(v); } },
        `${i + 1}. ${v.name}`))))),
    el("tbody", {},
      metric("Status", (v) => v.plan.status),
      metric("Budget", (v) => budgetOf(v) === null ? "no cap" : money(budgetOf(v), cur)),
      metric("Objective", (v) => v.doc.objective || "capex"),
      metric("Capex", ok((p) => money(p.capex, cur))),
      metric("TCO", ok((p) => money(p.tco, cur))),
      metric("Served demand", ok((p, v) => pct(servedWeighted(p, v.doc)))),
      metric("IT power kW", ok((p) => num(p.power_kw))),
      metric("Racks", ok((p) => String(p.racks_used))),
      metric("GPUs", ok((p) => Object.entries(p.gpus_by_type).map(([g, n]) => `${n} ${g.split("-")[0]}`).join(", ") || "–")),
      el("tr", {}, el("th", { class: "t" }, "Changes"), vs.map((v) => el("td", { class: "changes" },
        v.changes.length ? v.changes.join("\n") : "as loaded"))),
    ));
  servedChart($("served-chart"), vs, cur, budgetOf);
}

function servedChart(container, vs, currency, budgetOf) {
  const pts = vs.map((v, i) => ({ i, v, x: budgetOf(v), y: v.infeasible ? 0 : servedWeighted(v.plan, v.doc) }))
    .filter((p) => p.x !== null && p.y !== null);
  const W = 420, H = 260, L = 52, R = 16, T = 30, B = 40;
  const s = svg("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img", "aria-label": "served demand vs budget" });
  s.append(svg("text", { x: L, y: 11, "font-weight": "600" }, "Served demand vs budget"));
  if (!pts.length) {
    s.append(svg("text", { x: L, y: H / 2 }, "no variant with a budget cap yet"));
    container.replaceChildren(s);
    return;
  }
  let x0 = Math.min(...pts.map((p) => p.x)), x1 = Math.max(...pts.map((p) => p.x));
  if (x1 - x0 < 1) { x0 = x0 * 0.8; x1 = x1 * 1.2 + 1; }
  const pad = (x1 - x0) * 0.08; x0 -= pad; x1 += pad;
  const X = (x) => L + (W - L - R) * (x - x0) / (x1 - x0);
  const Y = (y) => H - B - (H - T - B) * y;
  for (const g of [0, 0.25, 0.5, 0.75, 1]) {
    s.append(svg("line", { x1: L, x2: W - R, y1: Y(g), y2: Y(g), class: "gridline" }));
    s.append(svg("text", { x: L - 6, y: Y(g) + 4, "text-anchor": "end" }, `${g * 100}%`));
  }
  s.append(svg("line", { x1: L, x2: W - R, y1: H - B, y2: H - B, class: "axis" }));
  for (let k = 0; k <= 3; k++) {
    const x = x0 + (x1 - x0) * k / 3;
    s.append(svg("text", { x: X(x), y: H - B + 16, "text-anchor": k === 0 ? "start" : k === 3 ? "end" : "middle" },
      shortMoney(x, currency)));
  }
  s.append(svg("text", { x: (L + W - R) / 2, y: H - 6, "text-anchor": "middle" }, "budget (capex cap)"));
  const sorted = [...pts].sort((a, b) => a.x - b.x);
  s.append(svg("polyline", { points: sorted.map((p) => `${X(p.x)},${Y(p.y)}`).join(" "), fill: "none", stroke: "#7fb0e8", "stroke-width": 2 }));
  for (const p of pts) {
    const c = svg("circle", { cx: X(p.x), cy: Y(p.y), r: 5, fill: p.v.infeasible ? "#b3261e" : "#1f5fae" });
    c.append(svg("title", {}, `${p.i + 1}. ${p.v.name}: ${pct(p.y)} at ${money(p.x, currency)}`));
    s.append(c);
    s.append(svg("text", { x: X(p.x) + 7, y: Y(p.y) - 7 }, String(p.i + 1)));
  }
  container.replaceChildren(s);
}

// --- downloads ----------------------------------------------------------------------------------

function saveBlob(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = el("a", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}
const stem = (name) => (name || "scenario").replace(/\.ya?ml$/i, "").replace(/[^A-Za-z0-9._-]+/g, "-");
const slug = (name) => name.replace(/[^A-Za-z0-9._-]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 40) || "variant";

async function download(url, body, name, what) {
  const r = await api("POST", url, body);
  if (!r.ok) {
    $("form-error").textContent = `cannot download the ${what}: ${(r.data && r.data.error) || r.status}`;
    $("form-error").hidden = false;
    return;
  }
  saveBlob(r.data instanceof Blob ? r.data : new Blob([r.data], { type: "text/yaml" }), name);
}

async function downloadYaml() {
  if (!state.doc) return;
  const name = `${stem(state.fileName)}-edited.yaml`;
  if (JSON.stringify(state.doc) === JSON.stringify(state.baseDoc)) {
    saveBlob(new Blob([state.originalText], { type: "text/yaml" }), name);
    return;
  }
  await download("/api/scenario/yaml" + query({ filename: name }), docText(), name, "scenario");
}

async function downloadPlan() {
  const v = state.current;
  if (!v || v.infeasible) return;
  const name = `${stem(v.fileName)}-${slug(v.name)}.xlsx`;
  await download("/api/workbook/plan" + query({ source: v.source, filename: name }), v.text, name, "plan workbook");
}

async function downloadCompare() {
  const vs = state.variants;
  if (!vs.length) return;
  const name = `${stem(vs[0].fileName)}-variants.xlsx`;
  const body = JSON.stringify({ variants: vs.map((v) => ({ name: v.name, yaml: v.text, source: v.source })) });
  await download("/api/workbook/compare" + query({ filename: name }), body, name, "comparison workbook");
}

// --- start --------------------------------------------------------------------------------------

async function start() {
  const [gpus, servers, models, list] = await Promise.all([
    api("GET", "/api/catalog/gpus"), api("GET", "/api/catalog/servers"), api("GET", "/api/catalog/models"),
    api("GET", "/api/scenarios")]);
  state.catalog = { gpus: gpus.data.gpus || [], servers: servers.data.servers || [], models: models.data.models || [] };
  const select = $("scenario-select");
  for (const s of list.data.scenarios) select.append(el("option", { value: s.name }, s.initial ? `${s.name} (given)` : s.name));
  $("load-scenario").addEventListener("click", loadSelected);
  $("solve").addEventListener("click", solve);
  $("download-yaml").addEventListener("click", downloadYaml);
  $("download-plan").addEventListener("click", downloadPlan);
  $("download-compare").addEventListener("click", downloadCompare);
  $("scenario-form").addEventListener("submit", (e) => { e.preventDefault(); solve(); });
  $("paste-open").addEventListener("click", () => { $("paste-panel").hidden = false; $("yaml-text").focus(); });
  $("paste-cancel").addEventListener("click", () => { $("paste-panel").hidden = true; });
  $("paste-load").addEventListener("click", async () => {
    if (await loadText($("yaml-text").value, null, "pasted.yaml")) $("paste-panel").hidden = true;
  });
  $("upload-file").addEventListener("change", async (e) => {
    const file = e.target.files[0];
    if (!file) return;
    if (file.size > 1000000) { showError({ message: `${file.name} is larger than 1 MB; a scenario is a few KB` }); return; }
    await loadText(await file.text(), null, file.name);
    e.target.value = "";
  });
  if (list.data.initial) select.value = list.data.initial;
  else if (list.data.scenarios.some((s) => s.name === "bank-rollout.yaml")) select.value = "bank-rollout.yaml";
  if (select.value) await loadSelected();
  document.body.dataset.ready = "1";
}

start().catch((e) => {
  $("form-error").textContent = `the page could not start: ${e}`;
  $("form-error").hidden = false;
});
