import { expect, test } from '@playwright/test';
import {
  EXPIRY,
  completeChecklist,
  createSipUser,
  hydrated,
  signInAsOperator,
  signUp,
  sipInvite,
  sipOptions,
  uniqueEmail,
  watchConsole,
} from './support';

// On the second console a trial lasts 43 s and the scheduled work runs every second, so a
// trial really ends while the test watches.
test.use({ baseURL: EXPIRY.baseURL });

test('a trial that the balance cannot renew expires: the row says Expired and the node refuses calls with 503 until a top-up', async ({
  page,
  browser,
}) => {
  test.setTimeout(150_000);
  const errors = watchConsole(page);
  const email = uniqueEmail('expiry');
  await signUp(page, email);
  await completeChecklist(page, email, 20, EXPIRY);

  // The operator, in a window of their own, has the account's row ready before the deploy.
  const operator = await browser.newPage({ baseURL: EXPIRY.baseURL });
  const operatorErrors = watchConsole(operator);
  await signInAsOperator(operator, EXPIRY);
  await operator.getByRole('link', { name: 'Operator' }).click();
  await hydrated(operator);
  const account = operator.locator(`tr[data-email="${email}"]`);
  await expect(account.locator('.balance')).toHaveText('$20.00');

  await createSipUser(page, 'bob', 'bob secret 42');
  await page.goto('/servers');
  await hydrated(page);
  await page.getByLabel('Zone').selectOption('eu-london');
  await page.getByLabel('Type').selectOption('switch');
  await page.getByRole('button', { name: 'Deploy' }).click();
  const row = page.locator('table.servers tbody tr').first();
  await expect(row.getByTestId('status')).toHaveText('Running');
  const ip = (await row.getAttribute('data-ip')) ?? '';
  // Admitted and routed: bob exists but has not registered, so 480 (not 503, 404 or 500).
  expect(await sipInvite(ip)).toBe('SIP/2.0 480 Temporarily Unavailable');

  // A debit larger than the balance is refused next to the field, and nothing is taken.
  await account.getByLabel('Debit in USD').fill('25');
  await account.getByRole('button', { name: 'Debit' }).click();
  await expect(account.locator('.field-error[data-field="amount"]')).toHaveText(
    'The balance is $20.00: a debit cannot take it below zero.',
  );
  await expect(account.locator('.balance')).toHaveText('$20.00');
  // The operator takes the $20 back before the trial ends: nothing is left to renew it.
  await account.getByLabel('Debit in USD').fill('20');
  await account.getByRole('button', { name: 'Debit' }).click();
  await expect(account.locator('.balance')).toHaveText('$0.00');

  // The trial ends; the live list turns the row to Expired without a reload.
  await expect(row.getByTestId('status')).toHaveText('Expired', { timeout: 90_000 });
  expect(await sipInvite(ip)).toMatch(/^SIP\/2\.0 503/);
  expect(await sipOptions(ip)).toBe('SIP/2.0 200 OK');

  // The detail page says why, and Start is refused until the balance renews the server.
  await row.locator('td.ip a').click();
  await expect(page).toHaveURL(/\/servers\/\d+$/);
  await hydrated(page);
  await expect(page.locator('.banner.expired')).toContainText('your balance could not renew it');
  await page.locator('button[data-action="start"]').click();
  await page.getByRole('dialog', { name: 'Confirm action' }).getByRole('button', { name: 'Confirm' }).click();
  await expect(page.locator('.actions .form-error')).toContainText('top up your balance to renew it');

  // A top-up renews it at the next pass: $20 taken for the next period, calls admitted again.
  await account.getByLabel('Amount in USD').fill('20');
  await account.getByRole('button', { name: 'Credit' }).click();
  await expect(account.locator('.balance')).toHaveText(/^\$(20|0)\.00$/);
  await page.goto('/servers');
  await hydrated(page);
  await expect(row.getByTestId('status')).toHaveText('Running', { timeout: 30_000 });
  await operator.reload();
  await expect(account.locator('.balance')).toHaveText('$0.00');
  expect(await sipInvite(ip)).toBe('SIP/2.0 480 Temporarily Unavailable');

  // The expiry, the renewal and both balance changes are in the account's audit log.
  await page.goto('/account');
  const log = page.locator('table.audit tbody');
  await expect(log.locator('tr', { hasText: 'server.expire' })).toBeVisible();
  await expect(log.locator('tr', { hasText: 'server.renew' })).toBeVisible();
  await expect(log.locator('tr', { hasText: 'account.debit' })).toContainText(EXPIRY.operator.email);
  expect(errors.filter((e) => !e.includes('Failed to load resource'))).toEqual([]);
  expect(operatorErrors.filter((e) => !e.includes('Failed to load resource'))).toEqual([]);
});
