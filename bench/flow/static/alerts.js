"use strict";
// The live alert view: one EventSource on /events; each event carries every alert committed
// since the previous one (at most 5 events a second), the alerts per minute and the feed's
// status. The page keeps the newest KEEP alerts in memory and draws the newest ROWS that pass
// the filter, so at 2,000 alerts/s it redraws 200 rows 5 times a second, whatever the rate.
const KEEP = 1000, ROWS = 200, MINUTES = 30, RATE_WINDOW_MS = 5000;
const $ = (id) => document.getElementById(id);
const ESC = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ESC[c]);
const num = (x, digits) => (typeof x === "number" ? x.toLocaleString("en-US",
  { minimumFractionDigits: digits, maximumFractionDigits: digits }) : esc(x));

let kept = [];          // newest first
let received = 0, arrivals = [], minutes = [], status = {}, serverTime = null, connected = false;

function reasonsHtml(reasons) {
  if (!Array.isArray(reasons) || reasons.length === 0) return "<em>none given</em>";
  return "<ol class=\"reasons\">" + reasons.slice(0, 3).map((r) =>
    `<li>${esc(r.text)} <span class="code">${esc(r.code)} ${typeof r.contribution === "number"
      ? (r.contribution >= 0 ? "+" : "") + r.contribution.toFixed(2) : ""}</span></li>`).join("") + "</ol>";
}

function rowHtml(a) {
  const block = a.action_required === "BLOCK";
  const time = String(a.alert_time ?? "").slice(11, 19);
  return `<tr class="${block ? "block" : "review"}" data-tx="${esc(a.transaction_id)}" data-card="${esc(a.card_hash)}">` +
    `<td class="mono">${esc(time)}</td><td><span class="badge">${block ? "BLOCK" : "REVIEW"}</span></td>` +
    `<td>${esc(a.risk_level)}</td><td class="num">${num(a.fraud_score, 4)}</td>` +
    `<td class="num">${num(a.amount, 2)}</td><td class="mono">${esc(a.card_hash)}</td>` +
    `<td>${esc(a.merchant_category)}</td><td class="mono">${esc(a.model_version)}</td>` +
    `<td>${reasonsHtml(a.reasons)}</td></tr>`;
}

function passes(a, risk, card) {
  return (!risk || a.risk_level === risk) && (!card || String(a.card_hash ?? "").toLowerCase().includes(card));
}

function drawTable() {
  const risk = $("risk").value, card = $("card").value.trim().toLowerCase();
  const rows = [];
  let matching = 0;
  for (const a of kept) {
    if (!passes(a, risk, card)) continue;
    matching++;
    if (rows.length < ROWS) rows.push(rowHtml(a));
  }
  document.querySelector("#alerts tbody").innerHTML = rows.join("");
  $("empty").style.display = kept.length ? "none" : "";
  $("shown").textContent = `showing ${rows.length} of ${matching.toLocaleString("en-US")} matching` +
    ` (the newest ${kept.length.toLocaleString("en-US")} alerts are kept; ${received.toLocaleString("en-US")} received)`;
}

function drawChart() {
  if (serverTime === null) return;
  const counts = new Map(minutes);
  const now = Math.floor(serverTime / 60) * 60;
  const slots = [];
  for (let i = MINUTES - 1; i >= 0; i--) {
    const key = new Date((now - 60 * i) * 1000).toISOString().slice(0, 16);
    slots.push([key, counts.get(key) ?? 0]);
  }
  const top = Math.max(1, ...slots.map((s) => s[1]));
  const w = 300 / MINUTES;
  $("chart").innerHTML = slots.map(([key, n], i) => {
    const h = n ? Math.max(1, (n / top) * 56) : 0;
    return `<rect class="${i === MINUTES - 1 ? "now" : ""}" x="${i * w + 0.5}" y="${60 - h}" width="${w - 1}" height="${h}"><title>${key} UTC: ${n} alerts</title></rect>`;
  }).join("");
  $("chart-box").querySelector("figcaption").textContent =
    `alerts per minute (last ${MINUTES} min; max ${top.toLocaleString("en-US")})`;
}

function drawStatus() {
  const now = Date.now();
  arrivals = arrivals.filter(([t]) => now - t <= RATE_WINDOW_MS);
  const rate = arrivals.reduce((s, [, n]) => s + n, 0) / (RATE_WINDOW_MS / 1000);
  const up = connected && status.connected;
  const parts = [up ? "connected" : (connected ? "server up, Kafka not connected" : "disconnected, retrying")];
  parts.push(`${rate.toLocaleString("en-US", { maximumFractionDigits: 1 })} alerts/s`);
  parts.push(`lag ${status.lag ?? "?"} records`);
  if (kept.length && serverTime !== null) {
    const age = serverTime - Date.parse(kept[0].alert_time) / 1000;
    if (Number.isFinite(age)) parts.push(`newest alert ${Math.max(0, age).toFixed(1)} s old`);
  }
  if (status.error) parts.push(`Kafka: ${status.error}`);
  if (status.unreadable) parts.push(`${status.unreadable} unreadable`);
  $("status").textContent = parts.join(" · ");
  $("status").className = up ? "up" : "down";
}

function onEvent(e) {
  const batch = JSON.parse(e.data);
  connected = true;
  minutes = batch.minutes; status = batch.status; serverTime = batch.server_time;
  if (batch.alerts.length) {
    received += batch.alerts.length;
    arrivals.push([Date.now(), batch.alerts.length]);
    kept = batch.alerts.slice(-KEEP).reverse().concat(kept).slice(0, KEEP);
    drawTable();
  }
  drawChart();
  drawStatus();
}

const source = new EventSource("/events");
source.onmessage = onEvent;
source.onopen = () => { connected = true; drawStatus(); };
source.onerror = () => { connected = false; drawStatus(); };  // EventSource reconnects itself
$("risk").addEventListener("change", drawTable);
$("card").addEventListener("input", drawTable);
drawTable();
