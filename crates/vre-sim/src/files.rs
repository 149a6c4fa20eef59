//! Writing the simulator's state files (cloud and clusters alike).

use std::path::Path;
use std::time::Duration;

/// Writes `path` through a temporary file in the same directory (mode
/// 0600, synced) renamed over it, so a crash never leaves half a file.
/// `write` fills the temporary file.
pub(crate) fn write_private(
    path: &Path,
    write: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "state".into());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&tmp)?;
        write(&mut file)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// How long to wait after a save that took `took` before the next one:
/// four times as long, so a large state costs the simulator at most a
/// fifth of its time however often it changes.
pub(crate) fn pause_after_save(took: Duration) -> Duration {
    took * 4
}
