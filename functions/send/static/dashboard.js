/* The deliverability dashboard (docs/deliverability.md#the-dashboard).
 *
 * The page holds no data: this script asks for a key with the `stats` scope, keeps it in
 * sessionStorage (this tab only), and fetches GET /stats and GET /guard from the page's own origin.
 * Every value from the store — template names, sender domains, which come from unsigned SES
 * callbacks — is put on the page with textContent or as an SVG attribute, never parsed as HTML.
 * The charts are SVG drawn here: no library, nothing loaded from anywhere else.
 */
"use strict";

(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const STORAGE = "sesmail.statsKey";
  // Where /stats and /guard are: this origin, or the one a host page names (the local mail page
  // proxies them under its own origin).
  const API = document.body.dataset.api || "";
  const $ = (id) => document.getElementById(id);

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function shape(tag, attributes, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, String(value));
    if (text !== undefined) node.textContent = String(text);
    return node;
  }

  function percent(rate, digits) {
    return rate === null || rate === undefined ? "–" : (rate * 100).toFixed(digits === undefined ? 1 : digits) + " %";
  }

  function status(text, bad) {
    const node = $("status");
    node.textContent = text;
    node.classList.toggle("bad", Boolean(bad));
  }

  class Refused extends Error {
    constructor(status, body) {
      const error = (body && body.Error) || {};
      super(`${status} ${error.Code || ""}: ${error.Message || "the request was refused"}`);
      this.status = status;
    }
  }

  async function get(path, key) {
    const reply = await fetch(API + path, {
      headers: { Authorization: "Bearer " + key }, credentials: "omit", cache: "no-store", redirect: "error",
    });
    let body = null;
    try {
      body = await reply.json();
    } catch (ignored) {
      body = null;
    }
    if (!reply.ok) throw new Refused(reply.status, body);
    return body;
  }

  // -- charts ------------------------------------------------------------------------------------
  const HEIGHT = 190, LEFT = 52, RIGHT = 12, TOP = 12, BOTTOM = 28;

  /* A line of `rates` (one per day, null where nothing was sent) against `limit` (dashed), on a
   * scale up to `ceiling` (or a little above the highest value). Drawn at the figure's own width,
   * so its text keeps its size on a phone. */
  function lineChart(figure, days, rates, limit, label, digits, ceiling) {
    figure.replaceChildren();
    const WIDTH = Math.max(300, Math.min(960, Math.round(figure.clientWidth || 640)));
    const values = rates.filter((rate) => rate !== null);
    const top = ceiling || Math.max(limit || 0, ...values, 0) * 1.15 || 1;
    const plotWidth = WIDTH - LEFT - RIGHT, plotHeight = HEIGHT - TOP - BOTTOM;
    const x = (index) => LEFT + (days.length > 1 ? (index * plotWidth) / (days.length - 1) : plotWidth / 2);
    const y = (rate) => TOP + plotHeight - (Math.min(rate, top) / top) * plotHeight;
    const chart = shape("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", class: "line" });
    chart.appendChild(shape("title", {}, label));
    for (const tick of [0, top / 2, top]) {
      chart.appendChild(shape("line", { x1: LEFT, x2: WIDTH - RIGHT, y1: y(tick), y2: y(tick), class: "grid" }));
      chart.appendChild(shape("text", { x: LEFT - 6, y: y(tick) + 4, class: "axis end" }, percent(tick, digits)));
    }
    const labelled = days.length > 2 ? [0, Math.floor((days.length - 1) / 2), days.length - 1] : days.map((_, i) => i);
    for (const index of labelled) {
      const anchor = index === 0 ? "start" : index === days.length - 1 ? "end" : "middle";
      chart.appendChild(shape("text", { x: x(index), y: HEIGHT - 8, class: "axis " + anchor }, days[index].slice(5)));
    }
    if (limit) {
      chart.appendChild(shape("line", { x1: LEFT, x2: WIDTH - RIGHT, y1: y(limit), y2: y(limit), class: "limit" }));
      chart.appendChild(shape("text", { x: WIDTH - RIGHT, y: y(limit) - 4, class: "axis end limit-label" },
        "guard limit " + percent(limit, digits)));
    }
    // One polyline per run of days with mail: a day without mail has no rate, not a rate of 0.
    let run = [];
    const flush = () => {
      if (run.length > 1) chart.appendChild(shape("polyline", { points: run.join(" "), class: "series" }));
      run = [];
    };
    rates.forEach((rate, index) => {
      if (rate === null) return flush();
      run.push(`${x(index).toFixed(1)},${y(rate).toFixed(1)}`);
      const dot = shape("circle", { cx: x(index).toFixed(1), cy: y(rate).toFixed(1), r: 3,
        class: limit && rate > limit ? "point over" : "point" });
      dot.appendChild(shape("title", {}, `${days[index]}: ${percent(rate, digits)}`));
      chart.appendChild(dot);
    });
    flush();
    figure.appendChild(chart);
    const caption = element("figcaption", "note",
      values.length ? `${label}, per Beijing day the mail was sent` : "No mail sent in these days.");
    figure.appendChild(caption);
  }

  /* Rows with a bar of mails sent and the rates, one per bucket: `name(bucket)` is its label. */
  function bars(container, buckets, name, limits) {
    container.replaceChildren();
    if (!buckets.length) {
      container.appendChild(element("p", "note", "No mail in these days."));
      return;
    }
    const most = Math.max(...buckets.map((bucket) => bucket.Sent), 1);
    for (const bucket of buckets.slice(0, 20)) {
      const row = element("div", "row");
      row.appendChild(element("span", "name", name(bucket)));
      const bar = shape("svg", { viewBox: "0 0 100 10", preserveAspectRatio: "none", class: "bar", "aria-hidden": "true" });
      bar.appendChild(shape("rect", { x: 0, y: 0, width: ((100 * bucket.Sent) / most).toFixed(2), height: 10, class: "sent" }));
      const bounced = bucket.Sent ? (100 * bucket.HardBounces) / most : 0;
      bar.appendChild(shape("rect", { x: 0, y: 0, width: bounced.toFixed(2), height: 10, class: "bounced" }));
      row.appendChild(bar);
      const numbers = element("span", "numbers",
        `${bucket.Sent} sent · ${percent(bucket.DeliveryRate)} delivered · ${percent(bucket.BounceRate)} bounced · ` +
        `${percent(bucket.ComplaintRate, 2)} complaints`);
      if ((bucket.BounceRate || 0) > limits.BounceRate || (bucket.ComplaintRate || 0) > limits.ComplaintRate) {
        numbers.classList.add("over");
      }
      row.appendChild(numbers);
      container.appendChild(row);
    }
  }

  function guardRows(container, guard) {
    container.replaceChildren();
    const limits = guard.Limits;
    $("guard-limits").textContent =
      `Marketing mail stops when, over the last ${limits.WindowHours} h and at least ${limits.MinVolume} mails ` +
      `and ${limits.MinEvents} events, hard bounces pass ${percent(limits.BounceRate)} or spam reports ` +
      `${percent(limits.ComplaintRate, 2)}.`;
    for (const entry of guard.Domains) {
      const row = element("div", "row guard");
      row.appendChild(element("span", "name", entry.Domain === "*" ? "the whole account (*)" : entry.Domain));
      let state = "ok", text = "sending";
      if (entry.Tripped) {
        state = "tripped";
        text = `paused: ${entry.TrippedBy === "ComplaintRate" ? "complaints" : "bounces"}`;
      } else if (entry.LiftedUntil) {
        state = "lifted";
        text = "lifted until " + new Date(entry.LiftedUntil * 1000).toLocaleString();
      }
      row.appendChild(element("span", "badge " + state, text));
      row.appendChild(element("span", "numbers",
        `${entry.Sent} sent · ${percent(entry.BounceRate)} bounced · ${percent(entry.ComplaintRate, 2)} complaints`));
      container.appendChild(row);
    }
  }

  // -- the page ----------------------------------------------------------------------------------
  /* After the guard, a section per chart (a rate per day: `rate` of /stats's days, against the
   * guard's limit of that name) and per table (a row per bucket of /stats?By=`by`). */
  const CHARTS = [
    { id: "delivery", title: "Delivery rate", rate: "DeliveryRate", limit: null, label: "Delivered ÷ sent",
      digits: 0, ceiling: 1 },
    { id: "bounce", title: "Hard-bounce rate", rate: "BounceRate", limit: "BounceRate", label: "Hard bounces ÷ sent",
      digits: 1 },
    { id: "complaint", title: "Complaint rate", rate: "ComplaintRate", limit: "ComplaintRate",
      label: "Spam reports ÷ sent", digits: 2 },
  ];
  const TABLES = [
    { id: "templates", title: "By template", by: "template",
      name: (b) => (b.Key === null ? "(no template)" : (b.Name ? `${b.Name} (${b.Key})` : `#${b.Key}`)) },
    { id: "domains", title: "By sender domain", by: "domain", name: (b) => (b.Key === null ? "(unknown)" : b.Key) },
  ];

  function section(id, title, tag, className) {
    const part = element("section");
    part.setAttribute("aria-labelledby", id + "-title");
    const heading = element("h2", null, title);
    heading.id = id + "-title";
    const content = element(tag, className);
    content.id = id;
    part.append(heading, content);
    $("board").appendChild(part);
  }

  for (const chart of CHARTS) section(chart.id, chart.title, "figure", "chart");
  for (const table of TABLES) section(table.id, table.title, "div", "rows");

  async function show() {
    const key = sessionStorage.getItem(STORAGE);
    $("login").hidden = Boolean(key);
    $("board").hidden = !key;
    if (!key) {
      $("key").focus();
      return;
    }
    const days = $("days").value;
    status("Loading…");
    try {
      const [byDay, ...rest] = await Promise.all([get(`/stats?Days=${days}`, key),
        ...TABLES.map((table) => get(`/stats?Days=${days}&By=${table.by}`, key)), get("/guard", key)]);
      const guard = rest.pop();
      const limits = guard.Limits;
      const dates = byDay.Buckets.map((bucket) => bucket.Key);
      for (const chart of CHARTS) {
        lineChart($(chart.id), dates, byDay.Buckets.map((b) => b[chart.rate]), chart.limit ? limits[chart.limit] : null,
          chart.label, chart.digits, chart.ceiling);
      }
      TABLES.forEach((table, index) => bars($(table.id), rest[index].Buckets, table.name, limits));
      guardRows($("guard"), guard);
      status(`Updated ${new Date().toLocaleTimeString()}`);
    } catch (error) {
      if (error instanceof Refused && (error.status === 401 || error.status === 403)) {
        sessionStorage.removeItem(STORAGE);
        $("login").hidden = false;
        $("board").hidden = true;
      }
      status(error.message, true);
    }
  }

  $("login").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("key").value.trim();
    $("key").value = "";
    if (key) sessionStorage.setItem(STORAGE, key);
    show();
  });
  $("forget").addEventListener("click", () => {
    sessionStorage.removeItem(STORAGE);
    status("");
    show();
  });
  if (API) $("local-nav").hidden = false;  // the local mail page's Stats tab: a way back to the mail
  $("refresh").addEventListener("click", show);
  $("days").addEventListener("change", show);
  show();
})();
