import { expect, test } from '@playwright/test';
import { deployedServer, hydrated, publishRelease, signInAsOperator, sipOptions, watchConsole } from './support';

test('a published node release shows as a pending update until Run Server Update', async ({ page, browser }) => {
  const errors = watchConsole(page);
  const ip = await deployedServer(page);
  await page.locator('table.servers tbody tr').first().locator('td.ip a').click();
  await expect(page).toHaveURL(/\/servers\/\d+$/);
  await expect(page.getByTestId('status')).toHaveText('Running');
  const detail = page.url();
  await expect(page.getByTestId('pending-update')).toHaveCount(0);

  // The operator publishes a release (same keep-alive interval, next revision).
  const operator = await browser.newPage();
  await signInAsOperator(operator);
  await publishRelease(operator);
  await operator.close();

  await page.goto(detail);
  await hydrated(page);
  const banner = page.getByTestId('pending-update');
  await expect(banner).toContainText('There is a pending update on the server.');
  await banner.getByRole('button', { name: 'Run Server Update' }).click();
  await expect(banner).toContainText('live calls are dropped');
  await banner.getByRole('button', { name: 'Confirm update' }).click();
  await expect(page.getByTestId('pending-update')).toHaveCount(0);
  await expect(page.getByTestId('status')).toHaveText('Running');
  expect(await sipOptions(ip)).toBe('SIP/2.0 200 OK');

  // The update is in the audit log.
  await page.goto('/account');
  await expect(page.locator('table.audit')).toContainText('server.update');
  expect(errors).toEqual([]);
});
