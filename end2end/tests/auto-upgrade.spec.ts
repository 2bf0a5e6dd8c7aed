import { expect, test } from '@playwright/test';
import { EXPIRY, deployedServer, hydrated, publishRelease, signInAsOperator, sipOptions, watchConsole } from './support';

// The second console runs its scheduled work every second, so Auto Upgrade acts while the
// test watches.
test.use({ baseURL: EXPIRY.baseURL });

test('with Auto Upgrade on, a new node release is applied by itself while the server carries no calls', async ({ page, browser }) => {
  const errors = watchConsole(page);
  const ip = await deployedServer(page, 'switch', EXPIRY);
  await page.locator(`tr[data-ip="${ip}"] td.ip a`).click();
  await expect(page).toHaveURL(/\/servers\/\d+$/);
  await hydrated(page);
  await page.getByLabel('Auto Upgrade').check();
  await page.getByRole('button', { name: 'Save configuration' }).click();
  await expect(page.getByRole('status')).toHaveText('Saved and applied to the node.');

  const operator = await browser.newPage({ baseURL: EXPIRY.baseURL });
  await signInAsOperator(operator, EXPIRY);
  await publishRelease(operator);
  await operator.close();

  // Nobody runs the update: the next scheduled pass finds the node idle and updates it.
  await page.goto('/account');
  await expect(async () => {
    await page.reload();
    await expect(page.locator('table.audit tbody tr', { hasText: 'server.update' })).toContainText(
      'Auto Upgrade: the node carried no calls',
      { timeout: 1000 },
    );
  }).toPass({ timeout: 20_000 });
  await page.goto('/servers');
  await hydrated(page);
  await page.locator(`tr[data-ip="${ip}"] td.ip a`).click();
  await expect(page).toHaveURL(/\/servers\/\d+$/);
  await hydrated(page);
  await expect(page.getByTestId('pending-update')).toHaveCount(0);
  await expect(page.getByTestId('status')).toHaveText('Running');
  expect(await sipOptions(ip)).toBe('SIP/2.0 200 OK');
  expect(errors.filter((e) => !e.includes('Failed to load resource'))).toEqual([]);
});
