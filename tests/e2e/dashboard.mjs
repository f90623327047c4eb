// End-to-end walk through opsboard's pages in Debian's Chromium (playwright-core):
// login → dashboard → change the range → drill down → toggle aggregation → export CSV → report
// → phone layout → an alert pushed to the open page → sign out.
// Usage: node dashboard.mjs BASE_URL SCREENSHOT_DIR. Exits non-zero on the first failed check.
import { check, launch } from "./walk.mjs";
import { readFileSync, mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";

const [base, shots] = process.argv.slice(2);
rmSync(shots, { recursive: true, force: true });
mkdirSync(shots, { recursive: true });

const browser = await launch();
let step = 0;
async function shot(page, name) {
  step += 1;
  await page.screenshot({ path: join(shots, `${String(step).padStart(2, "0")}-${name}.png`), fullPage: true });
}

try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
  const page = await context.newPage();
  const consoleErrors = [];
  page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
  page.on("pageerror", (e) => consoleErrors.push(String(e)));

  // 0. Signed out, the dashboard sends us to the login page; signing in brings us back.
  await page.goto(`${base}/t/demo`);
  check(new URL(page.url()).pathname === "/login", `signed out, /t/demo redirects to the login page (${page.url()})`);
  await shot(page, "login");
  await page.fill("input[name=email]", process.env.OPSBOARD_E2E_EMAIL);
  await page.fill("input[name=password]", process.env.OPSBOARD_E2E_PASSWORD);
  await Promise.all([page.waitForURL(`${base}/t/demo`), page.click("button[type=submit]")]);
  check(true, "signed in and back on /t/demo");

  // 1. The demo dashboard: every panel rendered, none failed.
  const panels = page.locator("section.panel");
  const count = await panels.count();
  check(count === 5, `default dashboard has 5 panels (found ${count})`);
  check(await page.locator(".panel-error").count() === 0, "no panel shows an error");
  check(await page.locator("section.panel svg.chart").count() >= 1, "the timeseries is drawn");
  check(await page.locator(".kpi-value").count() === 1, "the KPI shows its number");
  check(await page.locator("ul.health li").count() >= 5, "health lists the services");
  check(await page.locator("section.panel table tbody tr").count() >= 1, "the error table has rows");
  const box = await page.locator("section.panel").first().boundingBox();
  check(box.width > 700, `the timeseries spans 8 of 12 columns (${Math.round(box.width)} px)`);
  const updated = await page.locator(".updated").first().textContent();
  check(/updated \d\d:\d\d:\d\d/.test(updated), `panels say when they were updated (${updated})`);
  await shot(page, "dashboard");

  // 2. Change the range: every panel follows.
  const before = await page.locator("svg.chart").first().getAttribute("data-from");
  await Promise.all([page.waitForURL(/from=now-7d/), page.getByRole("link", { name: "7d", exact: true }).click()]);
  const after = await page.locator("svg.chart").first().getAttribute("data-from");
  check(Number(before) - Number(after) > 5 * 86400000, "the chart now starts a week back");
  check((await page.locator(".meta").first().textContent()).includes("per 1h"), "a week is drawn in hourly buckets");
  const hoverTitle = await page.locator("svg.chart .hover-point title").first().textContent();
  check(/ · \d\d-\d\d \d\d:\d\d · [\d.]+$/.test(hoverTitle), `points carry their value on hover (${hoverTitle})`);
  await shot(page, "range-7d");

  // Drag across the chart to zoom: the range becomes the dragged span.
  const chart = await page.locator("svg.chart").first().boundingBox();
  await page.mouse.move(chart.x + chart.width * 0.4, chart.y + chart.height / 2);
  await page.mouse.down();
  await page.mouse.move(chart.x + chart.width * 0.6, chart.y + chart.height / 2, { steps: 5 });
  await Promise.all([page.waitForURL(/from=\d{4}-\d\d-\d\dT/), page.mouse.up()]);
  const zoomed = new URL(page.url());
  const span = Date.parse(zoomed.searchParams.get("to")) - Date.parse(zoomed.searchParams.get("from"));
  check(span > 0 && span < 2.5 * 86400000, `zoomed to ${(span / 3600000).toFixed(1)} h`);
  await shot(page, "zoomed");
  await page.goto(`${base}/t/demo?from=now-7d&to=now`);

  // Manual refresh of one panel fetches its fragment.
  await page.locator("button.refresh").first().click();
  await page.waitForTimeout(500);
  check(await page.locator(".panel-error").count() === 0, "a refreshed panel still renders");

  // A service in the health list opens its own page (a dashboard variable), the range kept;
  // its selector switches to another service.
  await Promise.all([page.waitForURL(/\/t\/demo\/d\/service\?.*var-service=api/), page.locator("ul.health a", { hasText: /^api$/ }).click()]);
  check(page.url().includes("from=now-7d"), "the service page keeps the range");
  check(await page.locator("h2", { hasText: "Health of api" }).count() === 1, "the page is about api");
  check(await page.locator("select[name=var-service]").inputValue() === "api", "the selector shows api");
  check(await page.locator(".panel-error").count() === 0, "the service page renders");
  await shot(page, "service-page");
  await Promise.all([page.waitForURL(/var-service=auth/), page.locator("select[name=var-service]").selectOption("auth")]);
  check(await page.locator("h2", { hasText: "Health of auth" }).count() === 1, "picking auth shows auth");
  await page.goto(`${base}/t/demo?from=now-7d&to=now`);

  // 3. Drill down into the CPU panel.
  await Promise.all([page.waitForURL(/\/t\/demo\/p\/cpu_usage/), page.getByRole("link", { name: "CPU Usage Over Time" }).click()]);
  check(page.url().includes("from=now-7d"), "the drill-down keeps the range");
  check(await page.locator(".data-table tbody tr").count() > 10, "the data sits under the chart");
  await shot(page, "drill-down");

  // 4. Toggle aggregation off.
  await Promise.all([page.waitForURL(/disable_aggregation=true/), page.getByRole("link", { name: "Show raw data" }).click()]);
  check((await page.locator(".meta").first().textContent()).includes("raw rows"), "raw rows after the toggle");
  check(await page.getByRole("link", { name: "Aggregate" }).count() === 1, "the toggle offers to aggregate again");
  await shot(page, "raw");

  // 5. Export CSV and read the file.
  const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("link", { name: "Export CSV" }).click()]);
  const name = download.suggestedFilename();
  check(/^demo-cpu_usage-\d{8}T\d{6}Z-\d{8}T\d{6}Z\.csv$/.test(name), `export file name ${name}`);
  const csv = readFileSync(await download.path(), "utf8").trim().split("\n");
  check(csv[0] === "time,value,series", `CSV header ${csv[0]}`);
  check(csv.length > 1000, `a week of raw rows exported (${csv.length - 1})`);

  // 6. The report URL alone, in a fresh page.
  const reportUrl = await page.getByRole("link", { name: "Report link" }).getAttribute("href");
  const report = await context.newPage();
  await report.goto(base + reportUrl);
  check(await report.locator("header.top").count() === 0, "a report has no navigation");
  check(await report.locator("svg.chart").count() === 1, "the report shows the chart");
  await shot(report, "report");

  // 7. On a phone the panels stack in order, each the full width.
  const phone = await context.newPage();
  await phone.setViewportSize({ width: 390, height: 844 });
  await phone.goto(`${base}/t/demo`);
  const boxes = await phone.locator("section.panel").evaluateAll((els) => els.map((e) => e.getBoundingClientRect().toJSON()));
  check(boxes.every((b) => Math.abs(b.x - boxes[0].x) < 2 && b.width > 300), "panels stack full-width on a phone");
  check(boxes.every((b, i) => i === 0 || b.y > boxes[i - 1].y), "in their dashboard order");
  await shot(phone, "phone");
  await phone.close();

  // 8. Alerts are pushed: a device reports a full disk; within an evaluation cycle the open
  // dashboard hears of it (server-sent events) and its alerts panel redraws without a reload.
  // Timed refreshes are switched off on this page, so a redraw can only come from the push.
  const watch = await context.newPage();
  watch.on("pageerror", (e) => consoleErrors.push(String(e)));
  await watch.addInitScript(() => { window.setInterval = () => 0; });
  await watch.goto(`${base}/t/demo/d/performance`);
  const live = watch.locator("section.panel[data-live=alerts]");
  check(await live.count() === 1, "the alerts panel listens for alert changes");
  const redraws = [];
  watch.on("request", (r) => { if (r.url().includes("/p/active_alerts/fragment")) redraws.push(r.url()); });
  const written = await fetch(`${base}/api/v1/tenants/demo/write/devices`, {
    method: "POST",
    headers: { authorization: `Bearer ${process.env.OPSBOARD_E2E_KEY}`, "content-type": "application/x-ndjson" },
    body: JSON.stringify({ time: Date.now(), device: "e2e-probe", disk_used_gb: 97.5, api_cost_usd: 0, latency_ms: 100, failed_logins: 0 }) + "\n",
  });
  check(written.ok, `the device's reading is stored (${written.status})`);
  await watch.locator("#alert-feed li", { hasText: "e2e-probe" }).first().waitFor({ timeout: 90000 });
  check(true, "the page is told of the e2e-probe alert");
  await live.locator("text=e2e-probe").first().waitFor({ timeout: 15000 });
  check(redraws.length >= 1, `the alerts panel redrew itself (${redraws.length} fetches)`);
  await shot(watch, "alert-pushed");
  await watch.close();

  // 9. The API reference: public, rendered by the server from the OpenAPI document, under the
  // same strict CSP as every page (a CSP refusal would show among the console errors).
  await page.goto(`${base}/api/docs`);
  const operations = await page.locator("article.api-op").count();
  check(operations >= 40, `the API reference lists its operations (${operations})`);
  await page.locator("#schema-CreatedKey").waitFor();
  check(true, "the API reference shows the schemas");
  await shot(page, "api-docs");

  // 10. Sign out: the session ends and the dashboard asks for a login again.
  await page.goto(`${base}/t/demo`);
  await Promise.all([page.waitForURL(`${base}/login`), page.getByRole("button", { name: "Sign out" }).click()]);
  await page.goto(`${base}/t/demo`);
  check(new URL(page.url()).pathname === "/login", "signed out: back to the login page");

  check(consoleErrors.length === 0, `no script errors (${consoleErrors.join("; ")})`);
} finally {
  await browser.close();
}
