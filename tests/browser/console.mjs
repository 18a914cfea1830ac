// Drives the admin console (/admin/) and the test sign-in page (/admin/signin.html) in headless
// Chromium with playwright-core: builds a tenant with one user and a mobile number, enables the Text
// message policy for sign-in, then signs in with the code the SMSC simulator received.
//
// Environment: OTPGATE_URL (daemon base URL), SIM_URL (simulator HTTP base URL), ADMIN_KEY (scopes
// directory:read, directory:write, audit:read), SIGNIN_KEY (scope signin), OUT_DIR (screenshots
// console.png and signin.png; default: the working directory), CHROMIUM (default /usr/bin/chromium),
// PLAYWRIGHT_CORE (path of the playwright-core package; default .ci/node/node_modules/playwright-core).
//
// Success: one JSON line {"ok":true,"result":"...","claims":{...}} on stdout, exit 0.
// Failure: the error, the page's error area and HTML on stderr, exit 1. Every wait is at most 10 s.
import { createRequire } from "node:module";
import { mkdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const WAIT_MS = 10_000;
const OVERALL_MS = 150_000;
const MOBILE_METHOD_ID = "3179e48a-750b-4051-897c-87b9720928f7";
const TENANT = { id: "contoso", displayName: "Contoso" };
const USER = { displayName: "Adele Vance", userPrincipalName: "adele@contoso.com" };
const PHONE_TYPED = "+31 6 1234 5678";
const PHONE_E164 = "+31612345678";

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, "..", "..");

function env(name, fallback) {
  const value = process.env[name] ?? fallback;
  if (value === undefined || value === "") throw new Error(`environment variable ${name} is required`);
  return value;
}

function loadPlaywright() {
  const require = createRequire(import.meta.url);
  const attempts = [];
  const explicit = process.env.PLAYWRIGHT_CORE;
  if (explicit) {
    attempts.push(() => require(path.resolve(explicit)));
    attempts.push(() => createRequire(path.join(path.resolve(explicit), "noop.js"))("playwright-core"));
  }
  attempts.push(() => createRequire(path.join(repoRoot, ".ci", "node", "package.json"))("playwright-core"));
  attempts.push(() => require("playwright-core"));
  const errors = [];
  for (const attempt of attempts) {
    try {
      const pw = attempt();
      if (pw && pw.chromium) return pw;
    } catch (err) {
      errors.push(err.message.split("\n")[0]);
    }
  }
  throw new Error(`playwright-core not found (npm install --prefix .ci/node playwright-core@1): ${errors.join("; ")}`);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

let browser = null;
let current = null; // the page being driven, for the failure report
const diagnostics = []; // console errors, page errors, failed API answers

async function errorArea(page) {
  try {
    return await page.evaluate(() => {
      const el = document.querySelector("#error");
      const text = document.querySelector("#error-text") || el;
      return el && !el.hidden ? text.innerText.replace(/\s+/g, " ").trim() : "";
    });
  } catch {
    return "";
  }
}

// Waits (at most WAIT_MS) until fn(arg) is truthy in the page; the error names what was awaited.
async function until(page, what, fn, arg) {
  try {
    const handle = await page.waitForFunction(fn, arg, { timeout: WAIT_MS, polling: 100 });
    return await handle.jsonValue();
  } catch (err) {
    const shown = await errorArea(page);
    throw new Error(`timed out waiting for ${what}${shown ? `; the page shows the error: ${shown}` : ""} (${err.message.split("\n")[0]})`);
  }
}

// Clicks a button that runs a console action and waits until the action is over (the console
// disables the button while its request runs). Returns the text of the error area ("" if none).
async function act(page, selector) {
  await page.click(selector);
  await until(page, `${selector} to finish`, (sel) => {
    const el = document.querySelector(sel);
    return !el || !el.disabled;
  }, selector);
  return errorArea(page);
}

function watch(page, name) {
  page.on("console", (msg) => {
    if (msg.type() === "error" || msg.type() === "warning") diagnostics.push(`[${name} console.${msg.type()}] ${msg.text()}`);
  });
  page.on("pageerror", (err) => diagnostics.push(`[${name} pageerror] ${err.message}`));
  page.on("requestfailed", (req) => diagnostics.push(`[${name} requestfailed] ${req.method()} ${req.url()} ${req.failure()?.errorText ?? ""}`));
  page.on("response", async (res) => {
    if (res.status() < 400) return;
    let body = "";
    try { body = (await res.text()).slice(0, 500); } catch { /* gone */ }
    diagnostics.push(`[${name} http ${res.status()}] ${res.request().method()} ${res.url()} ${body}`);
  });
}

function decodeJwtPayload(jwt) {
  const parts = String(jwt).split(".");
  if (parts.length !== 3) throw new Error(`the assertion is not a JWT: ${String(jwt).slice(0, 80)}`);
  return JSON.parse(Buffer.from(parts[1], "base64url").toString("utf8"));
}

async function latestCode(simUrl, to, since) {
  const url = `${simUrl}/api/messages/latest?to=${encodeURIComponent(to)}&direction=mt&since=${encodeURIComponent(since)}&wait_ms=5000`;
  const res = await fetch(url, { signal: AbortSignal.timeout(WAIT_MS) });
  const text = await res.text();
  if (!res.ok) throw new Error(`simulator: GET ${url} answered ${res.status}: ${text.slice(0, 300)}`);
  const message = JSON.parse(text);
  const code = message.otp ?? (String(message.text ?? "").match(/\b\d{4,10}\b/) || [])[0];
  if (!code) throw new Error(`simulator: no code in the message to ${to}: ${text.slice(0, 300)}`);
  return String(code);
}

async function adminConsole(page, base, adminKey, outDir) {
  await page.goto(`${base}/admin/`, { waitUntil: "load", timeout: WAIT_MS });

  // Unlock.
  await page.fill("#admin-key", adminKey);
  await page.click("#unlock");
  const unlocked = await until(page, "the console to unlock", () => {
    if (!document.querySelector("#console").hidden) return "open";
    return !document.querySelector("#error").hidden ? "error" : false;
  });
  if (unlocked !== "open") throw new Error(`unlock failed: ${await errorArea(page)}`);

  // Tenant (a conflict from an earlier run is fine as long as the tenant is listed).
  await page.fill("#tenant-id", TENANT.id);
  await page.fill("#tenant-name", TENANT.displayName);
  const tenantError = await act(page, "#create-tenant");
  const tenantEntry = `#tenants [data-tenant="${TENANT.id}"]`;
  if (!(await page.$(tenantEntry))) throw new Error(`tenant ${TENANT.id} not listed after create: ${tenantError || "no error shown"}`);
  if (tenantError) diagnostics.push(`[note] creating the tenant: ${tenantError}`);
  await page.click(tenantEntry);
  await until(page, "the tenant view", (id) => {
    const entry = document.querySelector(`#tenants [data-tenant="${id}"]`);
    return entry && entry.classList.contains("active") && !document.querySelector("#tenant-view").hidden;
  }, TENANT.id);
  await until(page, "the Text message policy to load", () => !document.querySelector("#save-policy").disabled);

  // User.
  await page.fill("#user-name", USER.displayName);
  await page.fill("#user-upn", USER.userPrincipalName);
  await page.check("#user-enabled");
  const userError = await act(page, "#create-user");
  const userId = await until(page, `the user row of ${USER.userPrincipalName}`, (upn) => {
    for (const row of document.querySelectorAll("#users tr[data-user]")) {
      if (row.querySelector(".user-upn")?.textContent.trim() === upn) return row.dataset.user;
    }
    return false;
  }, USER.userPrincipalName).catch((err) => { throw new Error(`${err.message}${userError ? `; create said: ${userError}` : ""}`); });
  if (userError) diagnostics.push(`[note] creating the user: ${userError}`);
  await page.click(`#users tr[data-user="${userId}"] td:first-child`);
  await until(page, "the user to be selected", (id) =>
    document.querySelector(`#users tr[data-user="${id}"]`)?.classList.contains("active") && !document.querySelector("#add-phone").disabled, userId);

  // Mobile phone.
  await page.fill("#phone-number", PHONE_TYPED);
  await page.selectOption("#phone-type", "mobile");
  const phoneError = await act(page, "#add-phone");
  const methodRow = `#methods tr[data-method="${MOBILE_METHOD_ID}"]`;
  await until(page, "the mobile method row", (sel) => !!document.querySelector(sel), methodRow)
    .catch((err) => { throw new Error(`${err.message}${phoneError ? `; add phone said: ${phoneError}` : ""}`); });
  if (phoneError) diagnostics.push(`[note] adding the phone: ${phoneError}`);

  // Text message policy: enabled, all users, usable for sign-in.
  await page.selectOption("#policy-state", "enabled");
  await page.check("#policy-all-users");
  await page.check("#policy-signin");
  const policyError = await act(page, "#save-policy");
  if (policyError) throw new Error(`saving the policy failed: ${policyError}`);
  const saved = await page.evaluate(() => ({
    state: document.querySelector("#policy-state").value,
    allUsers: document.querySelector("#policy-all-users").checked,
    signin: document.querySelector("#policy-signin").checked,
  }));
  if (saved.state !== "enabled" || !saved.allUsers || !saved.signin) {
    throw new Error(`the saved policy reads back as ${JSON.stringify(saved)}`);
  }

  // The number was added before the user came into scope, so it waits for the admin's
  // "Enable SMS sign-in" (as in Entra); then it is ready.
  const refreshError = await act(page, "#refresh-methods");
  if (refreshError) throw new Error(`refreshing the phone methods failed: ${refreshError}`);
  await until(page, "the mobile number to be allowed but not yet enabled", (sel) =>
    !!document.querySelector(sel)?.classList.contains("state-notEnabled"), methodRow);
  const enableError = await act(page, `${methodRow} .enable-signin`);
  if (enableError) throw new Error(`enabling SMS sign-in failed: ${enableError}`);
  await until(page, "the mobile number to be ready for SMS sign-in", (sel) => {
    const row = document.querySelector(sel);
    return row && row.classList.contains("state-ready") && row.textContent.includes("SMS sign-in enabled \u2713");
  }, methodRow).catch(async (err) => {
    const cls = await page.$eval(methodRow, (row) => `${row.className}: ${row.textContent.replace(/\s+/g, " ")}`).catch(() => "no row");
    throw new Error(`${err.message}; the row is ${cls}`);
  });

  // Audit log.
  const wanted = ["Admin registered security info", "Update authentication methods policy", "Admin enabled SMS sign-in"];
  const deadline = Date.now() + WAIT_MS;
  let audit = "";
  for (;;) {
    const logError = await act(page, "#refresh-logs");
    audit = await page.$eval("#audit", (tb) => tb.textContent);
    if (wanted.every((w) => audit.includes(w))) break;
    if (Date.now() > deadline) {
      throw new Error(`the audit log lacks ${wanted.filter((w) => !audit.includes(w)).join(" and ")}${logError ? `; ${logError}` : ""}; it shows: ${audit.replace(/\s+/g, " ").slice(0, 600)}`);
    }
    await sleep(500);
  }
  await page.screenshot({ path: path.join(outDir, "console.png"), fullPage: true, timeout: WAIT_MS });
}

async function signInPage(page, base, simUrl, signinKey, outDir) {
  await page.goto(`${base}/admin/signin.html`, { waitUntil: "load", timeout: WAIT_MS });
  await page.fill("#signin-key", signinKey);
  await page.fill("#tenant", TENANT.id);
  await page.fill("#phone", PHONE_E164);
  const since = new Date(Date.now() - 1000).toISOString();
  await page.click("#send-code");
  const started = await until(page, "the code step", () => {
    if (!document.querySelector("#code-form").hidden) return "code";
    return !document.querySelector("#error").hidden ? "error" : false;
  });
  if (started !== "code") throw new Error(`sending the code failed: ${await errorArea(page)}`);

  const code = await latestCode(simUrl, PHONE_E164, since);
  await page.fill("#code", code);
  await page.click("#sign-in");
  const outcome = await until(page, "the sign-in result", () => {
    const r = document.querySelector("#result");
    if (r && !r.hidden && r.dataset.status) return r.dataset.status;
    return !document.querySelector("#error").hidden ? "error" : false;
  });
  if (outcome === "error") throw new Error(`signing in failed: ${await errorArea(page)}`);
  const result = (await page.innerText("#result")).replace(/\s+/g, " ").trim();
  if (outcome !== "approved") throw new Error(`sign-in ended with status ${outcome}: ${result}`);
  await until(page, `"Signed in as ${USER.displayName}"`, (name) =>
    document.querySelector("#result").textContent.includes(`Signed in as ${name}`), USER.displayName);

  const assertion = await page.inputValue("#assertion");
  const claims = decodeJwtPayload(assertion);
  const rows = await page.$$eval("#claims tbody tr[data-claim]", (trs) => trs.map((tr) => tr.dataset.claim));
  const missing = Object.keys(claims).filter((k) => !rows.includes(k));
  if (missing.length) throw new Error(`the claims table lacks ${missing.join(", ")}`);
  if (claims.name !== USER.displayName) throw new Error(`the name claim is ${JSON.stringify(claims.name)}`);
  await page.screenshot({ path: path.join(outDir, "signin.png"), fullPage: true, timeout: WAIT_MS });
  return { result, claims };
}

async function main() {
  const base = env("OTPGATE_URL").replace(/\/+$/, "");
  const simUrl = env("SIM_URL").replace(/\/+$/, "");
  const adminKey = env("ADMIN_KEY");
  const signinKey = env("SIGNIN_KEY");
  const outDir = path.resolve(env("OUT_DIR", process.cwd()));
  mkdirSync(outDir, { recursive: true });

  const { chromium } = loadPlaywright();
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
    timeout: WAIT_MS * 3,
  });
  const context = await browser.newContext({ viewport: { width: 1200, height: 800 } });
  context.setDefaultTimeout(WAIT_MS);
  context.setDefaultNavigationTimeout(WAIT_MS);

  const consolePage = await context.newPage();
  watch(consolePage, "console");
  current = consolePage;
  await adminConsole(consolePage, base, adminKey, outDir);

  const signinPage = await context.newPage();
  watch(signinPage, "signin");
  current = signinPage;
  const { result, claims } = await signInPage(signinPage, base, simUrl, signinKey, outDir);

  process.stdout.write(`${JSON.stringify({ ok: true, result, claims })}\n`);
}

async function report(err) {
  process.stderr.write(`browser test failed: ${err && err.stack ? err.stack : err}\n`);
  if (current) {
    try {
      process.stderr.write(`page: ${current.url()}\n`);
      const shown = await errorArea(current);
      if (shown) process.stderr.write(`error area: ${shown}\n`);
      const html = await Promise.race([current.content(), sleep(WAIT_MS).then(() => "(page content timed out)")]);
      process.stderr.write(`--- page content ---\n${html}\n--- end of page content ---\n`);
    } catch (e) {
      process.stderr.write(`(page content unavailable: ${e.message})\n`);
    }
  }
  if (diagnostics.length) process.stderr.write(`--- diagnostics ---\n${diagnostics.join("\n")}\n`);
}

async function closeBrowser() {
  if (browser) await Promise.race([browser.close().catch(() => {}), sleep(WAIT_MS)]);
}

const watchdog = setTimeout(async () => {
  await report(new Error(`the whole test took longer than ${OVERALL_MS / 1000} s`));
  await closeBrowser();
  process.exit(1);
}, OVERALL_MS);

main().then(
  async () => {
    clearTimeout(watchdog);
    await closeBrowser();
    process.exit(0);
  },
  async (err) => {
    clearTimeout(watchdog);
    await report(err);
    await closeBrowser();
    process.exit(1);
  },
);
