// Signing in through an OpenID provider in Debian's Chromium: the login page's provider button
// → the provider's own sign-in and consent pages (tests/e2e/idp.mjs) → back on the dashboard
// asked for first, under opsboard's content security policy → sign out, which also ends the
// provider's session (RP-initiated logout) and comes back to the login page.
// Usage: node oidc.mjs BASE_URL ISSUER SCREENSHOT_DIR.
import { check, launch } from "./walk.mjs";
import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";

const [base, issuer, shots] = process.argv.slice(2);
rmSync(shots, { recursive: true, force: true });
mkdirSync(shots, { recursive: true });

const browser = await launch();
const page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
try {
  const errors = [];
  page.on("console", (m) => {
    if (m.type() === "error" && page.url().startsWith(base)) errors.push(`${page.url()}: ${m.text()}`);
  });
  page.on("pageerror", (e) => errors.push(String(e)));

  await page.goto(`${base}/t/acme`);
  check(new URL(page.url()).pathname === "/login", `signed out, /t/acme asks for a sign-in (${page.url()})`);
  await page.screenshot({ path: join(shots, "01-login.png") });
  await Promise.all([
    page.waitForURL((u) => u.toString().startsWith(issuer), { waitUntil: "commit" }),
    page.getByRole("link", { name: "Sign in with Test IdP" }).click(),
  ]);
  await page.waitForSelector("input[name=login]");
  check(true, "the button leads to the provider's sign-in page");
  await page.fill("input[name=login]", "alice");
  await page.fill("input[name=password]", "any password (development sign-in)");
  await page.click("button[type=submit]");
  await page.waitForSelector("button:has-text('Continue')");
  await Promise.all([page.waitForURL(`${base}/t/acme`), page.click("button:has-text('Continue')")]);
  check(true, "after the provider, back on /t/acme");
  check(await page.getByRole("button", { name: "Sign out" }).count() === 1, "signed in: the page offers to sign out");
  await page.screenshot({ path: join(shots, "02-signed-in.png"), fullPage: true });

  await Promise.all([
    page.waitForURL((u) => u.toString().startsWith(`${issuer}/session/end`), { waitUntil: "commit" }),
    page.getByRole("button", { name: "Sign out" }).click(),
  ]);
  await page.waitForSelector("button[value=yes]");
  check(true, "signing out goes on to the provider's logout (not blocked by form-action)");
  await Promise.all([page.waitForURL(`${base}/login`), page.click("button[value=yes]")]);
  check(true, "the provider sends the browser back to opsboard's login page");
  await page.goto(`${base}/t/acme`);
  check(new URL(page.url()).pathname === "/login", "signed out here too");
  check(errors.length === 0, `no console errors on opsboard's pages (${errors.join(" | ")})`);
} catch (e) {
  // Where the walk stood, for the failure message.
  console.log(`at ${page.url()}:\n${(await page.evaluate(() => document.body.innerHTML)).slice(0, 3000)}`);
  await page.screenshot({ path: join(shots, "failed.png"), fullPage: true });
  throw e;
} finally {
  await browser.close();
}
