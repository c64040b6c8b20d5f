// The admin's journey through the console in a real browser (Debian's chromium, driven by
// playwright-core), finding every element by role and accessible name as a screen reader would.
// Started by tests/it/console.rs with a running `c7sync serve`:
//   BASE_URL=http://127.0.0.1:PORT ADMIN_TOKEN=… WORK_DIR=/tmp/… [SCREENSHOTS=docs/console] node journey.mjs
import { chromium } from "playwright-core";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";

const base = process.env.BASE_URL;
const admin = process.env.ADMIN_TOKEN;
const work = process.env.WORK_DIR;
const shots = process.env.SCREENSHOTS;
assert.ok(base && admin && work, "BASE_URL, ADMIN_TOKEN and WORK_DIR are required");

const oid = (n) => `00000000-0000-4000-8000-${String(n).padStart(12, "0")}`;
function csv(from, to) {
  let text = "email,oid,display_name\n";
  for (let n = from; n < to; n++) text += `dev${n}@contoso.com,${oid(n)},Dev ${n}\n`;
  return text;
}
function file(name, text) {
  const path = join(work, name);
  writeFileSync(path, text);
  return path;
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run"],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
const page = await context.newPage();
page.setDefaultTimeout(15000);
const seenUrls = [];
page.on("request", (request) => seenUrls.push(request.url()));
const problems = [];
// Script errors and CSP refusals; refusals the journey provokes (401, 400, 422) are answers, but
// a missing page or asset is a problem.
page.on("console", (message) => {
  if (message.type() === "error" && !message.text().startsWith("Failed to load resource")) problems.push(message.text());
});
page.on("response", (response) => { if (response.status() === 404) problems.push(`404 ${response.url()}`); });
page.on("pageerror", (error) => problems.push(String(error)));
async function shot(name) {
  if (shots) await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
}
async function expectText(locator, text) {
  await locator.filter({ hasText: text }).first().waitFor();
}
const step = (name) => console.log(`step: ${name}`);

try {
  step("without a session, the console sends the browser to sign in");
  await page.goto(`${base}/`);
  assert.match(page.url(), /\/console\/sign-in$/);
  await page.getByLabel("Admin token").fill("not the token");
  await page.getByRole("button", { name: "Sign in" }).click();
  await expectText(page.getByRole("alert"), "not the admin token");
  await shot("sign-in");
  await page.getByLabel("Admin token").fill(admin);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Teamspaces" }).waitFor();

  step("add a user and see them listed");
  await page.getByRole("link", { name: "acme", exact: true }).click();
  await page.getByLabel("Email", { exact: true }).fill("ada@contoso.com");
  await page.getByLabel("Object ID", { exact: true }).fill(oid(100));
  await page.getByRole("button", { name: "Add user" }).click();
  await expectText(page.getByRole("status"), "added");
  await page.getByRole("cell", { name: "ada@contoso.com", exact: true }).waitFor();
  await page.getByLabel("Email", { exact: true }).fill("grace@contoso.com");
  await page.getByLabel("Object ID", { exact: true }).fill("12345");
  await page.getByRole("button", { name: "Add user" }).click();
  await expectText(page.getByRole("alert"), "Object ID");

  step("upload a CSV, see the dry run, apply it");
  await page.getByRole("link", { name: "Import CSV" }).click();
  await page.getByLabel("CSV file").setInputFiles(file("developers.csv", csv(1, 5)));
  await page.getByLabel("Source id").fill("hr");
  await page.getByRole("button", { name: "Dry run" }).click();
  await expectText(page.locator("#result"), "dry run");
  await page.getByRole("cell", { name: "dev1@contoso.com", exact: true }).waitFor();
  await shot("import-dry-run");
  await page.getByRole("button", { name: "Apply" }).click();
  await expectText(page.locator("#result .badge"), "applied");
  await expectText(page.locator("#upload-status"), "Uploaded and checked");

  step("invalid rows are listed by line");
  await page.getByLabel("CSV file").setInputFiles(file("broken.csv", csv(1, 3) + "nobody,not-a-guid,X\n"));
  await page.getByRole("button", { name: "Dry run" }).click();
  await page.getByRole("table", { name: "Invalid rows" }).waitFor();
  await expectText(page.locator("#result .badge"), "failed");

  step("a replace import the guard holds, approved from its run page");
  await page.getByLabel("CSV file").setInputFiles(file("fewer.csv", csv(1, 2)));
  await page.getByRole("radio", { name: /Replace/ }).check();
  await page.getByRole("button", { name: "Apply" }).click();
  await expectText(page.locator("#result .badge"), "held");
  const heldId = await page.locator("#result-title a").textContent();
  // The teamspaces page makes the held run stand out, and leads to it.
  await page.getByRole("link", { name: "Teamspaces" }).click();
  const held = page.getByRole("alert").filter({ hasText: "held for approval" });
  await held.waitFor();
  await shot("teamspaces-held");
  await held.getByRole("link", { name: heldId, exact: true }).click();
  const removals = page.getByRole("table", { name: "Who would be removed" });
  await removals.getByRole("cell", { name: "dev4@contoso.com", exact: true }).waitFor();
  assert.equal(await removals.getByRole("cell", { name: "ada@contoso.com", exact: true }).count(), 0,
    "a member added by hand is not the CSV source's to remove");
  await shot("run-held");
  await page.getByRole("button", { name: "Approve" }).click();
  await expectText(page.getByRole("status"), "approved");
  await expectText(page.locator(".badge"), "applied");

  step("runs are listed and link by id");
  await page.getByRole("link", { name: "Runs", exact: true }).click();
  await page.getByRole("link", { name: heldId, exact: true }).waitFor();
  await shot("runs");

  step("the teamspace's members now are ada and dev1");
  await page.getByRole("link", { name: "Teamspaces" }).click();
  await shot("teamspaces");
  await page.getByRole("link", { name: "acme", exact: true }).click();
  await page.getByRole("cell", { name: "dev1@contoso.com", exact: true }).waitFor();
  assert.equal(await page.getByRole("cell", { name: "dev4@contoso.com", exact: true }).count(), 0);
  await page.getByLabel(/^Search/).fill("ada");
  await page.getByRole("button", { name: "Search" }).click();
  await page.getByRole("cell", { name: "ada@contoso.com", exact: true }).waitFor();
  assert.equal(await page.getByRole("cell", { name: "dev1@contoso.com", exact: true }).count(), 0);
  await shot("members");

  step("create and revoke a SCIM token");
  await page.getByRole("link", { name: "SCIM" }).click();
  await page.getByLabel("Label", { exact: true }).fill("Entra app");
  await page.getByRole("button", { name: "Create token" }).click();
  await expectText(page.getByRole("status"), "shown once");
  const token = await page.getByLabel("New SCIM token").inputValue();
  assert.match(token, /^c7s_/);
  await shot("scim-token");
  const scim = await fetch(`${base}/scim/v2/Users`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(scim.status, 200, "the new token works");
  await page.getByRole("button", { name: "Revoke" }).click();
  await expectText(page.getByRole("status"), "revoked");
  let refused = 200;
  for (let i = 0; i < 100 && refused !== 401; i++) {
    refused = (await fetch(`${base}/scim/v2/Users`, { headers: { authorization: `Bearer ${token}` } })).status;
    if (refused !== 401) await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.equal(refused, 401, "a revoked token is refused");

  step("audit and delivery pages");
  await page.getByRole("link", { name: "Audit", exact: true }).click();
  await page.getByLabel("Source", { exact: true }).fill("manual");
  await page.getByRole("button", { name: "Filter" }).click();
  await page.getByRole("cell", { name: "ada@contoso.com", exact: true }).first().waitFor();
  assert.equal(await page.getByRole("cell", { name: "dev1@contoso.com", exact: true }).count(), 0, "filtered on source");
  await page.getByRole("link", { name: "Delivery" }).click();
  await page.getByRole("heading", { name: "Given up on" }).waitFor();

  step("a phone-sized screen shows the members without sideways scrolling of the page");
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(`${base}/console/teamspaces/acme`);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 1, `the page is ${overflow}px wider than a phone`);
  await shot("members-phone");
  await page.setViewportSize({ width: 1280, height: 900 });

  step("sign out");
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByLabel("Admin token").waitFor();
  await page.goto(`${base}/console/runs`);
  assert.match(page.url(), /\/console\/sign-in$/, "signed out for good");

  const leaked = seenUrls.filter((url) => url.includes(admin));
  assert.deepEqual(leaked, [], "the admin token is never in a URL");
  assert.deepEqual(problems, [], "no script errors in the browser");
  console.log("journey passed");
} finally {
  await browser.close();
}
