// bifrost-optimizer dashboard: polls the worker's JSON views and draws them (no build step).
//
// Everything shown comes from events (router ids, versions, reasons): it is inserted as
// text (textContent), never as HTML. The bearer token lives in sessionStorage (this tab
// only) and travels only in the Authorization header of requests to this origin.
//
// Panels: each entry of PANELS has a name and `refresh(ctx)`; later issues add theirs
// (recommendations, catalog changes) next to the existing ones.
"use strict";

(() => {
  const TOKEN_KEY = "bifrost.dashboard.token";
  const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];
  const CHARTS = [
    { key: "rate", title: "Requests / s", fmt: (v) => num(v, 2) },
    { key: "error_rate", title: "Error rate", fmt: (v) => pct(v) },
    { key: "p50_ms", title: "P50 latency (ms)", fmt: (v) => num(v, 0) },
    { key: "p95_ms", title: "P95 latency (ms)", fmt: (v) => num(v, 0) },
    { key: "cost_per_task", title: "Cost per task ($)", fmt: (v) => usd(v), axis: (v) => (v === null ? "" : Math.abs(v) < 0.01 && v !== 0 ? v.toExponential(1) : v.toFixed(3)) },
    { key: "win_rate", title: "Win rate", fmt: (v) => pct(v) },
  ];

  const $ = (id) => document.getElementById(id);
  const state = {
    token: sessionStorage.getItem(TOKEN_KEY) || "",
    config: null,
    router: null,
    routers: [],
    range: "1h",
    rollout: null,
    charts: {},
    chartArms: "",
    timer: null,
    busy: false,
  };

  // ---------- formatting and DOM helpers ----------
  function num(v, digits) {
    return v === null || v === undefined ? "–" : Number(v).toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: 0 });
  }
  function pct(v) { return v === null || v === undefined ? "–" : (v * 100).toFixed(2) + "%"; }
  function usd(v) { return v === null || v === undefined ? "–" : "$" + Number(v).toPrecision(3); }
  function ms(v) { return v === null || v === undefined ? "–" : Math.round(v).toLocaleString("en-US") + " ms"; }
  function sig(v) { return v === null || v === undefined ? "–" : Number(v).toPrecision(4); }
  function when(epoch) {
    if (!epoch) return "–";
    return new Date(epoch * 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
  }
  function minutes(seconds) { return seconds === null || seconds === undefined ? "–" : (seconds / 60).toFixed(0) + " min"; }

  // el("td", {class: "x", "data-value": 3}, "text", childNode, ...): text is always a text node.
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value !== null && value !== undefined) node.setAttribute(name, String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }
  function replaceRows(tbody, rows, emptyText, columns) {
    tbody.replaceChildren(...(rows.length ? rows : [el("tr", { class: "empty" }, el("td", { colspan: columns }, emptyText))]));
  }
  function setText(node, text, cls) {
    node.textContent = text;
    if (cls !== undefined) node.className = cls;
  }

  // ---------- HTTP ----------
  async function api(path, options) {
    const opts = Object.assign({ cache: "no-store", credentials: "omit" }, options || {});
    opts.headers = Object.assign({}, (options && options.headers) || {});
    if (state.token) opts.headers["Authorization"] = "Bearer " + state.token;
    let response;
    try {
      response = await fetch(path, opts);
    } catch (err) {
      return { status: 0, ok: false, body: { error: "the worker does not answer (" + err.message + ")" } };
    }
    const text = await response.text();
    let body = text;
    try { body = text ? JSON.parse(text) : null; } catch (_) { /* not JSON */ }
    return { status: response.status, ok: response.ok, body };
  }
  function errorOf(result) {
    if (result.body && typeof result.body === "object" && result.body.error) return result.body.error;
    return "HTTP " + result.status;
  }

  // ---------- panels ----------
  const armsPanel = {
    name: "arms",
    async refresh(ctx) {
      const result = await api(`/v1/routers/${encodeURIComponent(ctx.router)}/metrics?since=${ctx.range}`);
      const tbody = $("arms-table").tBodies[0];
      if (!result.ok) {
        replaceRows(tbody, [], result.status === 404 ? "no metrics for this router yet" : errorOf(result), 11);
        return;
      }
      const m = result.body;
      // Requests per second of event time over the windows that hold data: a router younger
      // than the range (or idle for part of it) is not diluted by time it did not exist.
      const windowSeconds = (state.config && state.config.window_seconds) || 60;
      const span = Math.max(1, Math.min(m.to_ts - m.from_ts, m.windows * windowSeconds));
      setText($("arms-range"), `${when(m.from_ts)} → ${when(m.to_ts)} (event time, ${m.windows} windows)`);
      const weights = (state.rollout && state.rollout.weights) || {};
      const rows = Object.entries(m.arms).map(([arm, s]) => {
        const cell = (field, value, text) => el("td", { "data-arm": arm, "data-field": field, "data-value": value === null ? "" : value }, text);
        return el("tr", { "data-arm": arm },
          el("th", { scope: "row" }, arm),
          cell("weight", weights[arm] ?? null, weights[arm] === undefined ? "–" : pct(weights[arm])),
          cell("count", s.count, num(s.count, 0)),
          cell("rate", s.count / span, num(s.count / span, 2)),
          cell("error_rate", s.error_rate, pct(s.error_rate)),
          cell("p50_ms", s.p50_ms, ms(s.p50_ms)),
          cell("p95_ms", s.p95_ms, ms(s.p95_ms)),
          cell("cost_per_task", s.cost_per_task, usd(s.cost_per_task)),
          cell("cost_usd", s.cost_usd, usd(s.cost_usd)),
          cell("win_rate", s.win_rate, pct(s.win_rate)),
          cell("quality", s.quality, s.quality === null ? "–" : s.quality.toFixed(3)));
      });
      replaceRows(tbody, rows, "no traffic in this range", 11);
    },
  };

  const chartsPanel = {
    name: "charts",
    async refresh(ctx) {
      const result = await api(`/v1/routers/${encodeURIComponent(ctx.router)}/series?since=${ctx.range}`);
      if (!result.ok) {
        setText($("charts-range"), result.status === 404 ? "no data yet" : errorOf(result));
        return;
      }
      drawCharts(result.body);
    },
  };

  function drawCharts(series) {
    if (typeof uPlot === "undefined") return;
    const arms = Object.keys(series.arms);
    const grid = $("chart-grid");
    setText($("charts-range"), `${series.ts.length} points of ${series.step / 60} min`);
    const armsKey = arms.join("\u0000");
    if (armsKey !== state.chartArms) {
      for (const chart of Object.values(state.charts)) chart.destroy();
      state.charts = {};
      grid.replaceChildren();
      state.chartArms = armsKey;
    }
    for (const spec of CHARTS) {
      const data = [series.ts, ...arms.map((arm) => series.arms[arm][spec.key])];
      let chart = state.charts[spec.key];
      if (!chart) {
        const box = el("div", { class: "chart", "data-chart": spec.key });
        grid.appendChild(box);
        const opts = {
          title: spec.title,
          width: chartWidth(box),
          height: 190,
          scales: { x: { time: true } },
          series: [{}, ...arms.map((arm, i) => ({
            label: arm, stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps: false,
            value: (u, v) => spec.fmt(v),
          }))],
          axes: [{}, { size: 72, values: (u, splits) => splits.map((v) => (spec.axis || spec.fmt)(v)) }],
        };
        chart = new uPlot(opts, data, box);
        state.charts[spec.key] = chart;
      } else {
        chart.setData(data);
      }
      const box = chart.root.parentNode;
      const points = data.slice(1).reduce((n, ys) => n + ys.filter((y) => y !== null && y !== undefined).length, 0);
      box.setAttribute("data-series", arms.join(","));
      box.setAttribute("data-points", String(points));
    }
  }

  function chartWidth(box) { return Math.max(260, (box.clientWidth || 420) - 4); }

  const rolloutPanel = {
    name: "rollout",
    async refresh(ctx) {
      const result = await api(`/v1/routers/${encodeURIComponent(ctx.router)}/rollout`);
      const summary = $("rollout-summary");
      const tbody = $("gates-table").tBodies[0];
      if (!result.ok) {
        summary.replaceChildren(el("dt", {}, "state"), el("dd", {}, errorOf(result)));
        replaceRows(tbody, [], "–", 8);
        return;
      }
      const s = result.body;
      state.rollout = s;
      const stage = s.stage_index >= 0 && s.stage_index < s.stages.length ? (s.stages[s.stage_index] * 100).toFixed(0) + "%" : "–";
      const weights = Object.entries(s.weights).map(([v, w]) => `${v} ${pct(w)}`).join(", ") || "–";
      const facts = [
        ["phase", el("span", { class: "phase phase-" + s.phase, id: "rollout-phase", "data-phase": s.phase }, s.phase)],
        ["stage", el("span", { id: "rollout-stage" }, `${stage} of ${s.stages.map((x) => (x * 100).toFixed(0) + "%").join(" → ")}`)],
        ["weights", weights],
        ["control / canary", `${s.control_version || "–"} / ${s.canary_version || "–"} (last good ${s.last_good_version || "–"})`],
        ["in stage", s.since ? `${minutes(Math.max(0, s.clock - s.since))} of event time since ${when(s.since)}; ${minutes(s.covered_seconds)} covered by data in both arms` : "–"],
        ["revision", el("span", { id: "rollout-revision" }, String(s.revision))],
      ];
      if (s.phase === "canary" || s.phase === "paused") facts.push(["requests in stage", `canary ${num(s.canary_samples || 0, 0)} / control ${num(s.control_samples || 0, 0)}`]);
      if (s.blockers && s.blockers.length && (s.phase === "canary" || s.phase === "paused")) {
        facts.push(["what blocks promotion", el("ul", { id: "blockers" }, ...s.blockers.map((b) => el("li", {}, b)))]);
      } else if (s.promotion_blocked_by && s.promotion_blocked_by.length && s.phase === "canary") {
        facts.push(["promotion held by", s.promotion_blocked_by.join(", ")]);
      }
      if (s.reason) facts.push(["reason", s.reason]);
      if (s.last_command) {
        const c = s.last_command;
        facts.push(["last command", el("span", { id: "last-command", "data-kind": c.kind, "data-accepted": c.accepted, "data-by": c.issued_by },
          `${c.kind} by ${c.issued_by || "?"} at ${when(c.at)}: ${c.accepted ? "accepted" : "refused"} — ${c.reason}`)]);
      }
      if (s.stall) facts.push(["stage timed out", s.stall.reasons.join("; ")]);
      if (s.stopped) facts.push(["stopped", `by ${s.stopped.by} at ${when(s.stopped.at)}: ${s.stopped.reason}; an operator must resume`]);
      summary.replaceChildren(...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
      const rows = (s.gates || []).flatMap((g) => {
        const row = el("tr", { "data-gate": g.gate },
          el("th", { scope: "row" }, g.gate),
          el("td", { class: "gate-" + g.status }, g.status + (s.promotion_blocked_by.includes(g.gate) && g.status === "pass" ? " (holding)" : "")),
          el("td", {}, sig(g.canary)),
          el("td", {}, sig(g.control)),
          el("td", {}, sig(g.threshold)),
          el("td", {}, `${sig(g.statistic)} / ${sig(g.bound)}`),
          el("td", {}, evidenceBar(g.evidence)),
          el("td", {}, `${g.canary_samples} / ${g.control_samples}`));
        const note = [g.method, g.note].filter(Boolean).join(" — ");
        return note ? [row, el("tr", { class: "gate-note" }, el("td", { colspan: 8, class: "note" }, note))] : [row];
      });
      replaceRows(tbody, rows, "no gate evaluated (no rollout in progress)", 8);
    },
  };

  function evidenceBar(evidence) {
    if (evidence === null || evidence === undefined) return "–";
    const share = Math.max(0, Math.min(1, evidence));
    const bar = el("span", { class: "bar" }, el("span", { class: "fill" }));
    bar.firstChild.style.width = (share * 100).toFixed(0) + "%";
    return el("span", {}, bar, " " + (share * 100).toFixed(0) + "%");
  }

  function failedGate(g) {
    if (g.canary === null || g.canary === undefined) return `${g.gate}${g.note ? ": " + g.note : ""}`;
    return `${g.gate}: canary ${sig(g.canary)} vs control ${sig(g.control)} (${g.method || "test"} ${sig(g.statistic)} > ${sig(g.bound)})`;
  }

  const activityPanel = {
    name: "activity",
    async refresh(ctx) {
      const result = await api(`/v1/dashboard/activity?router=${encodeURIComponent(ctx.router)}`);
      const rollbacks = $("rollbacks-table").tBodies[0];
      const runs = $("runs-table").tBodies[0];
      const artifacts = $("artifacts-table").tBodies[0];
      if (!result.ok) {
        for (const [tbody, n] of [[rollbacks, 7], [runs, 6], [artifacts, 6]]) replaceRows(tbody, [], errorOf(result), n);
        return;
      }
      const a = result.body;
      replaceRows(rollbacks, a.rollbacks.map((r) => el("tr", { "data-canary": r.canary_version, "data-gate": r.gate },
        el("td", {}, when(r.at)),
        el("td", {}, r.canary_version),
        el("td", {}, r.control_version || "–"),
        el("td", {}, r.gate),
        el("td", {}, r.stage_percent === null ? "–" : r.stage_percent.toFixed(0) + "%"),
        el("td", {}, r.reason),
        el("td", { class: "note" }, r.evidence.filter((g) => g.status === "fail").map(failedGate).join("; ") || "–"))),
        "no rollback recorded for this router", 7);
      replaceRows(runs, a.trainer_runs.map((r) => el("tr", { "data-trigger": r.trigger_id },
        el("td", {}, when(r.created_at)),
        el("td", {}, r.trigger_id),
        el("td", {}, r.reason),
        el("td", {}, r.router_id || "all"),
        el("td", {}, r.requested_by),
        el("td", { class: "outcome-" + r.outcome.replace(/ /g, "-") }, r.outcome + (r.version ? " " + r.version : ""),
          r.detail ? el("div", { class: "note" }, r.detail) : null))), "no training trigger seen", 6);
      replaceRows(artifacts, a.artifacts.map((x) => el("tr", { "data-version": x.version },
        el("td", {}, x.version),
        el("td", {}, x.parent || "–"),
        el("td", {}, when(x.published_at)),
        el("td", {}, x.router_ids.join(", ") || "–"),
        el("td", { class: "note" }, Object.entries(x.validation).slice(0, 4).map(([k, v]) => `${k}=${typeof v === "number" ? sig(v) : v}`).join(", ") || "–"),
        el("td", { class: "mono" }, x.sha256.slice(0, 12)))), "no artifact announced", 6);
    },
  };

  const lagPanel = {
    name: "lag",
    async refresh() {
      const body = $("lag-body");
      const result = await api("/v1/lag");
      if (result.status === 404 && !(result.body && result.body.error)) { setText(body, "not available (this worker has no /v1/lag view)", "muted"); return; }
      if (!result.ok) { setText(body, "not available: " + errorOf(result), "muted"); return; }
      const groups = Array.isArray(result.body) ? result.body : (result.body && (result.body.groups || result.body.consumer_groups));
      if (Array.isArray(groups)) {
        const rows = groups.map((g) => el("tr", { "data-group": g.group || g.group_id || g.name },
          el("th", { scope: "row" }, g.group || g.group_id || g.name || "?"),
          el("td", { class: "lag-" + String(g.status || "").toLowerCase() }, g.status || "–"),
          el("td", {}, num(g.lag_messages ?? g.lag ?? g.total_lag ?? null, 0)),
          el("td", {}, g.lag_seconds === undefined || g.lag_seconds === null ? "–" : num(g.lag_seconds, 1) + " s")));
        const table = el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "group"), el("th", {}, "status"), el("th", {}, "lag (messages)"), el("th", {}, "lag (seconds)"))),
          el("tbody", {}, ...rows));
        body.className = "";
        body.replaceChildren(rows.length ? table : el("span", { class: "muted" }, "no consumer groups"));
      } else {
        body.className = "";
        body.replaceChildren(el("pre", {}, JSON.stringify(result.body, null, 2).slice(0, 4000)));
      }
    },
  };

  // The optimizer's recommendations for this router (GET /v1/recommendations: newest first, from the topic).
  function impactText(i) {
    const parts = [];
    if (i.cost_per_task_change !== null && i.cost_per_task_change !== undefined) parts.push("cost/task " + (i.cost_per_task_change >= 0 ? "+" : "") + pct(i.cost_per_task_change));
    if (i.quality_change !== null && i.quality_change !== undefined) parts.push("quality " + (i.quality_change >= 0 ? "+" : "") + i.quality_change.toFixed(4) + (i.quality_ci ? ` [${i.quality_ci[0].toFixed(4)}, ${i.quality_ci[1].toFixed(4)}]` : ""));
    if (i.p95_ms_change !== null && i.p95_ms_change !== undefined) parts.push("P95 " + num(i.p95_ms_change, 0) + " ms");
    if (i.availability_change !== null && i.availability_change !== undefined) parts.push("availability +" + pct(i.availability_change));
    return (parts.join(", ") || "not estimated") + (i.method === "counterfactual" ? " (counterfactual, DR)" : " (evidence, upper bound)");
  }
  const recommendationsPanel = {
    name: "recommendations",
    async refresh(ctx) {
      const tbody = $("recommendations-table").tBodies[0];
      const result = await api(`/v1/recommendations?router=${encodeURIComponent(ctx.router)}&limit=20`);
      if (!result.ok) {
        setText($("recommendations-note"), result.status === 404 ? "not available (this worker has no optimizer)" : errorOf(result), "muted");
        replaceRows(tbody, [], "–", 7);
        return;
      }
      const recs = result.body.recommendations || [];
      setText($("recommendations-note"), `from ${result.body.topic}` + (result.body.complete ? "" : " (still reading the topic)") +
        "; apply one with `bifrost-opt recommendations apply ID` (signed)", "muted");
      replaceRows(tbody, recs.map((r) => el("tr", { "data-recommendation": r.recommendation_id },
        el("td", {}, "P" + r.priority),
        el("td", {}, r.kind),
        el("td", { title: r.detail || "" }, r.title),
        el("td", {}, impactText(r.impact)),
        el("td", {}, `${num(r.evidence.samples, 0)} samples (${r.evidence.source || "–"})`),
        el("td", {}, r.period),
        el("td", { class: "mono" }, r.recommendation_id))), "no recommendation for this router", 7);
    },
  };

  // Later issues: add "catalog-changes" here.
  const PANELS = [rolloutPanel, armsPanel, chartsPanel, activityPanel, lagPanel, recommendationsPanel];

  // ---------- control ----------
  function renderControl() {
    const cfg = state.config;
    const note = $("control-note");
    const buttons = Array.from(document.querySelectorAll("#control-buttons button"));
    if (!cfg) { setText(note, "control: unknown (the worker's configuration could not be read)", "muted"); return; }
    const c = cfg.control;
    for (const b of buttons) b.disabled = !c.actions_enabled;
    $("retrain").disabled = !c.retrain_enabled;
    const parts = [];
    parts.push(c.actions_enabled ? `Actions are signed with the worker's operator key "${c.key_name}" and sent on rollout-commands, like the CLI's.`
      : "Rollout actions unavailable: " + c.actions_reason + ".");
    if (!c.retrain_enabled) parts.push("Retrain unavailable: " + c.retrain_reason + ".");
    if ((c.actions_enabled || c.retrain_enabled) && !state.token) parts.push("Enter the bearer token above to act; without it the worker refuses (401).");
    setText(note, parts.join(" "), c.actions_enabled ? "" : "muted");
  }

  async function act(action) {
    const out = $("control-result");
    const reason = $("action-reason").value.trim();
    if ((action === "rollback" || action === "stop") && !reason) {
      setText(out, `${action} needs a reason (type it in the reason field)`, "refused");
      return;
    }
    if (!state.router) return;
    setText(out, `${action}: sending…`, "muted");
    const body = { action };
    if (reason) body.reason = reason;
    const result = await api(`/v1/routers/${encodeURIComponent(state.router)}/commands`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    out.setAttribute("data-status", String(result.status));
    out.setAttribute("data-action", action);
    if (result.ok) setText(out, `${action}: accepted — ${result.body.reason}`, "accepted");
    else if (result.status === 409) setText(out, `${action}: refused by the controller — ${result.body.reason}`, "refused");
    else setText(out, `${action}: refused (${result.status}) — ${errorOf(result)}`, "refused");
    await refresh();
  }

  async function retrain() {
    const out = $("control-result");
    setText(out, "retrain: sending…", "muted");
    const body = { since: $("retrain-since").value, router: state.router || undefined, reason: $("action-reason").value.trim() };
    const result = await api("/v1/retrain", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    out.setAttribute("data-status", String(result.status));
    out.setAttribute("data-action", "retrain");
    if (result.ok) setText(out, `retrain: trigger ${result.body.trigger_id} published on ${result.body.topic}`, "accepted");
    else setText(out, `retrain: refused (${result.status}) — ${errorOf(result)}`, "refused");
    await refresh();
  }

  // ---------- token ----------
  function renderToken() {
    setText($("token-state"), state.token ? "token set for this tab" : "no token: read-only");
  }

  // ---------- main loop ----------
  async function loadConfig() {
    const result = await api("/v1/dashboard/config");
    state.config = result.ok ? result.body : null;
    renderControl();
    return result;
  }

  async function loadRouters() {
    const result = await api("/v1/dashboard/routers");  // every worker's, not only this one's
    if (!result.ok) return result;
    const routers = result.body.routers || [];
    const select = $("router");
    if (routers.join("\u0000") !== state.routers.join("\u0000")) {
      state.routers = routers;
      select.replaceChildren(...routers.map((r) => el("option", { value: r }, r)));
    }
    const wanted = new URLSearchParams(location.search).get("router");
    if (!state.router || !routers.includes(state.router)) state.router = routers.includes(wanted) ? wanted : (routers[0] || null);
    if (state.router) select.value = state.router;
    return result;
  }

  async function refresh() {
    if (state.busy) return;
    state.busy = true;
    const status = $("status");
    try {
      const config = await loadConfig();
      if (config.status === 401) {
        setText(status, "this worker needs the bearer token to read (BIFROST_WEB_TOKEN); enter it above", "refused");
        return;
      }
      const routers = await loadRouters();
      if (!routers.ok) { setText(status, "cannot list routers: " + errorOf(routers), "refused"); return; }
      if (!state.router) { setText(status, "no router has metrics on this worker yet", "muted"); await lagPanel.refresh(); return; }
      const ctx = { router: state.router, range: state.range };
      await rolloutPanel.refresh(ctx);  // first: the arms table shows its weights
      const others = PANELS.filter((p) => p !== rolloutPanel);
      const results = await Promise.allSettled(others.map((p) => p.refresh(ctx)));
      const failed = results.map((r, i) => (r.status === "rejected" ? `${others[i].name}: ${r.reason}` : null)).filter(Boolean);
      setText(status, failed.length ? "errors: " + failed.join("; ") : "updated " + new Date().toLocaleTimeString(), failed.length ? "refused" : "muted");
      document.body.setAttribute("data-updated", String(Date.now()));
    } finally {
      state.busy = false;
    }
  }

  function schedule() {
    clearTimeout(state.timer);
    const seconds = (state.config && state.config.poll_seconds) || 5;
    state.timer = setTimeout(async () => { await refresh(); schedule(); }, seconds * 1000);
  }

  function start() {
    $("token-form").addEventListener("submit", (event) => {
      event.preventDefault();
      state.token = $("token").value.trim();
      $("token").value = "";
      if (state.token) sessionStorage.setItem(TOKEN_KEY, state.token); else sessionStorage.removeItem(TOKEN_KEY);
      renderToken();
      refresh();
    });
    $("token-forget").addEventListener("click", () => {
      state.token = "";
      sessionStorage.removeItem(TOKEN_KEY);
      renderToken();
      refresh();
    });
    $("router").addEventListener("change", (event) => { state.router = event.target.value; state.chartArms = ""; refresh(); });
    $("range").addEventListener("change", (event) => { state.range = event.target.value; refresh(); });
    for (const button of document.querySelectorAll("#control-buttons button")) {
      button.addEventListener("click", () => act(button.getAttribute("data-action")));
    }
    $("retrain").addEventListener("click", retrain);
    window.addEventListener("resize", () => {
      for (const chart of Object.values(state.charts)) chart.setSize({ width: chartWidth(chart.root.parentNode), height: 190 });
    });
    renderToken();
    refresh().then(schedule);
  }

  start();
})();
