import { test } from '@playwright/test';
import { createSipUser, hydrated, signUp, uniqueEmail } from './support';

test('look', async ({ page }) => {
  await signUp(page, uniqueEmail('look'));
  for (const u of ['alice', 'bob', 'carol']) await createSipUser(page, u, `${u} secret 12`);
  await page.goto('/sip-users?q=o');
  await hydrated(page);
  await page.screenshot({ path: '/tmp/look-sip-users.png', fullPage: true });
  await page.goto('/account');
  await hydrated(page);
  await page.screenshot({ path: '/tmp/look-account.png', fullPage: true });
  await page.goto('/servers?zone=%3Cscript%3E&page=-1');
  await hydrated(page);
  await page.screenshot({ path: '/tmp/look-servers-empty.png', fullPage: true });
});
