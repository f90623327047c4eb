// The seed tenants in Debian's Chromium (playwright-core), as an editor: fleet → click a row →
// the entity's page → run an action through its confirmation → the run's page says it
// succeeded → back on the entity's page the state has changed and the run is listed. A viewer
// sees no action buttons. PFCAM's events gallery: its thumbnails load (under the page's CSP),
// a click opens the full snapshot; OmenDB's SLA dashboard renders every panel.
// Usage: node seeds.mjs BASE_URL SCREENSHOT_DIR (env: OPSBOARD_E2E_EDITOR, OPSBOARD_E2E_VIEWER,
// OPSBOARD_E2E_PASSWORD). Exits non-zero on the first failed check.
import { check, launch } from "./walk.mjs";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const [base, shots] = process.argv.slice(2);
mkdirSync(shots, { recursive: true });
const password = process.env.OPSBOARD_E2E_PASSWORD;

const browser = await launch();
const errors = [];

async function signedIn(email) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(`${base}/login`);
  await page.fill("input[name=email]", email);
  await page.fill("input[name=password]", password);
  await Promise.all([page.waitForURL((u) => !u.pathname.startsWith("/login")), page.click("button[type=submit]")]);
  return page;
}

/// Reloads `page` until `probe` finds something (the live writer shows changes every 5 s).
async function until(page, probe, what) {
  for (let i = 0; i < 30; i++) {
    if (await probe()) {
      check(true, what);
      return;
    }
    await page.waitForTimeout(1000);
    await page.reload();
  }
  await page.screenshot({ path: join(shots, "seed-failed.png"), fullPage: true });
  check(false, `${what} (at ${page.url()})`);
}

// One seed: its fleet page, a row's link to the entity page, an action on it.
async function walk(page, seed) {
  await page.goto(`${base}/t/${seed.tenant}`);
  check(await page.locator(".panel-error").count() === 0, `${seed.tenant}: the fleet page renders every panel`);
  check(await page.locator("section.panel table tbody tr").count() >= 5, `${seed.tenant}: the fleet is listed`);
  await page.screenshot({ path: join(shots, `seed-${seed.tenant}-fleet.png`), fullPage: true });

  await Promise.all([
    page.waitForURL(new RegExp(`/t/${seed.tenant}/d/${seed.entity}\\?.*var-${seed.entity}=${seed.unit}`)),
    page.locator("section.panel table a", { hasText: new RegExp(`^${seed.unit}$`) }).first().click(),
  ]);
  check(await page.locator(`select[name=var-${seed.entity}]`).inputValue() === seed.unit, `${seed.tenant}: the page is about ${seed.unit}`);
  check(await page.locator(".panel-error").count() === 0, `${seed.tenant}: the entity page renders`);
  check(await page.locator("a.action", { hasText: seed.adminOnly }).count() === 0, `${seed.tenant}: an editor gets no ${seed.adminOnly} button`);

  await Promise.all([page.waitForURL(new RegExp(`/t/${seed.tenant}/actions/${seed.action}\\?`)), page.locator("a.action", { hasText: seed.label }).first().click()]);
  check((await page.locator("p.confirm").textContent()).includes(seed.unit), `${seed.tenant}: the confirmation names ${seed.unit}`);
  await page.screenshot({ path: join(shots, `seed-${seed.tenant}-confirm.png`), fullPage: true });
  await Promise.all([page.waitForURL(/\/actions\/runs\//), page.click("#action-confirm")]);
  await until(page, async () => (await page.locator("#run-status").textContent()).startsWith("succeeded"), `${seed.tenant}: the run succeeded`);
  await page.screenshot({ path: join(shots, `seed-${seed.tenant}-run.png`), fullPage: true });

  await Promise.all([page.waitForURL(new RegExp(`/t/${seed.tenant}/d/${seed.entity}\\?`)), page.getByRole("link", { name: "Back to the dashboard" }).click()]);
  await until(page, async () => (await page.locator("section.panel", { hasText: seed.changed }).count()) > 0, `${seed.tenant}: ${seed.unit} shows "${seed.changed}"`);
  check(await page.locator("ul.runs li", { hasText: seed.label }).count() >= 1, `${seed.tenant}: the run is listed under its panel`);
  await page.screenshot({ path: join(shots, `seed-${seed.tenant}-after.png`), fullPage: true });
}

// PFCAM's gallery: thumbnails that really loaded (decoded pictures, not broken images), and a
// click that opens the full snapshot.
async function gallery(page) {
  const refused = [];
  page.on("console", (m) => { if (/Content Security Policy/i.test(m.text())) refused.push(m.text()); });
  await page.goto(`${base}/t/pfcam/d/events`);
  await until(page, async () => (await page.locator("ul.gallery img").count()) > 0, "pfcam: the gallery shows events");
  check(await page.locator(".panel-error").count() === 0, "pfcam: the gallery page renders every panel");
  const pictures = page.locator("ul.gallery img");
  await pictures.first().scrollIntoViewIfNeeded();
  await page.waitForFunction(() => {
    const imgs = [...document.querySelectorAll("ul.gallery img")].slice(0, 4);
    return imgs.length > 0 && imgs.every((i) => i.complete && i.naturalWidth > 0);
  }, null, { timeout: 15000 }).catch(() => {});
  const loaded = await pictures.evaluateAll((imgs) => imgs.slice(0, 4).map((i) => [i.naturalWidth, i.naturalHeight]));
  check(loaded.length > 0 && loaded.every(([w, h]) => w > 0 && w <= 320 && h <= 320), `pfcam: thumbnails load, at most 320 px (${JSON.stringify(loaded)})`);
  check(refused.length === 0, `pfcam: nothing refused by the CSP (${refused.join("; ")})`);
  await page.screenshot({ path: join(shots, "seed-pfcam-gallery.png"), fullPage: true });
  const href = await page.locator("ul.gallery a").first().getAttribute("href");
  const [response] = await Promise.all([page.waitForResponse((r) => r.url().includes("/attachments/") && !r.url().includes("thumbnail")), page.locator("ul.gallery a").first().click()]);
  check(response.status() === 200 && response.headers()["content-type"] === "image/jpeg", `pfcam: a click opens the full snapshot (${href})`);
  await page.goBack();
}

try {
  const editor = await signedIn(process.env.OPSBOARD_E2E_EDITOR);
  await walk(editor, { tenant: "kraliki", entity: "vm", unit: "vm-01", action: "restart", label: "Restart", adminOnly: "Rebuild", changed: "offline" });
  await walk(editor, { tenant: "pimeet", entity: "device", unit: "room-02", action: "restart", label: "Restart", adminOnly: "Reboot", changed: "restart requested from the dashboard" });

  await gallery(editor);
  await editor.goto(`${base}/t/omendb/d/sla`);
  await until(editor, async () => (await editor.locator("section.panel table tbody tr").count()) >= 4, "omendb: the SLA of each of the 4 services");
  check(await editor.locator(".panel-error").count() === 0, "omendb: the SLA dashboard renders every panel");
  check(await editor.locator("section.panel svg, section.panel img").count() >= 2, "omendb: its charts are drawn");
  await editor.screenshot({ path: join(shots, "seed-omendb-sla.png"), fullPage: true });

  const viewer = await signedIn(process.env.OPSBOARD_E2E_VIEWER);
  for (const [tenant, entity, unit] of [["kraliki", "vm", "vm-02"], ["pimeet", "device", "room-03"]]) {
    await viewer.goto(`${base}/t/${tenant}/d/${entity}?var-${entity}=${unit}`);
    check(await viewer.locator(".panel-error").count() === 0, `${tenant}: a viewer sees ${unit}'s page`);
    check(await viewer.locator("a.action").count() === 0, `${tenant}: a viewer gets no action buttons`);
  }
  check(errors.length === 0, `no script errors on the seed pages (${errors.join("; ")})`);
} finally {
  await browser.close();
}
