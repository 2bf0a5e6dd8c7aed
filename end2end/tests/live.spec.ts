import { expect, test } from '@playwright/test';
import { completeChecklist, deployedServer, hydrated, signUp, uniqueEmail, watchConsole } from './support';

test('the list shows measured latencies and follows a node change without reloading', async ({ page, context }) => {
  const errors = watchConsole(page);
  const ip = await deployedServer(page);
  const row = page.locator(`tr[data-ip="${ip}"]`);

  // Hovering the status icon shows SIP and ICMP round trips measured by the control plane.
  await row.locator('.dot').hover();
  const card = row.getByRole('tooltip');
  await expect(card).toBeVisible();
  await expect(card).toContainText(/SIP latency: \d+\.\d\d ms · ICMP latency: (\d+\.\d\d ms|✗ no answer)/);

  // Another tab stops the server; this one is told without a reload.
  const other = await context.newPage();
  await other.goto(`/servers/${await row.getAttribute('data-server-id')}`);
  await hydrated(other);
  await other.locator('button[data-action="stop"]').click();
  await other.getByRole('dialog', { name: 'Confirm action' }).getByRole('button', { name: 'Confirm' }).click();
  await expect(other.getByTestId('status')).toHaveText('Stopped');

  await expect(row.getByTestId('status')).toContainText('Stopped', { timeout: 3000 });
  await row.locator('.dot').hover();
  await expect(row.getByRole('tooltip')).toContainText('the node is not running');
  expect(errors).toEqual([]);
});

test('the list is filtered and paged by the server, the view lives in the URL, and only its rows are live', async ({ page, context }) => {
  test.setTimeout(150_000);
  const errors = watchConsole(page);
  const email = uniqueEmail('paging');
  await signUp(page, email);
  // Deploying the 60th server needs $20 + $20 × 59.
  await completeChecklist(page, email, 1300);
  // The servers are deployed through the same server function the Deploy form posts to,
  // with the page's session: 52 Switches in London, 8 Dispatchers in New York.
  const deploy = async (zone: string, kind: string) => {
    const response = await page.request.post('/api/deploy_server', {
      form: { zone, kind },
      headers: { Accept: 'application/json' },
    });
    expect(response.status(), await response.text()).toBe(200);
  };
  for (let i = 0; i < 52; i++) await deploy('eu-london', 'switch');
  for (let i = 0; i < 8; i++) await deploy('us-newyork', 'dispatcher');

  await page.goto('/servers');
  await hydrated(page);
  const rows = page.locator('table.servers tbody tr[data-server-id]');
  const pager = page.getByRole('navigation', { name: 'Pages' });
  const previous = pager.getByRole('button', { name: 'Previous', exact: true });
  const next = pager.getByRole('button', { name: 'Next', exact: true });
  const where = page.getByTestId('page');
  const count = page.getByTestId('server-count');
  const ips = () => rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-ip')));
  // The buttons say only their names: nothing of the view's source leaks into the page.
  await expect(pager).toHaveText(/^\s*Previous\s*Page 1 of 2\s*Next\s*$/);
  await expect(count).toHaveText('60 servers');
  await expect(rows).toHaveCount(50);
  await expect(previous).toBeDisabled();
  // Sorted by IP, London's 127.0.21.x come first: the first page is all Switches.
  await expect(rows.filter({ hasText: 'Dispatcher' })).toHaveCount(0);
  await next.click();
  await expect(page).toHaveURL(/\/servers\?page=2$/);
  await expect(where).toHaveText('Page 2 of 2');
  await expect(rows).toHaveCount(10);
  await expect(rows.filter({ hasText: 'Dispatcher' })).toHaveCount(8);
  await expect(next).toBeDisabled();

  // Filter by zone: the first page of what it leaves; then page: the URL holds both.
  await page.getByLabel('Filter by zone').selectOption('eu-london');
  await expect(page).toHaveURL(/\/servers\?zone=eu-london$/);
  await expect(count).toHaveText('52 of 60 servers');
  await expect(where).toHaveText('Page 1 of 2');
  await expect(rows).toHaveCount(50);
  const londonFirst = await ips();
  await next.click();
  await expect(page).toHaveURL(/\/servers\?zone=eu-london&page=2$/);
  await expect(where).toHaveText('Page 2 of 2');
  await expect(rows).toHaveCount(2);
  const londonSecond = await ips();
  expect(londonSecond.every((ip) => ip!.startsWith('127.0.21.'))).toBe(true);

  // A reload shows the same rows and the filter in use.
  await page.reload();
  await hydrated(page);
  await expect(where).toHaveText('Page 2 of 2');
  expect(await ips()).toEqual(londonSecond);
  await expect(page.getByLabel('Filter by zone')).toHaveValue('eu-london');

  // Back returns to the previous page of results, Forward to the next.
  await page.goBack();
  await expect(page).toHaveURL(/\/servers\?zone=eu-london$/);
  await expect(where).toHaveText('Page 1 of 2');
  await expect(rows).toHaveCount(50);
  expect(await ips()).toEqual(londonFirst);
  await page.goForward();
  await expect(where).toHaveText('Page 2 of 2');
  await page.goBack();
  await expect(where).toHaveText('Page 1 of 2');

  // Every row on screen is marked; a redrawn row or table would lose its mark.
  await rows.evaluateAll((trs) => trs.forEach((tr) => ((tr as any).__kept = true)));
  const allKept = () => rows.evaluateAll((trs) => trs.every((tr) => (tr as any).__kept === true));
  const stop = async (id: string) => {
    const other = await context.newPage();
    await other.goto(`/servers/${id}`);
    await hydrated(other);
    await other.locator('button[data-action="stop"]').click();
    await other.getByRole('dialog', { name: 'Confirm action' }).getByRole('button', { name: 'Confirm' }).click();
    await expect(other.getByTestId('status')).toHaveText('Stopped');
    await other.close();
  };
  // A server on the other page stops: nothing on this page changes.
  const offPage = page.locator(`tr[data-ip="${londonSecond[0]}"]`);
  await expect(offPage).toHaveCount(0);
  const offPageId = (await page.request.post('/api/server_page', {
    form: { 'query[zone]': 'eu-london', 'query[page]': '2' },
    headers: { Accept: 'application/json' },
  }).then((r) => r.json())).rows[0].id;
  await stop(String(offPageId));
  // A server on this page stops: its status arrives live, in the same row.
  const onPage = rows.nth(5);
  await stop((await onPage.getAttribute('data-server-id'))!);
  await expect(onPage.getByTestId('status')).toHaveText('Stopped', { timeout: 3000 });
  expect(await allKept()).toBe(true);
  await expect(rows.filter({ hasText: 'Stopped' })).toHaveCount(1);
  await expect(count).toHaveText('52 of 60 servers');

  // A filter value that is not one gives an empty result with the filter shown, a page
  // number that is not one the first page: never an error page.
  await page.goto('/servers?zone=%3Cscript%3E');
  await hydrated(page);
  await expect(count).toHaveText('0 of 60 servers');
  await expect(page.getByText('No servers match these filters.')).toBeVisible();
  await expect(page.getByLabel('Filter by zone')).toHaveValue('<script>');
  await page.goto('/servers?page=-1');
  await expect(where).toHaveText('Page 1 of 2');
  await expect(rows).toHaveCount(50);
  // The search keeps the view's filters and starts at its first page; the URL holds only
  // what is set.
  await hydrated(page);
  await page.getByLabel('Search by IP or alias').fill('127.0.22.');
  await page.getByLabel('Search by IP or alias').press('Enter');
  await expect(page).toHaveURL(/\/servers\?q=127\.0\.22\.$/);
  await expect(count).toHaveText('8 of 60 servers');
  await page.goto('/servers?status=stopped');
  await expect(count).toHaveText('2 of 60 servers');
  await page.screenshot({ path: 'test-results/servers-paging.png', fullPage: true });
  expect(errors).toEqual([]);
});
