// Sluice console: the API manager's view of one domain — every API's
// production and sandbox caps, where each comes from, live usage and the
// last minute of traffic, refreshed every second — the publisher's
// "Specify" form per API, saved through the backend-throughput PUT with
// If-Match, and the audit trail. Plain JavaScript over the admin API on the
// same port; nothing is loaded from anywhere else.
"use strict";

(() => {
  const TOKEN_KEY = "sluice.admin.token";
  const REFRESH_MS = 1000;
  const AUDIT_EVERY = 5; // refreshes
  const ENVS = ["production", "sandbox"];
  const ENV_TITLES = { production: "Production", sandbox: "Sandbox" };
  // The two parts of an environment's form, named as the backend-throughput
  // body names them: "sandbox" (requests) and "sandbox_tokens"; the counts
  // each has, with their labels, and a window.
  const PARTS = [
    { suffix: "", kind: "requests", title: "Requests", window: "1s", counts: { requests: "Limit" } },
    { suffix: "_tokens", kind: "tokens", title: "Tokens", window: "1m",
      counts: { total_tokens: "Total", prompt_tokens: "Prompt", completion_tokens: "Completion" } },
  ];

  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
  const clone = (template) => $(template).content.firstElementChild.cloneNode(true);

  const state = {
    domain: "",
    cards: new Map(), // API name → card
    timer: 0,
    ticks: 0,
    busy: false, // a refresh is under way
    again: false, // and another was asked for meanwhile
    waitingForToken: false,
  };

  // ---- the admin API -------------------------------------------------------

  // APIError is an admin API refusal: its HTTP status, message and, for a
  // 400, the field it names.
  class APIError extends Error {
    constructor(status, body, text) {
      super((body && body.message) || text || "HTTP " + status);
      this.status = status;
      this.field = "";
      for (const d of (body && body.details) || []) {
        const v = (d.field_violations || [])[0];
        if (v && v.field) {
          this.field = v.field;
          break;
        }
      }
    }
  }

  async function call(method, path, body, headers) {
    const h = Object.assign({}, headers);
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) h.Authorization = "Bearer " + token;
    const init = { method, headers: h, cache: "no-store" };
    if (body !== undefined) {
      h["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const resp = await fetch(path, init);
    const text = await resp.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch (e) {
      data = null;
    }
    if (resp.status === 401) needToken(data && data.message);
    if (!resp.ok) throw new APIError(resp.status, data, text);
    return data;
  }

  const enc = encodeURIComponent;
  const apisPath = (domain) => "/v1/domains/" + enc(domain) + "/apis";
  const throughputPath = (domain, api) => apisPath(domain) + "/" + enc(api) + "/backend-throughput";

  // ---- formatting ----------------------------------------------------------

  const num = (v) => Number(v || 0);
  const fmt = (v) => num(v).toLocaleString("en-US");

  // seconds reads a proto Duration in JSON ("60s", "0.5s").
  const seconds = (d) => (typeof d === "string" ? parseFloat(d) : 0) || 0;

  function fmtWindow(sec) {
    if (sec <= 0) return "?";
    if (sec < 1) return Math.round(sec * 1000) + "ms";
    for (const [n, u] of [[86400, "d"], [3600, "h"], [60, "m"]]) {
      if (sec % n === 0) return sec / n + u;
    }
    return +sec.toFixed(3) + "s";
  }

  const KINDS = {
    REQUESTS: "requests",
    TOTAL_TOKENS: "total tokens",
    PROMPT_TOKENS: "prompt tokens",
    COMPLETION_TOKENS: "completion tokens",
  };

  // fmtTime is a timestamp in local time, as 2026-12-02 01:41:51.
  function fmtTime(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    if (isNaN(d)) return iso;
    const p = (n) => String(n).padStart(2, "0");
    return d.getFullYear() + "-" + p(d.getMonth() + 1) + "-" + p(d.getDate()) + " " + p(d.getHours()) + ":" + p(d.getMinutes()) + ":" + p(d.getSeconds());
  }

  // summary words a RuntimeLimit (audit values) in one line.
  function summary(lim) {
    if (!lim) return "—";
    const parts = [];
    const reqs = [].concat(lim.rate_limit ? [lim.rate_limit] : [], lim.rate_limits || []);
    for (const r of reqs) {
      if (r.unlimited) parts.push("requests unlimited");
      else parts.push(fmt(r.requests || r.requests_per_unit) + " requests / " + (r.window || r.unit || "?"));
    }
    const toks = [].concat(lim.token_limit ? [lim.token_limit] : [], lim.token_limits || []);
    for (const t of toks) {
      const n = [];
      if (t.total_tokens) n.push(fmt(t.total_tokens) + " total");
      if (t.prompt_tokens) n.push(fmt(t.prompt_tokens) + " prompt");
      if (t.completion_tokens) n.push(fmt(t.completion_tokens) + " completion");
      parts.push(n.join(", ") + " tokens / " + (t.window || t.unit || "?"));
    }
    if (lim.shadow_mode) parts.push("shadow mode");
    return parts.join("; ") || "—";
  }

  const pathText = (path) => (path || []).map((e) => e.key + "=" + e.value).join(" / ");

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // ---- status line, token --------------------------------------------------

  function live(text, bad) {
    const p = $("#live");
    p.textContent = text;
    p.classList.toggle("bad", !!bad);
  }

  function banner(text) {
    const b = $("#banner");
    b.textContent = text || "";
    b.hidden = !text;
  }

  function needToken(message) {
    const had = !!sessionStorage.getItem(TOKEN_KEY);
    state.waitingForToken = true;
    $("#token-form").hidden = false;
    $("#token-error").textContent = had ? message || "That token was refused." : "";
    live("waiting for an admin token", true);
    if (document.activeElement === document.body) $("#token").focus();
  }

  function showTokenButton() {
    $("#forget-token").hidden = !sessionStorage.getItem(TOKEN_KEY);
  }

  // ---- the API list --------------------------------------------------------

  async function loadDomains() {
    const data = await call("GET", "/v1/domains");
    const sel = $("#domain");
    const names = (data.domains || []).map((d) => d.name);
    const wanted = decodeURIComponent(location.hash.slice(1)) || state.domain;
    sel.replaceChildren(...names.map((n) => new Option(n, n)));
    state.domain = names.includes(wanted) ? wanted : names.includes("apim") ? "apim" : names[0] || "";
    sel.value = state.domain;
    if (!names.length) live("no domains in the config", true);
  }

  async function refresh() {
    if (state.busy) { // one call at a time: run again right after this one
      state.again = true;
      return;
    }
    state.busy = true;
    clearTimeout(state.timer);
    const started = performance.now();
    try {
      if (state.waitingForToken) return;
      if (!state.domain) await loadDomains();
      if (!state.domain) return;
      const domain = state.domain;
      const data = await call("GET", apisPath(domain));
      if (domain !== state.domain) return; // another was picked meanwhile
      render(data);
      banner(data.usage_error ? "Live usage is missing: " + data.usage_error : "");
      live("live · updated " + new Date().toLocaleTimeString("en-GB"));
      if (state.ticks++ % AUDIT_EVERY === 0) loadAudit();
    } catch (err) {
      if (err.status === 404) state.domain = ""; // the domain went away: pick again
      if (err.status !== 401) live("not updated: " + err.message, true);
    } finally {
      state.busy = false;
      const wait = state.again ? 0 : Math.max(0, REFRESH_MS - (performance.now() - started));
      state.again = false;
      if (!state.waitingForToken) state.timer = setTimeout(refresh, wait);
    }
  }

  function render(data) {
    const list = $("#api-list");
    const seen = new Set();
    for (const api of data.apis || []) {
      seen.add(api.name);
      let card = state.cards.get(api.name);
      if (!card) {
        card = newCard(api.name);
        state.cards.set(api.name, card);
      }
      // In the order of the answer, moving a card only when it is out of
      // place: a moved node loses focus, and the publisher may be typing.
      const at = list.children[seen.size - 1];
      if (at !== card.root) list.insertBefore(card.root, at || null);
      updateCard(card, api, data.traffic_start);
    }
    for (const [name, card] of state.cards) {
      if (!seen.has(name)) {
        card.root.remove();
        state.cards.delete(name);
      }
    }
    $("#no-apis").hidden = seen.size > 0;
  }

  function newCard(name) {
    const root = clone("#api-card");
    root.dataset.api = name;
    $(".name", root).textContent = name;
    const card = { name, root, api: null, envs: {}, form: $("form", root), loaded: null };
    for (const env of ENVS) {
      const v = clone("#env-view");
      v.dataset.env = env;
      $(".env-name", v).textContent = ENV_TITLES[env];
      $(".envs", root).appendChild(v);
      card.envs[env] = v;
    }
    buildForm(card);
    $(".edit", root).addEventListener("click", () => (card.form.hidden ? openForm(card) : closeForm(card)));
    return card;
  }

  function updateCard(card, api, trafficStart) {
    card.api = api;
    $(".version", card.root).textContent = "version " + api.version;
    $(".badge.ai", card.root).hidden = !api.tokens;
    for (const env of ENVS) updateEnv(card.envs[env], api[env] || {}, trafficStart);
  }

  function updateEnv(view, env, trafficStart) {
    const src = $(".source", view);
    src.className = "source " + (env.source || "none");
    src.textContent = sourceText(env);
    src.title = env.source === "file" ? env.file || "" : "";
    const limits = env.limits || [];
    const note = $(".unlimited-note", view);
    note.hidden = !(env.unlimited || limits.length === 0);
    note.textContent = env.unlimited ? "Unlimited" : "No cap";
    $("table.limits", view).hidden = limits.length === 0;
    $("table.limits tbody", view).replaceChildren(...limits.map((l) => limitRow(l, env.shadow_mode)));
    drawTraffic(view, env.admitted || [], env.refused || [], trafficStart);
  }

  // sourceText says where an environment's caps come from.
  function sourceText(env) {
    if (env.source === "runtime") {
      return "runtime" + (env.updated_by ? " · by " + env.updated_by : "") + (env.update_time ? " · " + fmtTime(env.update_time) : "");
    }
    if (env.source === "file") return "file · " + (env.file || "").split("/").pop();
    return "no limit";
  }

  // limitRow is one limit in effect: the cap, used, reserved, and what
  // remains with a bar of used and reserved.
  function limitRow(l, shadow) {
    const lim = l.limit || {};
    const cap = num(lim.requests_per_unit);
    const tr = el("tr");
    tr.dataset.kind = lim.kind || "";
    const capCell = el("td", "cap", fmt(cap) + " " + (KINDS[lim.kind] || "units") + " / " + fmtWindow(seconds(lim.window)));
    if (shadow) capCell.appendChild(el("span", "badge", "shadow"));
    const pct = (x) => (cap > 0 ? Math.min(100, (100 * x) / cap) : 0) + "%";
    const used = el("span", "bar-used"), reserved = el("span", "bar-reserved");
    used.style.width = pct(num(l.used) - num(l.reserved));
    reserved.style.width = pct(num(l.reserved));
    const bar = el("span", "bar");
    bar.append(used, reserved);
    bar.title = fmt(l.used) + " of " + fmt(cap) + " used";
    const rem = el("td", "remaining");
    rem.append(el("span", "n", fmt(l.remaining)), bar);
    tr.append(capCell, el("td", "used", fmt(l.used)), el("td", "reserved", fmt(l.reserved)), rem);
    return tr;
  }

  // svg makes an SVG element with its attributes.
  function svg(tag, attrs) {
    const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    return e;
  }

  // drawTraffic draws a second per bar: admitted below, refused stacked on
  // top, the newest second on the right.
  function drawTraffic(view, admitted, refused, trafficStart) {
    const W = 240, H = 60, bw = W / Math.max(admitted.length, 1);
    const calls = admitted.map((a, i) => ({ a: num(a), r: num(refused[i]) }));
    const sumA = calls.reduce((s, c) => s + c.a, 0), sumR = calls.reduce((s, c) => s + c.r, 0);
    const max = Math.max(1, ...calls.map((c) => c.a + c.r));
    const start = trafficStart ? new Date(trafficStart).getTime() : 0;
    const shapes = [svg("line", { x1: 0, x2: W, y1: H - 0.5, y2: H - 0.5, class: "axis" })];
    calls.forEach(({ a, r }, i) => {
      if (a + r === 0) return;
      const ha = (a / max) * (H - 2), hr = (r / max) * (H - 2);
      const g = svg("g");
      for (const [cls, y, h] of [["admitted", H - ha, ha], ["refused", H - ha - hr, hr]]) {
        if (h > 0) g.appendChild(svg("rect", { class: cls, x: (i * bw + 0.3).toFixed(2), width: Math.max(bw - 0.6, 0.5).toFixed(2), y: y.toFixed(2), height: h.toFixed(2) }));
      }
      const title = svg("title");
      const when = start ? new Date(start + i * 1000).toLocaleTimeString("en-GB") + ": " : "";
      title.textContent = when + a + " admitted, " + r + " refused";
      g.appendChild(title);
      shapes.push(g);
    });
    const chart = $("svg.chart", view);
    chart.replaceChildren(...shapes);
    chart.setAttribute("aria-label", "last minute: " + sumA + " admitted, " + sumR + " refused");
    $(".traffic-caption", view).replaceChildren(
      el("span", "legend admitted", fmt(sumA) + " admitted"),
      el("span", "legend refused", fmt(sumR) + " refused"),
      el("span", "scale", "per second, last 60 s · peak " + fmt(sumA + sumR === 0 ? 0 : max) + "/s"),
    );
    view.dataset.admitted = String(sumA);
    view.dataset.refused = String(sumR);
  }

  // ---- the publisher's form ------------------------------------------------

  function buildForm(card) {
    const box = $(".env-forms", card.root);
    for (const env of ENVS) {
      const fs = el("fieldset", "env-form");
      fs.dataset.env = env;
      fs.appendChild(el("legend", "env-name", ENV_TITLES[env]));
      for (const kind of PARTS) fs.appendChild(newPart(env, kind));
      box.appendChild(fs);
    }
    $(".cap-tokens", card.form).addEventListener("change", () => syncTokens(card));
    card.form.addEventListener("submit", (e) => {
      e.preventDefault();
      save(card);
    });
    $(".cancel", card.form).addEventListener("click", () => closeForm(card));
    $(".reload", card.form).addEventListener("click", () => openForm(card));
    card.form.addEventListener("input", (e) => e.target.removeAttribute("aria-invalid"));
  }

  // newPart is one part of an environment's form. Its inputs are named after
  // the fields of the body ("sandbox.requests", "production_tokens.window"),
  // so a 400 naming a field marks its input. (Radios of the same name in two
  // cards are two groups: each card is its own form.)
  function newPart(env, kind) {
    const p = clone("#form-part");
    p.classList.add(kind.kind);
    p.dataset.part = env + kind.suffix;
    $(".part-name", p).textContent = kind.title;
    for (const r of $$(".mode", p)) {
      r.name = p.dataset.part + ".mode";
      r.addEventListener("change", () => syncMode(p));
    }
    const counts = Object.entries(kind.counts).map(([count, text]) => {
      const label = clone("#count-field");
      label.prepend(text + " ");
      nameInput($("input", label), env, kind, count);
      return label;
    });
    $(".specify", p).prepend(...counts);
    nameInput($(".window", p), env, kind, "window");
    $(".window", p).placeholder = kind.window;
    return p;
  }

  function nameInput(input, env, kind, field) {
    input.name = env + kind.suffix + "." + field;
    input.setAttribute("aria-label", ENV_TITLES[env] + " " + (kind.suffix ? "tokens " : "") + field.replace("_", " "));
  }

  // inputOf is a part's input of a field ("requests", "window").
  const inputOf = (part, field) => $('input[name="' + part.dataset.part + "." + field + '"]', part);

  // partsOf lists the parts of a card's form: name, counts and node.
  const partsOf = (form) => ENVS.flatMap((env) => PARTS.map((kind) => {
    const name = env + kind.suffix;
    return { name, counts: Object.keys(kind.counts), tokens: kind.suffix !== "", node: $('.part[data-part="' + name + '"]', form) };
  }));

  function syncMode(part) {
    const specify = $(".mode[value=specify]", part).checked;
    $(".specify", part).classList.toggle("off", !specify);
    for (const i of $$(".specify input", part)) i.disabled = !specify;
  }

  function syncTokens(card) {
    const on = $(".cap-tokens", card.form).checked;
    for (const p of $$(".part.tokens", card.form)) p.hidden = !on;
  }

  function message(card, text, kind) {
    const m = $(".form-message", card.form);
    m.textContent = text || "";
    m.className = "form-message " + (kind || "");
  }

  function clearMarks(form) {
    for (const i of $$("[aria-invalid]", form)) i.removeAttribute("aria-invalid");
  }

  // setLoaded keeps what the form was filled from: its version is the
  // If-Match of a save.
  function setLoaded(card, bt) {
    card.loaded = bt;
    $(".editing", card.form).textContent = "editing version " + bt.version;
  }

  async function openForm(card) {
    const form = card.form;
    form.hidden = false;
    $(".edit", card.root).textContent = "Close form";
    $(".reload", form).hidden = true;
    message(card, "Loading…");
    clearMarks(form);
    // Until the caps arrive the form shows no version and takes no typing:
    // the fill would overwrite whatever was typed into it.
    $(".editing", form).textContent = "";
    form.inert = true;
    let bt;
    try {
      bt = await call("GET", throughputPath(state.domain, card.name));
    } catch (err) {
      form.inert = false;
      message(card, "Could not load the caps: " + err.message, "error");
      return;
    }
    setLoaded(card, bt);
    for (const part of partsOf(form)) fillPart(part.node, bt[part.name], part.counts);
    const tokens = (card.api && card.api.tokens) || ENVS.some((e) => bt[e + "_tokens"] && !bt[e + "_tokens"].unlimited);
    $(".cap-tokens", form).checked = tokens;
    syncTokens(card);
    form.inert = false;
    message(card, "");
    const first = $("input.mode:checked", form);
    if (first) first.focus();
  }

  function closeForm(card) {
    card.form.hidden = true;
    $(".edit", card.root).textContent = "Edit caps";
  }

  function fillPart(p, t, counts) {
    t = t || { unlimited: true };
    $(".mode[value=unlimited]", p).checked = !!t.unlimited;
    $(".mode[value=specify]", p).checked = !t.unlimited;
    inputOf(p, "window").value = t.unlimited ? "" : t.window || "";
    for (const c of counts) inputOf(p, c).value = t.unlimited || t[c] == null ? "" : String(t[c]);
    const more = $(".more", p);
    more.hidden = !(t.more_limits > 0);
    more.textContent = t.more_limits > 0 ? "This environment has " + t.more_limits + " more limit(s) of this kind; saving replaces them all with this one." : "";
    syncMode(p);
  }

  // partOf reads one part of the form as the API's body wants it; numbers
  // that are not numbers go as they are, for the server to name.
  function partOf(p, counts, loaded) {
    if ($(".mode[value=unlimited]", p).checked) return { unlimited: true };
    const out = {};
    for (const c of counts) {
      const v = inputOf(p, c).value.trim();
      if (v !== "") out[c] = /^-?\d+$/.test(v) ? Number(v) : v;
    }
    const w = inputOf(p, "window").value.trim();
    if (w !== "") out.window = w;
    // Keep a bucket count the publisher cannot see in the form.
    if (loaded && !loaded.unlimited && loaded.buckets != null) out.buckets = Number(loaded.buckets);
    return out;
  }

  // same compares a part of the form with what was loaded.
  function same(part, loaded, counts) {
    loaded = loaded || { unlimited: true };
    if (!!part.unlimited !== !!loaded.unlimited) return false;
    if (part.unlimited) return true;
    if ((part.window || "") !== (loaded.window || "") || loaded.more_limits > 0) return false;
    return counts.every((c) => String(part[c] == null ? "" : part[c]) === String(loaded[c] == null ? "" : loaded[c]));
  }

  async function save(card) {
    const form = card.form;
    clearMarks(form);
    $(".reload", form).hidden = true;
    const bt = card.loaded || {};
    const body = {};
    const withTokens = $(".cap-tokens", form).checked;
    for (const part of partsOf(form)) { // token caps unticked: unlimited
      const value = part.tokens && !withTokens ? { unlimited: true } : partOf(part.node, part.counts, bt[part.name]);
      if (!same(value, bt[part.name], part.counts)) body[part.name] = value;
    }
    if (Object.keys(body).length === 0) {
      message(card, "Nothing changed: nothing to save.", "info");
      return;
    }
    const button = $(".save", form);
    button.disabled = true;
    message(card, "Saving…");
    try {
      const got = await call("PUT", throughputPath(state.domain, card.name), body, { "If-Match": '"' + bt.version + '"' });
      setLoaded(card, got);
      message(card, "Saved: version " + got.version + ", in effect on every replica within a second.", "ok");
      state.ticks = 0; // the audit trail with the next refresh
      refresh();
    } catch (err) {
      if (err.status === 412) {
        const now = /at version (\S+) now/.exec(err.message);
        message(card, "Conflict: someone changed this API's caps after you opened the form (version " + bt.version +
          (now ? ", now " + now[1] : "") + "), so nothing was saved. Load the current values and apply your change again.", "error conflict");
        $(".reload", form).hidden = false;
      } else if (err.status === 400) {
        const marked = markField(form, err.field);
        message(card, "Not saved, nothing was applied: " + err.message, "error invalid");
        if (marked) marked.focus();
      } else if (err.status === 403) {
        message(card, "Not saved: " + err.message + " (this token may only read).", "error");
      } else {
        message(card, "Not saved: " + err.message, "error");
      }
    } finally {
      button.disabled = false;
    }
  }

  // markField marks the input of a field an error names ("sandbox.requests",
  // "sandbox_tokens.total_tokens"), or else its part's first mode radio
  // ("sandbox.unlimited", "sandbox.buckets").
  function markField(form, field) {
    if (!field) return null;
    const part = field.split(".")[0];
    const marked = $('input[name="' + CSS.escape(field) + '"]', form) || $('.part[data-part="' + CSS.escape(part) + '"] input.mode', form);
    if (marked) marked.setAttribute("aria-invalid", "true");
    return marked;
  }

  // ---- audit trail ---------------------------------------------------------

  async function loadAudit() {
    try {
      const data = await call("GET", "/v1/audit?page_size=50");
      const rows = (data.entries || []).map((e) => {
        const tr = el("tr");
        tr.append(
          el("td", "when", fmtTime(e.time)),
          el("td", "who", e.who),
          el("td", "action " + e.action, e.action),
          el("td", "where", e.domain + " / " + pathText(e.path)),
          el("td", "old", summary(e.old_value)),
          el("td", "new", e.action === "delete" ? "— (file applies)" : summary(e.new_value)),
        );
        if (e.remote) tr.title = "from " + e.remote + ", revision " + e.revision;
        return tr;
      });
      $("#audit-rows").replaceChildren(...rows);
      $("#no-audit").hidden = rows.length > 0;
      $("table.audit").hidden = rows.length === 0;
      $("#audit-error").textContent = "";
    } catch (err) {
      if (err.status !== 401) $("#audit-error").textContent = "Audit trail not loaded: " + err.message;
    }
  }

  // ---- start ---------------------------------------------------------------

  $("#domain").addEventListener("change", (e) => {
    state.domain = e.target.value;
    location.hash = enc(state.domain);
    for (const card of state.cards.values()) card.root.remove();
    state.cards.clear();
    refresh();
  });

  $("#token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("#token").value.trim());
    $("#token").value = "";
    $("#token-form").hidden = true;
    state.waitingForToken = false;
    showTokenButton();
    state.ticks = 0;
    refresh();
  });

  $("#forget-token").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    showTokenButton();
    refresh();
  });

  showTokenButton();
  refresh();
})();
