import { expect, test } from '@playwright/test';
import { hydrated, signInAsOperator, signUp, uniqueEmail, watchConsole } from './support';

test('the operator credits an account; a provider cannot reach the operator page', async ({ page }) => {
  const errors = watchConsole(page);
  const email = uniqueEmail('topup');
  await signUp(page, email);
  await page.goto('/operator');
  await expect(page.getByText('Page not found.')).toBeVisible();
  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(page).toHaveURL(/\/login$/);

  await signInAsOperator(page);
  await page.getByRole('link', { name: 'Operator' }).click();
  const row = page.locator(`tr[data-email="${email}"]`);
  await expect(row.locator('.balance')).toHaveText('$0.00');
  await row.getByLabel('Amount in USD').fill('12.50');
  await row.getByRole('button', { name: 'Credit' }).click();
  await expect(row.locator('.balance')).toHaveText('$12.50');
  expect(errors).toEqual([]);
});

test('the operator adds and removes RTP servers; providers see the list with Refresh', async ({ page, browser }) => {
  const errors = watchConsole(page);
  await signInAsOperator(page);
  await page.getByRole('link', { name: 'RTP Servers' }).click();
  await hydrated(page);
  await page.getByLabel('IP').fill('127.0.90.7');
  await page.getByLabel('Aliases').fill('rtp7.lon, media-7');
  await page.getByLabel('Zone').fill('eu-london');
  await page.getByRole('button', { name: 'Add' }).click();
  const row = page.locator('table.rtp tr', { hasText: '127.0.90.7' });
  await expect(row).toContainText('rtp7.lon, media-7');
  await page.getByLabel('IP').fill('127.0.90.7');
  await page.getByRole('button', { name: 'Add' }).click();
  await expect(page.locator('.field-error[data-field="ip"]')).toHaveText('This address is listed already.');

  const provider = await browser.newPage();
  await signUp(provider, uniqueEmail('rtp'));
  await provider.getByRole('link', { name: 'RTP Servers' }).click();
  const seen = provider.locator('table.rtp tr', { hasText: '127.0.90.7' });
  await expect(seen).toContainText('eu-london');
  await expect(seen.getByRole('button', { name: 'Remove' })).toHaveCount(0);

  await row.getByRole('button', { name: 'Remove' }).click();
  await expect(page.locator('table.rtp tr', { hasText: '127.0.90.7' })).toHaveCount(0);
  await provider.getByRole('button', { name: 'Refresh' }).click();
  await expect(provider.locator('table.rtp tr', { hasText: '127.0.90.7' })).toHaveCount(0);
  expect(errors.filter((e) => !e.includes('Failed to load resource'))).toEqual([]);
});
