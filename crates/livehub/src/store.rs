//! `livehub store`: statistics and online backups of the history store, beside a running
//! server or without one.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::failure;

/// What `livehub store` does.
#[derive(Subcommand)]
pub(crate) enum StoreCommand {
    /// Size, channels, entries and the oldest and newest entry of the store.
    Stats(StoreArgs),
    /// Copy the store to FILE with SQLite's online backup (safe while livehub serves). Restore by
    /// putting FILE in an empty data directory as livehub.sqlite3.
    Backup {
        #[command(flatten)]
        store: StoreArgs,
        /// Where to write the copy; must not exist.
        file: PathBuf,
    },
}

/// Which store.
#[derive(Args)]
pub(crate) struct StoreArgs {
    /// The data directory of the store.
    #[arg(long, env = "LIVEHUB_DATA_DIR", default_value = "./livehub-data")]
    data_dir: PathBuf,
}

/// Runs `command`.
pub(crate) fn run(command: StoreCommand) -> anyhow::Result<()> {
    match command {
        StoreCommand::Stats(args) => {
            let stats = livehub_store::stats(&args.data_dir)
                .with_context(|| format!("reading the store in {}", args.data_dir.display()))?;
            let time = |ts: Option<u64>| ts.map_or("-".to_owned(), |ts| format!("{ts} (Unix ms)"));
            failure::print_text(&format!(
                "path            {}\nsize            {} bytes\nschema version  {}\n\
                 channels        {}\nentries         {}\noldest entry    {}\nnewest entry    {}\n",
                stats.path.display(),
                stats.size_bytes,
                stats.schema_version,
                stats.channels,
                stats.entries,
                time(stats.oldest_ts),
                time(stats.newest_ts),
            ))
        }
        StoreCommand::Backup { store, file } => {
            livehub_store::backup(&store.data_dir, &file)
                .with_context(|| format!("backing up {} to {}", store.data_dir.display(), file.display()))?;
            eprintln!("backed up {} to {}", store.data_dir.display(), file.display());
            Ok(())
        }
    }
}
