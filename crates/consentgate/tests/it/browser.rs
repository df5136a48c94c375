//! The pages in a real browser: headless Chromium (through chromedriver) against a real
//! `consentgate serve` on a loopback port. A member switches the setting off, reloads, and sees
//! it off and in the history; an auditor sees a chart of the build and the log verified.
//! Screenshots go to `<target>/tmp/artifacts/`. Chromium missing is a failure, not a skip:
//! `.ci/run` installs it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{ClientBuilder, Locator};

use crate::util::{consentgate, data_dir, free_port, stderr};

fn wait_http(port: u16, path: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = write!(
                s,
                "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
            );
            let mut buf = [0u8; 16];
            if let Ok(n) = s.read(&mut buf)
                && buf[..n].starts_with(b"HTTP/1")
            {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("nothing answers on 127.0.0.1:{port}{path}");
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn chromedriver() -> (Killed, u16) {
    let find = || {
        ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
            .into_iter()
            .find(|p| Path::new(p).exists())
    };
    if find().is_none() {
        // A fresh machine: the project's script installs Debian's chromium and chromium-driver.
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/install-browser.sh");
        let status = Command::new("bash")
            .arg(&script)
            .status()
            .expect("run scripts/install-browser.sh");
        assert!(
            status.success(),
            "scripts/install-browser.sh failed: the browser tests need Chromium"
        );
    }
    let bin = find().expect("chromedriver is still missing after scripts/install-browser.sh");
    let port = free_port();
    let child = Command::new(bin)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let guard = Killed(child);
    wait_http(port, "/status");
    (guard, port)
}

/// Signs in at `/login` with a token and waits for the page that follows to show `ready`.
async fn sign_in(
    client: &fantoccini::Client,
    base: &str,
    token: &str,
    ready: &str,
) -> fantoccini::elements::Element {
    client.goto(&format!("{base}/login")).await.unwrap();
    client
        .find(Locator::Css("#token"))
        .await
        .unwrap()
        .send_keys(token)
        .await
        .unwrap();
    client
        .find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    client
        .wait()
        .for_element(Locator::Css(ready))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_privacy_page_and_the_dashboard_in_headless_chromium() {
    // A ledger, a build, tokens.
    let (corpus, summary) = cg_test_support::small_corpus(300, 2_000, cg_io::Format::Parquet);
    let file = |t: &str| {
        summary
            .tables
            .iter()
            .find(|x| x.table == t)
            .unwrap()
            .path
            .to_str()
            .unwrap()
            .to_owned()
    };
    let work = cg_test_support::tempdir();
    let store = format!("sqlite:{}", work.path().join("ledger.sqlite").display());
    for t in ["consent", "members"] {
        let o = consentgate(&["consent", "import", &file(t), "--store", &store, "-q"]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let datasets = work.path().join("datasets");
    let o = consentgate(&[
        "build",
        "--members",
        &file("members"),
        "--content",
        &file("content"),
        "--store",
        &store,
        "--as-of",
        "2025-12-01",
        "--out",
        datasets.to_str().unwrap(),
        "--shards",
        "4",
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // A member with no choice recorded, in an opt-out regime: the setting starts on.
    let o = consentgate(&[
        "token", "issue", "--role", "member", "--member", "7", "--store", &store, "-q",
    ]);
    let member = String::from_utf8(o.stdout).unwrap().trim().to_owned();
    let o = consentgate(&[
        "token", "issue", "--role", "auditor", "--store", &store, "-q",
    ]);
    let auditor = String::from_utf8(o.stdout).unwrap().trim().to_owned();
    drop(corpus);

    let port = free_port();
    let server = Command::new(env!("CARGO_BIN_EXE_consentgate"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--store",
            &store,
            "--datasets",
            datasets.to_str().unwrap(),
        ])
        .env("CG_DATA_DIR", data_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _server = Killed(server);
    wait_http(port, "/healthz");
    let (_driver, driver_port) = chromedriver();
    let profile = cg_test_support::tempdir();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                     "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--window-size=1200,1400", format!("--user-data-dir={}", profile.path().display())]
        }),
    );
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{driver_port}"))
        .await
        .expect("start headless Chromium through chromedriver");
    let base = format!("http://127.0.0.1:{port}");

    // The member signs in, sees the setting on, switches it off.
    let toggle = sign_in(&client, &base, &member, "#genai").await;
    assert!(
        client
            .current_url()
            .await
            .unwrap()
            .path()
            .ends_with("/privacy")
    );
    assert!(
        toggle.is_selected().await.unwrap(),
        "the setting starts on in an opt-out regime"
    );
    let label = client
        .find(Locator::Css("label[for=genai]"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        label,
        "Use my data for training content-generating AI models"
    );
    toggle.click().await.unwrap();
    client
        .find(Locator::Css("#save"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // Wait for the saved page (the history shows the choice), then reload.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let text = match client.find(Locator::Css("#history")).await {
            Ok(e) => e.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if text.contains("not allowed") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the choice never appeared in the history"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    client.refresh().await.unwrap();
    client
        .wait()
        .for_element(Locator::Css("#genai"))
        .await
        .unwrap();
    assert!(
        !client
            .find(Locator::Css("#genai"))
            .await
            .unwrap()
            .is_selected()
            .await
            .unwrap(),
        "off after a reload"
    );
    let history = client
        .find(Locator::Css("#history"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        history.contains("not allowed") && history.contains("settings"),
        "{history}"
    );
    let decision = client
        .find(Locator::Css("#decision"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(decision, "exclude");
    // A receipt, verified by the server with the public key.
    client
        .find(Locator::Css("form[action='/privacy/receipt'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let receipt = client
        .wait()
        .for_element(Locator::Css("#receipt"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(receipt.contains("Verified: member 7"), "{receipt}");
    std::fs::write(
        artifacts().join("privacy.png"),
        client.screenshot().await.unwrap(),
    )
    .unwrap();
    // The data-use record: the button opens it; its JSON's receipts verify offline.
    client
        .find(Locator::Css("#export"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let table = client
        .wait()
        .for_element(Locator::Css("#datasets"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(table.contains(" in it"), "{table}");
    let history = client
        .find(Locator::Css("#history"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(history.contains("not allowed"), "{history}");
    std::fs::write(
        artifacts().join("export.png"),
        client.screenshot().await.unwrap(),
    )
    .unwrap();
    let href = client
        .find(Locator::Css("#export-json"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    let session = client
        .get_all_cookies()
        .await
        .unwrap()
        .into_iter()
        .map(|c| format!("{}={}", c.name(), c.value()))
        .collect::<Vec<_>>()
        .join("; ");
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "GET {href} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {session}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-disposition: attachment"),
        "{head}"
    );
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    let export: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(export["member_id"], 7);
    let o = consentgate(&["keys", "show"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let vkey = String::from_utf8(o.stdout).unwrap().trim().to_owned();
    let datasets = export["datasets"].as_array().unwrap();
    assert_eq!(datasets.len(), 1);
    for d in datasets {
        let receipt: cg_proof::receipt::Receipt =
            serde_json::from_value(d["receipt"].clone()).unwrap();
        let verified = cg_proof::receipt::verify(&receipt, &vkey, Some(7)).unwrap();
        assert_eq!(Some(receipt.included), d["included"].as_bool());
        assert!(verified.statement().contains("member 7"));
    }
    assert!(
        export["consent_history"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["log_index"].is_u64())
    );
    client.goto(&format!("{base}/privacy")).await.unwrap();
    client
        .find(Locator::Css("header form button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    client
        .wait()
        .for_element(Locator::Css("#token"))
        .await
        .unwrap();

    // The auditor sees the build as a chart and the log verified.
    sign_in(&client, &base, &auditor, "svg.chart").await;
    assert!(
        client
            .current_url()
            .await
            .unwrap()
            .path()
            .ends_with("/dashboard")
    );
    let bars = client
        .find_all(Locator::Css("svg.chart rect"))
        .await
        .unwrap();
    assert!(bars.len() >= 3, "a chart with bars, got {}", bars.len());
    // The dashboard's bars are the manifest's rows by region × decision (each row once), not a
    // reading of the per-reason counts.
    let manifest_path = std::fs::read_dir(work.path().join("datasets"))
        .unwrap()
        .map(|e| e.unwrap().path().join("manifest.json"))
        .find(|p| p.exists())
        .unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(manifest_path).unwrap()).unwrap();
    let mut expected: Vec<String> = Vec::new();
    for r in manifest["rows_by_region"].as_array().unwrap() {
        for d in ["include", "include_redacted", "exclude"] {
            let n = r[d].as_u64().unwrap();
            if n > 0 {
                expected.push(format!("{}: {d} {n}", r["region"].as_str().unwrap()));
            }
        }
    }
    let mut shown = Vec::new();
    for t in client
        .find_all(Locator::Css("svg#chart-0 rect title"))
        .await
        .unwrap()
    {
        shown.push(t.html(true).await.unwrap());
    }
    expected.sort();
    shown.sort();
    assert_eq!(shown, expected);
    let status = client
        .find(Locator::Css("#log-status"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(status.contains("The log verifies"), "{status}");
    let hash = client
        .find(Locator::Css("#policy-hash"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(hash.len(), 64);
    // Each build links to its report: a standalone page with SVG charts and the log entry.
    let report = client
        .find(Locator::Css("a.report"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    client.goto(&format!("{base}{report}")).await.unwrap();
    let verified = client
        .wait()
        .for_element(Locator::Css("#verify"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(verified.contains("Every file matches"), "{verified}");
    let entry = client
        .find(Locator::Css("#log-entry"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(entry.contains("records this manifest"), "{entry}");
    assert!(
        client
            .find_all(Locator::Css("svg.chart rect"))
            .await
            .unwrap()
            .len()
            >= 3
    );
    std::fs::write(
        artifacts().join("build-report.png"),
        client.screenshot().await.unwrap(),
    )
    .unwrap();
    client.goto(&format!("{base}/dashboard")).await.unwrap();
    std::fs::write(
        artifacts().join("dashboard.png"),
        client.screenshot().await.unwrap(),
    )
    .unwrap();
    // Keyboard: the setting is reachable with Tab from the top of the privacy page for members
    // (checked on the markup: a real <input type=checkbox> with a <label>).
    client.close().await.unwrap();
}

/// The body of a chunked HTTP/1.1 response.
fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap();
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

#[test]
fn serve_stops_cleanly_on_sigterm() {
    let work = cg_test_support::tempdir();
    let store = format!("sqlite:{}", work.path().join("l.sqlite").display());
    let port = free_port();
    let mut server = Command::new(env!("CARGO_BIN_EXE_consentgate"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--store",
            &store,
        ])
        .env("CG_DATA_DIR", data_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_http(port, "/healthz");
    let o = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(o.success());
    let status = server.wait().unwrap();
    let mut err = String::new();
    server
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "{status}: {err}");
    assert!(err.contains("Stopped"), "{err}");
    // The log lines name routes and statuses, never a token.
    assert!(
        err.contains("route=/healthz") && err.contains("status=200"),
        "{err}"
    );
}

#[test]
fn token_cli_issues_lists_and_revokes_without_showing_secrets() {
    let work = cg_test_support::tempdir();
    let store = format!("sqlite:{}", work.path().join("l.sqlite").display());
    let o = consentgate(&[
        "token", "issue", "--role", "member", "--member", "3", "--ttl", "30d", "--store", &store,
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let token = v["token"].as_str().unwrap().to_owned();
    let id = v["record"]["id"].as_str().unwrap().to_owned();
    assert!(token.starts_with(&format!("cgt_{id}_")));
    assert!(v["record"]["expires_at"].is_string());
    let o = consentgate(&["token", "list", "--store", &store]);
    let listed = String::from_utf8(o.stdout).unwrap();
    assert!(
        listed.contains(&id) && !listed.contains(&token[20..]),
        "{listed}"
    );
    // Usage errors exit 2.
    for bad in [
        &["token", "issue", "--role", "member"][..],
        &["token", "issue", "--role", "root"],
        &["token", "issue", "--role", "admin", "--ttl", "soon"],
    ] {
        let mut args: Vec<&str> = bad.to_vec();
        args.extend(["--store", &store]);
        assert_eq!(consentgate(&args).status.code(), Some(2), "{bad:?}");
    }
    assert!(
        consentgate(&["token", "revoke", &token, "--store", &store])
            .status
            .success()
    );
    let o = consentgate(&["token", "revoke", "--id", &id, "--store", &store]);
    assert_eq!(o.status.code(), Some(1), "already revoked");
}
