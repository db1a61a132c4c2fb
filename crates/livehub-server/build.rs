//! Lists the dashboard's built files (`web/dist`) for `src/dashboard.rs` to embed. The chunks that
//! esbuild splits off carry a hash of their content in their names, so the list is read from the
//! directory at build time rather than written out by hand.

use std::fmt::Write as _;
use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let dist = manifest.join("../../web/dist");
    println!("cargo:rerun-if-changed={}", dist.display());

    let mut names: Vec<String> = std::fs::read_dir(&dist)
        .unwrap_or_else(|e| {
            panic!("{}: {e}; build the dashboard with `cd web && npm run build`", dist.display())
        })
        .map(|entry| entry.expect("a directory entry").file_name().into_string().expect("a UTF-8 file name"))
        .filter(|name| !name.starts_with('.'))
        .collect();
    // Sorted, so that the generated table, and the binary, do not depend on the directory's order.
    names.sort();

    let mut table = String::from("&[\n");
    for name in &names {
        let path = dist.join(name).canonicalize().expect("an existing file");
        writeln!(table, "    ({name:?}, include_bytes!({:?})),", path.display().to_string())
            .expect("a String");
    }
    table.push(']');
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo")).join("dashboard_files.rs");
    std::fs::write(&out, table).expect("OUT_DIR is writable");
}
