// Alerts as the wall and the console show them: labels in Vietnamese and
// English, the token to read them with, and which of two copies of one alert
// is the newer. A page reads alerts twice over, from GET /api/v1/alerts and
// from the hub's "alerts/state" channel (whose snapshot holds older rows),
// and the copies race: the newer one must win whatever order they arrive in.
(function () {
  "use strict";

  const STATES = {
    open: ["Mới", "Open"],
    acknowledged: ["Đã tiếp nhận", "Acknowledged"],
    resolved: ["Đã xử lý", "Resolved"],
  };
  const SEVERITIES = {
    critical: ["Khẩn cấp", "Critical"],
    major: ["Nghiêm trọng", "Major"],
    warning: ["Cảnh báo", "Warning"],
    info: ["Thông tin", "Info"],
  };
  const SEVERITY_RANK = { critical: 4, major: 3, warning: 2, info: 1 };
  const STATE_RANK = { open: 1, acknowledged: 2, resolved: 3 };
  // Resolved alerts are remembered (not shown) so an older copy of one, in a
  // snapshot, cannot bring it back; this many at most.
  const RESOLVED_KEPT = 2000;

  const n = (v) => (typeof v === "number" && isFinite(v) ? v : 0);

  // The count only grows (a repeat or a re-opening adds one); between two
  // counts the state only moves forward (open, acknowledged, resolved), and
  // steps, last_seen and peak only grow. So the copy larger in this order is
  // the newer or the same, a re-opened alert's (count up, state back to
  // open) included.
  function version(a) {
    return [n(a.count), STATE_RANK[a.state] || 0, n(a.step), Date.parse(a.last_seen) || 0, n(a.peak)];
  }

  function isNewer(a, b) {
    const va = version(a);
    const vb = version(b);
    for (let i = 0; i < va.length; i++) if (va[i] !== vb[i]) return va[i] > vb[i];
    return false;
  }

  // Put ``alert`` into ``byId`` (id -> alert) unless a newer copy is there;
  // true when it changed what the map holds.
  function merge(byId, alert) {
    if (!alert || typeof alert.id !== "string") return false;
    const old = byId.get(alert.id);
    if (old && !isNewer(alert, old)) return false;
    byId.set(alert.id, alert);
    if (alert.state === "resolved" && byId.size > RESOLVED_KEPT) {
      for (const [id, a] of byId) {
        if (byId.size <= RESOLVED_KEPT) break;
        if (a.state === "resolved" && id !== alert.id) byId.delete(id);
      }
    }
    return true;
  }

  // Open and acknowledged ones, most severe first, then the newest.
  function active(byId) {
    return [...byId.values()]
      .filter((a) => a.state !== "resolved")
      .sort(
        (a, b) =>
          (SEVERITY_RANK[b.severity] || 0) - (SEVERITY_RANK[a.severity] || 0) ||
          (Date.parse(b.opened_at) || 0) - (Date.parse(a.opened_at) || 0) ||
          a.id.localeCompare(b.id),
      );
  }

  // "dossier:H01.…" -> "H01.…"; "commune:00166" -> the commune's name if known.
  function subjectLabel(a, unitName) {
    const [kind, ...rest] = String(a.subject || "").split(":");
    const key = rest.join(":");
    if (kind === "dossier") return key;
    const named = unitName ? unitName(kind, key) : "";
    return named || String(a.subject || "");
  }

  // The page's token: ?token= in its address (as the wall's websocket uses it).
  function tokenFromAddress() {
    return new URLSearchParams(location.search).get("token") || "";
  }

  function authHeaders(token) {
    return token ? { Authorization: "Bearer " + token } : {};
  }

  window.IocAlerts = {
    STATES,
    SEVERITIES,
    merge,
    active,
    subjectLabel,
    tokenFromAddress,
    authHeaders,
  };
})();
