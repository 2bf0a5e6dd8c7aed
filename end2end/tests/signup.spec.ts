import { expect, test } from '@playwright/test';
import { signUp, uniqueEmail, watchConsole } from './support';

test('signing up lands on an empty Servers page that leads to Getting Started', async ({ page }) => {
  const errors = watchConsole(page);
  await signUp(page, uniqueEmail('signup'));

  const empty = page.getByTestId('empty-state');
  await expect(empty).toBeVisible();
  await expect(empty).toContainText('No servers yet');
  await expect(page.getByTestId('balance')).toHaveText('$0.00');

  await empty.getByRole('link', { name: /Getting Started/ }).click();
  await expect(page).toHaveURL(/\/getting-started$/);
  await expect(page.getByTestId('checklist-progress')).toHaveText('0 of 3 complete');

  expect(errors).toEqual([]);
});

test('a wrong password is refused next to the field', async ({ page }) => {
  const errors = watchConsole(page);
  const email = uniqueEmail('wrongpw');
  await signUp(page, email);
  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(page).toHaveURL(/\/login$/);

  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill('not the password at all');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.locator('.field-error[data-field="password"]')).toHaveText('Wrong email or password.');
  await expect(page).toHaveURL(/\/login$/);
  // The refused call is a server-function error response, which Chromium logs as a failed
  // resource load; nothing else may appear.
  expect(errors.filter((e) => !e.includes('Failed to load resource'))).toEqual([]);
});
