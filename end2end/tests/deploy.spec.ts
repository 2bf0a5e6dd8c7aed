import { expect, test } from '@playwright/test';
import { completeChecklist, hydrated, signUp, sipOptions, uniqueEmail, watchConsole } from './support';

test('an account with balance deploys a Switch that shows Running and answers SIP', async ({ page }) => {
  const errors = watchConsole(page);
  const email = uniqueEmail('deploy');
  await signUp(page, email);
  await completeChecklist(page, email, 100);

  await page.goto('/servers');
  await hydrated(page);
  await expect(page.getByTestId('balance')).toHaveText('$100.00');

  await page.getByLabel('Zone').selectOption('eu-london');
  await page.getByLabel('Type').selectOption('switch');
  await page.getByLabel('Channels').fill('250');
  await page.getByLabel('CPS').fill('20');
  await page.getByRole('button', { name: 'Deploy' }).click();

  const row = page.locator('table.servers tbody tr').first();
  await expect(row.getByTestId('status')).toHaveText('Running');
  const ip = (await row.getAttribute('data-ip')) ?? '';
  expect(ip).toMatch(/^127\.0\.21\.\d+$/);
  await expect(row.locator('td.ip')).toHaveText(ip);
  await expect(row).toContainText('Switch');
  await expect(row).toContainText('0 / 250');
  await expect(row).toContainText('0 / 20');

  // Running means a real node: it answers OPTIONS on its own address.
  expect(await sipOptions(ip)).toBe('SIP/2.0 200 OK');

  // And the detail page shows the same server.
  await row.locator('td.ip a').click();
  await expect(page).toHaveURL(/\/servers\/\d+$/);
  await expect(page.getByTestId('status')).toHaveText('Running');

  expect(errors).toEqual([]);
});

test('deploying is refused until the checklist is done, then for the missing balance', async ({ page }) => {
  const errors = watchConsole(page);
  const email = uniqueEmail('broke');
  await signUp(page, email);
  await page.getByRole('button', { name: 'Deploy' }).click();
  await expect(page.locator('.deploy .form-error')).toContainText('Complete the Getting Started checklist');

  await completeChecklist(page, email, 10);
  await page.goto('/servers');
  await hydrated(page);
  await page.getByRole('button', { name: 'Deploy' }).click();
  await expect(page.locator('.deploy .form-error')).toContainText('Top up $10.00 to deploy.');
  await expect(page.getByTestId('empty-state')).toBeVisible();

  await page.getByLabel('Channels').fill('lots');
  await page.getByRole('button', { name: 'Deploy' }).click();
  await expect(page.locator('.field-error[data-field="channels"]')).toContainText('Channels must be a whole number');
  expect(errors.filter((e) => !e.includes('Failed to load resource'))).toEqual([]);
});
