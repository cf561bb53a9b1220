// Alert console: lists the alert stage's alerts (GET /api/v1/alerts),
// filters and pages them, shows one's history and deliveries, and
// acknowledges or resolves with the operator token. Rows change in place as
// the hub's "alerts/state" channel reports changes. Vanilla JS, no build
// step, nothing fetched but from this host.
(function () {
  "use strict";

  const A = window.IocAlerts;
  const PAGE = 50;
  const TOKEN_KEY = "ioc-console-token"; // per tab: gone with it
  const WHO_KEY = "ioc-console-who"; // kept: the same person at the same desk
  const BACKOFF_MS = [500, 1000, 2000, 5000, 10000];
  const RELOAD_MS = 1000; // new alerts arrive in bursts: one read per burst

  const page = { offset: 0, next: null, rows: new Map(), selected: null };
  let reloadTimer = 0;

  const $ = (sel) => document.querySelector(sel);
  const token = () => $('[data-testid="token"]').value.trim();
  const who = () => $('[data-testid="who"]').value.trim();

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  const pad = (n) => String(n).padStart(2, "0");
  // ISO instant -> "16/03 09:00" in Asia/Ho_Chi_Minh (UTC+7, no daylight saving)
  function vnTime(iso) {
    const ms = Date.parse(iso);
    if (!isFinite(ms)) return "";
    const d = new Date(ms + 7 * 3600 * 1000);
    return `${pad(d.getUTCDate())}/${pad(d.getUTCMonth() + 1)}/${d.getUTCFullYear()} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
  }

  function say(text, kind) {
    const node = $('[data-testid="message"]');
    node.textContent = text;
    node.dataset.kind = kind || "warn";
  }

  // What went wrong, in both languages where we know the status, with the
  // API's own reason.
  function problem(got) {
    const detail = got.body && typeof got.body.detail === "string" ? got.body.detail : "";
    if (got.status === 400 || got.status === 409) return detail || refusal(got.status);
    return detail ? `${refusal(got.status)} (${detail})` : refusal(got.status);
  }

  function refusal(status) {
    if (status === 401) return "Mã truy cập sai hoặc thiếu · Missing or wrong token";
    if (status === 403) return "Cần mã của người điều hành · The operator token is needed";
    if (status === 503) return "Cơ sở dữ liệu chưa sẵn sàng · Database unavailable";
    return `Lỗi ${status} · Error ${status}`;
  }

  async function api(path, options) {
    const answer = await fetch(path, {
      cache: "no-store",
      ...options,
      headers: { ...A.authHeaders(token()), ...((options && options.headers) || {}) },
    });
    let body = null;
    try {
      body = await answer.json();
    } catch (e) {
      /* no JSON body */
    }
    return { status: answer.status, ok: answer.ok, body };
  }

  // -- the list ---------------------------------------------------------------

  function query() {
    const form = new FormData($('[data-testid="filters"]'));
    const params = new URLSearchParams();
    for (const name of ["state", "severity", "rule", "scope"]) {
      const value = String(form.get(name) || "").trim();
      if (value) params.set(name, value);
    }
    for (const name of ["from", "to"]) {
      const value = String(form.get(name) || "");
      if (value) params.set(name, (value.length === 16 ? value + ":00" : value) + "+07:00");
    }
    params.set("limit", String(PAGE));
    params.set("offset", String(page.offset));
    return params;
  }

  async function load() {
    clearTimeout(reloadTimer);
    reloadTimer = 0;
    let got;
    try {
      got = await api("api/v1/alerts?" + query());
    } catch (e) {
      say("Không kết nối được máy chủ · The API cannot be reached");
      return;
    }
    if (!got.ok) {
      say(problem(got));
      return;
    }
    page.rows = new Map();
    for (const a of got.body.alerts || []) page.rows.set(a.id, a);
    page.next = got.body.next_offset;
    renderTable();
  }

  function renderTable() {
    const body = $('[data-testid="alert-table"] tbody');
    body.replaceChildren(...[...page.rows.values()].map(row));
    if (!page.rows.size) {
      const tr = el("tr");
      const td = el("td", "", "Không có cảnh báo · No alerts");
      td.colSpan = 8;
      tr.append(td);
      body.append(tr);
    }
    $('[data-testid="prev-page"]').disabled = page.offset === 0;
    $('[data-testid="next-page"]').disabled = page.next === null || page.next === undefined;
    const first = page.rows.size ? page.offset + 1 : 0;
    $('[data-testid="page-info"]').textContent = `${first}–${page.offset + page.rows.size}`;
  }

  function row(a) {
    const tr = el("tr");
    tr.dataset.alertId = a.id;
    tr.dataset.state = a.state;
    tr.dataset.testid = "alert-row";
    if (a.id === page.selected) tr.classList.add("selected");
    const [sevVi, sevEn] = A.SEVERITIES[a.severity] || [a.severity, ""];
    const [stVi, stEn] = A.STATES[a.state] || [a.state, ""];
    const title = el("td", "", a.title || a.rule);
    title.append(el("small", "", a.rule));
    const state = el("td", `st-${a.state}`, stVi);
    state.dataset.testid = "alert-state";
    state.title = stEn;
    if (a.acknowledged_by) state.append(el("small", "", a.acknowledged_by));
    const actions = el("td", "actions");
    actions.append(
      button("ack", "Tiếp nhận · Ack", a.state !== "open", () => ask(a, "ack")),
      button("resolve", "Đã xử lý · Resolve", a.state === "resolved", () => ask(a, "resolve")),
    );
    const sev = el("td", `sev-${a.severity}`, sevVi);
    sev.title = sevEn;
    tr.append(
      el("td", "", vnTime(a.opened_at)),
      sev,
      title,
      el("td", "", A.subjectLabel(a)),
      el("td", "num", a.count),
      el("td", "num", a.step),
      state,
      actions,
    );
    tr.addEventListener("click", () => showDetail(a.id));
    return tr;
  }

  function button(kind, label, disabled, onClick) {
    const b = el("button", kind, label);
    b.type = "button";
    b.dataset.testid = kind;
    b.disabled = disabled;
    b.addEventListener("click", (ev) => {
      ev.stopPropagation(); // not the row's click
      onClick();
    });
    return b;
  }

  // A change from the hub: in place when the alert is on this page; a new
  // one re-reads the first page (it sorts first), any other page says so.
  function changed(alert) {
    if (!alert || typeof alert.id !== "string") return;
    if (page.rows.has(alert.id)) {
      const known = new Map([[alert.id, page.rows.get(alert.id)]]);
      if (!A.merge(known, alert)) return;
      page.rows.set(alert.id, known.get(alert.id));
      const old = document.querySelector(`tr[data-alert-id="${CSS.escape(alert.id)}"]`);
      const fresh = row(known.get(alert.id));
      fresh.classList.add("changed");
      if (old) old.replaceWith(fresh);
      if (alert.id === page.selected) showDetail(alert.id);
    } else if (page.offset === 0 && !reloadTimer) {
      reloadTimer = setTimeout(load, RELOAD_MS);
    }
  }

  // -- one alert --------------------------------------------------------------

  async function showDetail(id) {
    page.selected = id;
    for (const tr of document.querySelectorAll("tr.selected")) tr.classList.remove("selected");
    const tr = document.querySelector(`tr[data-alert-id="${CSS.escape(id)}"]`);
    if (tr) tr.classList.add("selected");
    const got = await api("api/v1/alerts/" + encodeURIComponent(id));
    const box = $('[data-testid="alert-detail"]');
    if (!got.ok) {
      say(problem(got));
      return;
    }
    const a = got.body;
    const head = el("h2", "", `${a.title || a.rule} · ${A.subjectLabel(a)}`);
    const facts = el("p", "", [
      `${(A.STATES[a.state] || [a.state])[0]}`,
      a.acknowledged_by ? `tiếp nhận: ${a.acknowledged_by} ${vnTime(a.acknowledged_at)}` : "",
      a.resolved_at ? `xử lý: ${a.resolved_by || a.resolved_how || ""} ${vnTime(a.resolved_at)}` : "",
      a.comment ? `“${a.comment}”` : "",
    ].filter(Boolean).join(" · "));
    box.replaceChildren(
      head,
      facts,
      el("h3", "", "Lịch sử · History"),
      table(["#", "Lúc · At", "Thay đổi · Change", "Chi tiết · Detail"],
        (a.history || []).map((h) => [h.seq, vnTime(h.at), h.change, h.detail ? JSON.stringify(h.detail) : ""])),
      el("h3", "", "Gửi thông báo · Deliveries"),
      table(["Bậc · Step", "Người nhận · Recipient", "Kênh · Channel", "Trạng thái · State", "Lần gửi · Attempts", "Lỗi · Error", "Gửi lúc · Sent"],
        (a.deliveries || []).map((d) => [d.step, d.recipient, `${d.channel} ${d.address || ""}`, d.state, d.attempts, d.last_error || "", vnTime(d.sent_at)])),
    );
    box.hidden = false;
  }

  function table(headings, rows) {
    const t = el("table");
    const head = el("tr");
    for (const h of headings) head.append(el("th", "", h));
    t.append(head);
    for (const cells of rows) {
      const tr = el("tr");
      for (const c of cells) tr.append(el("td", "", c));
      t.append(tr);
    }
    return t;
  }

  // -- acting -------------------------------------------------------------------

  function ask(alert, kind) {
    if (!who()) {
      say("Nhập tên người xử lý trước · Enter the operator's name first");
      $('[data-testid="who"]').focus();
      return;
    }
    const dialog = $('[data-testid="action-dialog"]');
    $('[data-testid="action-title"]').textContent =
      kind === "ack" ? "Tiếp nhận cảnh báo · Acknowledge" : "Đóng cảnh báo · Resolve";
    dialog.querySelector(".action-alert").textContent = `${alert.title || alert.rule} · ${A.subjectLabel(alert)}`;
    $('[data-testid="action-comment"]').value = "";
    dialog.onclose = () => {
      if (dialog.returnValue === "confirm") act(alert.id, kind, $('[data-testid="action-comment"]').value);
    };
    dialog.returnValue = "";
    dialog.showModal();
  }

  async function act(id, kind, comment) {
    let got;
    try {
      got = await api(`api/v1/alerts/${encodeURIComponent(id)}/${kind}`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ who: who(), comment }),
      });
    } catch (e) {
      say("Không kết nối được máy chủ · The API cannot be reached");
      return;
    }
    if (got.status === 200) {
      say(kind === "ack" ? "Đã tiếp nhận · Acknowledged" : "Đã đóng · Resolved", "ok");
      changed(got.body);
    } else if (got.status === 202) {
      say("Đã ghi nhận, đang chờ áp dụng · Stored, being applied", "ok");
    } else {
      say(problem(got));
    }
  }

  // -- live changes -------------------------------------------------------------

  let socket = null;
  let attempt = 0;

  function link(state, text) {
    const node = $('[data-testid="link-status"]');
    node.dataset.state = state;
    node.textContent = text;
  }

  function connect() {
    // no token: a development API lets everyone in; any other says 1008
    const url = new URL("ws", location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    url.search = token() ? "?token=" + encodeURIComponent(token()) : "";
    const ws = new WebSocket(url.href);
    socket = ws;
    ws.onopen = () => {
      ws.send(JSON.stringify({ op: "subscribe", channels: ["alerts/state"] }));
      link("live", "● Trực tuyến · Live");
      if (attempt) load(); // back after a break: changes may have been missed
    };
    ws.onmessage = (ev) => {
      attempt = 0;
      link("live", "● Trực tuyến · Live");
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch (e) {
        return;
      }
      if (!msg || msg.channel !== "alerts/state") return;
      const items = msg.type === "snapshot" ? msg.data : [msg.data];
      if (Array.isArray(items)) for (const item of items) if (item) changed(item.alert);
    };
    ws.onclose = (ev) => {
      if (ws !== socket) return;
      socket = null;
      const refused = ev.code === 1008;
      link(refused ? "refused" : "down", refused ? "Mã bị từ chối · Token refused" : "Mất kết nối · Reconnecting");
      setTimeout(connect, refused ? 30000 : BACKOFF_MS[Math.min(attempt++, BACKOFF_MS.length - 1)]);
    };
  }

  function reconnect() {
    const old = socket;
    socket = null;
    if (old) old.close();
    connect();
  }

  // -- start ------------------------------------------------------------------------

  function start() {
    const fromAddress = A.tokenFromAddress();
    if (fromAddress) {
      sessionStorage.setItem(TOKEN_KEY, fromAddress);
      history.replaceState(null, "", location.pathname); // not left in the address bar
    }
    $('[data-testid="token"]').value = sessionStorage.getItem(TOKEN_KEY) || "";
    $('[data-testid="who"]').value = localStorage.getItem(WHO_KEY) || "";
    $('[data-testid="token"]').addEventListener("change", () => {
      sessionStorage.setItem(TOKEN_KEY, token());
      reconnect();
      load();
    });
    $('[data-testid="who"]').addEventListener("change", () => localStorage.setItem(WHO_KEY, who()));
    $('[data-testid="login"]').addEventListener("submit", (ev) => ev.preventDefault());
    $('[data-testid="filters"]').addEventListener("submit", (ev) => {
      ev.preventDefault();
      page.offset = 0;
      load();
    });
    $('[data-testid="prev-page"]').addEventListener("click", () => {
      page.offset = Math.max(0, page.offset - PAGE);
      load();
    });
    $('[data-testid="next-page"]').addEventListener("click", () => {
      if (page.next !== null && page.next !== undefined) page.offset = page.next;
      load();
    });
    connect();
    load();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
