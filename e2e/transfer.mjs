// The browser half of tests/it/browser_transfer.rs: in headless Chromium, a user enrolls an
// authenticator app, lets the proof lapse (the test moves the gateway's clock), sends the demo's
// transfer form, lands on the challenge page showing "Transfer 10 to bob", types the code
// (from oathtool at the gateway's time) and sees the transfer done once; then the same from
// the script page (/pay), where stepgate-client.js opens the challenge in a popup and retries.
//
//   node e2e/transfer.mjs BASE_URL SHOTS USER PASSWORD
//
// Talks to the test on stdin/stdout: prints "WAIT advance N" and reads back the gateway's
// time (Unix seconds) after the test moved its clock on by N seconds.
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { createInterface } from "node:readline";

const [base, shots, user, password] = process.argv.slice(2);
mkdirSync(shots, { recursive: true });
const rl = createInterface({ input: process.stdin });
const lines = rl[Symbol.asyncIterator]();
const step = (t) => console.log("STEP " + t);
const expect = (c, what) => { if (!c) throw new Error("expected: " + what); };

async function advance(seconds) {
  console.log("WAIT advance " + seconds);
  const { value } = await lines.next();
  return Number(value);
}
function code(secret, at) {
  return execFileSync("oathtool", ["--totp", "-b", "--now", "@" + at, secret]).toString().trim();
}
async function shot(page, name) {
  for (const [w, h, tag] of [[1100, 800, "desktop"], [390, 844, "390"]]) {
    await page.setViewportSize({ width: w, height: h });
    await page.screenshot({ path: `${shots}/${name}-${tag}.png`, fullPage: true });
  }
  await page.setViewportSize({ width: 1100, height: 800 });
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--host-resolver-rules=MAP localhost 127.0.0.1"],
});
try {
  const context = await browser.newContext({ viewport: { width: 1100, height: 800 } });
  const page = await context.newPage();
  page.on("console", (m) => console.log("CONSOLE " + m.type() + " " + m.text()));

  await page.goto(base + "/.stepgate/enroll/totp?return=%2Ftransfer");
  await page.fill("input[name=username]", user);
  await page.fill("input[name=password]", password);
  await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
  expect(page.url().includes("/.stepgate/enroll/totp"), "enrollment after sign-in, at " + page.url());
  await shot(page, "enroll");
  const secret = (await page.textContent("code.secret")).trim();
  let now = await advance(0);
  await page.fill("input[name=code]", code(secret, now));
  await Promise.all([page.waitForNavigation(), page.click("form[action='/.stepgate/enroll/totp'] button[type=submit]")]);
  expect(page.url().endsWith("/.stepgate/recovery-codes"), "recovery codes, at " + page.url());
  await shot(page, "recovery-codes");
  step("enrolled");
  await page.goto(base + "/.stepgate/account");
  await shot(page, "account");

  // The proof lapses (max_age 5m), then the transfer form is sent.
  now = await advance(6 * 60);
  await page.goto(base + "/transfer");
  expect(page.url().includes("/.stepgate/challenge"), "the lapsed proof: challenged for the form, at " + page.url());
  await page.fill("input[name=code]", code(secret, now));
  await Promise.all([page.waitForNavigation(), page.click("form[action='/.stepgate/challenge/totp'] button")]);
  expect(page.url() === base + "/transfer", "back on the form, at " + page.url());
  now = await advance(6 * 60);
  await page.fill("input[name=to]", "bob");
  await page.fill("input[name=amount]", "10");
  await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
  expect(page.url().includes("/.stepgate/challenge") && page.url().includes("kept="), "the form lands on the challenge, at " + page.url());
  const text = await page.textContent("main");
  expect(text.includes("Transfer 10 to bob"), "the page shows what is confirmed: " + text);
  await shot(page, "challenge-transfer");
  step("challenge shows Transfer 10 to bob");
  await page.fill("input[name=code]", code(secret, now));
  await Promise.all([page.waitForNavigation(), page.click("form[action='/.stepgate/challenge/totp'] button")]);
  const done = await page.textContent("main");
  expect(done.includes("Transferred 10 to bob (transfer #"), "the app's answer: " + done);
  await shot(page, "transfer-done");
  step("transfer done: " + done.match(/transfer #\d+/)[0]);
  const reload = await page.reload();
  expect(reload.status() === 410, "a reload sends nothing: " + reload.status());
  await shot(page, "reload-gone");
  step("reload refused 410");

  // The script page: fetch, a 401, the popup, the retry.
  now = await advance(60);
  await page.goto(base + "/pay");
  await page.fill("input[name=to]", "carol");
  await page.fill("input[name=amount]", "5");
  const [popup] = await Promise.all([context.waitForEvent("page"), page.click("#pay button[type=submit]")]);
  await popup.waitForLoadState();
  expect(popup.url().includes("/.stepgate/challenge"), "the popup is the challenge, at " + popup.url());
  expect((await popup.textContent("main")).includes("Transfer 5 to carol"), "the popup shows the transfer");
  step("popup shows Transfer 5 to carol");
  await popup.screenshot({ path: `${shots}/popup-challenge.png`, fullPage: true });
  await popup.fill("input[name=code]", code(secret, now));
  await Promise.all([popup.waitForEvent("close"), popup.click("form[action='/.stepgate/challenge/totp'] button")]);
  step("popup closed itself");
  await page.waitForFunction(() => /Transferred|Not done/.test(document.getElementById("result").textContent));
  const result = await page.textContent("#result");
  expect(result.includes("Transferred 5 to carol (transfer #"), "the retried fetch: " + result);
  await shot(page, "pay-done");
  step("script transfer done: " + result);
  console.log("E2E OK");
} finally {
  await browser.close();
  rl.close();
}
