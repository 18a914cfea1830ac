// otpgate admin console: plain JavaScript, no build step, same-origin API only.
"use strict";
(() => {
  const KEY_STORAGE = "otpgate.adminKey";
  const API_BASE = new URL("../v1/", location.href); // the console is served at /admin/
  const PAGE_SIZE = 20;
  const LOG_SIZE = 50;
  const MAX_PAGES = 50; // bound for lists that are read completely (tenants, groups, members)
  const PHONE_TYPES = { mobile: "Mobile", alternateMobile: "Alternate mobile", office: "Office" };
  const SMS_STATES = {
    ready: "SMS sign-in enabled \u2713",
    notEnabled: "SMS sign-in not enabled",
    notAllowedByPolicy: "Not allowed by policy",
    phoneNumberNotUnique: "Phone number not unique",
    notSupported: "Not supported for SMS sign-in",
  };
  const ODATA_SMS = "#microsoft.graph.smsAuthenticationMethodConfiguration";

  const $ = (sel, root = document) => root.querySelector(sel);
  const enc = encodeURIComponent;

  const state = {
    key: null,
    tenants: [],
    tenant: null, // selected tenant id
    gen: 0, // bumped on every tenant selection; stale answers are dropped
    users: [],
    usersNext: null,
    search: "",
    user: null, // selected user id
    methods: [],
    groups: [],
    members: new Map(), // group id -> [user]
    policy: null,
    pm: null, // the policy form's model
    known: new Map(), // user id -> user (for names in logs and groups)
    seq: {}, // list name -> number of its newest request; older answers are dropped
  };
  // A ticket for a load of `name`: stale(name, t) is true once a newer load of it started.
  const ticket = (name) => (state.seq[name] = (state.seq[name] || 0) + 1);
  const stale = (name, t) => state.seq[name] !== t;

  // ---------- DOM helpers ----------
  function h(tag, props, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v == null || v === false) continue;
      if (k === "class") el.className = v;
      else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
      else if (typeof v === "boolean" || k === "value") el[k] = v;
      else el.setAttribute(k, v);
    }
    for (const kid of kids.flat(Infinity)) {
      if (kid == null || kid === false) continue;
      el.append(kid instanceof Node ? kid : String(kid));
    }
    return el;
  }
  function fmtDate(s) {
    if (!s) return "";
    const d = new Date(s);
    if (Number.isNaN(d.getTime())) return String(s);
    const p = (n) => String(n).padStart(2, "0");
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
  }
  function userLabel(id) {
    if (!id) return "";
    const u = state.known.get(id);
    return u ? `${u.displayName} (${u.userPrincipalName})` : id;
  }
  function remember(users) {
    for (const u of users || []) if (u && u.id) state.known.set(u.id, u);
  }

  // ---------- errors and notices ----------
  class ApiError extends Error {
    constructor(problem) {
      super(problem.detail || problem.title || `HTTP ${problem.status}`);
      this.problem = problem;
      this.status = problem.status;
    }
  }
  function problemOf(err) {
    if (err instanceof ApiError) return err.problem;
    return { title: "Error", detail: String((err && err.message) || err) };
  }
  function slugOf(problem) {
    return String(problem.type || "").replace(/^urn:otpgate:problem:/, "");
  }
  function showError(err, context) {
    const p = problemOf(err);
    const slug = slugOf(p);
    const entry = h("div", { class: "error-entry" },
      h("strong", {}, context ? `${context}: ` : "", p.title || "Error"),
      p.detail ? [" \u2014 ", h("span", { class: "detail" }, p.detail)] : null);
    if (p.holder && (p.holder.userPrincipalName || p.holder.id)) {
      entry.append(h("div", { class: "holder" }, "The number is already registered to ",
        h("strong", {}, p.holder.userPrincipalName || p.holder.id),
        p.holder.id && p.holder.userPrincipalName ? h("span", { class: "muted small-text" }, ` (${p.holder.id})`) : null));
    }
    if (p.status === 401 && state.key) entry.append(h("div", {}, "The key was not accepted. Use \u201cChange key\u201d to enter another one."));
    const meta = [p.status ? `HTTP ${p.status}` : null, slug || null].filter(Boolean).join(" \u00b7 ");
    if (meta) entry.append(h("div", { class: "meta" }, meta));
    $("#error-text").append(entry);
    $("#error").hidden = false;
    $("#notice").hidden = true;
  }
  function clearError() {
    $("#error-text").replaceChildren();
    $("#error").hidden = true;
  }
  let noticeTimer = null;
  function notice(text) {
    const el = $("#notice");
    el.textContent = text;
    el.hidden = false;
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(() => { el.hidden = true; }, 5000);
  }

  // ---------- API ----------
  async function api(method, path, body) {
    const url = /^(https?:)?\//.test(path) ? new URL(path, location.href) : new URL(path, API_BASE);
    if (url.origin !== location.origin) {
      throw new ApiError({ title: "Refused", detail: `not sending the key to another origin (${url.origin})` });
    }
    const headers = { Accept: "application/json, application/problem+json" };
    if (state.key) headers.Authorization = `Bearer ${state.key}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let res;
    try {
      res = await fetch(url, {
        method, headers, cache: "no-store", credentials: "omit",
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      throw new ApiError({ title: "Network error", detail: String((e && e.message) || e) });
    }
    const text = res.status === 204 ? "" : await res.text();
    let data = null;
    if (text) { try { data = JSON.parse(text); } catch { data = null; } }
    if (!res.ok) {
      const p = data && typeof data === "object" && !Array.isArray(data)
        ? { ...data }
        : { title: res.statusText || `HTTP ${res.status}`, detail: text.slice(0, 400) };
      if (!p.status) p.status = res.status;
      if (!p.title) p.title = res.statusText || `HTTP ${res.status}`;
      throw new ApiError(p);
    }
    return data;
  }
  async function listAll(path) {
    let out = [];
    let next = path;
    for (let i = 0; next && i < MAX_PAGES; i++) {
      const data = await api("GET", next);
      out = out.concat((data && data.value) || []);
      next = data && data["@odata.nextLink"];
    }
    return out;
  }
  const tp = () => `tenants/${enc(state.tenant)}`;
  const up = (uid = state.user) => `${tp()}/users/${enc(uid)}`;
  const policyPath = () => `${tp()}/policies/authenticationMethodsPolicy/authenticationMethodConfigurations/sms`;

  // Runs a UI action: clears old errors, disables the clicked button meanwhile, reports failures.
  function action(context, fn) {
    return async (ev) => {
      if (ev && ev.preventDefault && (ev.type === "submit" || ev.currentTarget instanceof HTMLButtonElement)) ev.preventDefault();
      const btn = ev && (ev.submitter || (ev.currentTarget instanceof HTMLButtonElement ? ev.currentTarget : null));
      clearError();
      if (btn) btn.disabled = true;
      try {
        await fn(ev);
      } catch (err) {
        showError(err, context);
      } finally {
        if (btn) btn.disabled = false;
        syncEnabled();
      }
    };
  }
  function syncEnabled() {
    const noUser = !state.user;
    for (const id of ["#phone-number", "#phone-type", "#add-phone", "#refresh-methods"]) $(id).disabled = noUser;
    for (const b of document.querySelectorAll("#groups .add-selected")) b.disabled = noUser;
    $("#users-more").hidden = !state.usersNext;
  }

  // ---------- key ----------
  async function unlock(key) {
    state.key = key;
    try {
      await loadTenants();
    } catch (err) {
      if (err.status === 401 || err.status === undefined) {
        state.key = null;
        sessionStorage.removeItem(KEY_STORAGE);
        showError(err, "Unlock");
        return;
      }
      showError(err, "Loading tenants"); // e.g. 403: the key is known but may not list tenants
    }
    sessionStorage.setItem(KEY_STORAGE, key);
    $("#locked").hidden = true;
    $("#console").hidden = false;
    $("#lock").hidden = false;
    $("#admin-key").value = "";
  }
  function lock() {
    sessionStorage.removeItem(KEY_STORAGE);
    state.key = null;
    state.tenant = null;
    state.user = null;
    state.gen++;
    $("#console").hidden = true;
    $("#lock").hidden = true;
    $("#locked").hidden = false;
    $("#tenant-view").hidden = true;
    $("#no-tenant").hidden = false;
    clearError();
    $("#admin-key").focus();
  }

  // ---------- tenants ----------
  async function loadTenants() {
    const t = ticket("tenants");
    const tenants = await listAll("tenants");
    if (stale("tenants", t)) return;
    state.tenants = tenants;
    renderTenants();
  }
  function renderTenants() {
    const ul = $("#tenants");
    const list = state.tenants.slice();
    if (state.tenant && !list.some((t) => t.id === state.tenant)) list.push({ id: state.tenant, displayName: state.tenant });
    ul.replaceChildren(...list.map((t) => h("li", {
      "data-tenant": t.id, class: t.id === state.tenant ? "active" : null, tabindex: "0", role: "button",
      onclick: () => selectTenant(t.id),
      onkeydown: (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); selectTenant(t.id); } },
    }, h("span", { class: "name" }, t.displayName || t.id), h("span", { class: "id" }, t.id))));
    if (!list.length) ul.replaceChildren(h("li", { class: "empty" }, "No tenants yet."));
  }
  function tenantName() {
    const t = state.tenants.find((x) => x.id === state.tenant);
    return t ? t.displayName || t.id : state.tenant;
  }
  async function selectTenant(tid) {
    clearError();
    state.tenant = tid;
    state.gen++;
    state.user = null;
    state.users = [];
    state.usersNext = null;
    state.methods = [];
    state.groups = [];
    state.members = new Map();
    state.policy = null;
    state.pm = null;
    state.search = "";
    state.known = new Map();
    $("#user-search").value = "";
    renderTenants();
    $("#no-tenant").hidden = true;
    $("#tenant-view").hidden = false;
    $("#tenant-title").textContent = `\u00b7 ${tenantName()}`;
    renderUsers();
    renderMethods();
    renderGroups();
    renderPolicy();
    syncEnabled();
    const tasks = [
      ["Loading users", loadUsers(true)],
      ["Loading groups", loadGroups()],
      ["Loading the Text message policy", loadPolicy()],
      [null, loadLogs(false)],
    ];
    await Promise.all(tasks.map(([ctx, p]) => p.catch((err) => ctx && showError(err, ctx))));
  }

  // ---------- users ----------
  function usersQuery() {
    let q = `${tp()}/users?$top=${PAGE_SIZE}`;
    const s = state.search.trim();
    if (s) q += /^[+(]?\d[\d\s().-]*$/.test(s) ? `&phone=${enc(s)}` : `&userPrincipalName=${enc(s)}`;
    return q;
  }
  async function loadUsers(reset) {
    const gen = state.gen;
    const t = ticket("users");
    const data = await api("GET", reset ? usersQuery() : state.usersNext);
    if (gen !== state.gen || stale("users", t)) return;
    const value = (data && data.value) || [];
    remember(value);
    state.users = reset ? value : state.users.concat(value.filter((u) => !state.users.some((x) => x.id === u.id)));
    state.usersNext = (data && data["@odata.nextLink"]) || null;
    renderUsers();
  }
  function renderUsers() {
    const tb = $("#users");
    if (!state.users.length) {
      tb.replaceChildren(h("tr", {}, h("td", { colspan: "4", class: "empty" }, state.search ? "No user matches." : "No users yet.")));
    } else {
      tb.replaceChildren(...state.users.map((u) => h("tr", {
        "data-user": u.id, class: `selectable${u.id === state.user ? " active" : ""}`,
        tabindex: "0",
        onclick: (e) => { if (!e.target.closest("button, input, a")) selectUser(u.id); },
        onkeydown: (e) => { if (e.key === "Enter" && e.target === e.currentTarget) selectUser(u.id); },
      },
      h("td", {}, h("div", { class: "user-name" }, h("strong", {}, u.displayName)), h("div", { class: "muted small-text mono" }, u.id)),
      h("td", { class: "user-upn" }, u.userPrincipalName),
      h("td", {}, h("span", { class: `pill account ${u.accountEnabled === false ? "bad" : "ok"}` }, u.accountEnabled === false ? "Disabled" : "Enabled")),
      h("td", { class: "actions" },
        h("button", { class: "small toggle-enabled", type: "button", onclick: action("Updating the user", () => toggleUser(u)) },
          u.accountEnabled === false ? "Enable account" : "Disable account"),
        h("button", { class: "small danger delete-user", type: "button", onclick: action("Deleting the user", () => deleteUser(u)) }, "Delete")))));
    }
    $("#users-count").textContent = state.users.length ? `${state.users.length} user${state.users.length === 1 ? "" : "s"} shown${state.usersNext ? " \u00b7 more available" : ""}` : "";
    $("#users-more").hidden = !state.usersNext;
    const dl = $("#user-options");
    dl.replaceChildren(...[...state.known.values()].map((u) => h("option", { value: u.id }, `${u.displayName} (${u.userPrincipalName})`)));
  }
  async function createUser() {
    const displayName = $("#user-name").value.trim();
    const userPrincipalName = $("#user-upn").value.trim();
    const user = await api("POST", `${tp()}/users`, { displayName, userPrincipalName, accountEnabled: $("#user-enabled").checked });
    remember([user]);
    $("#user-name").value = "";
    $("#user-upn").value = "";
    await loadUsers(true);
    if (user && user.id && !state.users.some((u) => u.id === user.id)) { state.users.push(user); renderUsers(); }
    notice(`User ${user ? user.displayName : displayName} created.`);
    scheduleLogs();
  }
  async function toggleUser(u) {
    const updated = await api("PATCH", up(u.id), { accountEnabled: u.accountEnabled === false });
    const fresh = updated && updated.id ? updated : { ...u, accountEnabled: u.accountEnabled === false };
    remember([fresh]);
    state.users = state.users.map((x) => (x.id === u.id ? fresh : x));
    renderUsers();
    if (state.user === u.id) renderMethodsTitle();
    scheduleLogs();
  }
  async function deleteUser(u) {
    await api("DELETE", up(u.id));
    state.users = state.users.filter((x) => x.id !== u.id);
    if (state.user === u.id) { state.user = null; state.methods = []; renderMethods(); }
    renderUsers();
    notice(`User ${u.displayName} deleted.`);
    await Promise.all([loadGroups().catch((e) => showError(e, "Loading groups")), loadPolicy().catch(() => {})]);
    scheduleLogs();
  }
  function selectUser(uid) {
    clearError();
    state.user = uid;
    state.methods = [];
    renderUsers();
    renderMethods();
    syncEnabled();
    loadMethods().catch((err) => showError(err, "Loading phone methods"));
  }

  // ---------- phone methods ----------
  function renderMethodsTitle() {
    const u = state.known.get(state.user);
    $("#methods-title").textContent = state.user ? `\u00b7 ${u ? `${u.displayName} (${u.userPrincipalName})` : state.user}` : "\u00b7 no user selected";
  }
  async function loadMethods() {
    if (!state.user) return;
    const gen = state.gen;
    const uid = state.user;
    const t = ticket("methods");
    const data = await api("GET", `${up(uid)}/authentication/phoneMethods`);
    if (gen !== state.gen || uid !== state.user || stale("methods", t)) return;
    state.methods = (data && data.value) || [];
    renderMethods();
  }
  function renderMethods() {
    renderMethodsTitle();
    const tb = $("#methods");
    if (!state.user) {
      tb.replaceChildren(h("tr", {}, h("td", { colspan: "5", class: "empty" }, "Select a user to see their phone methods.")));
      return;
    }
    if (!state.methods.length) {
      tb.replaceChildren(h("tr", {}, h("td", { colspan: "5", class: "empty" }, "No phone methods registered.")));
      return;
    }
    tb.replaceChildren(...state.methods.map((m) => {
      const st = m.smsSignInState || "notEnabled";
      const numberInput = h("input", { class: "method-number", type: "tel", value: m.phoneNumber || "", "aria-label": "New phone number" });
      return h("tr", { "data-method": m.id, class: `state-${st}` },
        h("td", { class: "method-type nowrap" }, PHONE_TYPES[m.phoneType] || m.phoneType),
        h("td", { class: "nowrap" }, h("div", { class: "method-phone" }, m.phoneNumber),
          m.phoneNumberE164 && m.phoneNumberE164 !== m.phoneNumber ? h("div", { class: "muted small-text mono" }, m.phoneNumberE164) : null),
        h("td", {}, h("span", { class: "pill sms-state", title: st }, SMS_STATES[st] || st)),
        h("td", {}, h("div", { class: "method-edit" }, numberInput,
          h("button", { class: "small change-number", type: "button",
            onclick: action("Changing the phone number", () => changeNumber(m, numberInput.value)) }, "Change"))),
        h("td", { class: "actions method-actions" }, h("div", { class: "btns" },
          h("button", { class: "small enable-signin", type: "button", title: "Enable SMS sign-in for this number", onclick: action("Enabling SMS sign-in", () => methodOp(m, "enableSmsSignIn")) }, "Enable sign-in"),
          h("button", { class: "small disable-signin", type: "button", title: "Disable SMS sign-in for this number", onclick: action("Disabling SMS sign-in", () => methodOp(m, "disableSmsSignIn")) }, "Disable sign-in"),
          h("button", { class: "small danger delete-method", type: "button", onclick: action("Deleting the phone method", () => deleteMethod(m)) }, "Delete"))));
    }));
  }
  const methodPath = (m) => `${up()}/authentication/phoneMethods/${enc(m.id)}`;
  async function addPhone() {
    if (!state.user) throw new Error("Select a user first.");
    const phoneNumber = $("#phone-number").value.trim();
    const phoneType = $("#phone-type").value;
    const m = await api("POST", `${up()}/authentication/phoneMethods`, { phoneNumber, phoneType });
    $("#phone-number").value = "";
    await loadMethods();
    notice(`${PHONE_TYPES[phoneType] || phoneType} number ${m && m.phoneNumber ? m.phoneNumber : phoneNumber} added.`);
    scheduleLogs();
  }
  async function changeNumber(m, phoneNumber) {
    await api("PATCH", methodPath(m), { phoneNumber: phoneNumber.trim() });
    await loadMethods();
    notice("Phone number changed.");
    scheduleLogs();
  }
  async function methodOp(m, op) {
    await api("POST", `${methodPath(m)}/${op}`);
    await loadMethods();
    scheduleLogs();
  }
  async function deleteMethod(m) {
    await api("DELETE", methodPath(m));
    await loadMethods();
    notice("Phone method deleted.");
    scheduleLogs();
  }

  // ---------- groups ----------
  async function loadGroups() {
    const gen = state.gen;
    const t = ticket("groups");
    const groups = await listAll(`${tp()}/groups`);
    const members = new Map();
    await Promise.all(groups.map(async (g) => {
      try {
        members.set(g.id, await listAll(`${tp()}/groups/${enc(g.id)}/members`));
      } catch (err) {
        members.set(g.id, null);
        if (gen === state.gen) showError(err, `Loading members of ${g.displayName}`);
      }
    }));
    if (gen !== state.gen || stale("groups", t)) return;
    state.groups = groups;
    state.members = members;
    for (const list of members.values()) remember(list);
    renderGroups();
    renderPolicy();
  }
  function renderGroups() {
    const box = $("#groups");
    if (!state.groups.length) { box.replaceChildren(h("div", { class: "empty" }, "No groups yet.")); return; }
    box.replaceChildren(...state.groups.map((g) => {
      const members = state.members.get(g.id);
      const input = h("input", { class: "member-id", type: "text", list: "user-options", placeholder: "User id", spellcheck: "false", "aria-label": `User id to add to ${g.displayName}` });
      const add = (uid) => action(`Adding a member to ${g.displayName}`, async () => {
        if (!uid()) throw new Error("Enter a user id.");
        await api("POST", `${tp()}/groups/${enc(g.id)}/members`, { id: uid() });
        await loadGroups();
        scheduleLogs();
      });
      return h("div", { class: "group", "data-group": g.id },
        h("div", { class: "group-head" },
          h("span", { class: "name" }, g.displayName), h("span", { class: "id mono" }, g.id),
          h("span", { class: "actions" }, h("button", { class: "small danger delete-group", type: "button",
            onclick: action("Deleting the group", async () => { await api("DELETE", `${tp()}/groups/${enc(g.id)}`); await loadGroups(); await loadPolicy().catch(() => {}); scheduleLogs(); }) }, "Delete group"))),
        members === null ? h("div", { class: "empty" }, "Members could not be loaded.")
          : !members || !members.length ? h("div", { class: "empty" }, "No members.")
          : h("ul", { class: "members" }, members.map((u) => h("li", { "data-member": u.id },
            h("span", { class: "who" }, h("strong", {}, u.displayName), " ", h("span", { class: "muted small-text" }, u.userPrincipalName)),
            h("button", { class: "small remove-member", type: "button",
              onclick: action(`Removing a member from ${g.displayName}`, async () => { await api("DELETE", `${tp()}/groups/${enc(g.id)}/members/${enc(u.id)}`); await loadGroups(); scheduleLogs(); }) }, "Remove")))),
        h("div", { class: "member-add" }, input,
          h("button", { class: "small add-member", type: "button", onclick: add(() => input.value.trim()) }, "Add member"),
          h("button", { class: "small add-selected", type: "button", disabled: !state.user, title: "Add the user selected in the Users list",
            onclick: add(() => state.user) }, "Add selected user")));
    }));
  }
  async function createGroup() {
    const displayName = $("#group-name").value.trim();
    const g = await api("POST", `${tp()}/groups`, { displayName });
    $("#group-name").value = "";
    await loadGroups();
    notice(`Group ${g ? g.displayName : displayName} created.`);
    scheduleLogs();
  }
  const groupName = (gid) => { const g = state.groups.find((x) => x.id === gid); return g ? g.displayName : null; };

  // ---------- policy ----------
  function modelFromPolicy(p) {
    const inc = (p && p.includeTargets) || [];
    const exc = (p && p.excludeTargets) || [];
    const all = inc.find((t) => t.id === "all_users");
    const groupsInc = new Map();
    for (const t of inc) if (t.id !== "all_users" && (t.targetType || "group") === "group") groupsInc.set(t.id, t.isUsableForSignIn !== false);
    return {
      state: (p && p.state) || "disabled",
      mode: all ? "all" : "groups",
      allUsable: all ? all.isUsableForSignIn !== false : true,
      newUsable: true,
      inc: groupsInc,
      incUsers: inc.filter((t) => t.targetType === "user").map((t) => ({ ...t, keep: true })),
      exc: new Set(exc.filter((t) => (t.targetType || "group") === "group").map((t) => t.id)),
      excUsers: exc.filter((t) => t.targetType === "user").map((t) => ({ ...t, keep: true })),
    };
  }
  async function loadPolicy() {
    const gen = state.gen;
    const t = ticket("policy");
    const p = await api("GET", policyPath());
    if (gen !== state.gen || stale("policy", t)) return;
    state.policy = p;
    state.pm = modelFromPolicy(p);
    renderPolicy();
  }
  function includeTargetsOf(m) {
    if (m.mode === "all") return [{ id: "all_users", targetType: "group", isUsableForSignIn: m.allUsable }];
    const out = [...m.inc].map(([id, usable]) => ({ id, targetType: "group", isUsableForSignIn: usable }));
    for (const t of m.incUsers) if (t.keep) out.push({ id: t.id, targetType: "user", isUsableForSignIn: t.isUsableForSignIn !== false });
    return out;
  }
  function renderPolicy() {
    const m = state.pm;
    const disabled = !m;
    for (const id of ["#policy-state", "#policy-all-users", "#policy-select-groups", "#policy-signin", "#save-policy"]) $(id).disabled = disabled;
    if (!m) {
      $("#policy-groups").replaceChildren(h("div", { class: "empty" }, "Policy not loaded."));
      $("#policy-exclude").replaceChildren();
      $("#policy-status").textContent = "";
      return;
    }
    $("#policy-state").value = m.state;
    $("#policy-all-users").checked = m.mode === "all";
    $("#policy-select-groups").checked = m.mode === "groups";
    const master = $("#policy-signin");
    if (m.mode === "all") {
      master.checked = m.allUsable;
      master.indeterminate = false;
    } else {
      const flags = [...m.inc.values()];
      const on = flags.filter(Boolean).length;
      master.checked = flags.length ? on === flags.length : m.newUsable;
      master.indeterminate = on > 0 && on < flags.length;
    }

    const ids = state.groups.map((g) => g.id);
    for (const id of m.inc.keys()) if (!ids.includes(id)) ids.push(id);
    const groupRows = ids.map((gid) => {
      const included = m.inc.has(gid);
      const name = groupName(gid) || `Unknown group ${gid}`;
      return h("div", { class: "target", "data-group": gid },
        h("label", { class: "check who" }, h("input", {
          type: "checkbox", class: "include-group", value: gid, checked: included, disabled: m.mode !== "groups",
          onchange: (e) => { if (e.target.checked) m.inc.set(gid, m.newUsable); else m.inc.delete(gid); renderPolicy(); },
        }), " ", name),
        h("label", { class: "check" }, h("input", {
          type: "checkbox", class: "group-signin", checked: included && m.inc.get(gid), disabled: m.mode !== "groups" || !included,
          onchange: (e) => { m.inc.set(gid, e.target.checked); renderPolicy(); },
        }), " Use for sign-in"));
    });
    const userRows = m.incUsers.map((t) => h("div", { class: "target", "data-user": t.id },
      h("label", { class: "check who" }, h("input", {
        type: "checkbox", class: "include-user", value: t.id, checked: t.keep, disabled: m.mode !== "groups",
        onchange: (e) => { t.keep = e.target.checked; renderPolicy(); },
      }), " User ", userLabel(t.id)),
      h("label", { class: "check" }, h("input", {
        type: "checkbox", class: "user-signin", checked: t.isUsableForSignIn !== false, disabled: m.mode !== "groups" || !t.keep,
        onchange: (e) => { t.isUsableForSignIn = e.target.checked; },
      }), " Use for sign-in")));
    const incBox = $("#policy-groups");
    incBox.classList.toggle("inactive", m.mode !== "groups");
    incBox.replaceChildren(...groupRows, ...userRows);
    if (!groupRows.length && !userRows.length) incBox.replaceChildren(h("div", { class: "empty" }, "No groups in this tenant yet."));
    if (m.mode === "all" && (groupRows.length || userRows.length)) incBox.prepend(h("div", { class: "empty" }, "All users are included; choose \u201cSelect groups\u201d to target groups."));

    const exIds = state.groups.map((g) => g.id);
    for (const id of m.exc) if (!exIds.includes(id)) exIds.push(id);
    const exRows = exIds.map((gid) => h("div", { class: "target", "data-group": gid },
      h("label", { class: "check who" }, h("input", {
        type: "checkbox", class: "exclude-group", value: gid, checked: m.exc.has(gid),
        onchange: (e) => { if (e.target.checked) m.exc.add(gid); else m.exc.delete(gid); },
      }), " ", groupName(gid) || `Unknown group ${gid}`)));
    const exUserRows = m.excUsers.map((t) => h("div", { class: "target", "data-user": t.id },
      h("label", { class: "check who" }, h("input", {
        type: "checkbox", class: "exclude-user", value: t.id, checked: t.keep,
        onchange: (e) => { t.keep = e.target.checked; },
      }), " User ", userLabel(t.id))));
    const exBox = $("#policy-exclude");
    exBox.replaceChildren(...exRows, ...exUserRows);
    if (!exRows.length && !exUserRows.length) exBox.replaceChildren(h("div", { class: "empty" }, "No groups to exclude."));
  }
  async function savePolicy() {
    const m = state.pm;
    if (!m) throw new Error("The policy is not loaded.");
    const body = {
      "@odata.type": ODATA_SMS,
      state: m.state,
      includeTargets: includeTargetsOf(m),
      excludeTargets: [...m.exc].map((id) => ({ id, targetType: "group" }))
        .concat(m.excUsers.filter((t) => t.keep).map((t) => ({ id: t.id, targetType: "user" }))),
    };
    ticket("policy"); // a GET still in flight must not overwrite the saved policy
    const p = await api("PATCH", policyPath(), body);
    state.policy = p && typeof p === "object" ? p : { ...body, id: "Sms" };
    state.pm = modelFromPolicy(state.policy);
    renderPolicy();
    $("#policy-status").textContent = `Saved ${fmtDate(new Date().toISOString())}`;
    notice("Text message policy saved.");
    // The policy changes the SMS sign-in state of phone methods: show the new states.
    if (state.user) await loadMethods().catch((err) => showError(err, "Loading phone methods"));
    scheduleLogs();
  }

  // ---------- logs ----------
  let logTimer = null;
  function scheduleLogs() {
    clearTimeout(logTimer);
    logTimer = setTimeout(() => loadLogs(false), 250);
  }
  async function loadLogs(explicit) {
    if (!state.tenant) return;
    const gen = state.gen;
    const t = ticket("logs");
    const [audit, signins] = await Promise.allSettled([
      api("GET", `${tp()}/auditLogs/directoryAudits?$top=${LOG_SIZE}`),
      api("GET", `${tp()}/auditLogs/signIns?$top=${LOG_SIZE}`),
    ]);
    if (gen !== state.gen || stale("logs", t)) return;
    if (audit.status === "fulfilled") renderAudit((audit.value && audit.value.value) || []);
    else {
      $("#audit").replaceChildren(failedRow(6, audit.reason));
      if (explicit) showError(audit.reason, "Loading audit logs");
    }
    if (signins.status === "fulfilled") renderSignins((signins.value && signins.value.value) || []);
    else {
      $("#signins").replaceChildren(failedRow(8, signins.reason));
      if (explicit) showError(signins.reason, "Loading sign-in logs");
    }
  }
  function failedRow(cols, err) {
    const p = problemOf(err);
    return h("tr", {}, h("td", { colspan: String(cols), class: "empty" }, `Could not load: ${p.detail || p.title}${p.status ? ` (HTTP ${p.status})` : ""}`));
  }
  function renderAudit(rows) {
    const tb = $("#audit");
    if (!rows.length) { tb.replaceChildren(h("tr", {}, h("td", { colspan: "6", class: "empty" }, "No audit events."))); return; }
    tb.replaceChildren(...rows.map((a) => {
      const by = a.initiatedBy || {};
      const who = (by.app && by.app.displayName) || (by.user && (by.user.userPrincipalName || by.user.displayName)) || "";
      return h("tr", { "data-audit": a.id },
        h("td", { class: "nowrap", title: a.activityDateTime || "" }, fmtDate(a.activityDateTime)),
        h("td", { class: "activity" }, a.activityDisplayName),
        h("td", {}, a.category),
        h("td", {}, h("span", { class: `pill ${a.result === "success" ? "ok" : "bad"}` }, a.result),
          a.resultReason ? h("div", { class: "muted small-text" }, a.resultReason) : null),
        h("td", {}, who),
        h("td", {}, (a.targetResources || []).map((t) => h("div", { title: t.id || "" },
          h("span", { class: "muted small-text" }, t.type ? `${t.type}: ` : ""), t.displayName || t.id || ""))));
    }));
  }
  function renderSignins(rows) {
    const tb = $("#signins");
    if (!rows.length) { tb.replaceChildren(h("tr", {}, h("td", { colspan: "8", class: "empty" }, "No sign-ins."))); return; }
    tb.replaceChildren(...rows.map((s) => {
      const st = s.status || {};
      const ok = st.errorCode === 0 || st.errorCode == null && !st.failureReason;
      return h("tr", { "data-signin": s.id },
        h("td", { class: "nowrap", title: s.createdDateTime || "" }, fmtDate(s.createdDateTime)),
        h("td", {}, s.userId ? userLabel(s.userId) : h("span", { class: "muted" }, "unknown")),
        h("td", { class: "mono" }, s.phoneNumber || ""),
        h("td", {}, s.phase || ""),
        h("td", {}, h("span", { class: `pill ${ok ? "ok" : "bad"}` }, s.result == null ? (ok ? "success" : "failure") : String(s.result))),
        h("td", {}, st.errorCode == null ? "" : String(st.errorCode), st.failureReason ? h("div", { class: "muted small-text" }, st.failureReason) : null),
        h("td", {}, s.appDisplayName || ""),
        h("td", { class: "mono" }, s.ipAddress || ""));
    }));
  }

  // ---------- wiring ----------
  function wire() {
    $("#error-close").addEventListener("click", clearError);
    $("#unlock-form").addEventListener("submit", action("Unlock", async () => {
      const key = $("#admin-key").value.trim();
      if (!key) throw new Error("Enter the admin key.");
      await unlock(key);
    }));
    $("#lock").addEventListener("click", lock);
    $("#refresh-tenants").addEventListener("click", action("Loading tenants", loadTenants));
    $("#tenant-form").addEventListener("submit", action("Creating the tenant", async () => {
      const id = $("#tenant-id").value.trim();
      const displayName = $("#tenant-name").value.trim() || id;
      const body = id ? { id, displayName } : { displayName };
      const t = await api("POST", "tenants", body);
      $("#tenant-id").value = "";
      $("#tenant-name").value = "";
      await loadTenants();
      if (t && t.id && !state.tenants.some((x) => x.id === t.id)) { state.tenants.push(t); renderTenants(); }
      notice(`Tenant ${(t && t.displayName) || displayName} created.`);
    }));
    $("#open-tenant").addEventListener("click", action("Opening the tenant", async () => {
      const id = $("#tenant-id").value.trim();
      if (!id) throw new Error("Enter the tenant id to open.");
      const t = await api("GET", `tenants/${enc(id)}`);
      if (t && t.id && !state.tenants.some((x) => x.id === t.id)) state.tenants.push(t);
      $("#tenant-id").value = "";
      await selectTenant((t && t.id) || id);
    }));
    $("#refresh-users").addEventListener("click", action("Loading users", () => loadUsers(true)));
    $("#user-form").addEventListener("submit", action("Creating the user", createUser));
    $("#user-search-form").addEventListener("submit", action("Finding users", async () => {
      state.search = $("#user-search").value;
      await loadUsers(true);
    }));
    $("#clear-search").addEventListener("click", action("Loading users", async () => {
      $("#user-search").value = "";
      state.search = "";
      await loadUsers(true);
    }));
    $("#users-more").addEventListener("click", action("Loading more users", () => loadUsers(false)));
    $("#phone-form").addEventListener("submit", action("Adding the phone number", addPhone));
    $("#refresh-methods").addEventListener("click", action("Loading phone methods", loadMethods));
    $("#refresh-groups").addEventListener("click", action("Loading groups", loadGroups));
    $("#group-form").addEventListener("submit", action("Creating the group", createGroup));
    $("#reload-policy").addEventListener("click", action("Loading the Text message policy", loadPolicy));
    $("#policy-state").addEventListener("change", (e) => { if (state.pm) state.pm.state = e.target.value; });
    for (const id of ["#policy-all-users", "#policy-select-groups"]) {
      $(id).addEventListener("change", (e) => {
        if (!state.pm || !e.target.checked) return;
        state.pm.mode = e.target.value;
        renderPolicy();
      });
    }
    $("#policy-signin").addEventListener("change", (e) => {
      const m = state.pm;
      if (!m) return;
      const on = e.target.checked;
      if (m.mode === "all") m.allUsable = on;
      else {
        m.newUsable = on;
        for (const gid of m.inc.keys()) m.inc.set(gid, on);
        for (const t of m.incUsers) t.isUsableForSignIn = on;
      }
      renderPolicy();
    });
    $("#save-policy").addEventListener("click", action("Saving the Text message policy", savePolicy));
    $("#refresh-logs").addEventListener("click", action("Loading logs", () => loadLogs(true)));
  }

  wire();
  renderPolicy();
  syncEnabled();
  const saved = sessionStorage.getItem(KEY_STORAGE);
  if (saved) unlock(saved);
  else $("#admin-key").focus();
})();
