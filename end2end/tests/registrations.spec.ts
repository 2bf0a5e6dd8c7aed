import { expect, test } from '@playwright/test';
import { createSipUser, deployedServer, hydrated, register, watchConsole } from './support';

test('a phone registered with a SIP user shows in the server\'s Registrations', async ({ page }) => {
  const errors = watchConsole(page);
  const ip = await deployedServer(page);
  await createSipUser(page, 'desk42', 'desk 42 secret');

  const wrong = await register(ip, 'desk42', 'not the secret');
  wrong.socket.close();
  expect(wrong.status).toMatch(/^SIP\/2\.0 401/);
  const phone = await register(ip, 'desk42', 'desk 42 secret');
  try {
    expect(phone.status).toBe('SIP/2.0 200 OK');
    await page.goto('/servers');
    await page.locator(`tr[data-ip="${ip}"] td.ip a`).click();
    await hydrated(page);
    await page.getByRole('link', { name: 'Registrations' }).click();
    await expect(page).toHaveURL(/\/servers\/\d+\/registrations$/);
    const row = page.locator('section.registrations tbody tr').first();
    await expect(row).toContainText(`sip:desk42@${ip}`);
    await expect(row).toContainText('127.0.0.1:');
    await expect(row).toContainText('UDP');
    await expect(row).toContainText('Online');
  } finally {
    phone.socket.close();
  }
  expect(errors.filter((e) => !e.includes('Failed to load resource'))).toEqual([]);
});
