//! How a command fails: one plain sentence on standard error and a documented exit status
//! (`docs/cli.md`), never Rust debug text, a repeated cause or a backtrace.

use std::error::Error as StdError;
use std::fmt;
use std::process::ExitCode;

/// The exit status of a failed command; `docs/cli.md` documents each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    /// Something went wrong while running: the server cannot be reached, an I/O error, a server
    /// error, a benchmark that failed.
    Runtime = 1,
    /// The command line, an environment variable, a configuration file or the input is wrong.
    Usage = 2,
    /// The server refused: no or a bad credential, forbidden, rate-limited.
    Refused = 3,
}

impl From<Status> for ExitCode {
    fn from(status: Status) -> Self {
        ExitCode::from(status as u8)
    }
}

/// An error that knows its exit status and says what happened in one sentence.
#[derive(Debug)]
pub(crate) struct Failure {
    /// The exit status.
    pub(crate) status: Status,
    /// The sentence.
    message: String,
}

impl Failure {
    /// A wrong command line, variable, file or input.
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Self { status: Status::Usage, message: message.into() }
    }

    /// A refusal by the server.
    pub(crate) fn refused(message: impl Into<String>) -> Self {
        Self { status: Status::Refused, message: message.into() }
    }

    /// Anything else.
    pub(crate) fn runtime(message: impl Into<String>) -> Self {
        Self { status: Status::Runtime, message: message.into() }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl StdError for Failure {}

/// Standard output was closed by its reader (`livehub subscribe … | head`): the command stops
/// quietly with status 0, as other Unix tools do.
#[derive(Debug, thiserror::Error)]
#[error("standard output was closed")]
pub(crate) struct OutputClosed;

/// Prints `line` and a newline on standard output; [`OutputClosed`] when the reader is gone.
pub(crate) fn print_line(line: &str) -> anyhow::Result<()> {
    print_text(&format!("{line}\n"))
}

/// Prints `text` as it is on standard output; [`OutputClosed`] when the reader is gone. Every
/// command prints through this or [`print_line`], never `print!`, which panics on a closed pipe
/// (`livehub token … | true`).
pub(crate) fn print_text(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(OutputClosed.into()),
        other => Ok(other?),
    }
}

/// Prints `error` as `livehub COMMAND: sentence` on standard error and returns its exit status.
/// `default` is the status of errors that carry none.
pub(crate) fn report(command: &str, error: &anyhow::Error, default: Status) -> ExitCode {
    if error.is::<OutputClosed>() {
        return ExitCode::SUCCESS;
    }
    let status = status_of(error, default);
    eprintln!("livehub {command}: {}", sentence(error));
    status.into()
}

/// The status `error` carries, or that its kind implies.
fn status_of(error: &anyhow::Error, default: Status) -> Status {
    for cause in error.chain() {
        if let Some(failure) = cause.downcast_ref::<Failure>() {
            return failure.status;
        }
        if cause.is::<livehub_server::ConfigError>() {
            return Status::Usage;
        }
    }
    default
}

/// `error` and its causes as one line: each cause is added only when the text so far does not
/// already say it, I/O errors are named by their kind (`connection refused`, not
/// `Connection refused (os error 111)`), and line breaks become spaces.
pub(crate) fn sentence(error: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in error.chain() {
        // A cause whose own text the wrapper embeds already ("cannot read x: No such file…").
        let raw = cause.to_string();
        if parts.iter().any(|p| p.contains(raw.trim())) {
            continue;
        }
        // A configuration error's text includes its causes already.
        if let Some(config) = cause.downcast_ref::<livehub_server::ConfigError>() {
            parts.push(describe_config(config));
            break;
        }
        let text = describe(cause);
        let text = text.trim();
        if text.is_empty() || parts.iter().any(|p| p.contains(text)) {
            continue;
        }
        // A wrapper that only repeats its cause in other words ("IO error: …") adds nothing.
        if let Some(last) = parts.last_mut() {
            if text.contains(last.as_str()) {
                *last = text.to_owned();
                continue;
            }
        }
        parts.push(text.to_owned());
    }
    let joined = without_os_error_numbers(&parts.join(": "));
    joined.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `text` without the ` (os error 2)` that the standard library appends to OS errors.
fn without_os_error_numbers(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(" (os error ") {
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        match tail.find(')') {
            Some(end) => rest = &tail[end + 1..],
            None => {
                rest = tail;
                break;
            }
        }
    }
    out.push_str(rest);
    out
}

/// A configuration file's error; a TOML error as its position and message, without the
/// multi-line excerpt of the file that its own text carries.
fn describe_config(error: &livehub_server::ConfigError) -> String {
    match error {
        livehub_server::ConfigError::Parse { path, source } => {
            let text = source.to_string();
            // "TOML parse error at line 1, column 10" is the first line.
            let at = text.lines().next().and_then(|l| l.split_once(" at ")).map(|(_, at)| at.to_owned());
            let message = source.message().trim().to_owned();
            match at {
                Some(at) => format!("invalid configuration in {path} at {at}: {message}"),
                None => format!("invalid configuration in {path}: {message}"),
            }
        }
        other => other.to_string(),
    }
}

/// One cause in words.
fn describe(cause: &(dyn StdError + 'static)) -> String {
    if let Some(io) = cause.downcast_ref::<std::io::Error>() {
        return describe_io(io);
    }
    if let Some(e) = cause.downcast_ref::<reqwest::Error>() {
        // reqwest's own text ("error sending request for url (…)") is followed by its causes,
        // which say what went wrong; the URL is in our context already.
        if e.is_connect() || e.is_request() {
            return String::new();
        }
        if e.is_timeout() {
            return "the request timed out".into();
        }
    }
    if let Some(e) = cause.downcast_ref::<tokio_tungstenite::tungstenite::Error>() {
        use tokio_tungstenite::tungstenite::Error as Ws;
        match e {
            Ws::Io(io) => return describe_io(io),
            Ws::Http(response) => {
                return format!("the server answered the WebSocket handshake with {}", response.status())
            }
            _ => {}
        }
    }
    let text = cause.to_string();
    // hyper-util's "client error (Connect)" only says that a cause follows.
    if text.starts_with("client error (") {
        return String::new();
    }
    text
}

/// An I/O error by its kind when that says it all, so the OS's wording and number stay out.
fn describe_io(io: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    match io.kind() {
        K::ConnectionRefused
        | K::ConnectionReset
        | K::ConnectionAborted
        | K::AddrInUse
        | K::AddrNotAvailable
        | K::BrokenPipe
        | K::TimedOut
        | K::UnexpectedEof => io.kind().to_string(),
        _ => without_os_error_numbers(&io.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn a_cause_that_repeats_the_text_is_left_out() {
        let io = std::io::Error::from_raw_os_error(111);
        let error = anyhow::Error::new(io).context("connecting to ws://127.0.0.1:1/ws");
        assert_eq!(sentence(&error), "connecting to ws://127.0.0.1:1/ws: connection refused");

        let inner = anyhow::anyhow!("connection refused");
        let twice = inner.context("connection refused");
        assert_eq!(sentence(&twice), "connection refused");
    }

    #[test]
    fn os_error_numbers_are_left_out() {
        let io = std::io::Error::from_raw_os_error(2);
        let error = anyhow::anyhow!("cannot read x: {io}").context("starting");
        assert_eq!(sentence(&error), "starting: cannot read x: No such file or directory");
        let wrapped = anyhow::Error::new(std::io::Error::from_raw_os_error(2))
            .context(format!("cannot read x: {}", std::io::Error::from_raw_os_error(2)));
        assert_eq!(sentence(&wrapped), "cannot read x: No such file or directory");
    }

    #[test]
    fn toml_errors_are_one_line_with_their_position() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "listen = 5\n").expect("write");
        let error = anyhow::Error::new(livehub_server::Config::from_file(&path).expect_err("bad"));
        let text = sentence(&error);
        assert!(text.contains("bad.toml at line 1, column 10: invalid type"), "{text}");
        assert!(!text.contains('|'), "no excerpt of the file: {text}");
    }

    #[test]
    fn a_sentence_is_one_line() {
        let error = anyhow::anyhow!("first\nsecond  line").context("reading x");
        assert_eq!(sentence(&error), "reading x: first second line");
    }

    #[test]
    fn the_status_is_the_innermost_failures_or_the_default() {
        let refused = anyhow::Error::new(Failure::refused("no")).context("subscribing");
        assert_eq!(status_of(&refused, Status::Runtime), Status::Refused);
        let plain = anyhow::anyhow!("boom");
        assert_eq!(status_of(&plain, Status::Runtime), Status::Runtime);
        assert_eq!(status_of(&plain, Status::Usage), Status::Usage);
        let config = livehub_server::Config::from_file(std::path::Path::new("/nonexistent/livehub.toml"))
            .context("x")
            .expect_err("no such file");
        assert_eq!(status_of(&config, Status::Runtime), Status::Usage);
        assert_eq!(ExitCode::from(Status::Refused), ExitCode::from(3));
    }
}
