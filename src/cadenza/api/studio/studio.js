// Cadenza Studio: the page talks only to the public /v1 API. Engines, their forms and their inputs come from
// the server's OpenAPI document (every `submit_<kind>` operation), so a new engine appears without changes here.
import WaveSurfer from "./vendor/wavesurfer.esm.js";

const JOB_OPTIONS = new Set(["priority", "metadata", "webhook", "webhook_events_filter", "params"]);
const LONG_TEXT = new Set(["prompt", "lyrics"]);
const FINAL = new Set(["completed", "failed", "cancelled"]);
const GM_DRUMS = {35: "Kick 2", 36: "Kick", 37: "Side stick", 38: "Snare", 39: "Clap", 40: "Snare 2", 41: "Low floor tom",
  42: "Closed hat", 43: "Floor tom", 44: "Pedal hat", 45: "Low tom", 46: "Open hat", 47: "Low-mid tom", 48: "Hi-mid tom",
  49: "Crash", 50: "High tom", 51: "Ride", 52: "China", 53: "Ride bell", 54: "Tambourine", 55: "Splash", 56: "Cowbell",
  57: "Crash 2", 59: "Ride 2"};

// The API key lives in sessionStorage (this tab, until it closes) unless "remember" is ticked: then in localStorage.
const KEY_ITEM = "cadenza.apiKey";
const state = { key: sessionStorage.getItem(KEY_ITEM) || localStorage.getItem(KEY_ITEM) || "", schemas: {},
  followed: new Set() };
const $ = (selector, root = document) => root.querySelector(selector);
const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) if (child !== null && child !== undefined) node.append(child);
  return node;
};

// ------------------------------------------------------------------ HTTP
class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

function authHeaders(extra = {}) {
  const headers = new Headers(extra);
  if (state.key) headers.set("Authorization", `Bearer ${state.key}`);
  return headers;
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: authHeaders(options.headers || {}) });
  if (!response.ok) {
    let problem;
    try { problem = await response.json(); } catch { problem = { title: response.statusText }; }
    if (response.status === 401) explainAuth(problem);
    throw new ApiError(response.status, problem);
  }
  return response;
}
const getJson = async (path) => (await api(path)).json();

function explainAuth(problem) {
  $("#key-help").textContent = state.key
    ? `The server refused this API key (${problem.detail || "401"}). Check it, or create one with \`cadenza keys create NAME\`.`
    : "This server requires an API key: paste one above (`cadenza keys create NAME` on the server makes one).";
  $("#key-help").classList.add("error");
  $("#api-key").focus();
}

function upload(file, progress) {
  // POST /v1/uploads with a progress bar (XMLHttpRequest reports upload progress; fetch does not).
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/v1/uploads");
    if (state.key) xhr.setRequestHeader("Authorization", `Bearer ${state.key}`);
    xhr.upload.onprogress = (event) => { if (event.lengthComputable) progress.value = event.loaded / event.total; };
    xhr.onload = () => {
      let body = {};
      try { body = JSON.parse(xhr.responseText); } catch { /* not JSON */ }
      if (xhr.status >= 200 && xhr.status < 300) { progress.value = 1; resolve(body); return; }
      if (xhr.status === 401) explainAuth(body);
      reject(new ApiError(xhr.status, body));
    };
    xhr.onerror = () => reject(new ApiError(0, { title: "Network error", detail: "the upload did not reach the server" }));
    const form = new FormData();
    form.append("file", file, file.name);
    xhr.send(form);
  });
}

async function* sse(path) {
  // Server-Sent Events over fetch (EventSource cannot send the Authorization header); the server closes the
  // stream once the job is final, and a caller that stops early closes it here.
  const response = await api(path);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let event = { data: [] };
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let newline;
      while ((newline = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, newline).replace(/\r$/, "");
        buffer = buffer.slice(newline + 1);
        if (line === "") {
          if (event.data.length) yield { ...event, data: JSON.parse(event.data.join("\n")) };
          event = { data: [] };
        } else if (line.startsWith("data:")) event.data.push(line.slice(5).trimStart());
        else if (line.startsWith("id:")) event.id = line.slice(3).trim();
        else if (line.startsWith("event:")) event.event = line.slice(6).trim();
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

// ------------------------------------------------------------------ schemas → forms
function resolveSchema(schema) {
  if (!schema) return {};
  if (schema.$ref) return resolveSchema(state.schemas[schema.$ref.split("/").pop()]);
  if (schema.allOf && schema.allOf.length === 1) return { ...resolveSchema(schema.allOf[0]), ...schema, allOf: undefined };
  if (schema.anyOf) {
    const real = schema.anyOf.filter((s) => s.type !== "null");
    if (real.length === 1) return { ...resolveSchema(real[0]), ...schema, anyOf: undefined, nullable: true };
  }
  return schema;
}

function engineFromOperation(path, operation) {
  const content = operation.requestBody?.content || {};
  const form = content["multipart/form-data"]?.schema;
  const json = content["application/json"]?.schema;
  const schema = json || form;
  const inputs = form
    ? Object.entries(form.properties).filter(([, p]) => p.format === "binary").map(([name, p]) => ({
      name, description: p.description || "", required: (form.required || []).includes(name),
    }))
    : [];
  const inputNames = new Set(inputs.map((i) => i.name));
  const fields = Object.entries(schema.properties)
    .filter(([name]) => !JOB_OPTIONS.has(name) && !inputNames.has(name))
    .map(([name, prop]) => ({ name, prop: resolveSchema(prop), required: (schema.required || []).includes(name) }));
  const examples = content["application/json"]?.examples || content["multipart/form-data"]?.examples || {};
  const presets = Object.entries(examples).map(([name, e]) => ({ name: e.summary || name, value: e.value || {} }));
  const example = presets[0]?.value || {};
  return { kind: operation.operationId.slice("submit_".length), path, summary: operation.summary, fields, inputs, example, presets };
}

function help(text) { return text ? el("p", { class: "help", text }) : null; }

function fieldFor(engine, field) {
  const { name, prop } = field;
  const id = `f-${engine.kind}-${name}`;
  const errorId = `err-${engine.kind}-${name}`;
  const described = `${errorId} help-${id}`;
  const label = el("label", { for: id, text: prop.title || name });
  const value = engine.example[name] ?? prop.default;
  const wrap = el("div", { class: "field", "data-field": name });
  let control;
  const items = resolveSchema(prop.items);
  if (prop.enum) {
    control = el("select", { id, name, "aria-describedby": described },
      (!field.required ? el("option", { value: "", text: "—" }) : null),
      prop.enum.map((v) => el("option", { value: v, text: v, selected: v === value })));
  } else if (prop.type === "boolean") {
    control = el("input", { id, name, type: "checkbox", checked: value === true, "aria-describedby": described });
  } else if (prop.type === "integer" || prop.type === "number") {
    const min = prop.minimum ?? prop.exclusiveMinimum;
    const max = prop.maximum ?? prop.exclusiveMaximum;
    const step = prop.type === "integer" ? "1" : "any";
    control = el("input", { id, name, type: "number", step, min, max, value: value ?? "", "aria-describedby": described,
      "data-type": prop.type });
    if (min !== undefined && max !== undefined && max - min <= 1000) {
      const slider = el("input", { type: "range", min, max, step: prop.type === "integer" ? 1 : (max - min) / 100,
        value: value ?? min, "aria-label": `${name} slider`, tabindex: "-1" });
      slider.addEventListener("input", () => { control.value = slider.value; });
      control.addEventListener("input", () => { slider.value = control.value; });
      control = el("div", { class: "row" }, control, slider);
    }
  } else if (prop.type === "array" && items.enum) {
    const chosen = new Set(Array.isArray(value) ? value : []);
    control = el("div", { class: "checks", role: "group", "aria-labelledby": `${id}-label`, id },
      items.enum.map((v) => el("label", {}, el("input", { type: "checkbox", name, value: v, checked: chosen.has(v) }), ` ${v}`)));
    label.id = `${id}-label`;
    label.removeAttribute("for");
  } else if (LONG_TEXT.has(name) || (prop.maxLength || 0) > 300) {
    control = el("textarea", { id, name, "aria-describedby": described }, value ?? "");
  } else {
    const text = Array.isArray(value) ? value.join(prop.type === "array" && name.includes("time_signature") ? "/" : ",") : value;
    control = el("input", { id, name, type: "text", value: text ?? "", "aria-describedby": described,
      "data-type": prop.type === "array" ? "array" : "string",
      placeholder: prop.type === "array" ? "comma-separated" : "" });
  }
  wrap.append(label, control, el("p", { class: "help", id: `help-${id}`, text: prop.description || "" }),
    el("p", { class: "error", id: errorId, role: "alert" }));
  return wrap;
}

function readForm(form, engine) {
  const params = {};
  for (const { name, prop } of engine.fields) {
    const items = resolveSchema(prop.items);
    if (prop.type === "array" && items.enum) {
      const checked = [...form.querySelectorAll(`input[name="${name}"]:checked`)].map((i) => i.value);
      if (checked.length) params[name] = checked;
      continue;
    }
    const input = form.querySelector(`[name="${name}"]:not([type="range"])`);
    if (!input) continue;
    if (input.type === "checkbox") { params[name] = input.checked; continue; }
    const raw = input.value.trim();
    if (raw === "") continue;
    if (prop.type === "integer") params[name] = Number.parseInt(raw, 10);
    else if (prop.type === "number") params[name] = Number(raw);
    else if (prop.type === "array") {
      const parts = raw.split(/[,/]/).map((p) => p.trim()).filter(Boolean);
      params[name] = parts.map((p) => (items.type === "integer" || items.type === "number") ? Number(p) : p);
    } else params[name] = raw;
  }
  return params;
}

function showErrors(form, engine, error) {
  form.querySelectorAll(".error").forEach((node) => { node.textContent = ""; });
  const general = form.querySelector(".form-error");
  general.textContent = "";
  const errors = error.problem?.errors || [];
  let placed = 0;
  for (const item of errors) {
    const loc = (item.loc || []).filter((part) => part !== "body" && part !== "params");
    const target = form.querySelector(`#err-${engine.kind}-${CSS.escape(String(loc[0] ?? ""))}`);
    if (target) { target.textContent = item.msg; placed += 1; }
  }
  if (!placed || placed < errors.length || !errors.length) {
    general.textContent = `${error.problem?.title || "Error"}: ${error.message}`;
  }
  const first = form.querySelector(".error:not(:empty)");
  if (first) first.closest(".field")?.querySelector("input, select, textarea")?.focus();
}

function inputZone(engine, input) {
  const id = `in-${engine.kind}-${input.name}`;
  const file = el("input", { id, type: "file", name: input.name, "aria-describedby": `err-${engine.kind}-${input.name}` });
  const zone = el("div", { class: "drop" }, el("label", { for: id, text: `Drop a file here or choose one (${input.name}${input.required ? "" : ", optional"})` }), el("br"), file);
  const bar = el("progress", { max: "1", value: "0", hidden: true, "aria-label": `${input.name} upload` });
  zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    if (event.dataTransfer.files.length) file.files = event.dataTransfer.files;
  });
  return el("div", { class: "field", "data-input": input.name }, zone, bar, help(input.description),
    el("p", { class: "error", id: `err-${engine.kind}-${input.name}`, role: "alert" }));
}

async function catalogueExtras(engine, form) {
  // A field whose schema names a catalogue (`x-catalogue`: the drums styles, melody presets, track genres) becomes
  // a picker of its entries, each entry's description (and tempo range) shown as the field's help.
  for (const { name, prop, required } of engine.fields) {
    const url = prop["x-catalogue"];
    const input = form.querySelector(`[name="${name}"]`);
    if (!url || !input) continue;
    let entries;
    try {
      const body = await getJson(url);
      entries = Object.values(body).find(Array.isArray) || [];
    } catch { continue; }
    const current = input.value;
    const select = el("select", { id: input.id, name, "aria-describedby": input.getAttribute("aria-describedby") },
      (!required && prop.nullable ? el("option", { value: "", text: "— (none)" }) : null),
      entries.map((entry) => el("option", { value: entry.name, text: entry.name, selected: entry.name === current })));
    const about = input.closest(".field").querySelector(".help");
    const original = about.textContent;
    const describe = () => {
      const entry = entries.find((e) => e.name === select.value);
      if (!entry) { about.textContent = original; return; }
      const tempo = entry.preferred_tempo_range || entry.tempo_bpm;
      about.textContent = [entry.description, tempo ? `Tempo ${tempo[0]}–${tempo[1]} BPM.` : ""].filter(Boolean).join(" ") || original;
    };
    select.addEventListener("change", describe);
    input.replaceWith(select);
    describe();
  }
}

function interpretExtras(engine, form, paths) {
  // The track prompt: show what the server will make of it (POST /v1/tracks/interpret) before submitting.
  const interpret = Object.keys(paths).find((p) => p.startsWith(engine.path) && p.endsWith("/interpret"));
  const prompt = form.querySelector('[name="prompt"]');
  if (!interpret || !prompt) return;
  const out = el("dl", { class: "plan", hidden: true, "aria-live": "polite" });
  const button = el("button", { type: "button", text: "Interpret the prompt" });
  button.addEventListener("click", async () => {
    try {
      const plan = await (await api(interpret, { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify(readForm(form, engine)) })).json();
      const shown = (value) => Array.isArray(value)
        ? value.map((item) => (item && typeof item === "object" ? item.name ?? JSON.stringify(item) : item)).join(value.every(Number.isFinite) ? "/" : ", ")
        : (value && typeof value === "object" ? JSON.stringify(value) : String(value));
      out.replaceChildren(...Object.entries(plan.interpretation || {}).flatMap(([name, v]) => (
        v && typeof v === "object" && "value" in v
          ? [el("dt", { text: name }), el("dd", { text: `${shown(v.value)} (${v.source}${v.words ? `: “${v.words}”` : ""})` })]
          : (Array.isArray(v) && v.length ? [el("dt", { text: name.replace(/_/g, " ") }), el("dd", { text: shown(v) })] : [])
      )), ...(plan.warnings || []).map((w) => el("dd", { class: "error", text: w })));
      out.hidden = false;
    } catch (error) { showErrors(form, engine, error); }
  });
  prompt.closest(".field").append(button, out);
}

function buildPanel(engine, paths) {
  const form = el("form", { class: "engine", novalidate: true, "data-kind": engine.kind, "aria-label": engine.summary });
  const shown = (f) => f.required || LONG_TEXT.has(f.name) || engine.example[f.name] !== undefined
    || (f.prop.type === "array" && resolveSchema(f.prop.items).enum);  // output formats, stems: always in view
  const required = engine.fields.filter(shown);
  const optional = engine.fields.filter((f) => !required.includes(f));
  form.append(
    el("p", { class: "help", text: engine.summary }),
    ...engine.inputs.map((input) => inputZone(engine, input)),
    ...required.map((f) => fieldFor(engine, f)),
    optional.length ? el("details", { class: "more" }, el("summary", { text: "More settings" }), ...optional.map((f) => fieldFor(engine, f))) : null,
    el("p", { class: "error form-error", role: "alert" }),
    el("button", { type: "submit", class: "primary", text: `Make it (${engine.kind})` }),
  );
  if (engine.presets.length > 1) {  // the OpenAPI's examples of this engine, as presets that fill the form
    const id = `preset-${engine.kind}`;
    const select = el("select", { id }, engine.presets.map((p, i) => el("option", { value: String(i), text: p.name })));
    select.addEventListener("change", () => applyPreset(form, engine, engine.presets[Number(select.value)].value));
    form.prepend(el("div", { class: "field" }, el("label", { for: id, text: "Preset" }), select));
  }
  form.addEventListener("submit", (event) => { event.preventDefault(); submit(form, engine); });
  catalogueExtras(engine, form);
  interpretExtras(engine, form, paths);
  return form;
}

function applyPreset(form, engine, values) {
  for (const { name, prop } of engine.fields) {
    if (!(name in values)) continue;
    const value = values[name];
    if (prop.type === "array" && resolveSchema(prop.items).enum) {
      form.querySelectorAll(`input[name="${name}"]`).forEach((box) => { box.checked = value.includes(box.value); });
      continue;
    }
    const input = form.querySelector(`[name="${name}"]:not([type="range"])`);
    if (!input) continue;
    if (input.type === "checkbox") input.checked = value === true;
    else input.value = Array.isArray(value) ? value.join(name.includes("time_signature") ? "/" : ",") : value ?? "";
    input.dispatchEvent(new Event("input"));
    input.dispatchEvent(new Event("change"));
  }
}

async function submit(form, engine) {
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    form.querySelectorAll(".error").forEach((node) => { node.textContent = ""; });
    const params = readForm(form, engine);
    const references = {};
    for (const input of engine.inputs) {
      const chosen = form.querySelector(`input[type=file][name="${input.name}"]`).files[0];
      if (!chosen) continue;
      const bar = form.querySelector(`[data-input="${input.name}"] progress`);
      bar.hidden = false;
      references[input.name] = (await upload(chosen, bar)).id;
    }
    let response;
    if (engine.inputs.length && (Object.keys(references).length || engine.inputs.some((i) => i.required))) {
      const body = new FormData();
      for (const [name, id] of Object.entries(references)) body.append(name, id);
      body.append("params", JSON.stringify(params));
      response = await api(engine.path, { method: "POST", body });
    } else {
      response = await api(engine.path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(params) });
    }
    const job = await response.json();
    addJob(job, true);
  } catch (error) {
    if (error instanceof ApiError) showErrors(form, engine, error);
    else form.querySelector(".form-error").textContent = String(error);
  } finally {
    button.disabled = false;
  }
}

// ------------------------------------------------------------------ jobs
function jobCard(job) {
  let card = document.getElementById(`job-${job.id}`);
  if (!card) {
    card = el("li", { class: "job", id: `job-${job.id}`, "data-kind": job.kind });
    card.append(
      el("header", {},
        el("strong", { text: job.kind }),
        el("span", { class: "id", text: job.id.slice(0, 8) }),
        el("span", { class: "badge" }),
        el("span", { class: "actions" },
          el("button", { type: "button", class: "cancel", text: "Cancel", "aria-label": `Cancel job ${job.id.slice(0, 8)}`, onclick: () => act(job.id, "cancel") }),
          el("button", { type: "button", class: "retry", text: "Retry", "aria-label": `Retry job ${job.id.slice(0, 8)}`, onclick: () => act(job.id, "retry") }),
          el("button", { type: "button", class: "delete", text: "Delete", "aria-label": `Delete job ${job.id.slice(0, 8)}`, onclick: () => act(job.id, "delete") }))),
      el("progress", { max: "100", value: "0", "aria-label": "progress" }),
      el("p", { class: "help stage" }),
      el("p", { class: "problem", role: "alert" }),
      el("div", { class: "outputs" }),
    );
  }
  return card;
}

function renderJob(job) {
  const card = jobCard(job);
  card.dataset.status = job.status;
  const badge = $(".badge", card);
  badge.textContent = job.status;
  badge.className = `badge ${job.status}`;
  $("progress", card).value = job.progress;
  $("progress", card).hidden = FINAL.has(job.status);
  const parts = [];
  if (job.stage) parts.push(job.stage);
  if (job.queue_position) parts.push(`position ${job.queue_position} in the queue`);
  if (job.eta_s !== null && job.eta_s !== undefined && !FINAL.has(job.status)) parts.push(`about ${Math.ceil(job.eta_s)} s left`);
  $(".stage", card).textContent = parts.join(" · ");
  $(".problem", card).textContent = job.error ? `${job.error.type}: ${job.error.message}` : "";
  $(".cancel", card).hidden = FINAL.has(job.status);
  $(".retry", card).hidden = !(job.status === "failed" || job.status === "cancelled");
  if (job.status === "completed" && !card.dataset.rendered) {
    card.dataset.rendered = "1";
    renderOutputs(job, $(".outputs", card)).catch((error) => { $(".problem", card).textContent = String(error); });
  }
  return card;
}

function addJob(job, follow) {
  const card = renderJob(job);
  const list = $("#job-list");
  if (!card.parentNode) list.prepend(card);
  if (follow || !FINAL.has(job.status)) followJob(job.id);
}

async function followJob(id) {
  if (state.followed.has(id)) return;
  state.followed.add(id);
  try {
    for await (const event of sse(`/v1/jobs/${id}/events`)) {
      if (event.event === "progress") {
        const card = document.getElementById(`job-${id}`);
        if (card) { $("progress", card).value = event.data.data.progress; $(".stage", card).textContent = event.data.data.stage || ""; }
      }
      if (event.event === "status") {
        if (FINAL.has(event.data.data.status)) break;  // read once, below
        renderJob(await getJson(`/v1/jobs/${id}`));
      }
    }
    renderJob(await getJson(`/v1/jobs/${id}`));
  } catch (error) {
    const card = document.getElementById(`job-${id}`);
    if (card && error.status !== 404) $(".problem", card).textContent = String(error.message || error);
  } finally {
    state.followed.delete(id);
  }
}

async function act(id, action) {
  const card = document.getElementById(`job-${id}`);
  try {
    if (action === "delete") {
      await api(`/v1/jobs/${id}`, { method: "DELETE" });
      card?.remove();
    } else {
      const job = await (await api(`/v1/jobs/${id}/${action}`, { method: "POST" })).json();
      addJob(job, true);
    }
  } catch (error) {
    if (card) $(".problem", card).textContent = `${error.problem?.title || "Error"}: ${error.message}`;
  }
}

// ------------------------------------------------------------------ outputs
async function blobUrl(url) { return URL.createObjectURL(await (await api(url)).blob()); }

async function download(url) {
  // the file name the server gives (Content-Disposition): an output's download_name, or the archive's
  const response = await api(url);
  const name = /filename="?([^";]+)"?/.exec(response.headers.get("content-disposition") || "");
  const href = URL.createObjectURL(await response.blob());
  const link = el("a", { href, download: name ? name[1] : "" });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(href), 60000);
}

const isAudio = (o) => o.media_type.startsWith("audio/") && !o.media_type.includes("midi");
const isMidi = (o) => o.media_type.includes("midi");

async function renderOutputs(job, box) {
  const audio = job.outputs.filter(isAudio);
  const stems = audio.filter((o) => job.kind === "separation" || o.name.startsWith("stem-"));
  const mixes = audio.filter((o) => !stems.includes(o));
  let player = null;
  for (const output of mixes.slice(0, 4)) {  // the first 4 audio outputs (stems go to the mixer)
    const surfer = await waveform(output, box);
    player = player || surfer;
  }
  for (const output of job.outputs.filter(isMidi).slice(0, 4)) await pianoRoll(output, job, box, player);
  if (stems.length >= 2) await mixer(stems, box);
  box.append(
    el("div", { class: "downloads", role: "group", "aria-label": "Downloads" },
      job.outputs.map((o) => el("button", { type: "button", text: `⬇ ${o.download_name}`, onclick: () => download(o.url) })),
      job.outputs.length > 1 ? el("button", { type: "button", class: "zip", text: "⬇ all files (.zip)",
        onclick: () => download(`${job.url}/archive.zip`) }) : null),
    el("p", { class: "daw", text: dawHint(job) }),
  );
}

function dawHint(job) {
  const tempo = job.result?.tempo_bpm ?? job.result?.tempo ?? job.params?.tempo;
  const at = tempo ? ` at ${Math.round(tempo * 100) / 100} BPM` : "";
  const files = [job.outputs.some(isMidi) ? "the MIDI file" : null, job.outputs.some(isAudio) ? "the audio files" : null]
    .filter(Boolean).join(" and ");
  return `Open in your DAW: set the project${at}, then drag ${files || "the files"} onto tracks starting at bar 1.`;
}

async function waveform(output, box) {
  const holder = el("div", { class: "wave", "data-output": output.name });
  box.append(el("p", { class: "help", text: output.name }), holder);
  const url = await blobUrl(output.url);
  const styles = getComputedStyle(document.documentElement);
  const surfer = WaveSurfer.create({
    container: holder, url, height: 64, mediaControls: true,
    waveColor: styles.getPropertyValue("--muted").trim() || "#888", progressColor: styles.getPropertyValue("--accent").trim() || "#36c",
  });
  surfer.getMediaElement().setAttribute("aria-label", `Play ${output.name}`);
  return surfer;
}

async function pianoRoll(output, job, box, player) {
  const buffer = await (await api(output.url)).arrayBuffer();
  const midi = new window.Midi(buffer);
  const canvas = el("canvas", { class: "roll", role: "img", "data-output": output.name });
  const playhead = el("div", { class: "playhead", hidden: !player });
  const wrap = el("div", { class: "roll-wrap" }, canvas, playhead);
  box.append(wrap);
  // Note's fields are getters on its prototype: copy them, a spread would not
  const notes = midi.tracks.flatMap((track, lane) => track.notes.map((n) => ({
    midi: n.midi, time: n.time, duration: n.duration, velocity: n.velocity, lane, drum: track.channel === 9,
  })));
  const duration = Math.max(midi.duration, 0.001);
  const drums = notes.length > 0 && notes.every((n) => n.drum);
  const width = canvas.clientWidth || 600;
  const styles = getComputedStyle(document.documentElement);
  let rows;
  let rowOf;
  let labels;
  let labelRows = null;  // piano mode: the first row of each part's lane
  if (drums) {
    const pitches = [...new Set(notes.map((n) => n.midi))].sort((a, b) => a - b);
    rows = pitches.length;
    rowOf = (n) => pitches.length - 1 - pitches.indexOf(n.midi);
    labels = pitches.map((p) => GM_DRUMS[p] || `Note ${p}`).reverse();
    canvas.setAttribute("aria-label", `Drum grid: ${notes.length} hits on ${labels.join(", ")}`);
  } else {
    const lanes = [...new Set(notes.map((n) => n.lane))];
    const ranges = lanes.map((lane) => {
      const pitches = notes.filter((n) => n.lane === lane).map((n) => n.midi);
      return [Math.min(...pitches), Math.max(...pitches)];
    });
    const sizes = ranges.map(([lo, hi]) => hi - lo + 1);
    const offsets = sizes.map((_, i) => sizes.slice(0, i).reduce((a, b) => a + b, 0));
    rows = Math.max(1, sizes.reduce((a, b) => a + b, 0));
    rowOf = (n) => {
      const i = lanes.indexOf(n.lane);
      return offsets[i] + (ranges[i][1] - n.midi);
    };
    labels = lanes.map((lane) => midi.tracks[lane].name || `track ${lane + 1}`);
    labelRows = offsets;
    canvas.setAttribute("aria-label", `Piano roll: ${notes.length} notes in ${lanes.length} part(s): ${labels.join(", ")}`);
  }
  const height = Math.max(120, Math.min(360, rows * (drums ? 18 : 5)));
  canvas.style.height = `${height}px`;
  const scale = window.devicePixelRatio || 1;
  canvas.width = width * scale;
  canvas.height = height * scale;
  const ctx = canvas.getContext("2d");
  ctx.scale(scale, scale);
  const rowHeight = height / rows;
  ctx.fillStyle = styles.getPropertyValue("--line").trim() || "#ccc";
  const beatS = 60 / (midi.header.tempos[0]?.bpm || 120);
  const beats = duration / beatS;
  const sixteenth = (beatS / 4 / duration) * width;
  for (let beat = 0; beat <= beats; beat++) ctx.fillRect(((beat * beatS) / duration) * width, 0, 1, height);
  const color = styles.getPropertyValue("--note").trim() || "#36c";
  for (const note of notes) {
    ctx.globalAlpha = 0.25 + 0.75 * note.velocity;  // velocity shading
    ctx.fillStyle = color;
    const x = (note.time / duration) * width;
    const length = (note.duration / duration) * width;
    const w = drums ? Math.max(4, Math.min(length, sixteenth * 0.9)) : Math.max(2, length);  // drums: hits on a grid
    ctx.fillRect(x, rowOf(note) * rowHeight + 1, w, Math.max(2, rowHeight - 2));
  }
  ctx.globalAlpha = 1;
  ctx.fillStyle = styles.getPropertyValue("--muted").trim() || "#666";
  ctx.font = "11px system-ui";
  if (drums) labels.forEach((label, i) => ctx.fillText(label, 4, i * rowHeight + Math.min(rowHeight - 4, 12)));
  else if (labels.length > 1) {
    labels.forEach((label, i) => {
      ctx.fillText(label, 4, labelRows[i] * rowHeight + 11);
      if (i) ctx.fillRect(0, labelRows[i] * rowHeight, width, 1);  // a lane per part
    });
  }
  canvas.dataset.notes = String(notes.length);
  canvas.dataset.mode = drums ? "drums" : "piano";
  if (player) {
    const move = (time) => { playhead.style.left = `${Math.min(1, time / duration) * 100}%`; };
    player.on("timeupdate", move);
    player.on("interaction", move);
  }
}

async function mixer(stems, box) {
  const context = new AudioContext();
  const buffers = await Promise.all(stems.map(async (o) => context.decodeAudioData(await (await api(o.url)).arrayBuffer())));
  const gains = stems.map(() => context.createGain());
  gains.forEach((g) => g.connect(context.destination));
  const rows = stems.map((output, i) => {
    const volume = el("input", { type: "range", min: "0", max: "1.5", step: "0.01", value: "1", "aria-label": `${output.name} volume` });
    const mute = el("input", { type: "checkbox", "aria-label": `Mute ${output.name}` });
    const solo = el("input", { type: "checkbox", "aria-label": `Solo ${output.name}` });
    return { output, volume, mute, solo, node: el("div", { class: "stem", "data-stem": output.name },
      el("span", { text: output.name.replace(/\.[^.]+$/, "") }), el("label", {}, mute, " mute"), el("label", {}, solo, " solo"), volume) };
  });
  const apply = () => {
    const soloed = rows.some((r) => r.solo.checked);
    rows.forEach((r, i) => {
      const audible = !r.mute.checked && (!soloed || r.solo.checked);
      gains[i].gain.setTargetAtTime(audible ? Number(r.volume.value) : 0, context.currentTime, 0.01);
    });
  };
  rows.forEach((r) => [r.volume, r.mute, r.solo].forEach((c) => c.addEventListener("input", apply)));
  let sources = [];
  let startedAt = 0;
  let offset = 0;
  const stop = () => { sources.forEach((s) => s.stop()); sources = []; };
  const play = el("button", { type: "button", text: "Play stems" });
  play.addEventListener("click", async () => {
    await context.resume();
    if (sources.length) { offset += context.currentTime - startedAt; stop(); play.textContent = "Play stems"; return; }
    const when = context.currentTime + 0.05;
    sources = buffers.map((buffer, i) => {
      const source = context.createBufferSource();
      source.buffer = buffer;
      source.connect(gains[i]);
      source.start(when, offset % buffer.duration);  // one start time: the stems stay in sync
      return source;
    });
    startedAt = when;
    play.textContent = "Pause stems";
  });
  const mixerBox = el("div", { class: "mixer", role: "group", "aria-label": "Stem mixer", "data-stems": String(stems.length) },
    play, rows.map((r) => r.node));
  box.append(mixerBox);
  apply();
}

// ------------------------------------------------------------------ start
function selectTab(kind) {
  for (const tab of document.querySelectorAll("#engine-tabs button")) tab.setAttribute("aria-selected", String(tab.dataset.kind === kind));
  for (const panel of document.querySelectorAll("#engine-panels > [role=tabpanel]")) panel.hidden = panel.dataset.kind !== kind;
}

function storeKey() {
  // one place only: localStorage when remembered, else sessionStorage; an empty key is stored nowhere
  const remember = $("#remember-key").checked;
  for (const storage of [localStorage, sessionStorage]) storage.removeItem(KEY_ITEM);
  if (state.key) (remember ? localStorage : sessionStorage).setItem(KEY_ITEM, state.key);
  $("#key-help").textContent = !state.key ? "No key: fine unless the server asks for one."
    : remember ? "Saved in this browser; sent as a Bearer token." : "Kept for this tab until it closes; sent as a Bearer token.";
  $("#key-help").classList.remove("error");
}

async function start() {
  $("#api-key").value = state.key;
  $("#remember-key").checked = localStorage.getItem(KEY_ITEM) !== null;
  $("#remember-key").addEventListener("change", storeKey);
  $("#key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    state.key = $("#api-key").value.trim();
    storeKey();
    loadJobs();
  });
  const document_ = await (await fetch("/openapi.json")).json();
  state.schemas = document_.components?.schemas || {};
  const engines = [];
  for (const [path, operations] of Object.entries(document_.paths)) {
    const operation = operations.post;
    if (operation?.operationId?.startsWith("submit_")) engines.push(engineFromOperation(path, operation));
  }
  for (const engine of engines) {
    $("#engine-tabs").append(el("button", { type: "button", role: "tab", "data-kind": engine.kind, id: `tab-${engine.kind}`,
      "aria-controls": `panel-${engine.kind}`, text: engine.kind, onclick: () => selectTab(engine.kind) }));
    $("#engine-panels").append(el("div", { role: "tabpanel", id: `panel-${engine.kind}`, "data-kind": engine.kind,
      "aria-labelledby": `tab-${engine.kind}` }, buildPanel(engine, document_.paths)));
  }
  if (engines.length) selectTab(engines[0].kind);
  await loadJobs();
  document.body.dataset.ready = "1";
}

async function loadJobs() {
  try {
    const page = await getJson("/v1/jobs?limit=20");
    $("#job-list").replaceChildren();
    for (const job of page.jobs.reverse()) addJob(job, false);
  } catch (error) {
    if (error.status !== 401) $("#key-help").textContent = String(error.message || error);
  }
}

start();
