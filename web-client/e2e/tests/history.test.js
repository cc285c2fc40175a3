// Scrolling back: a channel of a few hundred messages loads its newest page,
// and scrolling up pages back by the `before` cursor until the first message,
// every message exactly once and in order.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launch, person, uniqueName, logIn, until, messageTexts, messageLog, openChannel, register, http } from '../lib.js';

const COUNT = 260;
let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

const label = (n) => `history ${String(n).padStart(3, '0')}`;

test('scrolling up loads every older message once, in order', async () => {
  const name = uniqueName('ivy');
  const { token } = await register(name);
  const room = uniqueName('history');
  const { channel_id: id } = await http('POST', '/api/channels', { token, body: { name: room, kind: 'public' } });
  for (let n = 1; n <= COUNT; n += 1) {
    await http('POST', `/api/channels/${id}/messages`, { token, body: { content: label(n), client_msg_id: `h${n}` } });
  }
  // The projector may still be applying the last ones.
  await until('the read model to hold every message', async () => {
    const page = await http('GET', `/api/channels/${id}/messages?limit=1`, { token });
    return page.messages[0]?.seq === COUNT;
  }, 30000);

  const { page, context, problems } = await person(browser, { viewport: { width: 1000, height: 700 } });
  await logIn(page, name);
  await openChannel(page, room);
  await until('the newest page', async () => (await messageTexts(page)).length === 50);
  const firstPage = await messageTexts(page);
  assert.equal(firstPage.at(-1), label(COUNT), 'newest at the bottom');
  assert.equal(firstPage[0], label(COUNT - 49));

  const log = messageLog(page);
  for (let round = 0; round < 20; round += 1) {
    const texts = await messageTexts(page);
    if (texts[0] === label(1)) break;
    const held = texts.length;
    await log.evaluate((el) => { el.scrollTop = 0; el.dispatchEvent(new Event('scroll')); });
    await until(`an older page (round ${round})`, async () => (await messageTexts(page)).length > held);
  }
  const all = await messageTexts(page);
  assert.equal(all.length, COUNT, 'every message, none twice');
  assert.equal(new Set(all).size, COUNT, 'no duplicates');
  assert.deepEqual(all, Array.from({ length: COUNT }, (_, i) => label(i + 1)), 'oldest first');
  assert.equal(await page.getByRole('button', { name: 'Load older messages' }).isVisible(), false);

  // The reader's place is kept when a page lands above it: not thrown to the top.
  assert.ok(await log.evaluate((el) => el.scrollTop > 0));
  assert.deepEqual(problems, []);
  await context.close();
});
