//! Hostile peers on both sides: clients that flood `--web.config.file`'s
//! basic auth with bad logins, and targets whose redirects would carry a
//! target's headers and credentials to another origin.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{sample, FakeTarget, Remora, Reply, Start};
use remora::web::AuthResult;

// ---------------------------------------------------------------- redirects

fn targets(body: &str) -> String {
    format!("global: {{interval: 1s, timeout: 800ms}}\nhost: {{enabled: false}}\ntargets:\n{body}")
}

const RULE: &str = "    metrics: [{name: x.value, path: $.v}]\n";

async fn status(r: &Remora) -> serde_json::Value {
    let text = reqwest::get(r.url("/-/status"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Waits until target `name` was polled with `result` at least once.
async fn polled(r: &Remora, name: &str, result: &str) -> String {
    let key = format!("remora_target_polls_total{{result=\"{result}\",target=\"{name}\"}}");
    let m = r
        .metrics_until(15, |m| sample(m, &key).unwrap_or(0.0) >= 1.0)
        .await;
    assert!(sample(&m, &key).unwrap_or(0.0) >= 1.0, "{key}: {m}");
    m
}

/// Under `any`, a redirect to another port is followed but the configured
/// header and the credentials stay home; a hop back to the target's origin
/// gets them again.
#[tokio::test]
async fn any_keeps_headers_and_credentials_on_the_target_origin() {
    let home = FakeTarget::start().await;
    let away = FakeTarget::start().await;
    home.set("/bearer", Reply::Redirect(302, away.url("/hop-bearer")));
    away.set("/hop-bearer", Reply::Redirect(307, home.url("/final")));
    home.set("/basic", Reply::Redirect(301, away.url("/data")));
    home.set("/final", Reply::json(r#"{"v": 1}"#));
    away.set("/data", Reply::json(r#"{"v": 2}"#));
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "tok-1").unwrap();
    let text = targets(&format!(
        "  - name: bearer\n    url: {}\n    follow_redirects: any\n    headers: {{X-Api-Key: k-123}}\n    bearer_token_file: {}\n{RULE}\
         \x20 - name: basic\n    url: {}\n    follow_redirects: any\n    headers: {{X-Api-Key: k-456}}\n    basic_auth: {{username: probe, password: pw}}\n{RULE}",
        home.url("/bearer"),
        token.display(),
        home.url("/basic"),
    ));
    let r = Remora::start(&text).await;
    let m = r
        .metrics_until(15, |m| {
            sample(m, "x_value{target=\"bearer\"}") == Some(1.0)
                && sample(m, "x_value{target=\"basic\"}") == Some(2.0)
        })
        .await;
    assert!(sample(&m, "x_value{target=\"bearer\"}") == Some(1.0), "{m}");
    assert!(sample(&m, "x_value{target=\"basic\"}") == Some(2.0), "{m}");
    let first = &home.seen("/bearer")[0];
    assert_eq!(first.headers["x-api-key"], "k-123");
    assert_eq!(first.headers["authorization"], "Bearer tok-1");
    for path in ["/hop-bearer", "/data"] {
        let seen = away.seen(path);
        assert!(!seen.is_empty(), "{path} was not reached");
        for s in seen {
            assert!(!s.headers.contains_key("x-api-key"), "{path}: {s:?}");
            assert!(!s.headers.contains_key("authorization"), "{path}: {s:?}");
            // Nor the target's URL (its query may hold a token).
            assert!(!s.headers.contains_key("referer"), "{path}: {s:?}");
            assert!(s.headers["user-agent"].starts_with("remora/"));
        }
    }
    // Back on the target's origin, the credentials are sent again.
    let last = &home.seen("/final")[0];
    assert_eq!(last.headers["x-api-key"], "k-123");
    assert_eq!(last.headers["authorization"], "Bearer tok-1");
    r.stop().await;
}

/// The default (`same_origin`) does not follow a redirect to another port: the
/// poll fails as `http_status` with the reason, and the other origin is never
/// contacted.
#[tokio::test]
async fn same_origin_refuses_a_cross_origin_redirect() {
    let home = FakeTarget::start().await;
    let away = FakeTarget::start().await;
    home.set("/health", Reply::Redirect(302, away.url("/data?token=abc")));
    away.set("/data", Reply::json(r#"{"v": 2}"#));
    let text = targets(&format!(
        "  - name: t\n    url: {}\n    headers: {{X-Api-Key: k-123}}\n{RULE}",
        home.url("/health")
    ));
    let r = Remora::start(&text).await;
    let m = polled(&r, "t", "http_status").await;
    assert_eq!(
        sample(&m, "remora_target_up{target=\"t\"}"),
        Some(0.0),
        "{m}"
    );
    assert_eq!(away.hits("/data"), 0);
    let s = status(&r).await;
    let t = &s["targets"]["t"];
    assert_eq!(t["http_status"], 302, "{t}");
    let error = t["last_error"].as_str().unwrap();
    let origin = format!("http://{}", away.addr);
    assert!(
        error.contains("another origin") && error.contains(&origin),
        "{error}"
    );
    assert!(!error.contains("token=abc"), "{error}");
    r.stop().await;
}

/// `none` never follows: the 3xx is the response, and `accept_status` decides.
#[tokio::test]
async fn none_returns_the_redirect_as_the_response() {
    let home = FakeTarget::start().await;
    home.set("/health", Reply::Redirect(302, "/data".into()));
    home.set("/metrics", Reply::Redirect(308, "/data".into()));
    home.set("/data", Reply::json(r#"{"v": 2}"#));
    let text = targets(&format!(
        "  - name: refused\n    url: {}\n    follow_redirects: none\n{RULE}\
         \x20 - name: accepted\n    url: {}\n    follow_redirects: none\n    accept_status: [308]\n    format: prometheus\n",
        home.url("/health"),
        home.url("/metrics"),
    ));
    let r = Remora::start(&text).await;
    polled(&r, "refused", "http_status").await;
    let m = polled(&r, "accepted", "success").await;
    assert_eq!(
        sample(&m, "remora_target_up{target=\"accepted\"}"),
        Some(1.0)
    );
    let s = status(&r).await;
    assert_eq!(s["targets"]["refused"]["http_status"], 302);
    assert_eq!(
        s["targets"]["refused"]["last_error"],
        "HTTP status 302 is not accepted"
    );
    assert_eq!(s["targets"]["accepted"]["http_status"], 308);
    assert_eq!(home.hits("/data"), 0);
    r.stop().await;
}

/// Within the origin, redirects keep the headers and credentials; POST turns
/// into GET without a body on 302 and 303 and stays POST with its body on 307.
#[tokio::test]
async fn same_origin_redirects_keep_headers_and_follow_method_rules() {
    let home = FakeTarget::start().await;
    home.set("/302", Reply::Redirect(302, "/after-302".into()));
    home.set("/303", Reply::Redirect(303, home.url("/after-303")));
    home.set("/307", Reply::Redirect(307, "after-307".into()));
    for path in ["/after-302", "/after-303", "/after-307"] {
        home.set(path, Reply::json(r#"{"v": 1}"#));
    }
    let mut body = String::new();
    for (name, path) in [("p302", "/302"), ("p303", "/303"), ("p307", "/307")] {
        body.push_str(&format!(
            "  - name: {name}\n    url: {}\n    follow_redirects: same_origin\n    method: POST\n    body: '{{\"q\": 1}}'\n    headers: {{X-Api-Key: k-1, Content-Type: application/json}}\n    basic_auth: {{username: probe, password: pw}}\n{RULE}",
            home.url(path)
        ));
    }
    let r = Remora::start(&targets(&body)).await;
    let m = r
        .metrics_until(15, |m| m.matches("x_value{target=").count() == 3)
        .await;
    assert_eq!(m.matches("x_value{target=").count(), 3, "{m}");
    let basic = "Basic cHJvYmU6cHc=";
    for path in ["/after-302", "/after-303"] {
        let s = &home.seen(path)[0];
        assert_eq!(s.method, "GET", "{path}");
        assert_eq!(s.body, "", "{path}");
        assert!(!s.headers.contains_key("content-type"), "{path}: {s:?}");
        assert_eq!(s.headers["x-api-key"], "k-1", "{path}");
        assert_eq!(s.headers["authorization"], basic, "{path}");
    }
    let s = &home.seen("/after-307")[0];
    assert_eq!(s.method, "POST");
    assert_eq!(s.body, r#"{"q": 1}"#);
    assert_eq!(s.headers["content-type"], "application/json");
    assert_eq!(s.headers["x-api-key"], "k-1");
    assert_eq!(s.headers["authorization"], basic);
    r.stop().await;
}

/// A redirect loop stops after 5 redirects, as `http_status` with the 3xx
/// that would have been the 6th.
#[tokio::test]
async fn redirect_loop_fails_cleanly() {
    let home = FakeTarget::start().await;
    home.set("/loop", Reply::RedirectLoop);
    home.set("/loop-any", Reply::RedirectLoop);
    let text = targets(&format!(
        "  - name: loop\n    url: {}\n{RULE}  - name: loopany\n    url: {}\n    follow_redirects: any\n{RULE}",
        home.url("/loop"),
        home.url("/loop-any"),
    ));
    let r = Remora::start(&text).await;
    for (name, path) in [("loop", "/loop"), ("loopany", "/loop-any")] {
        let m = polled(&r, name, "http_status").await;
        let polls = sample(
            &m,
            &format!("remora_target_polls_total{{result=\"http_status\",target=\"{name}\"}}"),
        )
        .unwrap();
        let hits = home.hits(path) as f64;
        assert!(
            hits <= 6.0 * (polls + 1.0),
            "{hits} requests, {polls} polls"
        );
        let s = status(&r).await;
        let t = &s["targets"][name];
        assert_eq!(t["http_status"], 302, "{t}");
        assert!(
            t["last_error"]
                .as_str()
                .unwrap()
                .contains("too many redirects"),
            "{t}"
        );
    }
    r.stop().await;
}

#[test]
fn follow_redirects_is_validated() {
    let text = "targets:\n  - name: t\n    url: http://127.0.0.1:1/\n    follow_redirects: sometimes\n    metrics: [{name: a, path: $.a}]\n";
    let errors = remora::config::parse_str(text, Path::new("exporter.yaml"), &|_| None)
        .unwrap_err()
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>();
    assert_eq!(
        errors,
        vec!["exporter.yaml:4:23: targets[0].follow_redirects: \"sometimes\" is not a redirect policy (expected same_origin, any or none)"]
    );
    for value in ["same_origin", "any", "none"] {
        let ok = text.replace("sometimes", value);
        assert!(
            remora::config::parse_str(&ok, Path::new("exporter.yaml"), &|_| None).is_ok(),
            "{value}"
        );
    }
}

// --------------------------------------------------------------------- auth

const COST: u32 = 9;

/// The `Authorization` header of a basic-auth login, as reqwest writes it.
fn basic(user: &str, password: &str) -> String {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| {
            remora::targets::client::install_crypto_provider();
            reqwest::Client::new()
        })
        .get("http://127.0.0.1/")
        .basic_auth(user, Some(password))
        .build()
        .unwrap()
        .headers()["authorization"]
        .to_str()
        .unwrap()
        .to_string()
}

fn load_auth(dir: &Path) -> Arc<remora::web::BasicAuth> {
    let hash = bcrypt::hash("s3cret", COST).unwrap();
    let p = dir.join("web.yml");
    std::fs::write(&p, format!("basic_auth_users:\n  prom: {hash}\n")).unwrap();
    remora::web::load(&p).unwrap().auth.unwrap()
}

/// An unknown user costs one bcrypt check, as a wrong password does, so the
/// two cannot be told apart by time.
#[tokio::test]
async fn unknown_user_runs_one_bcrypt_check() {
    let dir = tempfile::tempdir().unwrap();
    let auth = load_auth(dir.path());
    let unknown = basic("nobody", "s3cret");
    assert_eq!(auth.check(Some(&unknown)).await, AuthResult::Denied);
    assert_eq!(auth.verifications(), 1);
    let wrong = basic("prom", "nope");
    assert_eq!(auth.check(Some(&wrong)).await, AuthResult::Denied);
    assert_eq!(auth.verifications(), 2);
}

/// A failed pair is remembered: repeating it costs no second bcrypt check,
/// for a known and an unknown user alike; a good pair is checked once too.
#[tokio::test]
async fn repeated_pairs_cost_one_bcrypt_check() {
    let dir = tempfile::tempdir().unwrap();
    let auth = load_auth(dir.path());
    for _ in 0..5 {
        assert_eq!(
            auth.check(Some(&basic("prom", "nope"))).await,
            AuthResult::Denied
        );
        assert_eq!(
            auth.check(Some(&basic("nobody", "x"))).await,
            AuthResult::Denied
        );
    }
    assert_eq!(auth.verifications(), 2);
    for _ in 0..5 {
        assert_eq!(
            auth.check(Some(&basic("prom", "s3cret"))).await,
            AuthResult::Allowed
        );
    }
    assert_eq!(auth.verifications(), 3);
    assert_eq!(auth.cached(), (1, 2));
}

/// Ten checks are admitted at once (two running, eight waiting); the other
/// requests of a burst are answered `Busy` (429) without a bcrypt check.
#[tokio::test]
async fn bcrypt_queue_is_bounded() {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::Poll;
    let dir = tempfile::tempdir().unwrap();
    let auth = load_auth(dir.path());
    let burst = 25;
    let headers: Vec<String> = (0..burst)
        .map(|i| basic("prom", &format!("g{i}")))
        .collect();
    let mut checks: Vec<Pin<Box<dyn Future<Output = AuthResult> + '_>>> = headers
        .iter()
        .map(|h| Box::pin(auth.check(Some(h))) as Pin<Box<dyn Future<Output = AuthResult>>>)
        .collect();
    // Every check is polled once before any can finish: admission happens
    // in the first poll, and a bcrypt check takes far longer than this pass.
    let mut results: Vec<Option<AuthResult>> = vec![None; burst];
    std::future::poll_fn(|cx| {
        for (check, result) in checks.iter_mut().zip(results.iter_mut()) {
            if result.is_none() {
                if let Poll::Ready(r) = check.as_mut().poll(cx) {
                    *result = Some(r);
                }
            }
        }
        if results.iter().all(Option::is_some) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    let admitted = remora::web::MAX_RUNNING + remora::web::MAX_WAITING;
    let busy = results
        .iter()
        .filter(|r| **r == Some(AuthResult::Busy))
        .count();
    assert_eq!(admitted, 10);
    assert_eq!(busy, burst - admitted, "{results:?}");
    assert_eq!(auth.verifications(), admitted as u64);
}

/// A flood of bad logins (each a new pair, known and unknown users) gets 429s
/// instead of a growing bcrypt queue, and a scraper whose login was verified
/// before keeps being served meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_flood_gets_429_and_scrapes_go_on() {
    let hash = bcrypt::hash("s3cret", COST).unwrap();
    let r = Remora::start_with(
        "host: {enabled: false}\n",
        Start {
            web_config: Some(format!("basic_auth_users:\n  prom: {hash}\n")),
            ..Default::default()
        },
    )
    .await;
    let client = reqwest::Client::new();
    let scrape = || {
        client
            .get(r.url("/metrics"))
            .header("authorization", basic("prom", "s3cret"))
            .timeout(Duration::from_secs(10))
            .send()
    };
    assert_eq!(scrape().await.unwrap().status(), 200);

    let stop = Arc::new(AtomicBool::new(false));
    let too_many = Arc::new(AtomicUsize::new(0));
    let mut flood = Vec::new();
    for worker in 0..48 {
        let (stop, too_many, url) = (stop.clone(), too_many.clone(), r.url("/metrics"));
        let c = client.clone();
        flood.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let user = if worker % 2 == 0 { "prom" } else { "mallory" };
                let Ok(resp) = c
                    .get(&url)
                    .header("authorization", basic(user, &format!("guess-{worker}-{i}")))
                    .send()
                    .await
                else {
                    continue;
                };
                match resp.status().as_u16() {
                    429 => {
                        assert_eq!(resp.headers()["retry-after"], "1");
                        too_many.fetch_add(1, Ordering::Relaxed);
                    }
                    401 => {}
                    other => panic!("a bad login got {other}"),
                }
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while too_many.load(Ordering::Relaxed) == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let shed = too_many.load(Ordering::Relaxed);
    // While the flood goes on, the verified scraper is still served.
    let during = scrape().await.map(|r| r.status().as_u16());
    stop.store(true, Ordering::Relaxed);
    for f in flood {
        f.await.unwrap();
    }
    assert!(shed > 0, "no 429 in 30 s of 48 concurrent bad logins");
    assert_eq!(during.ok(), Some(200));
    r.stop().await;
}
