import { expect, test } from '@playwright/test';
import { hydrated, signUp, uniqueEmail, watchConsole } from './support';

test('SIP users are created, refused when repeated, get a new password and are deleted', async ({ page }) => {
  const errors = watchConsole(page);
  await signUp(page, uniqueEmail('sipusers'));
  await page.getByRole('link', { name: 'SIP Users' }).click();
  await hydrated(page);
  await expect(page.getByText('No SIP users yet.')).toBeVisible();

  await page.locator('input[name="username"]').fill('alice');
  await page.getByLabel('Password', { exact: true }).fill('alice secret 1');
  await page.getByRole('button', { name: 'Create SIP user' }).click();
  const row = page.locator('tr[data-user="alice"]');
  await expect(row).toBeVisible();

  await page.locator('input[name="username"]').fill('alice');
  await page.getByLabel('Password', { exact: true }).fill('another secret');
  await page.getByRole('button', { name: 'Create SIP user' }).click();
  await expect(page.locator('.field-error[data-field="username"]').first()).toContainText('already');

  // The list is searched by the store; the search is in the URL and survives a reload.
  await page.locator('input[name="username"]').fill('bob');
  await page.getByLabel('Password', { exact: true }).fill('bob secret 12');
  await page.getByRole('button', { name: 'Create SIP user' }).click();
  await expect(page.locator('tr[data-user="bob"]')).toBeVisible();
  await expect(page.getByTestId('sip-user-count')).toHaveText('2 SIP users');
  await page.getByLabel('Search by username').fill('ALI');
  await page.getByLabel('Search by username').press('Enter');
  await expect(page).toHaveURL(/\/sip-users\?q=ALI$/);
  await expect(page.getByTestId('sip-user-count')).toHaveText('1 of 2 SIP users');
  await expect(page.locator('tr[data-user="bob"]')).toHaveCount(0);
  await page.reload();
  await hydrated(page);
  await expect(page.getByTestId('sip-user-count')).toHaveText('1 of 2 SIP users');
  await expect(row).toBeVisible();

  await row.getByLabel('New password').fill('alice secret 2');
  await row.getByRole('button', { name: 'Reset' }).click();
  await expect(page.getByRole('status')).toHaveText('Password changed.');

  await page.getByRole('link', { name: 'Clear search' }).click();
  await expect(page).toHaveURL(/\/sip-users$/);
  await expect(page.getByTestId('sip-user-count')).toHaveText('2 SIP users');
  for (const user of ['alice', 'bob']) {
    await page.locator(`tr[data-user="${user}"]`).getByRole('button', { name: 'Delete' }).click();
    await expect(page.locator(`tr[data-user="${user}"]`)).toHaveCount(0);
  }
  await expect(page.getByText('No SIP users yet.')).toBeVisible();
  expect(errors.filter((e) => !e.includes('Failed to load resource'))).toEqual([]);
});
