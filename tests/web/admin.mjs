// Drives the admin page (web/index.html, served at /) in Debian's chromium
// through playwright-core, the way an operator uses it, and prints what the
// page showed as one JSON object on stdout.  tests/api/test_web.py starts
// landlord, runs this, and checks the answers against the GitOps repository
// and the registry.
//
//   node admin.mjs <base url> <bearer token> <tenant id>
import { chromium } from "playwright-core";

const [base, token, tenant] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  // As root, without a GPU, and without the background traffic this
  // machine's closed network refuses.
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const out = { console_errors: [] };
try {
  const page = await browser.newPage();
  page.on("pageerror", (e) => out.console_errors.push(String(e)));
  page.on("dialog", (d) => { out.dialog = d.message(); d.dismiss(); });
  const rowOf = (id) => page.$$eval("#tenants tr", (rows, id) =>
    rows.filter((r) => r.cells[0].textContent === id).map((r) => [...r.cells].slice(0, 6).map((c) => c.textContent))[0] || null, id);

  // Without a token the page says so (the API answered 401).
  await page.goto(base + "/");
  await page.waitForSelector("#auth-state.err");
  out.without_token = await page.textContent("#auth-state");

  // Paste the token: the tiers come, and the field does not keep it.
  await page.fill("#token", "Bearer " + token);
  await page.click("#auth button[type=submit]");
  await page.waitForFunction(() => document.querySelectorAll("#tiers tr").length > 0);
  out.tiers = await page.$$eval("#tiers tr", (rows) => rows.map((r) => [...r.cells].map((c) => c.textContent)));
  out.tier_options = await page.$$eval("#tenant-tier option", (os) => os.map((o) => o.value));
  out.token_field = await page.inputValue("#token");
  out.token_stored = await page.evaluate(() => sessionStorage.getItem("landlord.token"));

  // Onboard through the form.
  await page.fill("#tenant-id", tenant);
  await page.selectOption("#tenant-tier", "premium");
  await page.fill("#tenant-release", "0.0");
  await page.click("#onboard button[type=submit]");
  await page.waitForFunction((id) => document.getElementById("onboard-result").textContent.startsWith("onboarded " + id), tenant);
  out.onboard_result = await page.textContent("#onboard-result");
  await page.waitForFunction((id) => [...document.querySelectorAll("#tenants tr")].some((r) => r.cells[0].textContent === id), tenant);
  out.row_after_onboard = await rowOf(tenant);

  // A bad id: the server's problem detail, shown as an error.
  await page.fill("#tenant-id", "Not_A_Label");
  await page.click("#onboard button[type=submit]");
  await page.waitForSelector("#onboard-result.err");
  out.bad_result = await page.textContent("#onboard-result");

  // Offboard with the row's button.
  await page.click(`#tenants tr:has(td:text-is("${tenant}")) button`);
  await page.waitForFunction((id) => [...document.querySelectorAll("#tenants tr")].some((r) => r.cells[0].textContent === id && r.cells[3].textContent === "offboarded"), tenant);
  out.row_after_offboard = await rowOf(tenant);
  out.offboard_button_left = await page.$$eval(`#tenants tr`, (rows, id) => rows.filter((r) => r.cells[0].textContent === id).map((r) => r.querySelectorAll("button").length)[0], tenant);

  // Forget the token.
  await page.click("#forget");
  out.token_after_forget = await page.evaluate(() => sessionStorage.getItem("landlord.token"));
} catch (e) {
  out.error = String(e && e.stack || e);
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(out) + "\n");
