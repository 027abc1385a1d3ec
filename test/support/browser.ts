/**
 * Debian's Chromium driven by puppeteer-core, for tests that look at a page the way a person would: the HTML
 * report opened from disk, a status page over HTTP. Every page opened records what went wrong in it (console
 * errors, uncaught exceptions, failed requests, dialogs) and every URL it requested, so that a test can assert
 * "no errors" and "nothing but this was requested".
 *
 * Chromium missing is a failure whose message says how to install it, never a skip: a check that silently
 * does not run is worse than none. CI installs it (.ci/run).
 *
 * Code for the page is passed as JavaScript source (`evaluate(source)`), not as a function: the repository's
 * TypeScript has no DOM types, and tsx compiles with esbuild's keepNames, which wraps named functions in a
 * `__name()` helper that does not exist in the page once puppeteer serialises the function.
 */
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { CHROMIUM, requireProgram } from './system-packages.ts';

export interface OpenOptions {
  /** Viewport in CSS pixels; 1280 × 900 unless given. */
  width?: number;
  height?: number;
  /** For the navigation; 15 s unless given. */
  timeoutMs?: number;
}

/** One page and what happened in it since it was opened. */
export class BrowserPage {
  /** Every URL the page requested, in order, the page itself first. */
  readonly requests: string[] = [];
  readonly consoleErrors: string[] = [];
  /** Exceptions nobody caught in the page. */
  readonly pageErrors: string[] = [];
  readonly failedRequests: string[] = [];
  /** alert/confirm/prompt messages (each dismissed): a page under test should never open one. */
  readonly dialogs: string[] = [];

  constructor(readonly page: Page) {
    page.on('request', (request) => {
      this.requests.push(request.url());
    });
    page.on('requestfailed', (request) => {
      this.failedRequests.push(`${request.url()}: ${request.failure()?.errorText ?? 'failed'}`);
    });
    page.on('console', (message) => {
      if (message.type() === 'error') this.consoleErrors.push(message.text());
    });
    page.on('pageerror', (error: unknown) => {
      this.pageErrors.push(error instanceof Error ? (error.stack ?? error.message) : String(error));
    });
    page.on('dialog', (dialog) => {
      this.dialogs.push(`${dialog.type()}: ${dialog.message()}`);
      void dialog.dismiss().catch(() => undefined);
    });
  }

  /** Everything that went wrong in the page so far, one line each; empty when all is well. */
  problems(): string[] {
    return [
      ...this.consoleErrors.map((e) => `console error: ${e}`),
      ...this.pageErrors.map((e) => `page error: ${e}`),
      ...this.failedRequests.map((e) => `request failed: ${e}`),
      ...this.dialogs.map((e) => `dialog: ${e}`),
    ];
  }

  /** Runs JavaScript source in the page and returns its (JSON-serialisable) value; a promise is awaited. */
  async evaluate<T>(source: string): Promise<T> {
    return (await this.page.evaluate(source)) as T;
  }

  /** Resolves when `selector` matches; on timeout, fails with what went wrong in the page so far. */
  async waitFor(selector: string, timeoutMs = 10_000): Promise<void> {
    try {
      await this.page.waitForSelector(selector, { timeout: timeoutMs });
    } catch (err: unknown) {
      throw this.timedOut(`${selector} did not appear within ${timeoutMs} ms`, err);
    }
  }

  /** Resolves when JavaScript source `predicate` is truthy in the page (checked every animation frame). */
  async waitForFunction(predicate: string, timeoutMs = 10_000): Promise<void> {
    try {
      await this.page.waitForFunction(predicate, { timeout: timeoutMs });
    } catch (err: unknown) {
      throw this.timedOut(`${predicate} was not true within ${timeoutMs} ms`, err);
    }
  }

  /** A wait that timed out says what else went wrong in the page: usually the reason. */
  private timedOut(what: string, cause: unknown): Error {
    const problems = this.problems();
    return new Error(problems.length > 0 ? `${what}; the page had:\n${problems.join('\n')}` : what, { cause });
  }

  async setViewport(width: number, height: number): Promise<void> {
    await this.page.setViewport({ width, height });
  }

  async screenshot(path: `${string}.png`, fullPage = true): Promise<void> {
    await this.page.screenshot({ path, fullPage });
  }

  async close(): Promise<void> {
    if (!this.page.isClosed()) await this.page.close();
  }
}

export interface BrowserSession {
  readonly browser: Browser;
  /** A new page (tab) with its recorders attached, navigated to `url` and loaded. */
  open(url: string, options?: OpenOptions): Promise<BrowserPage>;
  /** Closes every page and the browser; idempotent. */
  close(): Promise<void>;
}

/**
 * Starts headless Chromium. Close the session in an `after` hook. `context`: the test or hook's `this`; a
 * machine without Chromium skips there (support/system-packages.ts).
 */
export async function launchBrowser(context: Mocha.Context): Promise<BrowserSession> {
  const browser = await puppeteer.launch({
    executablePath: requireProgram(context, CHROMIUM),
    headless: true,
    // Tests run as root (in CI and in containers), where Chromium's sandbox refuses to start; /dev/shm in a
    // container is often 64 MB, too small for Chromium's shared memory.
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu', '--no-first-run', '--no-default-browser-check'],
  });
  let closing: Promise<void> | undefined;
  return {
    browser,
    async open(url, options = {}) {
      const page = new BrowserPage(await browser.newPage());
      await page.setViewport(options.width ?? 1280, options.height ?? 900);
      await page.page.goto(url, { waitUntil: 'load', timeout: options.timeoutMs ?? 15_000 });
      return page;
    },
    close() {
      closing ??= browser.close().catch(() => {
        // A browser that will not close politely is killed: it is our child process.
        browser.process()?.kill('SIGKILL');
      });
      return closing;
    },
  };
}
