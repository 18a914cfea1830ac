// otpgate test sign-in page: SMS-based sign-in against the same-origin API, no build step.
"use strict";
(() => {
  const KEY_STORAGE = "otpgate.signinKey";
  const TENANT_STORAGE = "otpgate.signinTenant";
  const API_BASE = new URL("../v1/", location.href); // the page is served at /admin/signin.html
  const CLAIMS = {
    iss: "Issuer", aud: "Audience (the client's name)", sub: "Subject (user id)", tid: "Tenant id",
    iat: "Issued at", exp: "Expires at", nbf: "Not before", jti: "Token id", auth_time: "Time of authentication",
    amr: "Authentication methods", phone_method_id: "Phone method used", name: "Display name",
    preferred_username: "User principal name",
  };
  const TIME_CLAIMS = new Set(["iat", "exp", "nbf", "auth_time"]);
  const PHONE_METHODS = {
    "3179e48a-750b-4051-897c-87b9720928f7": "mobile",
    "b6332ec1-7057-4abe-9331-3d72feddfe41": "alternateMobile",
    "e37fc753-ff3b-4958-9484-eaa9425c82bc": "office",
  };

  const $ = (sel) => document.querySelector(sel);
  let flow = null; // {id, phone, expiresAt}
  let expiryTimer = null;

  function h(tag, props, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v == null || v === false) continue;
      if (k === "class") el.className = v;
      else el.setAttribute(k, v);
    }
    for (const kid of kids.flat(Infinity)) if (kid != null && kid !== false) el.append(kid instanceof Node ? kid : String(kid));
    return el;
  }

  // ---------- errors ----------
  function showError(problem, context) {
    const slug = String(problem.type || "").replace(/^urn:otpgate:problem:/, "");
    const entry = h("div", {},
      h("strong", {}, context ? `${context}: ` : "", problem.title || "Error"),
      problem.detail ? [" \u2014 ", h("span", { class: "detail" }, problem.detail)] : null);
    const meta = [problem.status ? `HTTP ${problem.status}` : null, slug || null].filter(Boolean).join(" \u00b7 ");
    if (meta) entry.append(h("div", { class: "meta" }, meta));
    $("#error-text").append(entry);
    $("#error").hidden = false;
  }
  function clearError() {
    $("#error-text").replaceChildren();
    $("#error").hidden = true;
  }

  async function post(path, body) {
    const key = $("#signin-key").value.trim();
    let res;
    try {
      res = await fetch(new URL(path, API_BASE), {
        method: "POST", cache: "no-store", credentials: "omit",
        headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json", Accept: "application/json, application/problem+json" },
        body: JSON.stringify(body),
      });
    } catch (e) {
      throw { title: "Network error", detail: String((e && e.message) || e) };
    }
    const text = await res.text();
    let data = null;
    if (text) { try { data = JSON.parse(text); } catch { data = null; } }
    if (!res.ok) {
      const p = data && typeof data === "object" ? { ...data } : { detail: text.slice(0, 400) };
      p.status = p.status || res.status;
      p.title = p.title || res.statusText || `HTTP ${res.status}`;
      throw p;
    }
    return data || {};
  }

  // ---------- JWT ----------
  function b64urlToText(part) {
    let s = part.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) s += "=";
    const bin = atob(s);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  }
  function decodeJwt(jwt) {
    const parts = String(jwt || "").split(".");
    if (parts.length !== 3) throw new Error("the assertion is not a JWT (expected three dot-separated parts)");
    return { header: JSON.parse(b64urlToText(parts[0])), payload: JSON.parse(b64urlToText(parts[1])) };
  }
  function fmtTime(sec) {
    const d = new Date(sec * 1000);
    return Number.isNaN(d.getTime()) ? "" : d.toISOString().replace(".000Z", "Z");
  }

  // ---------- steps ----------
  function setBusy(btn, busy) { btn.disabled = busy; }
  function tickExpiry() {
    const el = $("#expiry");
    if (!flow || !flow.expiresAt) { el.textContent = ""; return; }
    const left = Math.max(0, Math.round((flow.expiresAt - Date.now()) / 1000));
    el.textContent = left > 0
      ? `The code expires in ${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}.`
      : "The code has probably expired; send a new one if signing in fails.";
  }
  function endFlow() {
    flow = null;
    clearInterval(expiryTimer);
    $("#code-form").hidden = true;
    $("#code").value = "";
    $("#send-code").textContent = "Send code";
    $("#start-form").classList.remove("done");
  }
  function showResult(status, content) {
    const r = $("#result");
    r.className = `result status-${status}`;
    r.dataset.status = status;
    r.replaceChildren(...content);
    r.hidden = false;
  }
  function hideResult() {
    const r = $("#result");
    r.hidden = true;
    r.replaceChildren();
    delete r.dataset.status;
    $("#claims-box").hidden = true;
    $("#claims tbody").replaceChildren();
    $("#assertion").value = "";
    $("#jwt-header").textContent = "";
  }

  async function sendCode(ev) {
    ev.preventDefault();
    clearError();
    hideResult();
    const btn = $("#send-code");
    const key = $("#signin-key").value.trim();
    const tenant = $("#tenant").value.trim();
    const phone = $("#phone").value.trim();
    if (!key || !tenant || !phone) { showError({ title: "Missing input", detail: "Enter the sign-in key, the tenant and the phone number." }); return; }
    sessionStorage.setItem(KEY_STORAGE, key);
    sessionStorage.setItem(TENANT_STORAGE, tenant);
    setBusy(btn, true);
    try {
      const data = await post("signin/sms/start", { tenant, phone });
      if (!data.flow) throw { title: "Unexpected answer", detail: "the answer has no flow id" };
      flow = { id: data.flow, phone, expiresAt: data.expires_in ? Date.now() + data.expires_in * 1000 : null };
      $("#sent-info").textContent = `If ${phone} is registered for SMS sign-in in ${tenant}, a text message with a code is on its way. Enter the code.`;
      $("#code-form").hidden = false;
      $("#start-form").classList.add("done");
      $("#send-code").textContent = "Send a new code";
      $("#code").value = "";
      $("#code").focus();
      clearInterval(expiryTimer);
      tickExpiry();
      expiryTimer = setInterval(tickExpiry, 1000);
    } catch (p) {
      showError(p instanceof Error ? { title: "Error", detail: p.message } : p, "Sending the code");
    } finally {
      setBusy(btn, false);
    }
  }

  async function signIn(ev) {
    ev.preventDefault();
    clearError();
    if (!flow) { showError({ title: "No code sent", detail: "Send a code first." }); return; }
    const code = $("#code").value.replace(/\s+/g, "");
    if (!code) { showError({ title: "Missing code", detail: "Enter the code from the text message." }); return; }
    const btn = $("#sign-in");
    setBusy(btn, true);
    try {
      const data = await post("signin/sms/complete", { flow: flow.id, code });
      const status = data.status || "unknown";
      if (status === "approved") approved(data);
      else retry(status, data);
    } catch (p) {
      showError(p instanceof Error ? { title: "Error", detail: p.message } : p, "Signing in");
    } finally {
      setBusy(btn, false);
    }
  }

  function approved(data) {
    let jwt;
    try {
      jwt = decodeJwt(data.assertion);
    } catch (e) {
      showResult("approved", [h("div", { class: "headline" }, "Approved, but the assertion could not be read"), h("div", {}, String(e.message || e))]);
      endFlow();
      return;
    }
    const c = jwt.payload;
    const name = c.name || c.preferred_username || c.sub || data.user_id || "unknown user";
    const method = PHONE_METHODS[c.phone_method_id || data.phone_method_id];
    showResult("approved", [
      h("div", { class: "headline", id: "signed-in-as" }, `Signed in as ${name}`),
      h("div", { class: "muted" },
        c.preferred_username ? `${c.preferred_username} \u00b7 ` : "",
        `user ${c.sub || data.user_id || "?"}`,
        method ? ` \u00b7 ${method} phone` : "",
        data.expires_in ? ` \u00b7 assertion valid for ${data.expires_in} s` : ""),
      h("div", { class: "meta muted small-text" }, "status: approved"),
    ]);
    const rows = Object.entries(c).map(([k, v]) => h("tr", { "data-claim": k },
      h("td", { class: "mono" }, k),
      h("td", { class: "claim-value" }, typeof v === "string" ? v : JSON.stringify(v),
        TIME_CLAIMS.has(k) && typeof v === "number" ? h("span", { class: "muted small-text" }, ` (${fmtTime(v)})`) : null),
      h("td", { class: "muted" }, CLAIMS[k] || "")));
    $("#claims tbody").replaceChildren(...rows);
    $("#jwt-header").textContent = `Header: alg ${jwt.header.alg || "?"}${jwt.header.kid ? `, kid ${jwt.header.kid}` : ""}${jwt.header.typ ? `, typ ${jwt.header.typ}` : ""}. Verify the signature with /.well-known/jwks.json.`;
    $("#assertion").value = data.assertion;
    $("#claims-box").hidden = false;
    endFlow();
  }

  function retry(status, data) {
    let headline;
    let hint;
    switch (status) {
      case "denied":
        headline = "Wrong code";
        hint = typeof data.attempts_left === "number"
          ? `${data.attempts_left} attempt${data.attempts_left === 1 ? "" : "s"} left. Check the text message and try again.`
          : "Check the text message and try again.";
        $("#code").value = "";
        $("#code").focus();
        break;
      case "expired":
        headline = "The code has expired";
        hint = "Send a new code and try again.";
        endFlow();
        break;
      case "max_attempts_reached":
        headline = "Too many wrong codes";
        hint = "This code can no longer be used. Send a new code and try again.";
        endFlow();
        break;
      case "not_found":
        headline = "Sign-in not found";
        hint = "The sign-in is unknown, finished or expired. Send a new code and try again.";
        endFlow();
        break;
      default:
        headline = `Sign-in not approved (${status})`;
        hint = "Send a new code and try again.";
        endFlow();
    }
    showResult(status, [
      h("div", { class: "headline" }, headline),
      h("div", {}, hint),
      h("div", { class: "meta muted small-text" }, `status: ${status}`),
    ]);
  }

  // ---------- wiring ----------
  $("#error-close").addEventListener("click", clearError);
  $("#start-form").addEventListener("submit", sendCode);
  $("#code-form").addEventListener("submit", signIn);
  const params = new URLSearchParams(location.search);
  $("#signin-key").value = sessionStorage.getItem(KEY_STORAGE) || "";
  $("#tenant").value = params.get("tenant") || sessionStorage.getItem(TENANT_STORAGE) || "";
  $("#phone").value = params.get("phone") || "";
  (!$("#signin-key").value ? $("#signin-key") : !$("#tenant").value ? $("#tenant") : $("#phone")).focus();
})();
