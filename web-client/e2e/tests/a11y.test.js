// Accessibility (axe-core: no serious or critical violation) of the login
// screen, the main screen with a channel open, and a phone-sized screen
// (390×844) that needs no sideways scrolling; screenshots of each.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import {
  launch, person, uniqueName, signUp, logIn, until, send, messageTexts, register, http,
  screenshot, directory,
} from '../lib.js';

const require = createRequire(import.meta.url);
const AXE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

/** Serious and critical violations on `page`, one line each. */
async function violations(page) {
  // Evaluated through the DevTools protocol, which the page's CSP does not
  // govern, so the policy stays as strict as it is in production.
  await page.evaluate(AXE);
  const result = await page.evaluate(async () => window.axe.run(document, { resultTypes: ['violations'] }));
  return result.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.impact} ${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).join(', ')})`);
}

async function seedRoom() {
  const owner = uniqueName('jo');
  const { token } = await register(owner);
  const room = uniqueName('general');
  const { channel_id: id } = await http('POST', '/api/channels', { token, body: { name: room, kind: 'public' } });
  for (const text of ['Welcome to the room!', 'The web client is served by chat up at /.', 'Messages are plain text.']) {
    await http('POST', `/api/channels/${id}/messages`, { token, body: { content: text } });
  }
  return { owner, token, room, id };
}

test('login and main screens have no serious or critical axe violation', async () => {
  const { room } = await seedRoom();
  const { page, context, problems } = await person(browser);
  assert.deepEqual(await violations(page), [], 'login screen');
  await screenshot(page, 'login');

  const name = uniqueName('kim');
  await signUp(page, name);
  await directory(page).getByRole('listitem').filter({ hasText: room }).getByRole('button', { name: 'Join' }).click();
  await until('the room open', async () => (await messageTexts(page)).length === 3);
  await send(page, 'Hello, everyone.');
  await until('my message', async () => (await messageTexts(page)).length === 4);
  await page.getByRole('button', { name: 'New channel', exact: true }).click();
  assert.deepEqual(await violations(page), [], 'main screen');
  await page.getByRole('button', { name: 'New channel', exact: true }).click();
  await screenshot(page, 'main');
  assert.deepEqual(problems, []);
  await context.close();
});

test('a phone-sized screen (390×844) works without sideways scrolling', async () => {
  const { room } = await seedRoom();
  const name = uniqueName('lee');
  await register(name);
  const { page, context, problems } = await person(browser, { viewport: { width: 390, height: 844 } });
  await logIn(page, name);
  const noSideways = () => page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth);
  assert.ok(await directory(page).isVisible(), 'the directory is on the main screen');
  assert.ok(await noSideways(), 'main screen fits 390 px');
  assert.deepEqual(await violations(page), [], 'phone main screen');
  await screenshot(page, 'phone-main');

  // Joining opens the channel, which takes the whole screen on a phone.
  await directory(page).getByRole('listitem').filter({ hasText: room }).getByRole('button', { name: 'Join' }).click();
  await until('the room open', async () => (await messageTexts(page)).length === 3);
  await send(page, 'Typed on a phone.');
  await until('my message', async () => (await messageTexts(page)).includes('Typed on a phone.'));
  assert.ok(await page.getByRole('button', { name: 'Send', exact: true }).isVisible());
  assert.ok(await noSideways(), 'channel screen fits 390 px');
  assert.deepEqual(await violations(page), [], 'phone channel screen');
  await screenshot(page, 'phone-channel');
  await page.getByRole('button', { name: 'Back to channels' }).click();
  assert.ok(await directory(page).isVisible());
  assert.deepEqual(problems, []);
  await context.close();
});
