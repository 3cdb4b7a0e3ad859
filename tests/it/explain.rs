//! Writing a config without guessing: `remora once --explain` (per rule:
//! path, nodes matched, series, failures with the offending value and a
//! hint), the log lines of a rule that starts failing and recovers, and the
//! page `GET /targets/NAME` (in a real headless Chromium too). None of them
//! shows a header, a credential or a query value.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{self, FakeTarget, Remora, Reply};

const BIN: &str = env!("CARGO_BIN_EXE_remora");

/// Secrets the config holds; no output may show them.
const SECRETS: [&str; 4] = ["hdr-s3cret", "pw-s3cret", "tok-s3cret", "q-s3cret"];

/// A body with a value that is not a number, a misspelt key, a container
/// read as a value, a state outside `states`, a hostile string and a long one.
fn body() -> String {
    let long = "x".repeat(300);
    format!(
        r#"{{"status": "ready", "app": {{"uptime": 12, "version": "1.2", "users": 3}},
            "checks": {{"db": {{"latency_ms": 12, "state": "ok"}}, "cache": {{"latency_ms": 7, "state": "weird"}}}},
            "mem": {{"rss": 1, "heap": 2}},
            "evil": "<script>alert(1)</script>", "long": "{long}"}}"#
    )
}

const GOOD: &str = r#"{"status": 1, "app": {"uptime": 12, "uptme": 1}, "checks": {}, "mem": 5, "evil": 1, "long": 2}"#;

fn config(base: &str, token_file: &std::path::Path, interval: &str) -> String {
    format!(
        r#"host: {{enabled: false}}
global: {{interval: {interval}, timeout: {interval}}}
targets:
  - name: app
    url: "{base}/health?key=q-s3cret"
    headers: {{X-Api-Key: hdr-s3cret}}
    basic_auth: {{username: probe, password: pw-s3cret}}
    metrics:
      - name: app.ready
        path: $.status
      - name: app.uptime
        path: $.app.uptme
      - name: app.dependency.latency
        each: $.checks.*
        path: $.latency_ms
        labels: {{dependency: "{{@key}}"}}
      - name: app.dependency.state
        kind: stateset
        states: [ok, down]
        each: $.checks.*
        path: $.state
        labels: {{dependency: "{{@key}}"}}
      - name: app.memory
        path: $.mem
      - name: app.evil
        path: $.evil
      - name: app.long
        path: $.long
  - name: other
    url: "{base}/other"
    bearer_token_file: {token}
    metrics:
      - {{name: other.uptime, path: $.app.uptime}}
"#,
        token = token_file.display()
    )
}

fn setup(dir: &tempfile::TempDir, url: &str, interval: &str) -> std::path::PathBuf {
    let token = dir.path().join("token");
    std::fs::write(&token, "tok-s3cret\n").unwrap();
    let cfg = dir.path().join("exporter.yaml");
    std::fs::write(&cfg, config(url, &token, interval)).unwrap();
    cfg
}

fn no_secrets(what: &str, text: &str) {
    for s in SECRETS {
        assert!(!text.contains(s), "{what} shows the secret {s}:\n{text}");
    }
}

/// The lines of `text` from the one that starts with `start` up to the next
/// rule or target.
fn section<'t>(text: &'t str, start: &str) -> Vec<&'t str> {
    let mut lines = text.lines().skip_while(|l| !l.starts_with(start));
    let first = lines
        .next()
        .unwrap_or_else(|| panic!("no {start:?} in:\n{text}"));
    std::iter::once(first)
        .chain(lines.take_while(|l| !l.starts_with("  rule ") && !l.starts_with("target ")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_explain_shows_paths_series_values_and_hints() {
    let app = FakeTarget::start().await;
    app.set("/health", Reply::json(&body()));
    app.set("/other", Reply::json(GOOD));
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(&dir, &app.url(""), "15s");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args([
                "once",
                "--explain",
                &format!("--config.file={}", cfg.display()),
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The exposition alone on stdout; the account on stderr.
    assert!(common::has_name(&stdout, "remora_build_info"), "{stdout}");
    assert!(!stdout.contains("hint:"), "{stdout}");
    no_secrets("stderr", &stderr);
    no_secrets("stdout", &stdout);
    assert!(stderr.contains("target app (http://127.0.0.1:"), "{stderr}");
    assert!(stderr.contains("/health?key=…)"), "{stderr}");

    let ready = section(&stderr, "  rule app.ready:").join("\n");
    assert!(
        ready.contains("path $.status matched 1 node(s): 0 series"),
        "{ready}"
    );
    assert!(
        ready.contains("FAILED not_a_number ×1, value \"ready\""),
        "{ready}"
    );
    assert!(
        ready.contains(
            "hint: \"ready\" is not a number: add map: {ready: 1, not_ready: 0} or use kind: stateset"
        ),
        "{ready}"
    );

    let uptime = section(&stderr, "  rule app.uptime:").join("\n");
    assert!(uptime.contains("matched 0 node(s)"), "{uptime}");
    assert!(uptime.contains("FAILED missing ×1"), "{uptime}");
    assert!(
        uptime.contains("$.app has no key \"uptme\"; nearest keys: uptime, users, version"),
        "{uptime}"
    );
    assert!(uptime.contains("optional: true"), "{uptime}");

    let latency = section(&stderr, "  rule app.dependency.latency:").join("\n");
    assert!(
        latency.contains("each $.checks.* matched 2 node(s); path $.latency_ms: 2 series"),
        "{latency}"
    );
    assert!(
        latency.contains("app.dependency.latency{dependency=\"db\"} 12"),
        "{latency}"
    );
    assert!(
        latency.contains("app.dependency.latency{dependency=\"cache\"} 7"),
        "{latency}"
    );
    assert!(!latency.contains("FAILED"), "{latency}");

    let state = section(&stderr, "  rule app.dependency.state:").join("\n");
    // 2 nodes x 2 states, and "weird" served as state="other".
    assert!(state.contains("5 series"), "{state}");
    assert!(
        state.contains("app.dependency.state{dependency=\"cache\",state=\"other\"} 1"),
        "{state}"
    );
    assert!(
        state.contains("FAILED unmapped_value ×1, value \"weird\""),
        "{state}"
    );
    assert!(state.contains("not one of states: [ok, down]"), "{state}");

    let memory = section(&stderr, "  rule app.memory:").join("\n");
    assert!(memory.contains("value {…}"), "{memory}");
    assert!(
        memory.contains("use each: $.mem.*") && memory.contains("a deeper path such as $.mem."),
        "{memory}"
    );

    // A long value is cut to 80 characters.
    let long = section(&stderr, "  rule app.long:").join("\n");
    let cut = format!("value \"{}…\"", "x".repeat(79));
    assert!(long.contains(&cut), "{long}");
    assert!(!long.contains(&"x".repeat(81)), "{long}");

    let other = section(&stderr, "  rule other.uptime:").join("\n");
    assert!(
        other.contains("1 series") && other.contains("other.uptime 12"),
        "{other}"
    );
    // One failed target makes `once` exit 1; rule failures do not.
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_without_explain_prints_no_account() {
    let app = FakeTarget::start().await;
    app.set("/health", Reply::json(&body()));
    app.set("/other", Reply::json(GOOD));
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(&dir, &app.url(""), "15s");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(["once", &format!("--config.file={}", cfg.display())])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("  rule app.ready"), "{stderr}");
}

/// Waits until `pred` holds for the fake target's hit count.
async fn wait_hits(app: &FakeTarget, path: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while app.hits(path) < n {
        assert!(
            Instant::now() < deadline,
            "only {} polls of {path}",
            app.hits(path)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_rule_logs_once_with_value_and_hint_and_once_when_it_recovers() {
    let app = FakeTarget::start().await;
    app.set("/health", Reply::json(&body()));
    app.set("/other", Reply::json(GOOD));
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(&dir, &app.url(""), "100ms");
    let port = common::free_port();
    let mut child = Command::new(BIN)
        .args([
            format!("--config.file={}", cfg.display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            "--log.format=json".into(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let reader = {
        let lines = lines.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                lines.lock().unwrap().push(line);
            }
        })
    };
    let health = |n| wait_hits(&app, "/health", n);
    // Failing for several polls, good for several, failing again.
    health(5).await;
    app.set("/health", Reply::json(GOOD));
    let at = app.hits("/health");
    health(at + 5).await;
    app.set("/health", Reply::json(&body()));
    let at = app.hits("/health");
    health(at + 5).await;
    // An outage while the rule fails, then the same failure: not a new onset.
    app.set("/health", Reply::Body(500, "text/plain", "oops".into()));
    let at = app.hits("/health");
    health(at + 3).await;
    app.set("/health", Reply::json(&body()));
    let at = app.hits("/health");
    health(at + 3).await;
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
    reader.join().unwrap();
    let lines = lines.lock().unwrap().clone();
    let all = lines.join("\n");
    no_secrets("the log", &all);
    let logs: Vec<serde_json::Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let of = |msg: &str, metric: &str| -> Vec<&serde_json::Value> {
        logs.iter()
            .filter(|l| l["msg"] == msg && l["metric"] == metric)
            .collect()
    };
    // Twice failing (two onsets), once recovered, never at every poll nor
    // after the target's own outage. (Only `app`'s: the `other` target's
    // 100 ms timeout may expire on a loaded machine.)
    assert_eq!(
        logs.iter()
            .filter(|l| l["msg"] == "target down" && l["target"] == "app")
            .count(),
        1,
        "{all}"
    );
    let failing = of("rule failing", "app.ready");
    assert_eq!(failing.len(), 2, "{all}");
    assert_eq!(of("rule recovered", "app.ready").len(), 1, "{all}");
    let f = failing[0];
    assert_eq!(f["level"], "warn", "{f}");
    assert_eq!(f["target"], "app", "{f}");
    assert_eq!(f["reason"], "not_a_number", "{f}");
    assert_eq!(f["value"], "\"ready\"", "{f}");
    assert!(
        f["hint"]
            .as_str()
            .unwrap()
            .contains("add map: {ready: 1, not_ready: 0}"),
        "{f}"
    );
    let missing = of("rule failing", "app.uptime");
    assert_eq!(missing.len(), 2, "{all}");
    assert!(
        missing[0]["hint"]
            .as_str()
            .unwrap()
            .contains("nearest keys: uptime"),
        "{all}"
    );
    // The long value is cut in the log too.
    let long = of("rule failing", "app.long");
    assert_eq!(
        long[0]["value"].as_str().unwrap().chars().count(),
        82,
        "{all}"
    );
    // A rule that never fails never logs.
    assert!(of("rule failing", "other.uptime").is_empty(), "{all}");
    assert!(of("rule recovered", "other.uptime").is_empty(), "{all}");
}

async fn get(url: &str) -> (u16, String) {
    let r = reqwest::get(url).await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// remora serving the failing body, after its first poll of every target.
async fn serving() -> (FakeTarget, Remora, tempfile::TempDir) {
    let app = FakeTarget::start().await;
    app.set("/health", Reply::json(&body()));
    app.set("/other", Reply::json(GOOD));
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "tok-s3cret\n").unwrap();
    let r = Remora::start(&config(&app.url(""), &token, "15s")).await;
    (app, r, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_page_shows_each_rule_escaped_and_without_secrets() {
    let (_app, r, _dir) = serving().await;
    let (status, index) = get(&r.url("/")).await;
    assert_eq!(status, 200);
    assert!(
        index.contains("<a href=\"/targets/app\">app</a>"),
        "{index}"
    );
    assert!(
        index.contains("<a href=\"/targets/other\">other</a>"),
        "{index}"
    );
    no_secrets("/", &index);

    let (status, page) = get(&r.url("/targets/app")).await;
    assert_eq!(status, 200);
    no_secrets("the target page", &page);
    assert!(page.contains("?key=…"), "{page}");
    // The hostile value is text, never markup.
    assert!(!page.contains("<script>"), "{page}");
    assert!(
        page.contains("&quot;&lt;script&gt;alert(1)&lt;/script&gt;&quot;"),
        "{page}"
    );
    assert!(
        page.contains("<td class=\"metric\">app.ready</td>"),
        "{page}"
    );
    assert!(
        page.contains("&quot;ready&quot; is not a number: add map: {ready: 1, not_ready: 0}"),
        "{page}"
    );
    assert!(
        page.contains("app.dependency.latency{dependency=&quot;db&quot;} 12"),
        "{page}"
    );

    let (status, _) = get(&r.url("/targets/nope")).await;
    assert_eq!(status, 404);
    let (status, _) = get(&r.url("/targets/%zz")).await;
    assert_eq!(status, 404);
    let resp = reqwest::Client::new()
        .post(r.url("/targets/app"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 405);
    r.stop().await;
}

/// Runs `chromium --headless` with `args` and `url` until it exits, at most
/// 60 s; returns its stdout.
fn chromium(bin: &std::path::Path, profile: &std::path::Path, args: &[&str], url: &str) -> String {
    let mut child = Command::new(bin)
        .args([
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    out.join().unwrap()
}

/// The text a person sees in a table row of `dom` that contains `needle`:
/// the row with its tags removed and entities decoded.
fn row_text(dom: &str, needle: &str) -> String {
    let at = dom
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in:\n{dom}"));
    let start = dom[..at].rfind("<tr").unwrap();
    let end = at + dom[at..].find("</tr>").unwrap();
    let mut text = String::new();
    let mut in_tag = false;
    for c in dom[start..end].chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                text.push(' ');
            }
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    let text = text
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&");
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_shows_the_target_table_and_a_failing_rule() {
    let Some(bin) = common::tool("chromium") else {
        return;
    };
    let (_app, r, dir) = serving().await;
    let profile = dir.path().join("chromium");
    let (index_url, page_url) = (r.url("/"), r.url("/targets/app"));
    let (index, page) = tokio::task::spawn_blocking(move || {
        (
            chromium(&bin, &profile, &["--dump-dom"], &index_url),
            chromium(&bin, &profile, &["--dump-dom"], &page_url),
        )
    })
    .await
    .unwrap();
    // `/`: the targets table, each name a link to its page.
    let row = row_text(&index, "href=\"/targets/app\"");
    assert!(row.starts_with("app http://127.0.0.1:"), "{row}");
    assert!(row.contains(" up "), "{row}");
    // The target page: the failing rule's row, its value and hint as text.
    let row = row_text(&page, ">app.ready<");
    assert!(
        row.contains("app.ready $.status 1 none not_a_number ×1, value \"ready\""),
        "{row}"
    );
    assert!(
        row.contains(
            "\"ready\" is not a number: add map: {ready: 1, not_ready: 0} or use kind: stateset"
        ),
        "{row}"
    );
    let row = row_text(&page, ">app.uptime<");
    assert!(
        row.contains("nearest keys: uptime, users, version"),
        "{row}"
    );
    // The hostile value stayed text: no script element in the live DOM.
    let row = row_text(&page, ">app.evil<");
    assert!(row.contains("value \"<script>alert(1)</script>\""), "{row}");
    assert!(
        !page.contains("<script>"),
        "a script element made it into the DOM"
    );
    no_secrets("the page in a browser", &page);
    r.stop().await;
}

/// The failing Spring Boot health body (tests/fixtures/apps) read with a
/// nested `each`, a `count_by` over the same components and the overall
/// state set: the target page shows both levels of `each` with the nodes
/// each matched and the aggregation with what it folded (the record's own
/// methods, as `remora once --explain` prints them), and `/` shows the
/// overall state as the app's health, never the `count_by` tally (whose
/// series carry only a `state` label too, here each at 1: one data source
/// UP, one DOWN).
#[tokio::test]
async fn target_page_shows_each_level_and_aggregation_and_index_skips_tallies() {
    let failing = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/apps/spring-boot-actuator/failing.json"
    ))
    .unwrap();
    let app = FakeTarget::start().await;
    app.set("/actuator/health", Reply::json(&failing));
    let config = format!(
        r#"host: {{enabled: false}}
global: {{interval: 1h, timeout: 5s}}
targets:
  - name: app
    url: {url}
    accept_status: [200, 503]
    metrics:
      - name: app.datasources
        count_by: state
        states: [UP, DOWN]
        each: $.components.db.components.*
        labels: {{state: "{{$.status}}"}}
      - name: app.health
        kind: stateset
        states: [UP, DOWN, OUT_OF_SERVICE, UNKNOWN]
        path: $.status
      - name: app.component.health
        kind: stateset
        states: [UP, DOWN, OUT_OF_SERVICE, UNKNOWN]
        each: ['$.components.*', '$.components.*']
        path: $.status
        labels: {{group: "{{@key:1}}", component: "{{@key}}"}}
"#,
        url = app.url("/actuator/health")
    );
    let r = Remora::start(&config).await;
    let (_, page) = get(&r.url("/targets/app")).await;
    let row = |metric: &str| {
        let at = page
            .find(&format!("<td class=\"metric\">{metric}</td>"))
            .unwrap_or_else(|| panic!("{metric} not in {page}"));
        page[at..at + page[at..].find("</tr>").unwrap()].to_string()
    };
    let nested = row("app.component.health");
    assert!(
        nested.contains(
            "<td class=\"each\"><code>$.components.*</code> → 7<br>then <code>$.components.*</code> → 2</td>"
        ),
        "{nested}"
    );
    let tally = row("app.datasources");
    assert!(
        tally.contains("<span class=\"aggregate\">count_by state over 2 node(s)</span>"),
        "{tally}"
    );
    let (_, index) = get(&r.url("/")).await;
    let app_row = index
        .split("<tr>")
        .find(|row| row.contains("/targets/app"))
        .unwrap_or_default();
    assert!(
        app_row.contains("<td class=\"health\">app.health: DOWN</td>"),
        "{app_row}"
    );
    assert!(index.contains("table#targets td{overflow-wrap:anywhere}"));
    r.stop().await;
}

/// The pixels of a PNG (8-bit RGB or RGBA, not interlaced, as Chromium
/// writes its screenshots): width, height, RGB rows.
fn png_rgb(data: &[u8]) -> (usize, usize, Vec<[u8; 3]>) {
    assert_eq!(&data[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let (mut at, mut idat) = (8, Vec::new());
    let (mut w, mut h, mut bpp) = (0usize, 0usize, 0usize);
    while at + 8 <= data.len() {
        let len = u32::from_be_bytes(data[at..at + 4].try_into().unwrap()) as usize;
        let kind = &data[at + 4..at + 8];
        let body = &data[at + 8..at + 8 + len];
        match kind {
            b"IHDR" => {
                w = u32::from_be_bytes(body[0..4].try_into().unwrap()) as usize;
                h = u32::from_be_bytes(body[4..8].try_into().unwrap()) as usize;
                assert_eq!(body[8], 8, "bit depth");
                assert_eq!(body[12], 0, "interlaced");
                bpp = match body[9] {
                    2 => 3,
                    6 => 4,
                    t => panic!("PNG color type {t}"),
                };
            }
            b"IDAT" => idat.extend_from_slice(body),
            _ => {}
        }
        at += 12 + len;
    }
    let mut raw = Vec::new();
    flate2::read::ZlibDecoder::new(&idat[..])
        .read_to_end(&mut raw)
        .unwrap();
    let stride = w * bpp;
    let mut prev = vec![0u8; stride];
    let mut pixels = Vec::with_capacity(w * h);
    for y in 0..h {
        let line = &raw[y * (stride + 1)..(y + 1) * (stride + 1)];
        let (filter, src) = (line[0], &line[1..]);
        let mut cur = vec![0u8; stride];
        for i in 0..stride {
            let a = if i >= bpp { cur[i - bpp] } else { 0 };
            let b = prev[i];
            let c = if i >= bpp { prev[i - bpp] } else { 0 };
            let pred = match filter {
                0 => 0,
                1 => a,
                2 => b,
                3 => ((u16::from(a) + u16::from(b)) / 2) as u8,
                4 => {
                    let p = i16::from(a) + i16::from(b) - i16::from(c);
                    let (pa, pb, pc) = (
                        (p - i16::from(a)).abs(),
                        (p - i16::from(b)).abs(),
                        (p - i16::from(c)).abs(),
                    );
                    if pa <= pb && pa <= pc {
                        a
                    } else if pb <= pc {
                        b
                    } else {
                        c
                    }
                }
                f => panic!("PNG filter {f}"),
            };
            cur[i] = src[i].wrapping_add(pred);
        }
        for px in cur.chunks(bpp) {
            pixels.push([px[0], px[1], px[2]]);
        }
        prev = cur;
    }
    (w, h, pixels)
}

/// Issue 26.9: at 1200 px wide, the target page's failures column (red
/// text, `.failing td.failures`) is on screen whole: its text wraps inside
/// the window instead of running off its right edge, although the rules
/// carry a long unbreakable failing value and long series. Checked on a
/// real headless Chromium screenshot: red pixels are there, and none
/// touches the last 16 px of the window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_1200_px_the_failures_column_is_on_screen() {
    let Some(bin) = common::tool("chromium") else {
        return;
    };
    let (_app, r, dir) = serving().await;
    let profile = dir.path().join("chromium");
    let shot = dir.path().join("page.png");
    let url = r.url("/targets/app");
    let arg = format!("--screenshot={}", shot.display());
    tokio::task::spawn_blocking(move || {
        chromium(
            &bin,
            &profile,
            &["--hide-scrollbars", "--window-size=1200,1400", &arg],
            &url,
        )
    })
    .await
    .unwrap();
    let (w, h, pixels) = png_rgb(&std::fs::read(&shot).unwrap());
    assert_eq!(w, 1200, "screenshot width");
    let red: Vec<usize> = (0..w * h)
        .filter(|i| {
            let [r, g, b] = pixels[*i];
            r > 140 && g < 90 && b < 90
        })
        .map(|i| i % w)
        .collect();
    assert!(!red.is_empty(), "no failure text on screen at 1200 px");
    let right = red.iter().max().copied().unwrap_or(0);
    assert!(
        right < w - 16,
        "failure text runs to x={right}: cut by the window's edge at {w} px"
    );
    r.stop().await;
}
