import { expect, test } from '@playwright/test';
import { deployedServer, hydrated, sipOptions, watchConsole } from './support';

test('Stop really stops the node and Start brings it back', async ({ page }) => {
  const errors = watchConsole(page);
  const ip = await deployedServer(page);
  expect(await sipOptions(ip)).toBe('SIP/2.0 200 OK');

  await page.locator('table.servers tbody tr').first().locator('td.ip a').click();
  await hydrated(page);
  await page.locator('button[data-action="stop"]').click();
  const confirm = page.getByRole('dialog', { name: 'Confirm action' });
  await expect(confirm).toContainText('live calls are dropped');
  await confirm.getByRole('button', { name: 'Confirm' }).click();
  await expect(page.getByTestId('status')).toHaveText('Stopped');
  await expect(sipOptions(ip, 5060, 1500)).rejects.toThrow('no SIP answer');

  await page.locator('button[data-action="start"]').click();
  await page.getByRole('dialog', { name: 'Confirm action' }).getByRole('button', { name: 'Confirm' }).click();
  await expect(page.getByTestId('status')).toHaveText('Running');
  expect(await sipOptions(ip)).toBe('SIP/2.0 200 OK');

  // Cancel runs nothing.
  await page.locator('button[data-action="power_cycle"]').click();
  await page.getByRole('dialog', { name: 'Confirm action' }).getByRole('button', { name: 'Cancel' }).click();
  await expect(page.getByRole('dialog', { name: 'Confirm action' })).toHaveCount(0);
  expect(await sipOptions(ip)).toBe('SIP/2.0 200 OK');

  // Both actions are in the audit log, with who did them and when.
  await page.goto('/account');
  const log = page.locator('table.audit tbody');
  await expect(log.locator('tr', { hasText: 'server.stop' })).toContainText(/@e2e\.test/);
  await expect(log.locator('tr', { hasText: 'server.start' })).toContainText(/\d{4}-\d\d-\d\d \d\d:\d\d UTC/);
  expect(errors).toEqual([]);
});
