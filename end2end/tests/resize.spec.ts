import { expect, test } from '@playwright/test';
import { deployedServer, hydrated, sipOptions, watchConsole } from './support';

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
