// vaeserve latent-space explorer: plain JavaScript, no build step, only the service's public endpoints.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { models: [], ends: { a: null, b: null }, samples: [], drawn: null, cursorBusy: false,
                cursorNext: null };

// ---------------------------------------------------------------- HTTP

function status(text, isError = false) {
  const el = $("status");
  el.textContent = text;
  el.classList.toggle("error", isError);
}

async function api(path, body, { npy = false } = {}) {
  const headers = { "content-type": "application/json" };
  const key = localStorage.getItem("vaeserve-api-key");
  if (key) headers["x-api-key"] = key;
  if (npy) headers.accept = "application/x-npy";
  const t0 = performance.now();
  const r = await fetch(path, body === undefined ? { headers } : { method: "POST", headers, body: JSON.stringify(body) });
  if (r.status === 401) $("keybox").hidden = false;
  if (!r.ok) {
    let msg = `${r.status}`;
    try { const e = await r.json(); msg += ` ${e.error}`; } catch (_) { /* not JSON */ }
    status(`${path}: ${msg}`, true);
    throw new Error(msg);
  }
  const out = npy ? parseNpy(await r.arrayBuffer()) : await r.json();
  status(`${path} answered in ${(performance.now() - t0).toFixed(0)} ms`);
  return out;
}

// A .npy file (format 1 or 2, little-endian float32): header dict, then the raw array.
function parseNpy(buf) {
  const bytes = new Uint8Array(buf);
  const major = bytes[6];
  const view = new DataView(buf);
  const hlen = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const start = major === 1 ? 10 : 12;
  const header = new TextDecoder().decode(bytes.subarray(start, start + hlen));
  if (!header.includes("'<f4'")) throw new Error("expected float32 .npy");
  const shape = header.match(/\(([^)]*)\)/)[1].split(",").filter((s) => s.trim()).map(Number);
  const data = new Float32Array(buf.slice(start + hlen));
  return { shape, data };
}

// ---------------------------------------------------------------- drawing images

// Paint one 28x28 image (a flat array or nested rows of floats in [0,1]) at (x, y), `size` pixels wide.
const tile = document.createElement("canvas");
tile.width = tile.height = 28;
function paint(ctx, img, x, y, size) {
  const flat = Array.isArray(img) ? img.flat() : img;
  const tctx = tile.getContext("2d");
  const im = tctx.createImageData(28, 28);
  for (let i = 0; i < 784; i++) {
    const v = 255 - Math.round(Math.min(1, Math.max(0, flat[i])) * 255); // dark ink on paper
    im.data[4 * i] = im.data[4 * i + 1] = im.data[4 * i + 2] = v;
    im.data[4 * i + 3] = 255;
  }
  tctx.putImageData(im, 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(tile, x, y, size, size);
}

function paintGrid(canvas, images, cols) {
  const ctx = canvas.getContext("2d");
  const size = canvas.width / cols;
  const rows = Math.ceil(images.length / cols);
  canvas.height = rows * size;
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  images.forEach((img, i) => paint(ctx, img, (i % cols) * size, Math.floor(i / cols) * size, size));
  canvas.dataset.painted = String(Number(canvas.dataset.painted || 0) + 1); // lets tests wait for new pixels
}

// Rows of a .npy (N, 28, 28) answer as flat Float32Array views.
const npyRows = (a) => Array.from({ length: a.shape[0] }, (_, i) => a.data.subarray(i * 784, (i + 1) * 784));

// ---------------------------------------------------------------- models

function fillSelect(select, models, preferred) {
  select.innerHTML = "";
  for (const m of models) {
    const o = document.createElement("option");
    o.value = m.name;
    o.textContent = `${m.name} (${m.kind}, m=${m.latent_dim})`;
    select.appendChild(o);
  }
  const pick = models.find(preferred) || models[0];
  if (pick) select.value = pick.name;
  select.disabled = models.length === 0;
  if (!models.length) select.innerHTML = "<option>none loaded</option>";
}

async function loadModels() {
  const { models } = await api("/models");
  state.models = models;
  const vaes = models.filter((m) => m.generative && !m.num_classes);
  const cvaes = models.filter((m) => m.generative && m.num_classes);
  const flat = models.filter((m) => m.generative && !m.num_classes && m.latent_dim === 2);
  fillSelect($("vae-model"), vaes, (m) => m.default);
  fillSelect($("cvae-model"), cvaes, () => true);
  fillSelect($("z2-model"), flat, () => true);
  for (let d = 0; d < 10; d++) $("cvae-digit").insertAdjacentHTML("beforeend", `<option value="${d}">${d}</option>`);
  status(`${models.length} models loaded`);
}

const model = (id) => ($(id).disabled ? null : $(id).value);

// ---------------------------------------------------------------- samples

async function sample() {
  const name = model("vae-model");
  if (!name) return;
  const seed = Number($("seed").value) || 0;
  const temperature = Number($("temperature").value) || 1;
  const r = await api("/sample", { model: name, n: 40, seed, temperature });
  state.samples = r.images.map((img, i) => ({ img, z: r.z[i], model: name }));
  paintGrid($("sample-grid"), r.images, 10);
}

function pickSample(ev) {
  const c = $("sample-grid");
  const size = c.width / 10;
  const rect = c.getBoundingClientRect();
  const col = Math.floor(((ev.clientX - rect.left) * c.width) / rect.width / size);
  const row = Math.floor(((ev.clientY - rect.top) * c.height) / rect.height / size);
  const s = state.samples[row * 10 + col];
  if (!s) return;
  // The first pick fills A, the next B, then they alternate.
  const slot = !state.ends.a || (state.ends.a && state.ends.b && state.lastSet === "b") ? "a" : "b";
  setEnd(slot, { z: s.z, img: s.img, model: s.model });
}

function setEnd(slot, end) {
  state.ends[slot] = end;
  state.lastSet = slot;
  const c = $(`end-${slot}`);
  paint(c.getContext("2d"), end.img, 0, 0, c.width);
}

// ---------------------------------------------------------------- conditional digits

// Seeded N(0, 1) draws for the page's own noise (mulberry32 + Box-Muller): the same seed, the same grid.
function normals(seed, n) {
  let a = seed >>> 0;
  const rand = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return Array.from({ length: n }, () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand()));
}

function describeConditional() {
  const name = model("cvae-model");
  const perClass = name && meta(name).prior === "class-flow";
  $("cvae-note").textContent = perClass
    ? "Each row is one class, each column one noise ε: this model's prior is p(z | y) (its meta says prior: " +
      "class-flow), so each tile is z = prior(ε, y) decoded with the label y, through the model's sampler."
    : "The cvae decodes z together with a label: each row is one class, each column one z (one style).";
  $("style-note").textContent = perClass
    ? "Encoded under the class whose reconstruction fits your drawing best, then decoded with each label 0–9. " +
      "This model's prior is p(z | y): its codes carry the class too, so another label mixes the two."
    : "Encoded under the class whose reconstruction fits your drawing best, then decoded with each label 0–9.";
}

async function generateConditional() {
  describeConditional();
  const name = model("cvae-model");
  if (!name) return;
  const digit = $("cvae-digit").value;
  const seed = Number($("cvae-seed").value) || 0;
  const rows = digit === "all" ? [...Array(10).keys()] : [Number(digit)];
  const m = meta(name).latent_dim;
  let images;
  if (meta(name).prior === "class-flow") {
    // p(z | y): ten noises, each mapped through the prior of every row's class and decoded with it (the sampler)
    const eps = normals(seed, 10 * m), data = [], labels = [];
    for (const label of rows) for (let j = 0; j < 10; j++) { data.push(...eps.slice(j * m, (j + 1) * m)); labels.push(label); }
    const body = { inputs: [{ name: "eps", shape: [labels.length, m], datatype: "FP32", data },
                            { name: "labels", shape: [labels.length], datatype: "INT64", data: labels }] };
    const x = (await api(`/v2/models/${name}-sampler/infer`, body)).outputs.find((o) => o.name === "x").data;
    images = Array.from({ length: labels.length }, (_, i) => x.slice(i * 784, (i + 1) * 784));
  } else {
    // Ten z's, each decoded under every class: the same z is the same style across a column.
    const z = (await api("/sample", { model: name, n: 10, seed, labels: "balanced" })).z;
    const zs = [], labels = [];
    for (const label of rows) for (let j = 0; j < 10; j++) { zs.push(z[j]); labels.push(label); }
    images = npyRows(await api("/decode", { model: name, z: zs, labels }, { npy: true }));
  }
  paintGrid($("cvae-grid"), images, 10);
}

// ---------------------------------------------------------------- 2-D manifold

// Standard normal inverse CDF by bisection on Phi (erf by Abramowitz & Stegun 7.1.26, |error| < 1.5e-7).
function erf(x) {
  const s = Math.sign(x), a = Math.abs(x), t = 1 / (1 + 0.3275911 * a);
  const y = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t *
    Math.exp(-a * a);
  return s * y;
}
function probit(p) {
  let lo = -8, hi = 8;
  for (let i = 0; i < 60; i++) {
    const mid = (lo + hi) / 2;
    if (0.5 * (1 + erf(mid / Math.SQRT2)) < p) lo = mid; else hi = mid;
  }
  return (lo + hi) / 2;
}
// Cell i of n sits at the quantile 0.05 + 0.9 i / (n - 1), as in the paper's figure; u in [0,1] maps onto it.
function quantile(u, n) {
  const p = 0.05 + (0.9 * (u * n - 0.5)) / (n - 1);
  return probit(Math.min(0.999, Math.max(0.001, p)));
}

// What a model's prior is, from its meta (GET /models): the notes on the page follow it, never the other way.
const meta = (name) => state.models.find((m) => m.name === name) || {};
const hasFlow = (name) => meta(name).prior === "flow";

// Decode grid points of a 2-D model. With N(0, I) as its prior the points are latents z, decoded (/decode); with a
// learned prior they are the prior's noise eps, and the model's sampler (Open Inference Protocol, <name>-sampler)
// decodes z = prior(eps): the quantile grid then covers the prior as the lecture's figure covers N(0, I).
async function decodePoints(name, pts) {
  if (!hasFlow(name)) return npyRows(await api("/decode", { model: name, z: pts }, { npy: true }));
  const body = { inputs: [{ name: "eps", shape: [pts.length, 2], datatype: "FP32", data: pts.flat() }] };
  const x = (await api(`/v2/models/${name}-sampler/infer`, body)).outputs.find((o) => o.name === "x").data;
  return Array.from({ length: pts.length }, (_, i) => x.slice(i * 784, (i + 1) * 784));
}

function describePriors() {
  const v = model("vae-model"), z2 = model("z2-model");
  $("sample-note").textContent = (v && hasFlow(v)
    ? "z = prior(t·ε), ε ~ N(0, I): this model's prior is a flow learned with it (its meta says prior: flow), " +
      "and z is decoded."
    : "z ~ N(0, t²I), this model's prior, decoded.") +
    " The same seed gives the same digits. Click a digit to make it an end of the interpolation below.";
  const grid = z2 && hasFlow(z2)
    ? "the quantiles of its prior's noise ε, each mapped to z = prior(ε) by the learned flow and decoded"
    : "Gaussian quantiles of z, its N(0, I) prior";
  $("manifold-note").textContent = `The 2-D model's decoder over a grid of ${grid} (Kingma & Welling, fig. 4). ` +
    "Drag the cursor: the digit on the right is decoded where it points.";
  $("cursor-name").textContent = z2 && hasFlow(z2) ? "ε" : "z";
}

async function drawManifold() {
  describePriors();
  const name = model("z2-model");
  if (!name) return;
  const n = Number($("manifold-n").value);
  const pts = [];
  for (let r = 0; r < n; r++) {
    for (let c = 0; c < n; c++) pts.push([quantile((c + 0.5) / n, n), quantile(1 - (r + 0.5) / n, n)]); // up
  }
  paintGrid($("manifold-grid"), await decodePoints(name, pts), n);
  moveCursor(0.5, 0.5);
}

function moveCursor(u, v) {
  const cur = $("cursor");
  cur.style.left = `${u * 100}%`;
  cur.style.top = `${v * 100}%`;
  const n = Number($("manifold-n").value);
  const z = [quantile(u, n), quantile(1 - v, n)];
  cur.dataset.z = JSON.stringify(z);
  const fmt = (v) => (Math.abs(v) < 0.005 ? 0 : v).toFixed(2); // no "-0.00"
  $("cursor-z").textContent = `(${fmt(z[0])}, ${fmt(z[1])})`;
  decodeAtCursor(z);
}

// At most one request in flight; while it runs, only the newest position is kept.
async function decodeAtCursor(z) {
  const name = model("z2-model");
  if (!name) return;
  if (state.cursorBusy) { state.cursorNext = z; return; }
  state.cursorBusy = true;
  try {
    const [img] = await decodePoints(name, [z]);
    const c = $("cursor-digit");
    paint(c.getContext("2d"), img, 0, 0, c.width);
    c.dataset.z = JSON.stringify(z);
  } finally {
    state.cursorBusy = false;
    if (state.cursorNext) { const next = state.cursorNext; state.cursorNext = null; decodeAtCursor(next); }
  }
}

function wireCursor() {
  const stack = $("manifold-stack");
  let dragging = false;
  const at = (ev) => {
    const r = stack.getBoundingClientRect();
    const u = Math.min(1, Math.max(0, (ev.clientX - r.left) / r.width));
    const v = Math.min(1, Math.max(0, (ev.clientY - r.top) / r.height));
    moveCursor(u, v);
  };
  stack.addEventListener("pointerdown", (ev) => { dragging = true; stack.setPointerCapture(ev.pointerId); at(ev); });
  stack.addEventListener("pointermove", (ev) => { if (dragging) at(ev); });
  stack.addEventListener("pointerup", () => { dragging = false; });
  $("cursor").addEventListener("keydown", (ev) => { // arrow keys move it too
    const cur = $("cursor");
    let u = parseFloat(cur.style.left) / 100, v = parseFloat(cur.style.top) / 100;
    const step = 0.02;
    if (ev.key === "ArrowLeft") u -= step; else if (ev.key === "ArrowRight") u += step;
    else if (ev.key === "ArrowUp") v -= step; else if (ev.key === "ArrowDown") v += step; else return;
    ev.preventDefault();
    moveCursor(Math.min(1, Math.max(0, u)), Math.min(1, Math.max(0, v)));
  });
}

// ---------------------------------------------------------------- interpolation

// An end is a sample's z (when it came from the same model) or an image, which the server encodes.
function endpoint(end, name) {
  return end.z && end.model === name ? { z: end.z } : { image: { pixels: to2d(end.img) } };
}
const to2d = (flat) => (Array.isArray(flat[0]) ? flat : Array.from({ length: 28 }, (_, r) => Array.from(flat.slice(r * 28, r * 28 + 28))));

async function interpolate() {
  const name = model("vae-model");
  const { a, b } = state.ends;
  if (!name || !a || !b) { status("pick two ends first: click two samples, or use your drawing", true); return; }
  const steps = Math.min(20, Math.max(2, Number($("interp-steps").value) || 10));
  const r = await api("/interpolate", { model: name, start: endpoint(a, name), end: endpoint(b, name), steps,
                                        method: $("interp-method").value }, { npy: true });
  const c = $("interp-strip");
  c.width = 56 * steps;
  paintGrid(c, npyRows(r), steps);
}

// ---------------------------------------------------------------- draw pad

function wirePad() {
  const pad = $("pad");
  const ctx = pad.getContext("2d");
  const clear = () => { ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, pad.width, pad.height); };
  clear();
  let last = null;
  const pos = (ev) => {
    const r = pad.getBoundingClientRect();
    return [((ev.clientX - r.left) * pad.width) / r.width, ((ev.clientY - r.top) * pad.height) / r.height];
  };
  pad.addEventListener("pointerdown", (ev) => { last = pos(ev); pad.setPointerCapture(ev.pointerId); });
  pad.addEventListener("pointermove", (ev) => {
    if (!last) return;
    const p = pos(ev);
    ctx.strokeStyle = "#111";
    ctx.lineWidth = 22;
    ctx.lineCap = ctx.lineJoin = "round";
    ctx.beginPath();
    ctx.moveTo(...last);
    ctx.lineTo(...p);
    ctx.stroke();
    last = p;
  });
  pad.addEventListener("pointerup", () => { if (last) { last = null; analyseDrawing(); } });
  $("clear-btn").addEventListener("click", () => { clear(); state.drawn = null; });
  $("use-a").addEventListener("click", () => state.drawn && setEnd("a", { img: state.drawn }));
  $("use-b").addEventListener("click", () => state.drawn && setEnd("b", { img: state.drawn }));
}

// MNIST's own preprocessing: fit the ink's bounding box into 20x20, then put its centre of mass at (14, 14).
function padTo28() {
  const pad = $("pad");
  const src = pad.getContext("2d").getImageData(0, 0, pad.width, pad.height).data;
  let x0 = pad.width, y0 = pad.height, x1 = -1, y1 = -1;
  for (let y = 0; y < pad.height; y++) {
    for (let x = 0; x < pad.width; x++) {
      if (255 - src[4 * (y * pad.width + x)] > 20) { x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y); }
    }
  }
  if (x1 < 0) return null;
  const w = x1 - x0 + 1, h = y1 - y0 + 1, scale = 20 / Math.max(w, h);
  const box = document.createElement("canvas");
  box.width = box.height = 28;
  const bctx = box.getContext("2d");
  bctx.fillStyle = "#fff"; // paper; ink is dark, and read as 1 - grey
  bctx.fillRect(0, 0, 28, 28);
  bctx.imageSmoothingEnabled = true;
  bctx.imageSmoothingQuality = "high";
  bctx.drawImage(pad, x0, y0, w, h, 0, 0, w * scale, h * scale);
  const small = bctx.getImageData(0, 0, 28, 28).data;
  let m = 0, cx = 0, cy = 0;
  for (let i = 0; i < 784; i++) { const v = 1 - small[4 * i] / 255; m += v; cx += v * (i % 28); cy += v * Math.floor(i / 28); }
  const dx = Math.round(14 - cx / m), dy = Math.round(14 - cy / m);
  const out = new Float32Array(784);
  for (let y = 0; y < 28; y++) {
    for (let x = 0; x < 28; x++) {
      const sx = x - dx, sy = y - dy;
      if (sx >= 0 && sx < 28 && sy >= 0 && sy < 28) out[y * 28 + x] = 1 - small[4 * (sy * 28 + sx)] / 255;
    }
  }
  return out;
}

async function analyseDrawing() {
  const img = padTo28();
  if (!img) return;
  state.drawn = img;
  const seq = (state.drawSeq = (state.drawSeq || 0) + 1); // answers to an older stroke must not paint over newer
  const current = () => seq === state.drawSeq;
  const pixels = to2d(img);
  paint($("drawn-28").getContext("2d"), img, 0, 0, 112);
  const name = model("vae-model");
  if (name) {
    const [rec, enc] = await Promise.all([
      api("/reconstruct", { model: name, images: [{ pixels }] }),
      api("/encode", { model: name, images: [{ pixels }] }),
    ]);
    if (!current()) return;
    paint($("recon").getContext("2d"), rec.images[0], 0, 0, 112);
    $("recon-mse").textContent = `MSE per pixel ${rec.mse[0].toFixed(4)}`;
    drawBars(enc.mu[0], enc.logvar ? enc.logvar[0] : null);
  }
  await styleRow(pixels, current);
}

function drawBars(mu, logvar) {
  const c = $("latent-bars");
  const ctx = c.getContext("2d");
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, c.width, c.height);
  const mid = c.height / 2, scale = c.height / 8, bw = c.width / mu.length; // +-4 fills the height
  ctx.fillStyle = "#ccc";
  ctx.fillRect(0, mid, c.width, 1);
  mu.forEach((m, i) => {
    ctx.fillStyle = "#2b6cb0";
    const y = mid - Math.max(-4, Math.min(4, m)) * scale;
    ctx.fillRect(i * bw + 1, Math.min(y, mid), bw - 2, Math.abs(mid - y));
    if (logvar) {
      const s = Math.exp(0.5 * logvar[i]) * scale;
      ctx.fillStyle = "#e53e3e";
      ctx.fillRect(i * bw + bw / 2 - 0.5, y - s, 1, 2 * s);
    }
  });
  c.dataset.mu = JSON.stringify(mu);
}

// The drawing as every class in its own style: the server reads which class it is (the best reconstruction), takes
// its code back to the prior's noise through that class's flow and pushes the noise through every class's p(z | y)
// (POST /restyle): the same code decoded under other labels kept the drawn class in most tiles.
async function styleRow(pixels, current) {
  const name = model("cvae-model");
  if (!name) return;
  const out = await api("/restyle", { model: name, image: { pixels } });
  if (!current()) return;
  $("style-label").textContent = `${out.label}`;
  paintGrid($("style-row"), out.images, 10);
}

// ---------------------------------------------------------------- start

function guard(fn) {
  return (...args) => fn(...args).catch((e) => status(String(e.message || e), true));
}

async function start() {
  $("keybox").addEventListener("submit", (ev) => {
    ev.preventDefault();
    localStorage.setItem("vaeserve-api-key", $("apikey").value);
    location.reload();
  });
  await loadModels();
  $("sample-btn").addEventListener("click", guard(sample));
  $("reseed-btn").addEventListener("click", () => { $("seed").value = Math.floor(Math.random() * 1e6); guard(sample)(); });
  $("vae-model").addEventListener("change", guard(sample));
  $("vae-model").addEventListener("change", describePriors);
  $("sample-grid").addEventListener("click", pickSample);
  $("cvae-btn").addEventListener("click", guard(generateConditional));
  $("cvae-model").addEventListener("change", guard(generateConditional));
  $("z2-model").addEventListener("change", guard(drawManifold));
  $("manifold-n").addEventListener("change", guard(drawManifold));
  $("interp-btn").addEventListener("click", guard(interpolate));
  wireCursor();
  wirePad();
  await Promise.all([sample(), generateConditional(), drawManifold()]);
  document.body.dataset.ready = "1"; // for the browser tests
}

guard(start)();
