//! The binary's errors as a user meets them (issue 19, `docs/cli.md`): each is one line on
//! standard error with a documented exit status and no backtrace, even with
//! `RUST_BACKTRACE=1`; the lenient settings (boolean spellings, host names, spaces in lists,
//! URLs without a scheme) are accepted; `subscribe` ends on a refusal and on a closed pipe.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Served, BIN};

/// `livehub ARGS` with a backtrace asked for, run to the end.
fn livehub(args: &[&str], env: &[(&str, &str)]) -> Output {
    command(args, env).output().expect("run livehub")
}

/// `livehub ARGS`, with `RUST_BACKTRACE=1` and none of the caller's `LIVEHUB_*` settings.
fn command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(BIN);
    command.args(args).env("RUST_BACKTRACE", "1").stdin(Stdio::null());
    for (name, _) in std::env::vars() {
        if name.starts_with("LIVEHUB_") || name == "RUST_LOG" {
            command.env_remove(name);
        }
    }
    // A server started here keeps history in memory: tests running side by side must not share
    // (and lock) one data directory.
    command.env("LIVEHUB_STORE", "memory");
    command.envs(env.iter().copied());
    command
}

/// Checks that `out` failed with `status` and one plain line on standard error that contains
/// each of `needles`; returns the line.
#[track_caller]
fn one_line(out: &Output, status: i32, needles: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(status), "exit status; stderr:\n{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line:\n{stderr}");
    let line = stderr.trim_end().to_owned();
    assert!(line.starts_with("livehub"), "names the program: {line}");
    for bad in ["backtrace", "panicked", "Some(", "os error", "{\"", "Error {", "\u{1b}["] {
        assert!(!line.contains(bad), "no {bad:?} in {line}");
    }
    for needle in needles {
        assert!(line.contains(needle), "{needle:?} in {line}");
    }
    line
}

/// A free loopback port with nothing listening on it.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// A temporary configuration file with `text`.
fn config_file(text: &str) -> tempfile::NamedTempFile {
    let file = tempfile::Builder::new().suffix(".toml").tempfile().expect("temp file");
    std::fs::write(file.path(), text).expect("write config");
    file
}

fn path(file: &tempfile::NamedTempFile) -> &str {
    file.path().to_str().expect("utf-8 path")
}

/// A server that checks tokens signed with a known secret, and a token for `subscribe`/`publish`
/// on `demo/#` only.
fn secured() -> (Served, tempfile::NamedTempFile, String) {
    let config = config_file("[auth.jwt]\nhmac_secret = \"errors-test-secret-0123456789abcdef\"\n");
    let served = Served::with_args(&["--config", path(&config)]);
    let mint = livehub(
        &["token", "--config", path(&config), "--sub", "t", "--subscribe", "demo/#", "--publish", "demo/#"],
        &[],
    );
    assert!(mint.status.success(), "{}", String::from_utf8_lossy(&mint.stderr));
    let token = String::from_utf8(mint.stdout).expect("utf-8").trim().to_owned();
    (served, config, token)
}

/// Arguments, environment variables, and what the error line must contain.
type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a [&'a str]);

#[test]
fn usage_and_configuration_errors_exit_2_with_one_line() {
    let cases: &[Case] = &[
        (&["serve", "--bogus"], &[], &["'--bogus'"]),
        (&["subscribe"], &[], &["<CHANNELS>"]),
        (&["serve", "--listen", "127.0.0.1:http"], &[], &["--listen", "port"]),
        (&["serve", "--config", "/nonexistent/livehub.toml"], &[], &["cannot read", "No such file"]),
        (&["serve"], &[("LIVEHUB_NO_SOURCES", "maybe")], &["LIVEHUB_NO_SOURCES=\"maybe\"", "1 or 0"]),
        (&["serve"], &[("LIVEHUB_BENCH_MODE", "sure")], &["LIVEHUB_BENCH_MODE"]),
        (&["serve"], &[("LIVEHUB_HISTORY_SIZE", "ten")], &["LIVEHUB_HISTORY_SIZE=\"ten\"", "whole number"]),
        (&["serve"], &[("LIVEHUB_LISTEN", "nowhere")], &["LIVEHUB_LISTEN", "HOST:PORT"]),
        (&["serve"], &[("LIVEHUB_DISABLE", "websocket, mqtt")], &["LIVEHUB_DISABLE", "\"mqtt\""]),
        (&["serve", "--disable", "carrier-pigeon"], &[], &["--disable", "carrier-pigeon"]),
        (&["serve", "--bench-mode", "--listen", "0.0.0.0:0"], &[], &["loopback"]),
        (&["publish", "demo/x", "hi"], &[], &["not JSON", "'\"hi\"'"]),
        (&["publish", "demo/x", "1", "--url", "ftp://127.0.0.1:1"], &[], &["ftp"]),
        (&["publish", "demo/x", "1", "--url", "https://127.0.0.1:1"], &[], &["plain HTTP only"]),
        (&["subscribe", "demo/x", "--url", "wss://127.0.0.1:1"], &[], &["plain HTTP only"]),
        (&["bench", "fanout", "--url", "http://10.1.2.3:80"], &[], &["not a loopback address"]),
    ];
    for (args, env, needles) in cases {
        let out = livehub(args, env);
        let line = one_line(&out, 2, needles);
        if !env.is_empty() {
            assert!(!line.contains("--"), "names the variable, not a flag: {line}");
        }
    }
}

#[test]
fn a_bad_configuration_file_is_one_line_with_its_position() {
    let config = config_file("listen = 5\n");
    let out = livehub(&["serve", "--config", path(&config)], &[]);
    one_line(&out, 2, &["invalid configuration", "line 1, column 10"]);
}

#[test]
fn an_unreachable_server_exits_1_without_repeating_itself() {
    let url = format!("http://127.0.0.1:{}", closed_port());
    let out = livehub(&["publish", "demo/x", "1", "--url", &url], &[]);
    let line = one_line(&out, 1, &["connection refused", &url]);
    assert_eq!(line.matches("connection refused").count(), 1, "{line}");
}

#[test]
fn a_bench_with_no_server_says_so_once() {
    let url = format!("http://127.0.0.1:{}", closed_port());
    let out = livehub(&["bench", "fanout", "--url", &url, "--connections", "50", "--quiet"], &[]);
    one_line(&out, 1, &["nothing accepts connections", &url, "--bench-mode"]);
    // The report: each connection failed the same way, said once with a count, in plain words.
    let report = String::from_utf8_lossy(&out.stdout);
    let errors: Vec<&str> = report.lines().filter(|l| l.trim_start().starts_with("error")).collect();
    assert!(!errors.is_empty() && errors.len() <= 2, "{report}");
    assert!(errors.iter().any(|e| e.contains("connection refused")), "{report}");
    assert!(!report.contains("os error") && !report.contains("Connection refused"), "{report}");
}

#[test]
fn server_refusals_are_sentences_with_their_status() {
    let (served, _config, token) = secured();
    let publish = |args: &[&str]| {
        let mut all = vec!["publish"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--url", &served.url]);
        livehub(&all, &[])
    };
    one_line(&publish(&["demo/x", "1"]), 3, &["401", "unauthorized"]);
    one_line(&publish(&["other/x", "1", "--token", &token]), 3, &["403", "forbidden"]);
    one_line(&publish(&["demo/+", "1", "--token", &token]), 2, &["400", "invalid_channel"]);
    // Over limits.max_body_size (1 MiB): the documented JSON error, read into a sentence.
    // Standard input, since the body is larger than an argument may be.
    let big = format!("\"{}\"", "x".repeat(1024 * 1024 + 16));
    let mut child = command(&["publish", "demo/x", "-", "--token", &token, "--url", &served.url], &[])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn publish");
    child.stdin.take().expect("stdin").write_all(big.as_bytes()).expect("write the data");
    let out = child.wait_with_output().expect("publish output");
    one_line(&out, 2, &["413", "too_large", "max_body_size"]);

    let subscribe = |args: &[&str]| {
        let mut all = vec!["subscribe"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--url", &served.url]);
        let mut child =
            command(&all, &[]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("spawn");
        let status = wait(&mut child, Duration::from_secs(20));
        let mut stderr = Vec::new();
        child.stderr.take().expect("stderr").read_to_end(&mut stderr).expect("read stderr");
        Output { status, stdout: Vec::new(), stderr }
    };
    // A forbidden channel ends the command instead of leaving it waiting for nothing.
    one_line(&subscribe(&["other/x", "--token", &token]), 3, &["other/x", "forbidden"]);
    one_line(&subscribe(&["demo/x"]), 3, &["refused the connection", "unauthorized"]);
}

/// Waits for `child` to exit, killing it and failing after `limit`.
fn wait(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("livehub did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn subscribe_exits_quietly_when_its_reader_goes_away() {
    let served = Served::start();
    let mut subscriber = command(&["subscribe", "demo/pipe", "--url", &served.url], &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn subscribe");
    let mut stdout = BufReader::new(subscriber.stdout.take().expect("stdout"));
    let publish = || {
        let out = livehub(&["publish", "demo/pipe", "1", "--url", &served.url], &[]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    // Publish until the subscriber, which may not be subscribed yet, prints a line, like `head -1`.
    let reader = std::thread::spawn(move || {
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read a line");
        line
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while !reader.is_finished() {
        assert!(Instant::now() < deadline, "the subscriber printed nothing");
        publish();
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(reader.join().expect("reader").contains("demo/pipe"));
    // The reader and its end of the pipe are gone now; the next message cannot be written.
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = subscriber.try_wait().expect("try_wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "the subscriber went on writing into a closed pipe");
        publish();
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    subscriber.stderr.take().expect("stderr").read_to_string(&mut stderr).expect("read stderr");
    assert!(status.success(), "exit status {status}; stderr:\n{stderr}");
    assert_eq!(stderr, "", "quiet");
}

#[test]
fn every_command_stops_quietly_on_a_closed_pipe() {
    let config = config_file("[auth.jwt]\nhmac_secret = \"closed-pipe-secret-0123456789abcdef\"\n");
    let data_dir = tempfile::tempdir().expect("temp dir");
    // A store to read, beside the server that keeps it.
    let served =
        Served::with_args(&["--store", "sqlite", "--data-dir", data_dir.path().to_str().expect("utf-8")]);
    let store_stats = ["store", "stats", "--data-dir", data_dir.path().to_str().expect("utf-8")];
    let commands: &[&[&str]] = &[
        &["token", "--config", path(&config), "--sub", "a", "--subscribe", "a/#"],
        &["apikey", "--name", "pipe", "--publish", "a/#"],
        &["apikey", "--hash", "lhk_0123456789abcdef0123456789abcdef0123456789abcdef"],
        &store_stats,
        &["publish", "demo/pipe", "1", "--url", &served.url],
        &[
            "bench",
            "idle",
            "--connections",
            "2",
            "--duration",
            "0.2",
            "--warmup",
            "0",
            "--url",
            &served.url,
            "--quiet",
        ],
    ];
    for args in commands {
        // The reading end is closed before the command starts: its first write fails.
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        let out = command(args, &[]).stdout(writer).stderr(Stdio::piped()).output().expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked") && !stderr.contains("Broken pipe"), "{args:?}:\n{stderr}");
        assert_eq!(out.status.code(), Some(0), "{args:?}:\n{stderr}");
    }
    drop(served);
}

/// A `serve` with `args` and `env` (and no `--no-sources` unless given), its log up to and
/// including the listening line, and the server's base URL; the server is killed after that.
fn startup(args: &[&str], env: &[(&str, &str)]) -> (String, String) {
    let mut all = vec!["serve"];
    all.extend_from_slice(args);
    let mut child = command(&all, env)
        .env_remove("NO_COLOR")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut log = String::new();
    let mut url = None;
    for line in BufReader::new(child.stderr.take().expect("stderr")).lines() {
        let line = line.expect("read stderr");
        log.push_str(&line);
        log.push('\n');
        if let Some(rest) = line.split("http://").nth(1) {
            url = Some(format!("http://{}", rest.split('/').next().expect("address")));
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let url = url.unwrap_or_else(|| panic!("serve did not start:\n{log}"));
    (log, url)
}

#[test]
fn boolean_variables_take_the_usual_spellings() {
    for value in ["1", "yes", "ON", "True"] {
        let (log, _) = startup(&["--listen", "127.0.0.1:0"], &[("LIVEHUB_NO_SOURCES", value)]);
        assert!(log.contains("livehub listening"), "LIVEHUB_NO_SOURCES={value}:\n{log}");
    }
}

#[test]
fn host_names_spaced_lists_and_schemeless_urls_are_accepted() {
    let (log, url) = startup(&["--listen", "localhost:0", "--no-sources"], &[]);
    assert!(url.starts_with("http://127.0.0.1:") || url.starts_with("http://[::1]:"), "{url}\n{log}");

    let served = Served::spawn({
        let mut serve = common::serve();
        serve.args(["--listen", "127.0.0.1:0"]).env("LIVEHUB_DISABLE", "websocket, sse");
        serve
    });
    let address = served.url.trim_start_matches("http://");
    let out = livehub(&["publish", "demo/x", "1", "--url", address], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // WebSocket is off: subscribe says so in one line and does not retry forever.
    let out = livehub(&["subscribe", "demo/x", "--url", address], &[]);
    one_line(&out, 1, &["404", "does not serve WebSocket"]);
}

#[test]
fn a_bad_log_filter_falls_back_to_info_and_says_so() {
    for (args, env, source) in [
        (&["--log", "verbose"][..], &[][..], "--log"),
        (&[][..], &[("LIVEHUB_LOG", "chatty")][..], "LIVEHUB_LOG"),
    ] {
        let all = [&["--listen", "127.0.0.1:0", "--no-sources"][..], args].concat();
        let (log, _) = startup(&all, env);
        assert!(log.contains("livehub listening"), "{log}");
        assert!(log.contains(source) && log.contains("is not a log filter"), "{log}");
    }
}

#[test]
fn logs_to_a_pipe_have_no_colour_codes() {
    // Warnings and the listening line, with NO_COLOR unset: a pipe still gets plain text.
    let (log, _) = startup(&["--listen", "127.0.0.1:0", "--no-sources", "--log", "warn,livehub=info"], &[]);
    assert!(log.contains("livehub listening"), "{log}");
    assert!(!log.contains('\u{1b}'), "no ANSI escapes:\n{log:?}");
}

#[test]
fn bench_mode_lifts_the_limits_a_refused_bench_names() {
    // Fewer connections per address than the bench opens.
    let config = config_file("[rate_limits]\nconnections_per_ip = 2\n");
    let bench = |url: &str| {
        livehub(
            &[
                "bench",
                "fanout",
                "--url",
                url,
                "--connections",
                "5",
                "--duration",
                "0.5",
                "--warmup",
                "0.2",
                "--quiet",
            ],
            &[],
        )
    };
    let limited = Served::with_args(&["--config", path(&config)]);
    let out = bench(&limited.url);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("--bench-mode") && stderr.contains("LIVEHUB_BENCH_MODE"),
        "{stderr}\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("too_many_connections") && !report.contains("{\""), "no raw JSON:\n{report}");
    drop(limited);

    let lifted = Served::spawn({
        let mut serve = common::serve();
        serve.args(["--listen", "127.0.0.1:0", "--config", path(&config)]).env("LIVEHUB_BENCH_MODE", "yes");
        serve
    });
    let out = bench(&lifted.url);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
