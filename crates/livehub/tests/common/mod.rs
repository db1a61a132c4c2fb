//! Shared by the binary's tests: a `livehub serve` process on a free port.

pub(crate) mod history;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// The binary under test.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_livehub");

/// `livehub serve --no-sources --log info`, logging without colour to a piped stderr, with
/// history in memory (`LIVEHUB_STORE=memory`: nothing written to a data directory).
pub(crate) fn serve() -> Command {
    let mut command = Command::new(BIN);
    command
        .args(["serve", "--no-sources", "--log", "info"])
        .env("NO_COLOR", "1")
        .env("LIVEHUB_STORE", "memory")
        // MQTT's default port is fixed (1883): parallel tests must not fight over it.
        .env("LIVEHUB_MQTT_LISTEN", "127.0.0.1:0")
        .stderr(Stdio::piped())
        .stdout(Stdio::null());
    command
}

/// A `livehub serve` process on 127.0.0.1:0, killed when dropped.
pub(crate) struct Served {
    /// The process.
    pub(crate) child: Child,
    /// `http://127.0.0.1:PORT`.
    pub(crate) url: String,
}

impl Served {
    /// `serve --no-sources` with the defaults.
    #[allow(dead_code)]
    pub(crate) fn start() -> Self {
        Self::with_args(&[])
    }

    /// `serve --no-sources` with `extra` arguments.
    pub(crate) fn with_args(extra: &[&str]) -> Self {
        let mut command = serve();
        command.args(["--listen", "127.0.0.1:0"]).args(extra);
        Self::spawn(command)
    }

    /// Runs `command`, a `serve` with a piped standard error, until it logs its listening line.
    pub(crate) fn spawn(mut command: Command) -> Self {
        let mut child = command.spawn().expect("spawn livehub serve");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = BufReader::new(stderr).lines();
        // The listening line names the bound address, since the port was chosen by the OS.
        let url = loop {
            let line = lines.next().expect("serve logs a listening line").expect("read stderr");
            if let Some(rest) = line.split("http://").nth(1) {
                break format!("http://{}", rest.split('/').next().expect("address"));
            }
        };
        // Keep draining stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Self { child, url }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
