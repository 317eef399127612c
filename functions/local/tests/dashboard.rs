//! The dashboard in a real browser: `ui/dashboard_test.py` drives Debian's headless Chromium
//! with Playwright against a real `runledger-local` serving its own UI at `/`. It signs in
//! through the link the server prints, starts a suite of external cases and sees the Run page
//! follow step reports live, cancels and retries from the UI, imports a JUnit file through the
//! Import page, quarantines a flaky case and sees its suite pass with it muted, checks every
//! page for console errors and with axe-core, measures the first load and the render of 1,000
//! runs, and keeps screenshots of every page at 1280 and 390 px in `target/ui-screenshots/`.
//!
//! Playwright comes from the emulator's venv (`scripts/emulator install`), Chromium from
//! `scripts/browser install`; without either the test fails, it never skips.

use runledger_testkit::emulator::emulator_python;
use runledger_testkit::server::Server;
use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn chromium() -> PathBuf {
    let path = std::env::var_os("RUNLEDGER_CHROMIUM")
        .filter(|p| !p.is_empty())
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    assert!(
        path.exists(),
        "no Chromium at {} (run `scripts/browser install`, or set RUNLEDGER_CHROMIUM)",
        path.display()
    );
    path
}

fn python_with_playwright() -> PathBuf {
    let python = emulator_python();
    let probe = Command::new(&python)
        .args(["-c", "import playwright.sync_api"])
        .output();
    assert!(
        probe.as_ref().is_ok_and(|o| o.status.success()),
        "{} cannot import Playwright (run `scripts/emulator install`): {probe:?}",
        python.display()
    );
    python
}

#[test]
fn the_dashboard_works_in_a_real_browser() {
    let chromium = chromium();
    let python = python_with_playwright();
    let data = tempfile::tempdir().expect("a data dir");
    let server = Server::start(data.path());
    // The link the server prints signs in its `local` user; the test signs in through it.
    assert_eq!(
        server.printed_dashboard_link,
        format!("{}/#token={}", server.origin, server.printed_token)
    );
    let shots = workspace_root().join("target/ui-screenshots");
    std::fs::create_dir_all(&shots).expect("the screenshot folder");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui/dashboard_test.py");
    let output = Command::new(&python)
        .arg(&script)
        .arg(&server.origin)
        .env("RUNLEDGER_UI_TOKEN", &server.printed_token)
        .env("RUNLEDGER_CHROMIUM", &chromium)
        .env("RUNLEDGER_UI_SHOTS", &shots)
        .env_remove("RUNLEDGER_UI_DEV_SERVER")
        .output()
        .expect("run dashboard_test.py");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        output.status.success(),
        "the browser test failed ({}); server log:\n{}",
        output.status,
        server.log_text()
    );
    // It ran to the end and counted its checks (a run that stopped early prints no total).
    let total = stdout
        .lines()
        .rev()
        .find_map(|line| line.strip_suffix(" passed, 0 failed"))
        .and_then(|n| n.trim().parse::<usize>().ok());
    assert!(
        total.is_some_and(|n| n >= 80),
        "expected the closing `N passed, 0 failed` line with every check"
    );
    let pngs = std::fs::read_dir(&shots)
        .expect("the screenshot folder")
        .filter(|entry| {
            entry
                .as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "png"))
        })
        .count();
    assert!(pngs >= 16, "{pngs} screenshots in {}", shots.display());
}
