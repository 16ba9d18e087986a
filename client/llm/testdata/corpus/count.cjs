// count.cjs writes counts.json: the prompt tokens of every request in this
// folder, counted by OpenAI's tiktoken (the npm package "tiktoken", OpenAI's
// Rust implementation compiled to WebAssembly) in the chat format of OpenAI's
// cookbook ("How to count tokens with tiktoken"): 3 tokens per message plus
// its role and content, 1 more for a name, 3 to prime the reply, tools by
// num_tokens_for_tools; images by GPT-4o's tile rule. It is an independent
// implementation of the rules client/llm documents, so the Go estimate is
// checked against another tokenizer and another reading of the same body.
//
//   cd "$(mktemp -d)" && npm install tiktoken@1.0.22 && node /path/to/client/llm/testdata/corpus/count.cjs
"use strict";
const fs = require("fs");
const path = require("path");
const { get_encoding } = require(require.resolve("tiktoken", { paths: [process.cwd()] }));

const dir = __dirname;
const out = {};
for (const name of ["o200k_base", "cl100k_base"]) {
  const enc = get_encoding(name);
  const tok = (s) => (s ? enc.encode(s).length : 0);
  const costs = name === "cl100k_base"
    ? { funcInit: 10, propInit: 3, propKey: 3, enumInit: -3, enumItem: 3, funcEnd: 12 }
    : { funcInit: 7, propInit: 3, propKey: 3, enumInit: -3, enumItem: 3, funcEnd: 12 };
  const trim = (s) => (s || "").replace(/\.$/, "");
  const text = (v) => (typeof v === "string" ? v : JSON.stringify(v));

  const image = (url, detail) => {
    if (detail === "low") return 85;
    const m = /^data:image\/png;base64,(.*)$/.exec(url || "");
    if (!m) return 85 + 170 * 8;
    const png = Buffer.from(m[1], "base64");
    let w = png.readUInt32BE(16), h = png.readUInt32BE(20);
    let s = 2048 / Math.max(w, h);
    if (s < 1) { w *= s; h *= s; }
    s = 768 / Math.min(w, h);
    if (s < 1) { w *= s; h *= s; }
    return 85 + 170 * Math.ceil(Math.floor(w) / 512) * Math.ceil(Math.floor(h) / 512);
  };
  const content = (c) => {
    if (typeof c === "string") return tok(c);
    if (!Array.isArray(c)) return 0;
    let n = 0;
    for (const p of c) {
      if (p.type === "image_url" || p.type === "input_image") {
        const u = typeof p.image_url === "string" ? p.image_url : (p.image_url || {}).url;
        n += image(u, (p.image_url && p.image_url.detail) || p.detail);
      } else if (p.text) n += tok(p.text);
    }
    return n;
  };
  const message = (m) => {
    let n = 3 + tok(m.role) + content(m.content);
    if (m.name) n += tok(m.name) + 1;
    for (const c of m.tool_calls || []) n += 3 + tok(c.function.name) + tok(c.function.arguments);
    return n;
  };
  const props = (ps, depth) => {
    const keys = Object.keys(ps || {});
    if (keys.length === 0 || depth >= 4) return 0;
    let n = costs.propInit;
    for (const k of keys) {
      const p = ps[k];
      n += costs.propKey;
      if (p.enum && p.enum.length) {
        n += costs.enumInit;
        for (const e of p.enum) n += costs.enumItem + tok(text(e));
      }
      n += tok(`${k}:${text(p.type)}:${trim(p.description)}`);
      n += props(p.properties, depth + 1);
    }
    return n;
  };
  const tools = (ts) => {
    let n = 0, fns = 0;
    for (const t of ts || []) {
      const f = t.function || t;
      if (!f.name) continue;
      fns++;
      n += costs.funcInit + tok(`${f.name}:${trim(f.description)}`);
      if (f.parameters) n += props(f.parameters.properties, 0);
    }
    return fns ? n + costs.funcEnd : 0;
  };

  for (const file of fs.readdirSync(dir).filter((f) => f.endsWith(".json") && f !== "counts.json").sort()) {
    const req = JSON.parse(fs.readFileSync(path.join(dir, file), "utf8"));
    let n = 0, chat = false;
    for (const m of req.messages || []) { n += message(m); chat = true; }
    if (req.instructions) { n += 3 + tok("system") + tok(req.instructions); chat = true; }
    if (typeof req.input === "string") { n += 3 + tok("user") + tok(req.input); chat = true; }
    else if (Array.isArray(req.input)) { for (const m of req.input) n += message(m); chat = true; }
    n += tools(req.tools);
    if (chat) n += 3;
    const key = file.replace(/\.json$/, "");
    out[key] = out[key] || {};
    out[key][name] = n;
  }
  enc.free();
}
fs.writeFileSync(path.join(dir, "counts.json"), JSON.stringify(out, null, 1) + "\n");
