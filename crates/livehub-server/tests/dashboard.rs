//! The dashboard and the built-in sources over real HTTP: the embedded page and its assets with
//! their headers and revalidation, the chunks it loads on demand, switching the dashboard off, the sources' catalog, and live
//! publications from each source reaching a WebSocket subscriber.

mod common;

use common::{TestServer, WAIT};
use livehub_server::{Config, SourcesConfig};
use serde_json::Value;

async fn get(server: &TestServer, path: &str, etag: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new().get(server.url(path));
    if let Some(etag) = etag {
        request = request.header("if-none-match", etag);
    }
    request.send().await.expect("request")
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
}

/// Sources at rates that make a test quick.
fn fast_sources() -> SourcesConfig {
    let mut sources = SourcesConfig::default();
    sources.system.interval_ms = 100;
    sources.stocks.interval_ms = 50;
    sources.transit.interval_ms = 100;
    sources.weather.interval_ms = 100;
    sources
}

#[tokio::test]
async fn the_page_and_its_assets_are_served_and_revalidate() {
    let server = TestServer::start().await;

    let page = get(&server, "/", None).await;
    assert_eq!(page.status(), 200);
    assert!(header(&page, "content-type").starts_with("text/html"));
    assert!(header(&page, "content-security-policy").contains("default-src 'self'"));
    assert_eq!(header(&page, "x-content-type-options"), "nosniff");
    let html = page.text().await.expect("body");
    assert!(html.contains("assets/app.js") && html.contains("assets/app.css"), "the page loads its bundle");

    for (path, kind) in [("/assets/app.js", "text/javascript"), ("/assets/app.css", "text/css")] {
        let asset = get(&server, path, None).await;
        assert_eq!(asset.status(), 200, "{path}");
        assert!(header(&asset, "content-type").starts_with(kind), "{path}");
        assert_eq!(header(&asset, "cache-control"), "no-cache", "{path}");
        let etag = header(&asset, "etag").to_string();
        assert!(etag.starts_with('"'), "{path} has a strong ETag: {etag}");
        assert!(!asset.bytes().await.expect("body").is_empty(), "{path} is not empty");

        let again = get(&server, path, Some(&etag)).await;
        assert_eq!(again.status(), 304, "{path} revalidates");
        assert!(again.bytes().await.expect("body").is_empty());
        let changed = get(&server, path, Some("\"something-else\"")).await;
        assert_eq!(changed.status(), 200, "{path} with a stale ETag");
    }
}

#[tokio::test]
async fn the_chunks_the_page_loads_on_demand_are_served() {
    let server = TestServer::start().await;
    let html = get(&server, "/", None).await.text().await.expect("body");
    assert!(html.contains(r#"<script type="module" src="assets/app.js">"#), "app.js is an ES module: {html}");

    // app.js imports the SignalR and MQTT code with import("./chunk-<hash>.js"), and those chunks
    // import others: every name reachable from app.js must be served.
    let mut pending = vec!["app.js".to_string()];
    let mut seen = std::collections::BTreeSet::new();
    while let Some(name) = pending.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        let response = get(&server, &format!("/assets/{name}"), None).await;
        assert_eq!(response.status(), 200, "{name}");
        assert!(header(&response, "content-type").starts_with("text/javascript"), "{name}");
        assert_eq!(header(&response, "cache-control"), "no-cache", "{name}");
        let body = response.text().await.expect("body");
        let mut rest = body.as_str();
        while let Some(at) = rest.find("\"./chunk-") {
            let tail = &rest[at + 3..];
            let end = tail.find('"').expect("a closing quote");
            pending.push(tail[..end].to_string());
            rest = &tail[end..];
        }
    }
    assert!(seen.len() > 2, "app.js loads chunks on demand: {seen:?}");

    for path in ["/assets/chunk-NOTTHERE.js", "/assets/index.html", "/assets/..%2Fapp.js", "/assets/app.map"]
    {
        let response = get(&server, path, None).await;
        assert_eq!(response.status(), 404, "{path}");
    }
}

#[tokio::test]
async fn the_dashboard_can_be_switched_off() {
    let mut config = Config::default();
    config.dashboard.enabled = false;
    let server = TestServer::with(config).await;
    for path in ["/", "/assets/app.js", "/assets/app.css"] {
        let response = get(&server, path, None).await;
        assert_eq!(response.status(), 404, "{path}");
        let body: Value = response.json().await.expect("a JSON error");
        assert_eq!(body["error"]["code"], "not_found", "{path}: {body}");
    }
    assert_eq!(get(&server, "/api/health-of-nothing", None).await.status(), 404);
}

#[tokio::test]
async fn the_catalog_describes_what_runs() {
    let server = TestServer::with_sources(Config { sources: fast_sources(), ..Config::default() }).await;
    let catalog: Value = get(&server, "/api/sources", None).await.json().await.expect("catalog");
    assert_eq!(catalog["system"]["channel"], "metrics/system");
    assert_eq!(catalog["system"]["enabled"], true);
    assert_eq!(catalog["stocks"]["simulated"], true);
    let symbols = catalog["stocks"]["symbols"].as_array().expect("symbols");
    assert_eq!(symbols.len(), 12, "{catalog}");
    assert_eq!(symbols[0]["channel"], format!("stocks/{}", symbols[0]["symbol"].as_str().expect("symbol")));
    let routes = catalog["transit"]["routes"].as_array().expect("routes");
    assert!(!routes.is_empty());
    for route in routes {
        assert!(route["path"].as_array().is_some_and(|p| p.len() >= 2), "route geometry: {route}");
        assert!(route["channel"].as_str().is_some_and(|c| c.starts_with("transit/route/")));
    }
    assert_eq!(catalog["weather"]["alerts_channel"], "weather/alerts");
    assert!(catalog["sensors"]["sensors"].as_array().is_some_and(|s| !s.is_empty()));

    let off = TestServer::start().await;
    let catalog: Value = get(&off, "/api/sources", None).await.json().await.expect("catalog");
    for source in ["system", "stocks", "transit", "weather", "sensors"] {
        assert_eq!(catalog[source]["enabled"], false, "{source}: {catalog}");
    }
}

#[tokio::test]
async fn every_source_publishes_to_a_live_subscriber() {
    let server = TestServer::with_sources(Config { sources: fast_sources(), ..Config::default() }).await;
    let catalog: Value = get(&server, "/api/sources", None).await.json().await.expect("catalog");
    let route = catalog["transit"]["routes"][0]["channel"].as_str().expect("a route").to_string();
    let station = catalog["weather"]["stations"][0]["channel"].as_str().expect("a station").to_string();
    let sensor = catalog["sensors"]["sensors"][0]["channel"].as_str().expect("a sensor").to_string();
    let channels = ["metrics/system", "stocks/AAPL", route.as_str(), station.as_str(), sensor.as_str()];

    let mut ws = server.ws().await;
    for subscribed in ws.subscribe(&channels).await {
        assert!(subscribed["error"].is_null(), "{subscribed}");
    }
    let mut seen = std::collections::BTreeMap::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while seen.len() < channels.len() {
        assert!(tokio::time::Instant::now() < deadline, "only {:?} published", seen.keys());
        let message = ws.recv_type("message").await;
        let channel = message["channel"].as_str().expect("channel").to_string();
        let data = &message["data"];
        assert!(data["ts"].as_u64().is_some_and(|ts| ts > 1_600_000_000_000), "{message}");
        let simulated = data["simulated"] == true;
        assert_eq!(simulated, channel != "metrics/system", "only the system metrics are real: {message}");
        seen.insert(channel, data.clone());
    }
    let system = &seen["metrics/system"];
    assert!(system["cpu"]["cores"].as_array().is_some_and(|c| !c.is_empty()), "{system}");
    assert!(system["memory"]["total"].as_u64().is_some_and(|t| t > 0), "{system}");
    assert!(system["livehub"]["connections"].as_u64().is_some_and(|c| c >= 1), "it counts us: {system}");
    assert_eq!(seen["stocks/AAPL"]["symbol"], "AAPL");
}
