//! A damaged projection store: how damage shows, and moving a damaged
//! store aside so the engine rebuilds it from the journal (a store is
//! derived state; the journal is the truth).
//!
//! What sled 0.34 does with flipped bytes in its `db` file, as measured on
//! demo stores (39 bytes flipped at spread positions): depending on where
//! they land, opening it panics inside sled (`tried to serialize
//! Uninitialized`, while it rewrites its snapshot), returns
//! `Error::Corruption` (its snapshot disagrees with the log), or succeeds
//! and silently serves an older state: sled's recovery ends its log at the
//! first message whose CRC fails, dropping every later write (seen: a store
//! back to empty, without a checkpoint). Reads of a page whose CRC fails
//! return `Error::Corruption`.
//!
//! So damage is detected as: a panic or `Corruption`/`ReportableBug`/
//! `Unsupported` error from sled (at open or any read), a value that does
//! not decode ([`StoreError::Corrupt`]), and, for silent truncation, a
//! checkpoint older than something durable written after it (the engine's
//! committed ingress offset; see `cli::stores`). A dropped suffix is a
//! prefix of the store's atomic batches, so it is the fold of a shorter
//! journal prefix: the engine refolds the rest, which is safe; only
//! read-only commands must refuse it. Flips that land in bytes sled never
//! reads again (superseded page versions) are not detected, and need not
//! be.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Once;

use super::{forget_db, store_path, StoreError};

impl StoreError {
    /// Whether this says the store's bytes are damaged (as opposed to the
    /// store being busy, unreadable for want of permission, or in another
    /// format): the engine then moves it aside and rebuilds it.
    pub fn is_damage(&self) -> bool {
        match self {
            StoreError::Damaged { .. } | StoreError::Corrupt { .. } => true,
            StoreError::Sled { source, .. } => sled_damage(source),
            _ => false,
        }
    }
}

/// sled errors that mean its files are damaged. `Io` is not among them: a
/// lock held by another process or a permission problem is no damage, and
/// moving a store aside for it would lose a good store.
pub(super) fn sled_damage(e: &sled::Error) -> bool {
    matches!(
        e,
        sled::Error::Corruption { .. }
            | sled::Error::ReportableBug(_)
            | sled::Error::Unsupported(_)
    )
}

thread_local! {
    /// Set while this thread opens a sled database: a panic then is
    /// reported as damage, not printed with a backtrace.
    static OPENING: Cell<bool> = const { Cell::new(false) };
}

/// Wraps the panic hook once so that panics inside [`open_catching`] are
/// not printed (they come back as [`StoreError::Damaged`], which says it).
fn quiet_panics_while_opening() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !OPENING.with(Cell::get) {
                previous(info);
            }
        }));
    });
}

/// Opens a sled database, turning a panic inside sled (which it does on
/// some damaged files) into [`StoreError::Damaged`].
pub(super) fn open_catching(config: sled::Config, path: &Path) -> Result<sled::Db, StoreError> {
    let shown = path.display().to_string();
    quiet_panics_while_opening();
    OPENING.with(|o| o.set(true));
    let opened = catch_unwind(AssertUnwindSafe(|| config.open()));
    OPENING.with(|o| o.set(false));
    match opened {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(source)) if sled_damage(&source) => Err(StoreError::Damaged {
            path: shown,
            reason: source.to_string(),
        }),
        Ok(Err(source)) => Err(StoreError::Sled {
            path: shown,
            source,
        }),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into());
            Err(StoreError::Damaged {
                path: shown,
                reason: format!("sled panicked opening it: {what}"),
            })
        }
    }
}

/// Moves partition `partition`'s store aside, to
/// `store/p-<n>.corrupt-<UTC time>`, and returns where it went. The
/// process must hold no handle to it but the cached one this drops (the
/// engine calls this before its partition loop uses the store).
pub fn quarantine(data_dir: &Path, partition: u32) -> Result<PathBuf, StoreError> {
    let from = store_path(data_dir, partition);
    forget_db(&from);
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
    let to = from.with_file_name(format!("p-{partition}.corrupt-{stamp}"));
    let io = |e: std::io::Error| StoreError::Damaged {
        path: from.display().to_string(),
        reason: format!("cannot move it aside to {}: {e}", to.display()),
    };
    std::fs::rename(&from, &to).map_err(io)?;
    if let Some(parent) = from.parent() {
        // The rename is durable once the directory is.
        std::fs::File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
    }
    Ok(to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_are_not_damage_but_corruption_is() {
        let io = StoreError::Sled {
            path: "p".into(),
            source: sled::Error::Io(std::io::Error::other("locked")),
        };
        assert!(!io.is_damage());
        let corrupt = StoreError::Sled {
            path: "p".into(),
            source: sled::Error::ReportableBug("bad page".into()),
        };
        assert!(corrupt.is_damage());
    }
}
