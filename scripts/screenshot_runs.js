// Screenshot of a sweep's runs table in `mlflow ui`, as a newcomer sees it after the
// README's clicks: the sweep unfolded, the episodes-to-solve and wall-time columns shown.
// Run by scripts/screenshot_runs.py (which starts the sweep and the UI); needs playwright-core
// (npm) and a Chromium (apt `chromium`): node screenshot_runs.js URL OUT.PNG
const { chromium } = require("playwright-core");

// ticked in the column selector: the two summary metrics, and off the three empty attribute
// columns, so that the metrics fit beside the names without scrolling
const COLUMNS = ["solved_episode", "wall_seconds", "Dataset", "Source", "Models"];

(async () => {
  const [url, out] = process.argv.slice(2);
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
  try {
    // a fresh context is a fresh profile: no UI state left from an earlier visit
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 560 } });
    const page = await ctx.newPage();
    await page.goto(url, { waitUntil: "load", timeout: 120000 });
    await page.getByText(/matching runs/).first().waitFor({ timeout: 120000 });
    const close = page.getByRole("button", { name: "Close", exact: true });
    if (await close.count()) await close.first().click(); // the assistant side panel
    // unfold the sweep: the expander left of the parent run's name
    await page.locator('button[data-component-id*="runnamecellrenderer"]').first().click();
    await page.getByText(/^s\d+-/).first().waitFor({ timeout: 30000 });
    await page.getByRole("button", { name: "Columns" }).click();
    const search = page.getByPlaceholder("Search columns");
    for (const name of COLUMNS) {
      await search.fill(name);
      // the search highlights the match (<strong>), so find the tree node by its text and tick its box
      await page
        .locator('[data-testid="column-selector-tree"] .du-bois-light-tree-treenode')
        .filter({ hasText: name })
        .locator(".du-bois-light-tree-checkbox")
        .first()
        .click();
    }
    await page.keyboard.press("Escape");
    await page.waitForTimeout(1500);
    await page.screenshot({ path: out });
    console.log(`wrote ${out} from ${page.url()}`);
  } finally {
    await browser.close();
  }
})().catch((e) => {
  console.error(e.message);
  process.exit(1);
});
