import { expect, test } from '@playwright/test';
import { E2E, hydrated, signUp, uniqueEmail, watchConsole } from './support';

test('the operator credits an account; a provider cannot reach the operator page', async ({ page }) => {
  const errors = watchConsole(page);
  const email = uniqueEmail('topup');
  await signUp(page, email);
  await page.goto('/operator');
  await expect(page.getByText('Page not found.')).toBeVisible();
  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(page).toHaveURL(/\/login$/);

  await hydrated(page);
  await page.getByLabel('Email').fill(E2E.operator.email);
  await page.getByLabel('Password').fill(E2E.operator.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page).toHaveURL(/\/servers$/);
  await page.getByRole('link', { name: 'Operator' }).click();
  const row = page.locator(`tr[data-email="${email}"]`);
  await expect(row.locator('.balance')).toHaveText('$0.00');
  await row.getByLabel('Amount in USD').fill('12.50');
  await row.getByRole('button', { name: 'Credit' }).click();
  await expect(row.locator('.balance')).toHaveText('$12.50');
  expect(errors).toEqual([]);
});
