// IOC wall page: one websocket to the hub (/ws), live tiles, communes,
// settling agencies, alerts and sensors. Vanilla JS, no build step, no network but our own host.
//
// The screen never goes blank once it has figures: when the link drops it
// keeps them, marked stale, and reconnects with the seqs it holds ("resume");
// the hub then sends only what was missed, or fresh snapshots that replace
// the figures in place. The figures are also kept in sessionStorage, so a
// reload shows them (stale) before the websocket is up.
(function () {
  "use strict";

  const CHANNELS = ["kpi/province", "kpi/commune/*", "kpi/agency/*", "alerts", "alerts/state", "sensor/*"];
  const OPEN_SHOWN = 12;
  const WINDOWS = { today: "Hôm nay", "24h": "24 giờ", month: "Tháng", ytd: "Năm" };
  const MAX_ALERTS = 30;
  const STALE_MS = 45000; // the hub beats every 15 s: three missed beats = dead link
  const STORE_KEY = "ioc-wall";
  const STORE_VERSION = 1;
  const SAVE_EVERY_MS = 5000; // and at pagehide: a reload loses nothing
  // Redial soon: a wall has few peers (tens of screens, not thousands), and
  // every second of backoff after the API is back is a second of stale figures.
  const BACKOFF_MS = [500, 1000, 2000, 5000];
  const REFUSED_MS = 30000; // a refused token needs a change on the server first
  const VN_OFFSET_S = 7 * 3600; // Asia/Ho_Chi_Minh: UTC+7, no daylight saving
  const WEEKDAYS = ["Chủ nhật", "Thứ Hai", "Thứ Ba", "Thứ Tư", "Thứ Năm", "Thứ Sáu", "Thứ Bảy"];

  const state = {
    window: "today",
    province: null,
    communes: new Map(), // channel -> kpi view
    agencies: new Map(), // channel -> kpi view
    alerts: [], // newest first
    openAlerts: new Map(), // alert id -> the newest copy of the alert stage's row
    sensors: new Map(), // sensor id -> station and status (see mergeSensor)
    sensorsHeard: false, // whether any sensor has a status: stations alone are no figures
    seqs: {}, // channel -> last seq seen, sent back as "resume"
    messages: 0,
    lastUpdate: null,
    link: "connecting", // connecting | connected | reconnecting | refused
    staleSince: null, // epoch ms since when the figures shown are not live, or null
  };

  // -- formatting -----------------------------------------------------------

  const nf0 = new Intl.NumberFormat("vi-VN", { maximumFractionDigits: 0 });
  const nf1 = new Intl.NumberFormat("vi-VN", { minimumFractionDigits: 1, maximumFractionDigits: 1 });
  const nf2 = new Intl.NumberFormat("vi-VN", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  const nfUpTo1 = new Intl.NumberFormat("vi-VN", { maximumFractionDigits: 1 });
  const isNum = (v) => typeof v === "number" && isFinite(v);
  const int = (v) => (isNum(v) ? nf0.format(v) : "—");
  const pct = (v) => (isNum(v) ? nfUpTo1.format(v * 100) + "%" : "—"); // 100%, 88,2%
  const dec1 = (v) => (isNum(v) ? nf1.format(v) : "—");
  const num = (v) => (isNum(v) ? nfUpTo1.format(v) : "—"); // 40 -> "40", 30.45 -> "30,5"
  const pad = (n) => String(n).padStart(2, "0");

  function vnTime(at) {
    const d = new Date((at + VN_OFFSET_S) * 1000); // read back with getUTC*
    return {
      time: `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`,
      hm: `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`,
      date: `${WEEKDAYS[d.getUTCDay()]}, ${pad(d.getUTCDate())}/${pad(d.getUTCMonth() + 1)}/${d.getUTCFullYear()}`,
      dm: `${pad(d.getUTCDate())}/${pad(d.getUTCMonth() + 1)}`,
    };
  }

  // -- DOM helpers ----------------------------------------------------------

  const $ = (sel, root) => (root || document).querySelector(sel);

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // Replace text; flash the element when a shown value changes. Two
  // identical animations alternate so a restart needs no forced reflow.
  function setText(node, text, flash) {
    if (node.textContent === text) return;
    const had = node.dataset.filled === "1";
    node.textContent = text;
    node.dataset.filled = "1";
    if (had && flash !== false) {
      const next = node.classList.contains("flash-a") ? "flash-b" : "flash-a";
      node.classList.remove("flash-a", "flash-b");
      node.classList.add(next);
    }
  }

  // Display name of a commune or agency from its KPI view, else its code.
  function unitName(kind, id) {
    const view = state[kind].get(UNITS[kind].prefix + id);
    return view && view.label ? view.label : id;
  }

  // -- tiles ----------------------------------------------------------------

  const TILES = {
    received: { value: (w) => int(w.received), sub: (w) => `${dec1(w.received_per_hour)} hồ sơ/giờ` },
    finished: {
      value: (w) => int(w.finished),
      sub: (w) => `Sớm ${int(w.early)} · Đúng ${int(w.on_time)} · Trễ ${int(w.late)}`,
    },
    on_time_rate: {
      value: (w) => pct(w.on_time_rate),
      sub: (w) => `Trễ hạn ${pct(w.late_rate)} · Cần giải quyết ${int(w.to_settle)}`,
      level: (w) => (!isNum(w.on_time_rate) ? "" : w.on_time_rate >= 0.95 ? "good" : w.on_time_rate >= 0.85 ? "warn" : "bad"),
    },
    overdue: { value: (w) => int(w.overdue), level: (w) => (w.overdue > 0 ? "bad" : "good") },
    at_risk: {
      value: (w) => int(w.at_risk),
      sub: (w) => `Đang xử lý ${int(w.open)}`,
      level: (w) => (w.at_risk > 0 ? "warn" : ""),
    },
    paused: { value: (w) => int(w.paused), sub: () => "Chờ bổ sung hồ sơ" },
    online_submission_rate: {
      value: (w) => pct(w.online_submission_rate),
      sub: (w) => `Số hoá hồ sơ ${pct(w.dossier_digitisation_rate)}`,
    },
    online_payment_rate: {
      value: (w) => pct(w.online_payment_rate),
      sub: (w) => `Số hoá kết quả ${pct(w.result_digitisation_rate)}`,
    },
    satisfaction_mean: {
      value: (w) => (isNum(w.satisfaction_mean) ? nf2.format(w.satisfaction_mean) + "/5" : "—"),
      sub: (w) => `Không hài lòng ${pct(w.complaint_share)}`,
    },
    missing_apology: {
      value: (w) => int(w.missing_apology),
      sub: (w) => `Đã gửi ${int(w.apology_issued)} phiếu`,
      level: (w) => (w.missing_apology > 0 ? "bad" : ""),
    },
  };
  const AGE_NAMES = { "0-1": "≤1 ngày", "1-3": "1–3", "3-10": "3–10", "10-30": "10–30", "30+": ">30 ngày" };

  function renderTiles() {
    const view = state.province;
    const w = (view && view.windows && view.windows[state.window]) || null;
    setText($("#province-label"), (view && view.label) || "—", false);
    for (const tile of document.querySelectorAll(".tile[data-kpi]")) {
      const kpi = tile.dataset.kpi;
      const def = TILES[kpi];
      const raw = w ? w[kpi] : null;
      tile.dataset.value = isNum(raw) ? String(raw) : "";
      setText($(".value", tile), w ? def.value(w) : "—");
      const sub = $(".sub", tile);
      if (sub && def.sub) setText(sub, w ? def.sub(w) : "", false);
      tile.dataset.level = w && def.level ? def.level(w) : "";
    }
    renderAges(w ? w.overdue_age || {} : {});
    if (view && isNum(view.at)) showClock(view.at);
  }

  // The IOC clock: the time of the newest figures, moved on by the hub's
  // heartbeats so that a quiet night does not look like a frozen screen.
  function showClock(at) {
    const clock = $('[data-testid="ioc-clock"]');
    if (Number(clock.dataset.at || 0) > at) return;
    const t = vnTime(at);
    clock.dataset.at = String(at);
    setText($(".clock-time", clock), t.time, false);
    setText($(".clock-date", clock), t.date, false);
  }

  function renderAges(ages) {
    const box = $(".tile-overdue .ages");
    const total = Object.values(ages).reduce((a, b) => a + (isNum(b) ? b : 0), 0);
    for (const [label, name] of Object.entries(AGE_NAMES)) {
      let row = box.querySelector(`[data-age="${label}"]`);
      if (!row) {
        row = el("div", "age");
        row.dataset.age = label;
        row.append(el("span", "age-name", name), el("span", "age-bar"), el("span", "age-n", "—"));
        box.append(row);
      }
      const n = ages[label];
      setText($(".age-n", row), int(n));
      $(".age-bar", row).style.setProperty("--share", total ? String(n / total) : "0");
    }
  }

  // -- communes and agencies -----------------------------------------------

  // The units with the most overdue dossiers first, then the busiest.
  const UNITS = {
    communes: { table: "commune-table", summary: "#commune-summary", prefix: "kpi/commune/" },
    agencies: { table: "agency-table", summary: "#agency-summary", prefix: "kpi/agency/" },
  };

  function unitOf(channel) {
    return Object.keys(UNITS).find((kind) => channel.startsWith(UNITS[kind].prefix));
  }

  function renderUnits(kind) {
    const unit = UNITS[kind];
    const body = $(`[data-testid="${unit.table}"] tbody`);
    const rows = [];
    for (const [channel, view] of state[kind]) {
      const w = (view.windows && view.windows[state.window]) || {};
      rows.push({ channel, label: view.label || channel.slice(unit.prefix.length), w });
    }
    const n = (v) => (isNum(v) ? v : -1);
    rows.sort((a, b) => n(b.w.overdue) - n(a.w.overdue) || n(b.w.open) - n(a.w.open) || a.label.localeCompare(b.label, "vi"));
    let withOverdue = 0;
    rows.forEach((r, i) => {
      let tr = body.querySelector(`tr[data-channel="${CSS.escape(r.channel)}"]`);
      if (!tr) {
        tr = el("tr");
        tr.dataset.channel = r.channel;
        tr.append(el("td", "c-label"), el("td", "num c-open"), el("td", "num c-overdue"), el("td", "num c-rate"));
      }
      if (body.children[i] !== tr) body.insertBefore(tr, body.children[i] || null);
      setText(tr.children[0], r.label, false);
      setText(tr.children[1], int(r.w.open));
      setText(tr.children[2], int(r.w.overdue));
      setText(tr.children[3], pct(r.w.on_time_rate));
      tr.dataset.overdue = String(n(r.w.overdue));
      tr.classList.toggle("has-overdue", r.w.overdue > 0);
      if (r.w.overdue > 0) withOverdue++;
    });
    setText($(unit.summary), rows.length ? `${rows.length} đơn vị · ${withOverdue} có hồ sơ quá hạn` : "", false);
  }

  // -- alerts ---------------------------------------------------------------

  const TRANSITIONS = { overdue: "Quá hạn", at_risk: "Sắp đến hạn", cleared: "Hết cảnh báo" };

  // Live items are prepended (and highlighted); a snapshot or newly known
  // commune names rebuild the list.
  let alertsRebuild = true;
  let alertsNew = [];

  function renderAlerts() {
    const list = $('[data-testid="alerts-list"]');
    if (alertsRebuild) {
      list.replaceChildren(...state.alerts.map((a) => alertItem(a, false)));
    } else {
      list.prepend(...alertsNew.map((a) => alertItem(a, true)).reverse());
      while (list.children.length > MAX_ALERTS) list.lastElementChild.remove();
    }
    alertsRebuild = false;
    alertsNew = [];
  }

  function alertItem(a, fresh) {
    const known = Object.hasOwn(TRANSITIONS, a.transition);
    const li = el("li", `alert t-${known ? a.transition : "other"}${fresh ? " fresh" : ""}`);
    li.dataset.transition = String(a.transition);
    const at = isNum(a.at) ? vnTime(a.at) : null;
    const when = el("span", "a-time", at ? at.hm : "");
    if (at) when.title = `${at.time} ${at.date}`;
    const head = el("div", "a-head");
    head.append(
      when,
      el("span", "a-kind", known ? TRANSITIONS[a.transition] : String(a.transition)),
      el("span", "a-id", String(a.dossier_id ?? "")),
    );
    const where = [a.commune ? unitName("communes", String(a.commune)) : "", a.agency ? unitName("agencies", String(a.agency)) : ""];
    const hours = isNum(a.consumed_hours) && isNum(a.allotted_hours)
      ? `đã dùng ${num(a.consumed_hours)}/${num(a.allotted_hours)} giờ`
      : "";
    const due = isNum(a.due) ? `hạn ${vnTime(a.due).hm} ${vnTime(a.due).dm}` : "";
    const meta = [...where, hours, due].filter(Boolean).join(" · ");
    li.append(head, el("div", "a-proc", String(a.procedure ?? "")), el("div", "a-meta", meta));
    return li;
  }

  // -- open alerts ------------------------------------------------------------

  const unitKinds = { commune: "communes", agency: "agencies" };
  const alertUnitName = (kind, key) => (unitKinds[kind] ? unitName(unitKinds[kind], key) : "");

  function renderOpenAlerts() {
    const A = window.IocAlerts;
    const shown = A.active(state.openAlerts);
    const acked = shown.filter((a) => a.state === "acknowledged").length;
    setText($("#open-alert-count"), shown.length ? `${int(shown.length)} · đã tiếp nhận ${int(acked)}` : "", false);
    const list = $('[data-testid="open-alerts"]');
    if (!shown.length) {
      list.replaceChildren(el("li", "open-empty", "Không có cảnh báo đang mở · No open alerts"));
      return;
    }
    list.replaceChildren(...shown.slice(0, OPEN_SHOWN).map((a) => openAlertItem(a, A)));
  }

  function openAlertItem(a, A) {
    const li = el("li", `open-alert s-${A.SEVERITIES[a.severity] ? a.severity : "other"}`);
    li.dataset.testid = "open-alert";
    li.dataset.alertId = a.id;
    li.dataset.state = String(a.state);
    li.dataset.step = String(a.step ?? "");
    const [sevVi] = A.SEVERITIES[a.severity] || [String(a.severity)];
    const [stateVi, stateEn] = A.STATES[a.state] || [String(a.state), ""];
    const opened = a.opened_at ? vnTime(Date.parse(a.opened_at) / 1000) : null;
    const meta = [
      A.subjectLabel(a, alertUnitName),
      opened ? `từ ${opened.hm} ${opened.dm}` : "",
      isNum(a.count) && a.count > 1 ? `×${int(a.count)}` : "",
      a.acknowledged_by ? `bởi ${a.acknowledged_by}` : "",
    ];
    const state = el("span", "o-state", stateVi);
    state.dataset.testid = "open-alert-state";
    state.title = stateEn;
    li.append(
      el("span", "o-sev", sevVi),
      el("span", "o-title", a.title || a.rule),
      state,
      el("span", "o-meta", meta.filter(Boolean).join(" · ")),
      el("span", "o-step", isNum(a.step) && a.step > 0 ? `Đã báo bậc ${a.step} · step ${a.step}` : "Chưa báo · not sent"),
    );
    return li;
  }

  // The alert stage's open and acknowledged alerts, every page of them, from
  // the REST read: the hub's channel holds only the latest changes, and
  // misses those made while this API was away. What the read no longer
  // lists was resolved meanwhile, unless the channel said more since.
  const OPEN_PAGES = 40; // of 500: a wall shows the first dozen anyway
  let touchedSinceRead = null; // ids the channel changed while the read ran

  async function loadOpenAlerts() {
    const A = window.IocAlerts;
    const listed = new Map();
    touchedSinceRead = new Set();
    try {
      let offset = 0;
      for (let page = 0; page < OPEN_PAGES && offset !== null; page++) {
        const answer = await fetch(`api/v1/alerts?state=open,acknowledged&limit=500&offset=${offset}`, {
          headers: A.authHeaders(A.tokenFromAddress()),
          cache: "no-store",
        });
        if (!answer.ok) return;
        const body = await answer.json();
        for (const a of body.alerts || []) listed.set(a.id, a);
        offset = Number.isInteger(body.next_offset) ? body.next_offset : null;
      }
      for (const a of listed.values()) A.merge(state.openAlerts, a);
      for (const [id, a] of state.openAlerts) {
        // kept as resolved, so an older copy in a snapshot cannot bring it back
        if (a.state !== "resolved" && !listed.has(id) && !touchedSinceRead.has(id)) {
          state.openAlerts.set(id, { ...a, state: "resolved" });
        }
      }
      schedule("open");
    } catch (e) {
      // offline or the API away: the websocket's reconnect calls again
    } finally {
      touchedSinceRead = null;
    }
  }

  // -- sensors --------------------------------------------------------------

  // Each sensor: its station (name, measures, alarm lines) from the REST list
  // read at connect, and its status from its channel sensor/{id}; per id the
  // newer by ts wins, whatever came first. History lines come from the REST
  // readings, refreshed every few minutes, never on a message.
  const SENSOR_KINDS = {
    air_quality: ["Chất lượng không khí", "Air quality"],
    water_level: ["Mực nước", "Water level"],
    traffic: ["Giao thông", "Traffic"],
    noise: ["Tiếng ồn", "Noise"],
    rainfall: ["Lượng mưa", "Rainfall"],
  };
  const MEASURES = {
    pm25: ["PM2.5", "µg/m³"], pm10: ["PM10", "µg/m³"], o3: ["O₃", "µg/m³"], no2: ["NO₂", "µg/m³"],
    so2: ["SO₂", "µg/m³"], co: ["CO", "µg/m³"], level: ["", "m"], vehicles: ["", "xe"],
    speed: ["", "km/h"], laeq: ["", "dB(A)"], rain_mm: ["", "mm"],
  };
  const PROBLEMS = {
    silent: ["Mất tín hiệu", "Silent"],
    stuck: ["Giá trị không đổi", "Stuck"],
    out_of_range: ["Ngoài dải đo", "Out of range"],
    clock_skew: ["Lệch đồng hồ", "Clock skew"],
  };
  const ALARMS = ["Dưới báo động I", "Báo động I", "Báo động II", "Báo động III"];
  const ALARMS_EN = ["Below alarm I", "Alarm I", "Alarm II", "Alarm III"];
  const SPARK_MEASURE = { air_quality: "pm25", water_level: "level" };
  const SPARK_EVERY_MS = 5 * 60 * 1000;
  const UNKNOWN_SHOWN = 8; // sensors missing from the stations file: the newest few
  const SVG_NS = "http://www.w3.org/2000/svg";
  const sparks = new Map(); // sensor id -> [{t, v}] of its history line

  function svg(tag, attrs) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    return node;
  }

  // Merge a station or status item into what is held: the newer by ts wins
  // the status fields; the station's fields (name, lines) are kept either way.
  function mergeSensor(item) {
    if (!isObject(item) || typeof item.sensor_id !== "string") return false;
    if (isNum(item.ts)) state.sensorsHeard = true;
    const old = state.sensors.get(item.sensor_id);
    if (!old) state.sensors.set(item.sensor_id, item);
    else if (!isNum(old.ts) || (isNum(item.ts) && item.ts >= old.ts)) state.sensors.set(item.sensor_id, { ...old, ...item });
    else state.sensors.set(item.sensor_id, { ...item, ...old, name: old.name ?? item.name, alarm_levels: old.alarm_levels ?? item.alarm_levels });
    return true;
  }

  async function loadSensors() {
    const A = window.IocAlerts;
    try {
      const answer = await fetch("api/v1/sensors", { headers: A.authHeaders(A.tokenFromAddress()), cache: "no-store" });
      if (!answer.ok) return;
      const body = await answer.json();
      for (const s of body.sensors || []) mergeSensor(s);
      schedule("sensors");
      saveSoon();
      refreshSparks(false);
    } catch (e) {
      // offline or the API away: the websocket's reconnect calls again
    }
  }

  let sparksAt = 0;

  async function refreshSparks(force) {
    if (!force && Date.now() - sparksAt < SPARK_EVERY_MS) return;
    sparksAt = Date.now();
    const A = window.IocAlerts;
    const wanted = [...state.sensors.values()].filter((s) => s.known && SPARK_MEASURE[s.kind]);
    for (const s of wanted) {
      try {
        const id = encodeURIComponent(s.sensor_id);
        const answer = await fetch(`api/v1/sensors/${id}/readings`, { headers: A.authHeaders(A.tokenFromAddress()), cache: "no-store" });
        if (!answer.ok) continue;
        const body = await answer.json();
        const measure = SPARK_MEASURE[s.kind];
        const line = [];
        for (const p of body.points || []) {
          const v = p.values && p.values[measure];
          if (v && isNum(v.mean)) line.push({ t: Date.parse(p.at) / 1000, v: v.mean });
        }
        sparks.set(s.sensor_id, line);
      } catch (e) {
        return; // the API away: the next round tries again
      }
    }
    schedule("sensors");
  }

  // The panel fits a 1920×1080 wall unattended: the configured stations
  // first, compact (air quality as AQI tiles, river gauges as bars, other
  // kinds one line each), then the sensors the stations file lacks. A part
  // that still overflows turns its pages by itself (rotateSensors).
  const LAYOUT = { air_quality: "tile", water_level: "bar" };
  const ROTATE_EVERY_MS = 6000;
  const AQI_STALE_S = 2 * 3600; // an index this much older than its reading is marked old

  function sensorPart(panel, cls) {
    let part = panel.querySelector(`:scope > .${cls}`);
    if (!part) {
      part = el("div", cls);
      panel.append(part);
    }
    return part;
  }

  function sensorGroup(part, key, i, vi, en, layout) {
    let group = part.querySelector(`:scope > section[data-kind="${CSS.escape(String(key))}"]`);
    if (!group) {
      group = el("section", `sensor-group g-${layout}`);
      group.dataset.kind = String(key);
      const h = el("h3", "", vi);
      if (en) h.append(el("small", "", en));
      h.title = en ? `${vi} · ${en}` : vi;
      group.append(h, el("div", "sensor-rows"));
    }
    if (part.children[i] !== group) part.insertBefore(group, part.children[i] || null);
    return group;
  }

  // Names without the words every station of their kind starts with
  // ("Quan trắc không khí Hoàn Kiếm" under "Chất lượng không khí": "Hoàn Kiếm").
  function shortNames(sensors) {
    const names = sensors.filter((s) => s.name).map((s) => String(s.name).split(" "));
    const out = new Map();
    let common = 0;
    if (names.length > 1) {
      const shortest = Math.min(...names.map((w) => w.length));
      while (common < shortest - 1 && names.every((w) => w[common] === names[0][common])) common += 1;
    }
    for (const s of sensors) if (s.name) out.set(s.sensor_id, String(s.name).split(" ").slice(common).join(" "));
    return out;
  }

  function renderSensors() {
    const panel = $('[data-testid="sensors-panel"]');
    const byKind = new Map();
    const unknown = [];
    for (const s of state.sensors.values()) {
      if (s.known === false) {
        unknown.push(s);
        continue;
      }
      if (!byKind.has(s.kind)) byKind.set(s.kind, []);
      byKind.get(s.kind).push(s);
    }
    const known = sensorPart(panel, "sensors-known");
    const extra = sensorPart(panel, "sensors-extra");
    const kinds = [...byKind.keys()].sort((a, b) => kindRank(a) - kindRank(b) || String(a).localeCompare(String(b)));
    const seen = new Set();
    kinds.forEach((kind, i) => {
      const [vi, en] = SENSOR_KINDS[kind] || [String(kind), ""];
      const layout = LAYOUT[kind] || "line";
      const group = sensorGroup(known, kind, i, vi, en, layout);
      seen.add(group);
      renderSensorRows($(".sensor-rows", group), byKind.get(kind), layout);
    });
    for (const child of [...known.children]) if (!seen.has(child)) child.remove();

    unknown.sort((a, b) => (b.ts || 0) - (a.ts || 0));
    const shown = unknown.slice(0, UNKNOWN_SHOWN);
    let group = extra.querySelector(":scope > section");
    if (shown.length) {
      group = sensorGroup(extra, "unknown", 0, "Chưa khai báo", "Not in the stations file", "line");
      renderSensorRows($(".sensor-rows", group), shown, "line");
    } else if (group) group.remove();
    let note = extra.querySelector('[data-testid="sensors-unknown"]');
    const hidden = unknown.length - shown.length;
    if (hidden > 0) {
      if (!note) {
        note = el("p", "sensors-unknown");
        note.dataset.testid = "sensors-unknown";
        extra.append(note);
      }
      setText(note, `+${int(hidden)} cảm biến chưa khai báo · not in the stations file`, false);
    } else if (note) note.remove();
    extra.hidden = extra.children.length === 0;
  }

  // Turn the pages of a part that overflows: one step every few seconds,
  // back to the top after the last; no one is there to scroll a wall.
  function rotateSensors() {
    const reduced = window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;
    for (const part of document.querySelectorAll('[data-testid="sensors-panel"] > div')) {
      const max = part.scrollHeight - part.clientHeight;
      part.dataset.overflow = String(max > 1);
      if (max <= 1) {
        if (part.scrollTop) part.scrollTop = 0;
        continue;
      }
      const step = Math.max(20, part.clientHeight - 4); // a page, the last line's edge kept
      const next = part.scrollTop >= max - 1 ? 0 : Math.min(max, part.scrollTop + step);
      part.scrollTo({ top: next, behavior: reduced ? "auto" : "smooth" });
    }
  }

  function kindRank(kind) {
    const i = Object.keys(SENSOR_KINDS).indexOf(kind);
    return i < 0 ? 99 : i;
  }

  function renderSensorRows(box, sensors, layout) {
    sensors.sort(
      (a, b) =>
        Number(a.known === false) - Number(b.known === false) ||
        String(a.area_label || a.area).localeCompare(String(b.area_label || b.area), "vi") ||
        String(a.sensor_id).localeCompare(String(b.sensor_id)),
    );
    const short = shortNames(sensors);
    const seen = new Set();
    sensors.forEach((s, i) => {
      let row = box.querySelector(`[data-sensor="${CSS.escape(String(s.sensor_id))}"]`);
      if (!row) {
        row = el("div", `sensor s-${layout}`);
        row.dataset.sensor = String(s.sensor_id);
        row.dataset.testid = "sensor";
        row.append(el("span", "s-area"), el("span", "s-ts"), el("div", "s-main"), el("span", "s-health"));
        row.children[3].dataset.testid = "sensor-health";
      }
      if (box.children[i] !== row) box.insertBefore(row, box.children[i] || null);
      seen.add(row);
      // a sensor the file lacks is known by its id first
      const place = s.name ? short.get(s.sensor_id) || String(s.name) : `${s.sensor_id} · ${s.area_label || s.area}`;
      setText(row.children[0], place, false);
      row.children[0].title = `${s.name ? s.name + " · " : ""}${s.sensor_id} · ${s.area_label || s.area}`;
      row.dataset.known = String(s.known !== false);
      setText(row.children[1], isNum(s.ts) ? vnTime(s.ts).hm : "", false);
      row.children[1].title = isNum(s.ts) ? `Số đo lúc ${vnTime(s.ts).hm} · reading at` : "Chưa có số đo · no reading yet";
      const main = row.children[2];
      const shape =
        s.known === false ? "plain" : s.kind === "air_quality" ? "air" : s.kind === "water_level" && Array.isArray(s.alarm_levels) ? "water" : "plain";
      if (main.dataset.shape !== shape) {
        main.replaceChildren();
        main.dataset.shape = shape;
      }
      if (shape === "air") {
        renderAir(main, s);
        renderSpark(row, s, 48, 14);
      } else if (shape === "water") {
        renderWater(main, s);
        renderSpark(main, s, 40, 14);
      }
      else renderValues(main, s);
      renderHealth(row, s);
    });
    for (const row of [...box.children]) if (!seen.has(row)) row.remove();
  }

  function renderValues(box, s) {
    let values = $(".s-values", box);
    if (!values) {
      values = el("span", "s-values");
      box.prepend(values);
    }
    const entries = Object.entries(s.values || {});
    values.dataset.empty = String(entries.length === 0);
    if (!entries.length) values.replaceChildren();
    for (const [name, v] of entries) {
      let m = values.querySelector(`[data-measure="${CSS.escape(name)}"]`);
      if (!m) {
        const [label, unit] = MEASURES[name] || [name, ""];
        m = el("span", "m");
        m.dataset.measure = name;
        if (label) m.append(el("span", "m-k", label));
        m.append(el("b", "m-v"), el("span", "m-u", unit));
        values.append(m);
      }
      setText($(".m-v", m), num(v));
    }
    return values;
  }

  // VN_AQI: the index on its band's colour, the band named in both
  // languages, and the hour the index is of ("lúc 13:00"), marked when it
  // lags the station's reading; no index is "no data", never 0.
  function renderAir(box, s) {
    let badge = $(".aqi", box);
    let meta = $(".aqi-meta", box);
    if (!badge) {
      badge = el("span", "aqi");
      badge.dataset.testid = "aqi";
      meta = el("div", "aqi-meta");
      const at = el("span", "aqi-at");
      at.dataset.testid = "aqi-at";
      meta.append(at);
      box.prepend(badge, meta);
    }
    const vn = s.aqi && isObject(s.aqi.vn) ? s.aqi.vn : null;
    const at = $(".aqi-at", meta);
    if (vn && isNum(vn.index)) {
      badge.dataset.band = String(vn.band || "");
      badge.dataset.value = String(vn.index);
      badge.style.backgroundColor = typeof vn.colour === "string" ? vn.colour : "";
      badge.style.color = isDarkBand(vn.band) ? "#fff" : "#111";
      const text = `${vn.index} · ${vn.label_vi || ""} / ${vn.label_en || ""}`;
      if (badge.textContent !== text) {
        const had = badge.dataset.filled === "1";
        badge.replaceChildren(el("b", "aqi-i", String(vn.index)), " · ", el("span", "aqi-vi", vn.label_vi || ""), " / ", el("span", "aqi-en", vn.label_en || ""));
        badge.dataset.filled = "1";
        if (had) {
          const next = badge.classList.contains("flash-a") ? "flash-b" : "flash-a";
          badge.classList.remove("flash-a", "flash-b");
          badge.classList.add(next);
        }
      }
      const hour = isNum(vn.hour) ? vnTime(vn.hour) : null;
      badge.title = `VN_AQI${hour ? " " + hour.hm : ""} · ${vn.dominant || ""}`;
      const ref = isNum(s.ts) ? s.ts : Date.now() / 1000;
      const lag = hour ? ref - vn.hour : 0;
      const day = hour && lag > 20 * 3600 ? ` ${hour.dm}` : "";
      setText(at, hour ? `lúc ${hour.hm}${day}` : "", false);
      at.dataset.hour = hour ? String(vn.hour) : "";
      at.dataset.stale = String(lag > AQI_STALE_S);
      at.title = hour ? `Chỉ số giờ kết thúc ${hour.hm} ${hour.dm} · index of the hour ending` : "";
    } else {
      badge.dataset.band = "none";
      badge.dataset.value = "";
      badge.style.backgroundColor = "";
      badge.style.color = "";
      setText(badge, "Không có dữ liệu / No data");
      badge.title = "";
      setText(at, "", false);
      at.dataset.hour = "";
      at.dataset.stale = "false";
    }
    const values = renderValues(meta, { values: s.values && isNum(s.values.pm25) ? { pm25: s.values.pm25 } : {} });
    if (values.previousSibling !== at) at.after(values);
  }

  const isDarkBand = (band) => band === "bad" || band === "very_bad" || band === "hazardous";

  // A water-level station: the level against its lines I/II/III, on a small
  // bar with the three lines drawn and the level marked, and the reached line named.
  function renderWater(box, s) {
    const lines = s.alarm_levels.map(Number);
    const level = s.values && isNum(s.values.level) ? s.values.level : null;
    let reached = s.flood && Number.isInteger(s.flood.level) ? s.flood.level : null;
    if (reached === null && level !== null) reached = lines.filter((l) => level >= l).length;
    let gauge = $(".gauge", box);
    if (!gauge) {
      gauge = svg("svg", { class: "gauge", width: 160, height: 22, viewBox: "0 0 160 22", "data-testid": "flood-gauge" });
      gauge.append(svg("rect", { class: "g-track", x: 0, y: 7, width: 160, height: 8, rx: 2 }));
      gauge.append(svg("rect", { class: "g-fill", x: 0, y: 7, width: 0, height: 8, rx: 2 }));
      lines.forEach((_, i) => {
        gauge.append(svg("line", { class: `g-line g-line-${i + 1}`, y1: 2, y2: 20, "data-line": i + 1 }));
      });
      gauge.append(svg("line", { class: "g-mark", y1: 0, y2: 22, "data-testid": "level-mark" }));
      const text = el("span", "w-level");
      text.dataset.testid = "water-level";
      const alarm = el("span", "w-alarm");
      alarm.dataset.testid = "flood-level";
      box.prepend(text, gauge, alarm);
    }
    const span = lines[2] - lines[0] || 1;
    const low = Math.min(lines[0] - span, level ?? lines[0]);
    const high = Math.max(lines[2] + span * 0.5, level ?? lines[2]);
    const x = (v) => Math.round(((v - low) / (high - low)) * 1600) / 10;
    lines.forEach((l, i) => {
      const line = gauge.querySelector(`.g-line-${i + 1}`);
      line.setAttribute("x1", String(x(l)));
      line.setAttribute("x2", String(x(l)));
      line.dataset.x = String(x(l));
    });
    const mark = $(".g-mark", gauge);
    mark.style.display = level === null ? "none" : "";
    const at = level === null ? 0 : x(level);
    mark.setAttribute("x1", String(at));
    mark.setAttribute("x2", String(at));
    mark.dataset.x = String(at);
    $(".g-fill", gauge).setAttribute("width", String(at));
    gauge.dataset.level = String(reached ?? "");
    const text = $(".w-level", box);
    text.dataset.value = level === null ? "" : String(level);
    setText(text, level === null ? "— m" : `${nf2.format(level)} m`);
    const alarm = $(".w-alarm", box);
    alarm.dataset.level = String(reached ?? "");
    const rising = s.flood && s.flood.rising ? " ↑" : "";
    setText(alarm, reached === null ? "Không có dữ liệu / No data" : `${ALARMS[reached]}${rising}`, false);
    alarm.title = reached === null ? "" : ALARMS_EN[reached] + ` · I ${num(lines[0])} / II ${num(lines[1])} / III ${num(lines[2])} m`;
  }

  // The history line: drawn from the REST readings, w×h.
  function renderSpark(box, s, w, h) {
    const line = sparks.get(s.sensor_id);
    let node = $(".spark", box);
    if (!line || line.length < 2) {
      if (node) node.remove();
      return;
    }
    if (!node) {
      node = svg("svg", { class: "spark", width: w, height: h, viewBox: `0 0 ${w} ${h}`, preserveAspectRatio: "none", "data-testid": "sparkline" });
      node.append(svg("polyline", { fill: "none" }));
      box.append(node);
    }
    const t0 = line[0].t;
    const t1 = line[line.length - 1].t;
    let lo = Math.min(...line.map((p) => p.v));
    let hi = Math.max(...line.map((p) => p.v));
    if (hi === lo) {
      hi += 1;
      lo -= 1;
    }
    const pts = line.map((p) => {
      const px = t1 > t0 ? ((p.t - t0) / (t1 - t0)) * (w - 2) + 1 : 1;
      const py = h - 2 - ((p.v - lo) / (hi - lo)) * (h - 4);
      return `${px.toFixed(1)},${py.toFixed(1)}`;
    });
    $("polyline", node).setAttribute("points", pts.join(" "));
    node.dataset.points = String(line.length);
    node.setAttribute("aria-label", `${MEASURES[SPARK_MEASURE[s.kind]][0] || SPARK_MEASURE[s.kind]} 24 h`);
  }

  function renderHealth(row, s) {
    const node = row.children[3];
    const problems = s.health && isObject(s.health.problems) ? Object.entries(s.health.problems) : [];
    const faulty = s.health && s.health.ok === false;
    row.dataset.health = faulty ? "faulty" : s.health ? "ok" : "";
    node.hidden = !faulty;
    if (!faulty) return;
    const names = problems.map(([k]) => (PROBLEMS[k] ? PROBLEMS[k][0] : k));
    setText(node, "⚠ " + (names.join(", ") || "Lỗi cảm biến"), false);
    node.dataset.problems = problems.map(([k]) => k).join(" ");
    node.title = problems.map(([k, why]) => `${PROBLEMS[k] ? PROBLEMS[k][1] : k}: ${why}`).join("\n");
  }

  // -- status ---------------------------------------------------------------

  function setStatus(kind, text) {
    const node = $('[data-testid="connection-status"]');
    state.link = kind;
    node.dataset.state = kind;
    node.textContent = text;
    renderLink();
  }

  function hasFigures() {
    const { province, communes, agencies, alerts, sensors } = state;
    return province !== null || communes.size > 0 || agencies.size > 0 || alerts.length > 0 || state.sensorsHeard;
  }

  // Whether the page holds figures of ``channel``: only those are resumed.
  function holds(channel) {
    const unit = unitOf(channel);
    if (unit) return state[unit].has(channel);
    if (channel === "kpi/province") return state.province !== null;
    if (channel === "alerts") return state.alerts.length > 0;
    if (channel === "alerts/state") return state.openAlerts.size > 0;
    return channel.startsWith("sensor/") && state.sensors.has(channel.slice(7));
  }

  // The figures stay on screen whatever the link does; these say how old they are.
  function markStale(since) {
    if (state.staleSince === null) state.staleSince = since;
    renderLink();
  }

  function markLive() {
    state.staleSince = null;
    renderLink();
  }

  function renderLink() {
    const stale = state.staleSince !== null && hasFigures();
    document.body.toggleAttribute("data-stale", stale);
    const note = $('[data-testid="stale-note"]');
    note.hidden = !stale;
    if (stale) {
      const t = vnTime(state.staleSince / 1000);
      const today = vnTime(Date.now() / 1000).date === t.date;
      setText($("#stale-since"), today ? t.time : `${t.time} ${t.dm}`, false);
    }
    // Nothing to show yet: say why rather than leave bare dashes.
    const waiting = $('[data-testid="waiting"]');
    waiting.hidden = hasFigures();
    const why =
      state.link === "connected"
        ? "Đang chờ số liệu… · Waiting for figures"
        : state.link === "refused"
          ? "Máy chủ từ chối mã truy cập · Access token refused"
          : "Đang kết nối tới máy chủ IOC… · Connecting to the IOC server";
    setText(waiting, why, false);
  }

  function renderStatus() {
    setText($('[data-testid="message-count"]'), nf0.format(state.messages), false);
    if (state.lastUpdate !== null) setText($("#last-update"), vnTime(state.lastUpdate).time, false);
    renderLink();
  }

  // -- rendering, batched per frame -------------------------------------------

  const dirty = new Set();
  let scheduled = false;

  function schedule(part) {
    dirty.add(part);
    if (scheduled) return;
    scheduled = true;
    // Hidden pages get no animation frames; a timer keeps them current.
    if (document.hidden) setTimeout(flush, 250);
    else requestAnimationFrame(flush);
  }

  function flush() {
    scheduled = false;
    const parts = new Set(dirty);
    dirty.clear();
    if (parts.has("names")) alertsRebuild = true; // alerts and sensors show unit names
    if (parts.has("communes")) renderUnits("communes");
    if (parts.has("agencies")) renderUnits("agencies");
    if (parts.has("tiles")) renderTiles();
    if (parts.has("alerts") || parts.has("names")) renderAlerts();
    if (parts.has("open") || parts.has("names")) renderOpenAlerts();
    if (parts.has("sensors") || parts.has("names")) renderSensors();
    renderStatus();
  }

  function selectWindow(name) {
    if (!WINDOWS[name]) return;
    state.window = name;
    for (const b of document.querySelectorAll(".windows button")) {
      b.setAttribute("aria-selected", String(b.dataset.window === name));
    }
    $("#window-name").textContent = WINDOWS[name];
    $("#commune-window").textContent = WINDOWS[name];
    $("#agency-window").textContent = WINDOWS[name];
    schedule("tiles");
    schedule("communes");
    schedule("agencies");
  }

  // -- messages ---------------------------------------------------------------

  function onMessage(msg) {
    state.messages++;
    if (msg.type === "snapshot" || msg.type === "delta") apply(msg);
    else if (msg.type === "heartbeat" && isNum(msg.at)) showClock(msg.at);
    else if (msg.type === "pong") markLive(); // see connect(): the catch-up is over
    else if (msg.type === "error") console.warn("hub refused a message:", msg.reason);
    schedule("status");
  }

  const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

  // A snapshot replaces what is shown, in place. One that carries nothing
  // (no value, no items, no readings) is ignored rather than allowed to
  // blank a panel: it can only mean that the hub does not know yet.
  function apply(msg) {
    const { channel, data } = msg;
    const unit = unitOf(channel); // "communes", "agencies" or undefined
    if (channel === "kpi/province") {
      if (!isObject(data)) return;
      state.province = data;
      markLive();
      schedule("tiles");
    } else if (unit) {
      if (!isObject(data)) return;
      const known = state[unit].get(channel);
      if (!known || known.label !== data.label) schedule("names");
      state[unit].set(channel, data);
      schedule(unit);
    } else if (channel === "alerts") {
      if (msg.type === "snapshot") {
        if (!Array.isArray(data) || !data.length) return;
        state.alerts = data.slice(-MAX_ALERTS).reverse();
        alertsRebuild = true;
      } else {
        if (!isObject(data)) return;
        alertsNew.push(data);
        state.alerts.unshift(data);
        state.alerts.length = Math.min(state.alerts.length, MAX_ALERTS);
      }
      schedule("alerts");
    } else if (channel === "alerts/state") {
      const items = msg.type === "snapshot" ? data : [data];
      if (!Array.isArray(items)) return;
      for (const item of items) {
        if (!isObject(item) || !window.IocAlerts.merge(state.openAlerts, item.alert)) continue;
        if (touchedSinceRead) touchedSinceRead.add(item.alert.id);
      }
      schedule("open");
    } else if (channel.startsWith("sensor/")) {
      if (!mergeSensor(data)) return;
      schedule("sensors");
    } else {
      return;
    }
    if (isNum(msg.seq)) state.seqs[channel] = msg.seq;
    state.lastUpdate = Date.now() / 1000;
    saveSoon();
  }

  // -- keeping the figures across a reload -------------------------------------

  // sessionStorage: per tab, so two walls in one browser keep their own, and
  // gone with the tab. Saved together, figures and seqs always match, so a
  // resume from them asks the hub for exactly what they lack.
  let saveTimer = 0;

  function saveSoon() {
    if (!saveTimer) saveTimer = setTimeout(save, SAVE_EVERY_MS);
  }

  function save() {
    clearTimeout(saveTimer);
    saveTimer = 0;
    if (!hasFigures()) return;
    const clockAt = Number($('[data-testid="ioc-clock"]').dataset.at) || null;
    const saved = {
      v: STORE_VERSION,
      savedAt: Date.now(),
      staleSince: state.staleSince,
      province: state.province,
      communes: [...state.communes],
      agencies: [...state.agencies],
      alerts: state.alerts,
      openAlerts: window.IocAlerts.active(state.openAlerts),
      sensors: [...state.sensors.values()],
      seqs: state.seqs,
      lastUpdate: state.lastUpdate,
      clockAt,
    };
    try {
      sessionStorage.setItem(STORE_KEY, JSON.stringify(saved));
    } catch (e) {
      // full or unavailable (private mode): live figures matter more than kept ones
      try {
        sessionStorage.removeItem(STORE_KEY);
      } catch (e2) {
        /* no storage at all */
      }
    }
  }

  function restore() {
    let saved;
    try {
      saved = JSON.parse(sessionStorage.getItem(STORE_KEY) || "null");
    } catch (e) {
      return;
    }
    if (!isObject(saved) || saved.v !== STORE_VERSION) return;
    const entries = (v) => (Array.isArray(v) ? v.filter((e) => Array.isArray(e) && isObject(e[1])) : []);
    if (isObject(saved.province)) state.province = saved.province;
    state.communes = new Map(entries(saved.communes));
    state.agencies = new Map(entries(saved.agencies));
    if (Array.isArray(saved.alerts)) state.alerts = saved.alerts.filter(isObject).slice(0, MAX_ALERTS);
    if (Array.isArray(saved.sensors)) for (const s of saved.sensors) mergeSensor(s);
    if (Array.isArray(saved.openAlerts)) {
      for (const a of saved.openAlerts) if (isObject(a)) window.IocAlerts.merge(state.openAlerts, a);
    }
    if (isObject(saved.seqs)) {
      for (const [channel, seq] of Object.entries(saved.seqs)) {
        if (Number.isInteger(seq) && seq >= 0 && holds(channel)) state.seqs[channel] = seq;
      }
    }
    if (isNum(saved.lastUpdate)) state.lastUpdate = saved.lastUpdate;
    if (isNum(saved.clockAt)) showClock(saved.clockAt);
    if (!hasFigures()) return;
    // stale from when the previous page stopped being live
    markStale(isNum(saved.staleSince) ? saved.staleSince : isNum(saved.savedAt) ? saved.savedAt : Date.now());
    alertsRebuild = true;
    for (const part of ["tiles", "communes", "agencies", "names", "alerts", "open", "sensors"]) dirty.add(part);
    flush(); // now, not at the next frame: on screen before the websocket is even dialled
  }

  // -- websocket ---------------------------------------------------------------

  let socket = null;
  let attempt = 0;
  let watchdog = 0;
  let redial = 0;

  function wsUrl() {
    const url = new URL("ws", location.href); // /ws next to this page
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    const token = new URLSearchParams(location.search).get("token");
    url.search = token ? "?token=" + encodeURIComponent(token) : "";
    url.hash = "";
    return url.href;
  }

  function connect() {
    redial = 0;
    setStatus(attempt ? "reconnecting" : "connecting", attempt ? "Đang kết nối lại… · Reconnecting" : "Đang kết nối… · Connecting");
    const ws = new WebSocket(wsUrl());
    socket = ws;
    ws.onopen = () => {
      setStatus("connected", "● Đã kết nối · Connected");
      const sub = { op: "subscribe", channels: CHANNELS };
      if (Object.keys(state.seqs).length) sub.resume = state.seqs; // only what we missed
      ws.send(JSON.stringify(sub));
      // The hub answers in order: the pong comes after every snapshot and
      // missed delta the subscription queued, so at the pong the figures are
      // as live as the hub's (a hub that has nothing for a channel yet, a
      // new API still loading, sends it as soon as it has).
      ws.send(JSON.stringify({ op: "ping" }));
      alive();
      loadOpenAlerts(); // after subscribing: any change after this read comes as a delta
      loadSensors(); // likewise; per sensor the newer by ts wins
    };
    ws.onmessage = (ev) => {
      attempt = 0; // reset the backoff only once the hub really talks to us
      alive();
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch (e) {
        return;
      }
      if (msg && typeof msg === "object") onMessage(msg);
    };
    ws.onclose = (ev) => retry(ws, ev.code);
    ws.onerror = () => {}; // onclose follows
  }

  // A half-open link may never fire onclose: forget the socket and dial again.
  function retry(ws, code) {
    if (ws !== socket) return;
    socket = null;
    clearTimeout(watchdog);
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    try {
      ws.close(4000, "reconnect");
    } catch (e) {
      /* already closed */
    }
    markStale(Date.now());
    // 1008: wrong or missing token. Only a change on the server can help,
    // so keep trying, slowly, and say why.
    const refused = code === 1008;
    const base = refused ? REFUSED_MS : BACKOFF_MS[Math.min(attempt, BACKOFF_MS.length - 1)];
    const delay = Math.round(base * (0.75 + Math.random() * 0.5)); // jitter: screens do not stampede
    attempt++;
    if (refused) setStatus("refused", "Máy chủ từ chối mã truy cập · Token refused");
    else setStatus("reconnecting", `Mất kết nối, thử lại sau ${Math.ceil(delay / 1000)} giây · Reconnecting`);
    redial = setTimeout(connect, delay);
  }

  // The network is back (a cable, Wi-Fi): dial now rather than at the next attempt.
  function redialNow() {
    if (socket !== null || !redial) return;
    clearTimeout(redial);
    redial = 0;
    connect();
  }

  function alive() {
    clearTimeout(watchdog);
    const ws = socket;
    watchdog = setTimeout(() => retry(ws), STALE_MS);
  }

  // -- start ------------------------------------------------------------------

  function start() {
    for (const b of document.querySelectorAll(".windows button")) {
      b.addEventListener("click", () => selectWindow(b.dataset.window));
    }
    document.addEventListener("keydown", (ev) => {
      const name = Object.keys(WINDOWS)[Number(ev.key) - 1];
      if (name) selectWindow(name);
    });
    const initial = new URLSearchParams(location.search).get("window");
    selectWindow(WINDOWS[initial] ? initial : "today");
    restore();
    addEventListener("pagehide", save);
    addEventListener("online", redialNow);
    // The page itself, for a reload while the API is down (see wall-sw.js).
    // Browsers offer service workers on https and localhost only; where
    // there are none, or the API does not serve the worker, the page works
    // as before.
    if ("serviceWorker" in navigator) navigator.serviceWorker.register("wall-sw.js").catch(() => {});
    renderLink();
    setInterval(() => refreshSparks(true), SPARK_EVERY_MS);
    setInterval(rotateSensors, ROTATE_EVERY_MS);
    connect();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
