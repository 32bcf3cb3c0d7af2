// The roost web page: chat (streamed), search, a timeline with ads, a dashboard.
// Plain JS, no build step, nothing loaded from the internet. Every text that comes
// from the server goes into the page through textContent, never as HTML.
"use strict";

const $ = (sel) => document.querySelector(sel);

function el(tag, attrs = {}, children = []) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined) continue;
    if (k === "text") node.textContent = v;
    else if (k === "class") node.className = v;
    else node.setAttribute(k, v);
  }
  for (const c of [].concat(children)) if (c) node.append(c);
  return node;
}

// ---- API helpers -------------------------------------------------------------------------------

const keyInput = $("#api-key");
keyInput.value = localStorage.getItem("roost.apiKey") || "";
keyInput.addEventListener("change", () => localStorage.setItem("roost.apiKey", keyInput.value.trim()));

function headers(json = false) {
  const h = {};
  const key = keyInput.value.trim();
  if (key) h["Authorization"] = "Bearer " + key;
  if (json) h["Content-Type"] = "application/json";
  return h;
}

async function errorOf(resp) {
  try {
    const body = await resp.json();
    if (body && body.error) return new Error(body.error.message + (body.error.param ? ` (${body.error.param})` : ""));
  } catch (_) { /* not JSON */ }
  return new Error(`HTTP ${resp.status}`);
}

async function getJSON(path) {
  const resp = await fetch(path, { headers: headers() });
  if (!resp.ok) throw await errorOf(resp);
  return resp.json();
}

async function postJSON(path, body) {
  const resp = await fetch(path, { method: "POST", headers: headers(true), body: JSON.stringify(body) });
  if (!resp.ok) throw await errorOf(resp);
  return resp.json();
}

const fmt = {
  num: (x, d = 0) => (x === null || x === undefined ? "–" : Number(x).toLocaleString(undefined, { maximumFractionDigits: d, minimumFractionDigits: d })),
  money: (x) => (x === null || x === undefined ? "–" : "$" + Number(x).toLocaleString(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 })),
  pct: (x) => (x === null || x === undefined ? "–" : (100 * x).toFixed(2) + "%"),
  bytes: (n) => {
    if (!n) return "0 B";
    const u = ["B", "KB", "MB", "GB"]; let i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return n.toFixed(i ? 1 : 0) + " " + u[i];
  },
  date: (iso) => (iso ? iso.replace("T", " ").replace(/:\d\dZ$/, "") : ""),
};

// ---- tabs --------------------------------------------------------------------------------------

const loaders = {};
function showTab(name) {
  for (const b of document.querySelectorAll("#tabs button")) b.classList.toggle("active", b.dataset.tab === name);
  for (const p of document.querySelectorAll(".panel")) p.classList.toggle("active", p.id === name);
  if (loaders[name]) { loaders[name](); }
  history.replaceState(null, "", "#" + name);
}
for (const b of document.querySelectorAll("#tabs button")) b.addEventListener("click", () => showTab(b.dataset.tab));

// ---- chat --------------------------------------------------------------------------------------

const chat = { history: [], model: null, busy: false };
const HISTORY_TURNS = 6;  // messages sent with each request: a small model has a short context

async function modelId() {
  if (!chat.model) chat.model = (await getJSON("/v1/models")).data[0].id;
  return chat.model;
}

function addMessage(role, text) {
  const log = $("#chat-log");
  const hint = log.querySelector(".hint");
  if (hint) hint.remove();
  const node = el("div", { class: "msg " + role, text });
  log.append(node);
  log.scrollTop = log.scrollHeight;
  return node;
}

// Reads an OpenAI server-sent event stream, calling onDelta with each piece of content.
async function streamChat(body, onDelta) {
  const resp = await fetch("/v1/chat/completions", { method: "POST", headers: headers(true), body: JSON.stringify(body) });
  if (!resp.ok) throw await errorOf(resp);
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "", finish = null;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      for (const line of event.split("\n")) {
        if (!line.startsWith("data:")) continue;
        const data = line.slice(5).trim();
        if (data === "[DONE]") return finish;
        const chunk = JSON.parse(data);
        if (chunk.error) throw new Error(chunk.error.message);
        for (const choice of chunk.choices || []) {
          if (choice.delta && choice.delta.content) onDelta(choice.delta.content);
          if (choice.finish_reason) finish = choice.finish_reason;
        }
      }
    }
  }
  return finish;
}

$("#chat-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  if (chat.busy) return;
  const input = $("#chat-input");
  const text = input.value.trim();
  if (!text) return;
  input.value = "";
  chat.busy = true;
  $("#chat-send").disabled = true;
  addMessage("user", text);
  chat.history.push({ role: "user", content: text });
  const bubble = addMessage("assistant streaming", "");
  let reply = "";
  const t0 = performance.now();
  try {
    const finish = await streamChat({
      model: await modelId(), messages: chat.history.slice(-HISTORY_TURNS), stream: true,
      temperature: Number($("#chat-temp").value), max_tokens: Number($("#chat-max").value),
    }, (piece) => {
      reply += piece;
      bubble.dataset.chunks = String(Number(bubble.dataset.chunks || 0) + 1);
      bubble.textContent = reply;
      $("#chat-log").scrollTop = $("#chat-log").scrollHeight;
    });
    chat.history.push({ role: "assistant", content: reply });
    bubble.append(el("span", { class: "meta", text: `${((performance.now() - t0) / 1000).toFixed(1)} s · ${finish || "done"}` }));
  } catch (err) {
    bubble.classList.add("error");
    bubble.textContent = reply + (reply ? "\n" : "") + "Error: " + err.message;
    chat.history.pop();
  } finally {
    bubble.classList.remove("streaming");
    bubble.dataset.done = "1";
    chat.busy = false;
    $("#chat-send").disabled = false;
  }
});
$("#chat-input").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("#chat-form").requestSubmit(); }
});
$("#chat-clear").addEventListener("click", () => {
  chat.history = [];
  $("#chat-log").replaceChildren(el("p", { class: "hint", text: "New conversation." }));
});

// ---- posts (search results and timeline) -------------------------------------------------------

function postCard(p, extra = []) {
  return el("div", { class: "post", "data-id": p.id }, [
    el("div", { class: "head" }, [
      el("span", { class: "author", text: p.username ? "@" + p.username : p.author || "unknown" }),
      el("span", { text: fmt.date(p.created_at) }),
      p.score !== undefined ? el("span", { class: "score", text: "score " + Number(p.score).toFixed(4) }) : null,
    ]),
    el("div", { class: "text", text: p.text }),
    p.hashtags && p.hashtags.length ? el("div", { class: "tags", text: p.hashtags.map((t) => "#" + t).join(" ") }) : null,
    ...extra,
  ]);
}

function explainTable(components) {
  const rows = Object.entries(components).map(([k, v]) =>
    el("tr", {}, [el("td", { text: k }), el("td", { text: typeof v === "number" ? v.toFixed(4) : String(v) })]));
  return el("table", { class: "explain" }, rows);
}

// ---- search ------------------------------------------------------------------------------------

$("#search-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const params = new URLSearchParams({ q: $("#search-q").value, mode: $("#search-mode").value, k: $("#f-k").value });
  for (const [name, id] of [["author", "#f-author"], ["hashtag", "#f-hashtag"], ["lang", "#f-lang"], ["since", "#f-since"], ["until", "#f-until"]]) {
    const v = $(id).value.trim();
    if (v) params.set(name, v);
  }
  const explain = $("#f-explain").checked;
  if (explain) params.set("explain", "true");
  const filtered = [...params.keys()].some((k) => !["q", "mode", "k", "explain"].includes(k));
  const status = $("#search-status"), list = $("#search-results"), empty = $("#search-empty");
  status.className = "status"; status.textContent = "Searching...";
  list.replaceChildren();
  empty.hidden = true;
  try {
    const res = await getJSON("/search?" + params);
    status.textContent = `${res.data.length} result${res.data.length === 1 ? "" : "s"} · ${res.mode} · ${res.took_ms.toFixed(1)} ms`;
    for (const hit of res.data) list.append(el("li", {}, postCard(hit, explain && hit.explain ? [explainTable(hit.explain)] : [])));
    if (!res.data.length) showNoMatch(empty, res, filtered);
  } catch (err) {
    status.className = "status error"; status.textContent = err.message;
  }
});

// The empty state: the server found nothing (for hybrid and semantic search that includes "no word of the
// query is in any post and no post is close enough in meaning": the server's calibrated no-match threshold).
function showNoMatch(box, res, filtered) {
  const why = res.mode === "lexical" ? "No post has these words" : "No post has these words or is close enough in meaning";
  const tips = [filtered ? "loosen the filters" : null, res.mode === "lexical" ? "try hybrid search" : null, "try other words"].filter(Boolean);
  box.replaceChildren(
    el("p", { class: "title", text: `No posts match “${res.query}”` }),
    el("p", { text: `${why}${filtered ? " under these filters" : ""} (${res.mode} search). You could ${tips.join(", or ")}.` }));
  box.hidden = false;
}

// ---- timeline with ads -------------------------------------------------------------------------

const AD_EVERY = 4;  // an ad slot after every 4 posts, matched to those posts

function adCard(ad) {
  const why = ad.why || {};
  const reasons = [];
  if (why.matched_terms && why.matched_terms.length) reasons.push("targets " + why.matched_terms.map((t) => `“${t}”`).join(", ") + ", found in the posts around it");
  if (why.similarity != null) reasons.push(`similarity of the ad to these posts: ${Number(why.similarity).toFixed(3)}`);
  if (why.pctr != null) reasons.push(`predicted click rate: ${fmt.pct(why.pctr)}`);
  reasons.push(`won the auction at ${fmt.money(ad.price)} ${ad.price_unit || "per click"}, second price ` +
    "(what it takes to beat the next ad, never more than the bid)");
  return el("div", { class: "post ad", "data-campaign": ad.campaign_id }, [
    el("div", { class: "sponsored", text: "Sponsored" }),
    el("div", { class: "text", text: ad.text }),
    el("a", { class: "cta", href: ad.click_url, target: "_blank", rel: "noopener", text: new URL(ad.landing_url).host }),
    el("details", {}, [el("summary", { text: "Why this ad?" }), el("ul", {}, reasons.map((r) => el("li", { text: r })))]),
  ]);
}

async function loadUsers() {
  const select = $("#tl-user");
  if (select.options.length > 1) return;
  try {
    for (const u of (await getJSON("/ui/users?n=30")).data)
      select.append(el("option", { value: u.id, text: `${u.username ? "@" + u.username : u.id} (${u.posts} posts)` }));
  } catch (_) { /* the timeline call below reports the problem */ }
}

// The timeline is read a page at a time: each page's posts, an ad after every AD_EVERY of them, and the
// cursor the server handed out for the next page ("Load more"); the campaigns already on the page are kept so
// that no campaign shows twice, however many pages are loaded.
const TIMELINE_PAGE = 16;
const timeline = { cursor: null, campaigns: [], posts: 0, seq: 0 };

// One slot per group of posts, one at a time, each told the campaigns already shown (added to `shown`).
async function adsFor(groups, user, shown) {
  const ads = [];
  for (const g of groups) {
    const ad = await postJSON("/ads/serve", {
      ...(user ? { user_id: user } : {}), context_post_ids: g.map((p) => p.id), slots: 1, exclude_campaign_ids: shown,
    }).then((r) => r.ads[0] || null).catch(() => null);
    if (ad) shown.push(ad.campaign_id);
    ads.push(ad);
  }
  return ads;
}

async function loadTimeline(more = false) {
  const feed = $("#tl-feed"), status = $("#tl-status"), button = $("#tl-more");
  const user = $("#tl-user").value;
  const seq = ++timeline.seq;  // a newer load (another user picked) wins over one still in flight
  status.className = "status"; status.textContent = "Loading...";
  button.disabled = true;
  try {
    const params = { n: String(TIMELINE_PAGE), ...(user ? { user_id: user } : {}), ...(more ? { cursor: timeline.cursor } : {}) };
    const page = await getJSON("/timeline?" + new URLSearchParams(params));
    const groups = [];
    for (let i = 0; i < page.data.length; i += AD_EVERY) groups.push(page.data.slice(i, i + AD_EVERY));
    const shown = more ? [...timeline.campaigns] : [];
    const ads = await adsFor(groups, user, shown);
    if (seq !== timeline.seq) return;
    const nodes = [];
    groups.forEach((g, i) => { for (const p of g) nodes.push(postCard(p)); if (ads[i]) nodes.push(adCard(ads[i])); });
    if (more) feed.append(...nodes); else feed.replaceChildren(...nodes);
    Object.assign(timeline, { cursor: page.next_cursor, campaigns: shown, posts: (more ? timeline.posts : 0) + page.data.length });
    status.textContent = `${timeline.posts} posts, ${shown.length} ad${shown.length === 1 ? "" : "s"}` +
      (page.next_cursor ? "" : " · the end");
    button.hidden = !page.next_cursor;
  } catch (err) {
    if (seq !== timeline.seq) return;
    status.className = "status error"; status.textContent = err.message;
  } finally {
    if (seq === timeline.seq) button.disabled = false;
  }
}
$("#tl-reload").addEventListener("click", () => loadTimeline());
$("#tl-user").addEventListener("change", () => loadTimeline());
$("#tl-more").addEventListener("click", () => loadTimeline(true));
loaders.timeline = async () => { await loadUsers(); if (!$("#tl-feed").children.length) loadTimeline(); };

// ---- dashboard ---------------------------------------------------------------------------------

function card(label, value, sub) {
  return el("div", { class: "card" }, [el("div", { class: "label", text: label }), el("div", { class: "value", text: value }), sub ? el("div", { class: "sub", text: sub }) : null]);
}

// A loss curve as inline SVG, for runs without a loss.png.
function lossChart(curve, valCurve) {
  const W = 420, H = 200, P = 30;
  const pts = curve.concat(valCurve);
  if (!pts.length) return el("p", { class: "status", text: "no steps logged yet" });
  const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
  const x0 = Math.min(...xs), x1 = Math.max(...xs) || 1, y0 = Math.min(...ys), y1 = Math.max(...ys);
  const sx = (x) => P + (W - 2 * P) * (x - x0) / Math.max(x1 - x0, 1e-9);
  const sy = (y) => H - P - (H - 2 * P) * (y - y0) / Math.max(y1 - y0, 1e-9);
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  const line = (data, color, width) => {
    const pl = document.createElementNS(ns, "polyline");
    pl.setAttribute("points", data.map((p) => `${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join(" "));
    pl.setAttribute("fill", "none"); pl.setAttribute("stroke", color); pl.setAttribute("stroke-width", width);
    svg.append(pl);
  };
  const label = (x, y, text) => { const t = document.createElementNS(ns, "text"); t.setAttribute("x", x); t.setAttribute("y", y); t.setAttribute("font-size", "10"); t.setAttribute("fill", "#66788a"); t.textContent = text; svg.append(t); };
  line(curve, "#2f6fde", 1.2);
  if (valCurve.length) line(valCurve, "#e8590c", 2);
  label(2, P - 4, y1.toFixed(2)); label(2, H - P + 2, y0.toFixed(2)); label(W - P - 30, H - 8, "step " + x1);
  return svg;
}

function runBox(run) {
  const figures = `${fmt.num(run.steps)} steps · train loss ${fmt.num(run.loss, 3)} · val loss ${fmt.num(run.val_loss, 3)}` +
    (run.val_bpb !== null ? ` · ${fmt.num(run.val_bpb, 3)} bits/byte` : "");
  const chart = run.has_plot
    ? el("img", { src: `/ui/runs/${encodeURIComponent(run.name)}/loss.png`, alt: `loss curve of ${run.name}` })
    : lossChart(run.curve, run.val_curve);
  return el("div", { class: "run" }, [el("h4", { text: run.name }), el("p", { class: "status", text: figures }), chart]);
}

// The campaign table: every campaign, a page at a time, sorted by the column whose header was clicked.
const PACING = {
  paused: "paused", budget_spent: "budget spent", daily_budget_spent: "today's budget spent",
  unpaced: "no daily budget", on_pace: "on pace",
};
const pacingText = (p) => (p.state === "ahead" ? `ahead, in ${fmt.pct(p.participation)} of auctions` : PACING[p.state] || p.state);
const CAMPAIGN_COLUMNS = [  // [header, sort key or null, cell]
  ["campaign", "name", (c) => c.name],
  ["advertiser", "advertiser", (c) => c.advertiser],
  ["bid", "bid", (c) => `${fmt.money(c.bid)} ${c.price_unit}`],
  ["budget", "budget", (c) => fmt.money(c.budget)],
  ["spend", "spend", (c) => fmt.money(c.spend)],
  ["remaining", "remaining", (c) => fmt.money(c.remaining)],
  ["pacing", null, (c) => pacingText(c.pacing)],
  ["impressions", "impressions", (c) => fmt.num(c.impressions)],
  ["clicks", "clicks", (c) => fmt.num(c.clicks)],
  ["CTR", "ctr", (c) => fmt.pct(c.ctr)],
  ["predicted CTR", "predicted_ctr", (c) => fmt.pct(c.predicted_ctr)],
];
const PAGE_SIZES = [10, 20, 50, 100];
const campaignView = { sort: "spend", order: "desc", offset: 0, limit: 20 };

async function loadCampaigns() {
  const box = $("#dash-ads");
  const v = campaignView;
  let page;
  try {
    page = await getJSON("/ui/campaigns?" + new URLSearchParams({ sort: v.sort, order: v.order, offset: v.offset, limit: v.limit }));
  } catch (err) {
    box.replaceChildren(el("p", { class: "status error", text: err.message }));
    return;
  }
  if (!page.total) { box.replaceChildren(el("p", { class: "status", text: "no campaigns loaded" })); return; }
  const head = el("tr", {}, CAMPAIGN_COLUMNS.map(([title, key], i) => {
    const th = el("th", { class: i >= 2 ? "num" : null, text: title + (key === v.sort ? (v.order === "asc" ? " ▲" : " ▼") : "") });
    if (key) {
      th.classList.add("sortable");
      th.dataset.sort = key;
      th.addEventListener("click", () => {
        v.order = v.sort === key && v.order === "desc" ? "asc" : "desc";
        v.sort = key; v.offset = 0; loadCampaigns();
      });
    }
    return th;
  }));
  const rows = page.data.map((c) => el("tr", { "data-id": c.id }, CAMPAIGN_COLUMNS.map(([, , cell], i) =>
    el("td", { class: i >= 2 ? "num" : null, text: cell(c) + (i === 0 && c.status === "paused" ? " (paused)" : "") }))));
  const pager = el("div", { class: "pager" }, [
    el("button", { type: "button", class: "secondary prev", ...(v.offset ? {} : { disabled: "" }), text: "‹ previous" }),
    el("span", { class: "range", text: `${fmt.num(v.offset + 1)}–${fmt.num(v.offset + page.data.length)} of ${fmt.num(page.total)}` }),
    el("button", { type: "button", class: "secondary next", ...(page.has_more ? {} : { disabled: "" }), text: "next ›" }),
    el("label", {}, ["per page ", el("select", {}, PAGE_SIZES.map((n) =>
      el("option", { value: n, text: String(n), ...(n === v.limit ? { selected: "" } : {}) })))]),
  ]);
  pager.querySelector("select").addEventListener("change", (e) => { v.limit = Number(e.target.value); v.offset = 0; loadCampaigns(); });
  pager.querySelector(".prev").addEventListener("click", () => { v.offset = Math.max(0, v.offset - v.limit); loadCampaigns(); });
  pager.querySelector(".next").addEventListener("click", () => { v.offset += v.limit; loadCampaigns(); });
  box.replaceChildren(el("table", { class: "data campaigns" }, [head, ...rows]), pager,
    el("p", { class: "status", text: "Prices are second prices: a click (or 1,000 impressions) costs what it takes to beat the next ad, never more than the bid." }));
}

// The served model's own val loss: the fine-tuning run's for an SFT model (on held-out conversations), the
// pretraining run's otherwise, labelled with the stage and the run it comes from.
const STAGES = { sft: "SFT", pretraining: "pretraining" };
function valLossCard(model, runs) {
  const run = model && model.run ? runs.find((r) => r.name === model.run) : null;
  const label = model && STAGES[model.stage] ? `${STAGES[model.stage]} val loss` : "val loss";
  if (!run || run.val_loss === null) {
    const why = !model ? "no model" : model.run ? `no run ${model.run} logged` : `${model.source || "this model"}: no run of its own here`;
    return card(label, "–", why);
  }
  const bpb = run.val_bpb !== null ? ` · ${fmt.num(run.val_bpb, 3)} bits/byte` : "";
  const node = card(label, fmt.num(run.val_loss, 3), `run ${run.name}, step ${fmt.num(run.val_curve[run.val_curve.length - 1][0])}${bpb}`);
  node.dataset.run = run.name;
  return node;
}

async function loadDashboard() {
  const cards = $("#dash-cards");
  try {
    const s = await getJSON("/ui/summary");
    cards.replaceChildren(
      card("posts in corpus", s.corpus ? fmt.num(s.corpus.posts ?? s.corpus.kept) : "–", s.corpus ? "after cleaning" : "no corpus"),
      card("model", s.model ? fmt.num(s.model.params / 1e6, 1) + "M" : "–", s.model ? `${s.model.source || "?"}, ${fmt.num(s.model.steps)} steps` : "no model"),
      valLossCard(s.model, s.runs),
      card("search index", s.index ? fmt.num(s.index.live_posts ?? s.index.posts) : "–", s.index ? `${fmt.bytes(s.index.size_bytes)}${s.index.semantic ? ", with vectors" : ", lexical only"}` : "no index"),
      card("ad spend", s.ads ? fmt.money(s.ads.spend) : "–", s.ads ? `of ${fmt.money(s.ads.budget)} · ${s.ads.active}/${s.ads.campaigns} active` : "no ads"),
      card("ad clicks", s.ads ? fmt.num(s.ads.clicks) : "–", s.ads ? `${fmt.num(s.ads.impressions)} impressions` : ""),
    );
    $("#dash-runs").replaceChildren(...(s.runs.length ? s.runs.map(runBox) : [el("p", { class: "status", text: "no training runs yet" })]));
    if (s.ads) await loadCampaigns();
    else $("#dash-ads").replaceChildren(el("p", { class: "status", text: "no campaigns loaded" }));
  } catch (err) {
    cards.replaceChildren(el("p", { class: "status error", text: err.message }));
  }
}
loaders.dashboard = loadDashboard;

// ---- start -------------------------------------------------------------------------------------

const TABS = ["chat", "search", "timeline", "dashboard"];
const tabOfHash = () => (TABS.includes(location.hash.slice(1)) ? location.hash.slice(1) : "chat");
window.addEventListener("hashchange", () => showTab(tabOfHash()));
showTab(tabOfHash());
