import { expect, test } from '@playwright/test';
import { hydrated, signUp, uniqueEmail, watchConsole } from './support';

test('SIP users are created, refused when repeated, get a new password and are deleted', async ({ page }) => {
  const errors = watchConsole(page);
  await signUp(page, uniqueEmail('sipusers'));
  await page.getByRole('link', { name: 'SIP Users' }).click();
  await hydrated(page);
  await expect(page.getByText('No SIP users yet.')).toBeVisible();

  await page.getByLabel('Username').fill('alice');
  await page.getByLabel('Password', { exact: true }).fill('alice secret 1');
  await page.getByRole('button', { name: 'Create SIP user' }).click();
  const row = page.locator('tr[data-user="alice"]');
  await expect(row).toBeVisible();

  await page.getByLabel('Username').fill('alice');
  await page.getByLabel('Password', { exact: true }).fill('another secret');
  await page.getByRole('button', { name: 'Create SIP user' }).click();
  await expect(page.locator('.field-error[data-field="username"]').first()).toContainText('already');

  await row.getByLabel('New password').fill('alice secret 2');
  await row.getByRole('button', { name: 'Reset' }).click();
  await expect(page.getByRole('status')).toHaveText('Password changed.');

  await page.locator('tr[data-user="alice"]').getByRole('button', { name: 'Delete' }).click();
  await expect(page.getByText('No SIP users yet.')).toBeVisible();
  expect(errors.filter((e) => !e.includes('Failed to load resource'))).toEqual([]);
});
