// The browser half of tests/it/browser.rs: Debian's headless Chromium with a CDP virtual
// authenticator (CTAP2, internal transport, user verification) signs in to a running
// stepgate, enrolls a passkey on the account page, is challenged on an aal3 route, passes
// with the passkey and reaches the upstream. Screenshots go to ARTIFACTS.
//
//   node e2e/passkey.mjs BASE_URL ARTIFACTS USER PASSWORD
//
// Prints one line per step; exits non-zero on the first failure.
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";

const [base, artifacts, user, password] = process.argv.slice(2);
if (!base || !artifacts || !user || !password) {
  console.error("usage: node e2e/passkey.mjs BASE_URL ARTIFACTS USER PASSWORD");
  process.exit(2);
}
mkdirSync(artifacts, { recursive: true });
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";

function step(text) {
  console.log("STEP " + text);
}

function expect(condition, what) {
  if (!condition) throw new Error("expected: " + what);
}

const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: ["--no-sandbox", "--host-resolver-rules=MAP localhost 127.0.0.1"],
});
try {
  const context = await browser.newContext({ viewport: { width: 900, height: 700 } });
  const page = await context.newPage();
  page.on("console", (m) => console.log("CONSOLE " + m.type() + " " + m.text()));
  const cdp = await context.newCDPSession(page);
  await cdp.send("WebAuthn.enable", { enableUI: false });
  const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: {
      protocol: "ctap2",
      transport: "internal",
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  step("virtual authenticator " + authenticatorId);

  await page.goto(base + "/admin");
  expect(page.url().includes("/.stepgate/login"), "the aal3 route sends us to sign in, at " + page.url());
  await page.fill("input[name=username]", user);
  await page.fill("input[name=password]", password);
  await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
  expect(page.url().includes("/.stepgate/challenge"), "signed in, then challenged, at " + page.url());
  expect((await page.content()).includes("needs a passkey"), "no passkey yet: the page says so");
  step("signed in; challenged without a passkey");

  await page.goto(base + "/.stepgate/account");
  await page.fill("#passkey-name", "e2e laptop");
  await Promise.all([page.waitForNavigation(), page.click("#passkey-register")]);
  expect(page.url().endsWith("/.stepgate/recovery-codes"), "a first factor comes with recovery codes, at " + page.url());
  const codes = await page.locator(".recovery-code").count();
  expect(codes === 10, "ten recovery codes, got " + codes);
  await page.screenshot({ path: artifacts + "/recovery-codes.png", fullPage: true });
  step("recovery codes shown: " + codes);
  await page.goto(base + "/.stepgate/account");
  await page.waitForSelector("text=e2e laptop");
  await page.screenshot({ path: artifacts + "/enrollment.png", fullPage: true });
  const creds = await cdp.send("WebAuthn.getCredentials", { authenticatorId });
  expect(creds.credentials.length === 1, "one credential on the authenticator");
  step("passkey enrolled: " + creds.credentials.length + " credential, rpId " + creds.credentials[0].rpId);

  await page.goto(base + "/admin");
  expect(page.url().includes("/.stepgate/challenge"), "challenged on the aal3 route, at " + page.url());
  await page.waitForSelector("#passkey-authenticate");
  await page.screenshot({ path: artifacts + "/challenge.png", fullPage: true });
  step("challenged on /admin with the passkey offered");

  await Promise.all([page.waitForURL(base + "/admin"), page.click("#passkey-authenticate")]);
  const body = await page.content();
  expect(body.includes("<h1>Admin</h1>"), "the upstream's admin page");
  await page.screenshot({ path: artifacts + "/admin.png", fullPage: true });
  const after = await cdp.send("WebAuthn.getCredentials", { authenticatorId });
  step("reached the upstream; sign count now " + after.credentials[0].signCount);

  const echo = await page.goto(base + "/echo");
  const headers = (await echo.json()).headers;
  expect(headers["x-stepgate-level"] === "aal3", "the app is told aal3, got " + headers["x-stepgate-level"]);
  step("app sees level " + headers["x-stepgate-level"] + " methods " + headers["x-stepgate-methods"]);
  console.log("E2E OK");
} finally {
  await browser.close();
}
