// Firefox ESR (Debian's firefox-esr) over WebDriver BiDi with puppeteer-core, for Python: one
// JSON command a line on stdin, one JSON answer a line on stdout ({value} or {error}).
import puppeteer from 'puppeteer-core';
import { createInterface } from 'node:readline';

const NEW_TAB = new Set(['blank', 'middle', 'ctrl']);
const browser = await puppeteer.launch({
  browser: 'firefox',
  protocol: 'webDriverBiDi',
  executablePath: process.env.FIREFOX || '/usr/bin/firefox-esr',
  headless: process.env.HEADLESS != '0',
  extraPrefsFirefox: {
    // plain http to 127.0.0.1 and localhost, as a shop under test is served
    'dom.security.https_first': false,
    'dom.security.https_first_pbm': false,
    'browser.tabs.opentabfor.middleclick': true,
  },
});
const pages = new Map();
let nextId = 0;

const commands = {
  version: () => browser.version(),
  async visitor() {
    const context = await browser.createBrowserContext();
    const page = await context.newPage();
    pages.set(++nextId, page);
    return nextId;
  },
  // Each visitor's tab in front, as a visitor's own browser window would be: a tab left
  // behind another visitor's is hidden, and pages in hidden tabs act as such.
  async goto({ page: id, url }) {
    const page = pages.get(id);
    await page.bringToFront();
    await page.goto(url, { waitUntil: 'load' });
    return null;
  },
  resize: ({ page, width, height }) => pages.get(page).setViewport({ width, height }).then(() => null),
  evaluate: ({ page, expression }) => pages.get(page).evaluate(expression),
  async click({ page: id, kind, position, timing }) {
    const page = pages.get(id);
    await page.bringToFront();
    const same = `#same-${position}`;
    if (NEW_TAB.has(kind)) {
      const context = page.browserContext();
      const opened = new Promise((resolve) => context.once('targetcreated', (target) => resolve(target.page())));
      if (kind == 'blank') await page.click(`#blank-${position}`);
      else if (kind == 'middle') await page.click(same, { button: 'middle' });
      else {
        await page.keyboard.down('Control');
        await page.click(same);
        await page.keyboard.up('Control');
      }
      const destination = await opened;
      await destination.waitForFunction(
        () => location.pathname.startsWith('/landing/') && document.readyState == 'complete',
        { polling: 20, timeout: 10e3 }
      );
      const value = await destination.evaluate(timing);
      await destination.close();
      return value;
    }
    const navigated = page.waitForNavigation({ waitUntil: 'load', timeout: 10e3 });
    if (kind == 'same') await page.click(same);
    else {
      await page.focus(same);
      await page.keyboard.press('Enter');
    }
    await navigated;
    return page.evaluate(timing);
  },
  async close({ page }) {
    await pages.get(page).browserContext().close();
    pages.delete(page);
    return null;
  },
};

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  const command = JSON.parse(line);
  let answer;
  try {
    answer = { value: await commands[command.op](command) };
  } catch (error) {
    answer = { error: String(error && error.stack || error) };
  }
  process.stdout.write(JSON.stringify(answer) + '\n');
}
await browser.close();
