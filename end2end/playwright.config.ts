import { defineConfig } from '@playwright/test';
import { CHROMIUM_ARGS, E2E } from './tests/support';

// The console is the real binary (built by the test command), on its own port, with a
// fresh store and zones of its own so it never meets a console a developer is running.
export default defineConfig({
  testDir: './tests',
  timeout: 60_000,
  expect: { timeout: 15_000 },
  fullyParallel: false,
  workers: 1,
  retries: 0,
  forbidOnly: !!process.env.CI,
  reporter: [['list']],
  use: {
    baseURL: E2E.baseURL,
    trace: 'retain-on-failure',
    launchOptions: {
      executablePath: '/usr/bin/chromium',
      args: CHROMIUM_ARGS,
    },
  },
  webServer: {
    command: `rm -rf ${E2E.dataDir} && exec ${E2E.binary}`,
    cwd: '..',
    url: E2E.baseURL,
    reuseExistingServer: false,
    timeout: 60_000,
    stdout: 'pipe',
    env: E2E.serverEnv,
  },
});
