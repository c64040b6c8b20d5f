//! `c7sync init`: write the commented starter config and create the database.

use std::io::Write;

use clap::Args;

use super::{open_store, Cli, Exit, UsageError};
use crate::config::{self, STARTER_CONFIG, STARTER_CSV};

/// Arguments of `c7sync init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Overwrite an existing config file
    #[arg(long)]
    force: bool,
}

pub async fn run(cli: &Cli, args: &InitArgs) -> anyhow::Result<Exit> {
    let path = config::locate(cli.config.as_deref());
    if path.exists() && !args.force {
        return Err(UsageError(format!("{} already exists; pass --force to overwrite it", path.display())).into());
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut file = std::fs::File::create(&path)?;
    file.write_all(STARTER_CONFIG.as_bytes())?;
    let (csv_name, csv_text) = STARTER_CSV;
    let csv_path = path.parent().unwrap_or(std::path::Path::new("")).join(csv_name);
    let wrote_csv = !csv_path.exists();
    if wrote_csv {
        std::fs::write(&csv_path, csv_text)?;
    }
    // Validate what we wrote with the real loader, and take the database URL from it (or from
    // --database / $C7SYNC_DATABASE_URL) exactly as every other command will.
    let config = config::load(&path, cli.database.as_deref())?;
    open_store(&config.database).await?;
    outln!("wrote {}", path.display());
    outln!("database ready at {}", config.database);
    if wrote_csv {
        outln!(
            "wrote {} (four example members for the csv source: replace it with your own export)",
            csv_path.display()
        );
    }
    outln!("next: `c7sync sync`, then edit the teamspace and its sources in {}", path.display());
    Ok(Exit::Success)
}
