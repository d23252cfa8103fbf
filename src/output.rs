//! Output files written aside and put in place only when complete: a command that fails halfway
//! leaves no partial file under the name asked for (and an older complete file stays as it was).

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// A file being written: a temporary file beside `path`, renamed to it by [`Output::finish`],
/// removed when dropped unfinished.
pub(crate) struct Output {
    path: PathBuf,
    out: BufWriter<tempfile::NamedTempFile>,
}

impl Output {
    /// Starts writing `path`.
    pub(crate) fn create(path: &Path) -> anyhow::Result<Output> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let file = tempfile::Builder::new()
            .prefix(".hydrowatch-partial-")
            .tempfile_in(dir)
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(Output {
            path: path.to_path_buf(),
            out: BufWriter::new(file),
        })
    }

    /// Flushes and puts the file in place under its name.
    pub(crate) fn finish(self) -> anyhow::Result<()> {
        let path = self.path;
        let file = self
            .out
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("cannot write {}", path.display()))?;
        // A temporary file is private (0600); the output is an ordinary file.
        let mode = <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o644);
        file.as_file()
            .set_permissions(mode)
            .with_context(|| format!("cannot write {}", path.display()))?;
        file.persist(&path)
            .map_err(|e| e.error)
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(())
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.out.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}
