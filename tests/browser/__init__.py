"""End-to-end tests of the browser editor in headless Chromium (Debian's package, via Playwright)."""
