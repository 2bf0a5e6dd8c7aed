import { expect, test } from '@playwright/test';
import {
  Caller,
  EXPIRY,
  Inbox,
  answer,
  completeChecklist,
  createSipUser,
  deployedServer,
  hydrated,
  pickUp,
  register,
  signUp,
  sipOptions,
  uniqueEmail,
  watchConsole,
} from './support';

test('a resize shows when it becomes active; 1001 channels ask before rebooting', async ({ page }) => {
  const errors = watchConsole(page);
  const ip = await deployedServer(page);
  await page.locator(`tr[data-ip="${ip}"] td.ip a`).click();
  await hydrated(page);
  const section = page.locator('section.resize');

  await section.getByLabel('New channels').fill('300');
  await section.getByRole('button', { name: 'Resize' }).click();
  await expect(section.getByTestId('resize-result')).toContainText(/300 channels will be active at \d{4}-\d\d-\d\d \d\d:\d\d UTC/);
  await expect(page.getByTestId('pending-resize')).toContainText('300 channels, active at');

  await section.getByLabel('New channels').fill('1500');
  await section.getByRole('button', { name: 'Resize' }).click();
  await expect(section.locator('.field-error[data-field="channels"]')).toContainText('drop all its calls');

  await section.getByLabel('Reboot now if needed (drops all calls)').check();
  await section.getByRole('button', { name: 'Resize' }).click();
  await expect(section.getByTestId('resize-result')).toHaveText('Now 1500 channels; the server rebooted.');
  expect(await sipOptions(ip)).toBe('SIP/2.0 200 OK');
  expect(errors.filter((e) => !e.includes('Failed to load resource'))).toEqual([]);
});

// On the second console a resize is active at the next pass (every second), so the node's
// new limit can be tried with real calls.
test.describe('on the node', () => {
  test.use({ baseURL: EXPIRY.baseURL });

  test('an active resize lets a call over the old limit connect; 1001 channels reboot the node and end its calls', async ({ page }) => {
    const errors = watchConsole(page);
    const email = uniqueEmail('resize-node');
    await signUp(page, email);
    await completeChecklist(page, email, 100, EXPIRY);
    await page.goto('/servers');
    await hydrated(page);
    await page.getByLabel('Zone').selectOption('eu-london');
    await page.getByLabel('Channels').fill('1');
    await page.getByRole('button', { name: 'Deploy' }).click();
    const row = page.locator('table.servers tbody tr').first();
    await expect(row.getByTestId('status')).toHaveText('Running');
    const ip = (await row.getAttribute('data-ip')) ?? '';
    await createSipUser(page, 'bob', 'bob secret 42');
    const bob = await register(ip, 'bob', 'bob secret 42');
    expect(bob.status).toBe('SIP/2.0 200 OK');
    const phone = new Inbox(bob.socket);
    const caller = await Caller.open(ip);
    const refused = await Caller.open(ip);
    try {
      // One channel: the first call connects, the second is refused.
      const first = caller.invite('bob', `resize-1-${Date.now()}`);
      await pickUp(phone, ip);
      expect(await first).toBe('SIP/2.0 200 OK');
      expect(await refused.invite('bob', `resize-2-early-${Date.now()}`)).toBe('SIP/2.0 503 Server at max cps / channels');

      await page.goto('/servers');
      await hydrated(page);
      await row.locator('td.ip a').click();
      await hydrated(page);
      const section = page.locator('section.resize');
      await section.getByLabel('New channels').fill('2');
      await section.getByRole('button', { name: 'Resize' }).click();
      await expect(section.getByTestId('resize-result')).toContainText('2 channels will be active at');
      // Active at the next pass: the summary shows the new capacity (the call still up).
      await expect(async () => {
        await page.reload();
        await expect(page.locator('dl.summary')).toContainText('1 / 2', { timeout: 500 });
      }).toPass({ timeout: 10_000 });

      // A second call, over the old limit of one, connects.
      const second = caller.invite('bob', `resize-2-${Date.now()}`);
      await pickUp(phone, ip);
      expect(await second).toBe('SIP/2.0 200 OK');

      // 1500 channels reboot the node at once: both calls end, each end hears a BYE.
      await hydrated(page);
      await section.getByLabel('New channels').fill('1500');
      await section.getByLabel('Reboot now if needed (drops all calls)').check();
      await section.getByRole('button', { name: 'Resize' }).click();
      for (const inbox of [phone, caller.inbox]) {
        for (let i = 0; i < 2; i++) {
          const bye = await inbox.expect('BYE ');
          expect(bye).toContain('text="Server resize"');
          inbox.socket.send(answer(bye, '200 OK', '127.0.0.1:9'), 5060, ip);
        }
      }
      await expect(section.getByTestId('resize-result')).toHaveText('Now 1500 channels; the server rebooted.');
      await expect(page.locator('dl.summary')).toContainText('0 / 1500');
      expect(await sipOptions(ip)).toBe('SIP/2.0 200 OK');
    } finally {
      bob.socket.close();
      caller.close();
      refused.close();
    }
    expect(errors.filter((e) => !e.includes('Failed to load resource'))).toEqual([]);
  });
});
