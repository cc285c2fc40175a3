// Shared by the browser tests: Debian's Chromium through playwright-core,
// people as separate browser contexts, a bounded `until` for everything that
// happens asynchronously, and a small HTTP client for seeding data through
// the public API. The server is whatever CHAT_E2E_BASE points at (.ci/web-e2e
// starts one).

import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

export const BASE = process.env.CHAT_E2E_BASE ?? 'http://127.0.0.1:8080';
export const ARTIFACTS = process.env.CHAT_E2E_ARTIFACTS ?? '../../target/web-e2e';
export const PASSWORD = 'correct horse battery';
mkdirSync(ARTIFACTS, { recursive: true });

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHAT_E2E_CHROMIUM ?? '/usr/bin/chromium',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
    timeout: 60000,
  });
}

/** A username nobody has used yet (3..32 of [A-Za-z0-9_.-]). */
export function uniqueName(prefix) {
  const suffix = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
  return `${prefix}_${suffix}`.slice(0, 32);
}

/**
 * A person: their own browser context (own storage, own socket) and page.
 * Every failed request, page error and CSP violation is collected in
 * `problems`, so a test can insist there were none.
 */
export async function person(browser, { viewport = { width: 1280, height: 800 }, beforeLoad = null } = {}) {
  const context = await browser.newContext({ viewport, baseURL: BASE });
  context.setDefaultTimeout(15000);
  if (beforeLoad) await beforeLoad(context);
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('console', (msg) => {
    if (/Content Security Policy/i.test(msg.text())) problems.push(`CSP: ${msg.text()}`);
  });
  await page.goto('/');
  return { context, page, problems };
}

/** Polls `probe` until it returns a truthy value; fails after `ms` with `what`. */
export async function until(what, probe, ms = 15000) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      last = await probe();
      if (last) return last;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what} (last: ${last})`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

export const connection = (page) => page.getByRole('status', { name: 'Connection', exact: true });
export const messageLog = (page) => page.getByRole('log', { name: 'Messages', exact: true });
export const channelsNav = (page) => page.getByRole('navigation', { name: 'Channels', exact: true });
export const directory = (page) => page.getByRole('region', { name: 'Public channels', exact: true });

/** Waits until the Connection status reads exactly `text`. */
export async function connectionIs(page, text, ms = 15000) {
  await until(`Connection to read ${text}`, async () => (await connection(page).textContent()) === text, ms);
}

async function fillCredentials(page, username) {
  await page.getByLabel('Username', { exact: true }).fill(username);
  await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
}

export async function signUp(page, username) {
  await fillCredentials(page, username);
  await page.getByRole('button', { name: 'Sign up', exact: true }).click();
  await connectionIs(page, 'connected');
}

export async function logIn(page, username) {
  await fillCredentials(page, username);
  await page.getByRole('button', { name: 'Log in', exact: true }).click();
  await connectionIs(page, 'connected');
}

/** Opens my channel `name` from the Channels navigation. */
export async function openChannel(page, name) {
  await channelsNav(page).getByRole('button').filter({ hasText: name }).click();
  await until(`channel ${name} to open`, async () =>
    (await page.locator('#channel-title').textContent()) === name);
}

export async function send(page, text) {
  await page.getByLabel('Message', { exact: true }).fill(text);
  await page.getByRole('button', { name: 'Send', exact: true }).click();
}

/** The texts of the messages, in document order. */
export async function messageTexts(page) {
  return messageLog(page).getByRole('article').locator('.text').allTextContents();
}

export async function screenshot(page, name) {
  const path = join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path, fullPage: false });
  return path;
}

/** The public HTTP API, for seeding what a test needs quickly. */
export async function http(method, path, { token, body } = {}) {
  const headers = { 'Content-Type': 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(new URL(path, BASE), {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(15000),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

/** Registers `username` and returns { userId, token }. */
export async function register(username) {
  const { user_id: userId } = await http('POST', '/api/users', { body: { username, password: PASSWORD } });
  const { access_token: token } = await http('POST', '/api/auth/token', { body: { username, password: PASSWORD } });
  return { userId, token };
}
