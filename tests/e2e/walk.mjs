// What every browser walk shares: a check that prints `ok - …` or throws, and Debian's
// Chromium started headless the way the brief asks.
import { chromium } from "playwright-core";

export function check(condition, message) {
  if (!condition) {
    throw new Error("check failed: " + message);
  }
  console.log("ok -", message);
}

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
  });
}
