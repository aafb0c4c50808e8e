//! A local Maildir++ mailbox: the root (with `cur/`, `new/`, `tmp/`) is the INBOX, and the
//! subfolders `.Drafts` and `.Sent` hold what pushback writes. This module reads the rep's mail
//! without ever moving or re-flagging it, and writes drafts and sent copies atomically (tmp file,
//! fsync, rename, fsync of the directory) under a name the caller chooses, so that writing the same
//! draft again replaces it instead of adding a second copy. What to write and when is the caller's
//! business.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "cannot open maildir {path}: it has no {missing}/ directory (a Maildir needs cur/, new/ and tmp/)"
    )]
    NotAMaildir {
        path: PathBuf,
        missing: &'static str,
    },
    #[error("cannot {action} {path}: {cause}")]
    Io {
        action: &'static str,
        path: PathBuf,
        cause: io::Error,
    },
    #[error(
        "cannot use {name:?} as a message name: it must be non-empty, must not start with '.' and must not contain '/' or ':'"
    )]
    BadName { name: String },
    #[error("cannot use {name:?} as a folder name: it must be non-empty and must not contain '/'")]
    BadFolder { name: String },
}

fn io_error<'p>(action: &'static str, path: &'p Path) -> impl FnOnce(io::Error) -> Error + 'p {
    move |cause| Error::Io {
        action,
        path: path.to_path_buf(),
        cause,
    }
}

const SUBDIRS: [&str; 3] = ["cur", "new", "tmp"];

/// Names of the Maildir++ subfolders for drafts and sent mail, without the leading dot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folders {
    pub drafts: String,
    pub sent: String,
}

impl Default for Folders {
    fn default() -> Folders {
        Folders {
            drafts: "Drafts".into(),
            sent: "Sent".into(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Maildir {
    root: PathBuf,
    drafts: PathBuf,
    sent: PathBuf,
}

/// One message in the INBOX.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxEntry {
    /// The unique name before ':' — stable when a client moves the file from new/ to cur/ or
    /// changes its flags.
    pub key: String,
    pub path: PathBuf,
}

impl Maildir {
    /// Opens an existing Maildir with the default `.Drafts` and `.Sent` folders.
    pub fn open(root: &Path) -> Result<Maildir, Error> {
        Maildir::open_with(root, &Folders::default())
    }

    /// Creates the root, `.Drafts` and `.Sent` (each with cur/new/tmp); idempotent.
    pub fn create(root: &Path) -> Result<Maildir, Error> {
        Maildir::create_with(root, &Folders::default())
    }

    /// Opens an existing Maildir whose drafts and sent folders have the given names. The INBOX
    /// must exist; the two folders must too.
    pub fn open_with(root: &Path, folders: &Folders) -> Result<Maildir, Error> {
        let maildir = Maildir::layout(root, folders)?;
        for dir in [&maildir.root, &maildir.drafts, &maildir.sent] {
            for sub in SUBDIRS {
                if !dir.join(sub).is_dir() {
                    return Err(Error::NotAMaildir {
                        path: dir.clone(),
                        missing: sub,
                    });
                }
            }
        }
        Ok(maildir)
    }

    /// Creates the root and the two folders as needed; idempotent.
    pub fn create_with(root: &Path, folders: &Folders) -> Result<Maildir, Error> {
        let maildir = Maildir::layout(root, folders)?;
        for dir in [&maildir.root, &maildir.drafts, &maildir.sent] {
            for sub in SUBDIRS {
                let path = dir.join(sub);
                fs::create_dir_all(&path).map_err(io_error("create directory", &path))?;
            }
        }
        Ok(maildir)
    }

    fn layout(root: &Path, folders: &Folders) -> Result<Maildir, Error> {
        let folder = |name: &str| {
            if name.is_empty() || name.contains('/') {
                Err(Error::BadFolder { name: name.into() })
            } else {
                Ok(root.join(format!(".{name}")))
            }
        };
        Ok(Maildir {
            root: root.to_path_buf(),
            drafts: folder(&folders.drafts)?,
            sent: folder(&folders.sent)?,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The INBOX's messages in new/ and cur/, sorted by key. Read-only: nothing is moved or
    /// re-flagged, because the rep's own client owns those flags.
    pub fn inbox(&self) -> Result<Vec<InboxEntry>, Error> {
        let mut entries: Vec<InboxEntry> = list(&self.root)?
            .into_iter()
            .map(|path| InboxEntry {
                key: key_of(&path).to_owned(),
                path,
            })
            .collect();
        entries.sort_by(|a, b| a.key.cmp(&b.key).then_with(|| a.path.cmp(&b.path)));
        // A client moving new/ -> cur/ between our two directory reads can show one message twice.
        entries.dedup_by(|a, b| a.key == b.key);
        Ok(entries)
    }

    /// Reads a message; if the client moved it (new/ -> cur/, or a flag change) since `inbox()`
    /// listed it, finds it again by its key.
    pub fn read(&self, entry: &InboxEntry) -> Result<Vec<u8>, Error> {
        match fs::read(&entry.path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                match find(&self.root, &entry.key)?.first() {
                    Some(moved) => fs::read(moved).map_err(io_error("read message", moved)),
                    None => Err(io_error("read message", &entry.path)(e)),
                }
            }
            other => other.map_err(io_error("read message", &entry.path)),
        }
    }

    /// Delivers a message into INBOX new/ the Maildir way: written in tmp/, fsynced, then renamed
    /// under a unique `time.pid_seq.host` name.
    pub fn deliver(&self, raw: &[u8]) -> Result<InboxEntry, Error> {
        let key = unique_name();
        let path = self.root.join("new").join(&key);
        write_atomically(&self.root, &path, raw)?;
        Ok(InboxEntry { key, path })
    }

    /// Writes `cur/<name>:2,F` in the inbox: unread and flagged, for pushback's own reminders.
    /// Writing the same name again replaces it, so a reminder delivered twice shows once.
    pub fn write_flagged(&self, name: &str, raw: &[u8]) -> Result<PathBuf, Error> {
        put(&self.root, name, "2,F", raw)
    }

    /// Writes `.Drafts/cur/<name>:2,D`. Writing the same name again replaces the existing file
    /// atomically, wherever the client left it and whatever flags it gave it.
    pub fn write_draft(&self, name: &str, raw: &[u8]) -> Result<PathBuf, Error> {
        put(&self.drafts, name, "2,D", raw)
    }

    /// Removes every file of the draft `name`; true when there was one.
    pub fn remove_draft(&self, name: &str) -> Result<bool, Error> {
        check_name(name)?;
        let found = find(&self.drafts, name)?;
        for path in &found {
            fs::remove_file(path).map_err(io_error("remove draft", path))?;
        }
        let mut dirs: Vec<&Path> = found.iter().filter_map(|p| p.parent()).collect();
        dirs.dedup();
        for dir in dirs {
            sync_dir(dir)?;
        }
        Ok(!found.is_empty())
    }

    pub fn find_draft(&self, name: &str) -> Result<Option<PathBuf>, Error> {
        check_name(name)?;
        Ok(find(&self.drafts, name)?.into_iter().next())
    }

    /// Writes `.Sent/cur/<name>:2,S`, with the same replace-not-duplicate rule as drafts.
    pub fn write_sent(&self, name: &str, raw: &[u8]) -> Result<PathBuf, Error> {
        put(&self.sent, name, "2,S", raw)
    }

    pub fn drafts(&self) -> Result<Vec<PathBuf>, Error> {
        let mut paths = list(&self.drafts)?;
        paths.sort();
        Ok(paths)
    }

    pub fn sent(&self) -> Result<Vec<PathBuf>, Error> {
        let mut paths = list(&self.sent)?;
        paths.sort();
        Ok(paths)
    }
}

/// The unique part of a Maildir file name: everything before the info (":2,...").
fn key_of(path: &Path) -> &str {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.split_once(':').map_or(name, |(key, _)| key)
}

fn check_name(name: &str) -> Result<(), Error> {
    if name.is_empty() || name.starts_with('.') || name.contains(['/', ':']) {
        return Err(Error::BadName { name: name.into() });
    }
    Ok(())
}

/// Regular, non-hidden files in `folder`'s new/ and cur/.
fn list(folder: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut paths = Vec::new();
    for sub in ["new", "cur"] {
        let dir = folder.join(sub);
        let entries = fs::read_dir(&dir).map_err(io_error("list directory", &dir))?;
        for entry in entries {
            let entry = entry.map_err(io_error("list directory", &dir))?;
            let hidden = entry.file_name().to_string_lossy().starts_with('.');
            let is_file = entry
                .file_type()
                .map_err(io_error("list directory", &dir))?
                .is_file();
            if is_file && !hidden {
                paths.push(entry.path());
            }
        }
    }
    Ok(paths)
}

/// Every file of `folder` (cur/ first, then new/) whose key is `name`.
fn find(folder: &Path, name: &str) -> Result<Vec<PathBuf>, Error> {
    let mut found: Vec<PathBuf> = list(folder)?
        .into_iter()
        .filter(|p| key_of(p) == name)
        .collect();
    found.sort_by_key(|p| !in_cur(p));
    Ok(found)
}

fn put(folder: &Path, name: &str, info: &str, raw: &[u8]) -> Result<PathBuf, Error> {
    check_name(name)?;
    let existing = find(folder, name)?;
    // Keep a file already in cur/ at its path (and so its flags); one in new/ moves to cur/.
    let target = match existing.first() {
        Some(path) if in_cur(path) => path.clone(),
        _ => folder.join("cur").join(format!("{name}:{info}")),
    };
    write_atomically(folder, &target, raw)?;
    // Leftover copies (a crash between two writes, or a client copying the file) would show the
    // rep two drafts for one message.
    let stale: Vec<&PathBuf> = existing.iter().filter(|p| **p != target).collect();
    for path in &stale {
        fs::remove_file(path).map_err(io_error("remove stale copy", path))?;
    }
    if !stale.is_empty() {
        sync_dir(&folder.join("new"))?;
        sync_dir(&folder.join("cur"))?;
    }
    Ok(target)
}

fn in_cur(path: &Path) -> bool {
    path.parent().is_some_and(|d| d.ends_with("cur"))
}

/// tmp/ file, write, fsync, rename over `target`, fsync the target's directory: after a crash the
/// target is either the old content or the new one, never a half-written file.
fn write_atomically(folder: &Path, target: &Path, raw: &[u8]) -> Result<(), Error> {
    let tmp = folder.join("tmp").join(unique_name());
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(io_error("create temporary file", &tmp))?;
    let written = file.write_all(raw).and_then(|()| file.sync_all());
    drop(file);
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(io_error("write temporary file", &tmp)(e));
    }
    if let Err(e) = fs::rename(&tmp, target) {
        let _ = fs::remove_file(&tmp);
        return Err(io_error("move message into place at", target)(e));
    }
    sync_dir(target.parent().unwrap_or(folder))
}

fn sync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error("sync directory", dir))
}

/// `time.pid_seq.host`, unique per delivery on this host.
fn unique_name() -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "{}.{}_{}.{}",
        now.as_secs(),
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed),
        hostname()
    )
}

/// The host name with '/' and ':' escaped as the Maildir spec asks.
fn hostname() -> String {
    let name = fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let name = if name.is_empty() {
        "localhost".to_owned()
    } else {
        name
    };
    name.replace('/', "\\057").replace(':', "\\072")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn maildir() -> (tempfile::TempDir, Maildir) {
        let dir = tempfile::tempdir().unwrap();
        let md = Maildir::create(&dir.path().join("Mail")).unwrap();
        (dir, md)
    }

    fn names(paths: &[PathBuf]) -> Vec<String> {
        paths
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn open_refuses_a_directory_without_cur_new_tmp() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("cur")).unwrap();
        let err = Maildir::open(dir.path()).unwrap_err();
        assert!(matches!(err, Error::NotAMaildir { missing: "new", .. }));
        assert!(err.to_string().contains(&dir.path().display().to_string()));
    }

    #[test]
    fn create_is_idempotent_and_open_then_works() {
        let (dir, md) = maildir();
        md.deliver(b"Subject: hi\r\n\r\nbody").unwrap();
        Maildir::create(md.root()).unwrap();
        let reopened = Maildir::open(&dir.path().join("Mail")).unwrap();
        assert_eq!(reopened.inbox().unwrap().len(), 1);
        for sub in SUBDIRS {
            assert!(dir.path().join("Mail/.Drafts").join(sub).is_dir());
            assert!(dir.path().join("Mail/.Sent").join(sub).is_dir());
        }
    }

    #[test]
    fn deliver_then_inbox_and_read() {
        let (_dir, md) = maildir();
        let a = md.deliver(b"first").unwrap();
        let b = md.deliver(b"second").unwrap();
        assert_ne!(a.key, b.key);
        assert!(a.path.starts_with(md.root().join("new")));
        let inbox = md.inbox().unwrap();
        let mut expected = vec![a.clone(), b.clone()];
        expected.sort_by(|x, y| x.key.cmp(&y.key));
        assert_eq!(inbox, expected);
        assert_eq!(md.read(&a).unwrap(), b"first");
        assert!(
            fs::read_dir(md.root().join("tmp"))
                .unwrap()
                .next()
                .is_none()
        );
    }

    #[test]
    fn inbox_key_is_stable_when_a_client_moves_and_flags_a_message() {
        let (_dir, md) = maildir();
        let entry = md.deliver(b"hello").unwrap();
        let moved = md.root().join("cur").join(format!("{}:2,S", entry.key));
        fs::rename(&entry.path, &moved).unwrap();
        let inbox = md.inbox().unwrap();
        assert_eq!(inbox.len(), 1);
        assert_eq!(inbox[0].key, entry.key);
        assert_eq!(inbox[0].path, moved);
        // A stale entry listed before the move still reads.
        assert_eq!(md.read(&entry).unwrap(), b"hello");
        // And reading never touched the rep's flags.
        assert!(moved.exists());
    }

    #[test]
    fn inbox_ignores_hidden_files_and_tmp() {
        let (_dir, md) = maildir();
        fs::write(md.root().join("tmp/partial"), b"x").unwrap();
        fs::write(md.root().join("cur/.hidden"), b"x").unwrap();
        assert!(md.inbox().unwrap().is_empty());
    }

    #[test]
    fn write_draft_twice_replaces_instead_of_duplicating() {
        let (_dir, md) = maildir();
        let first = md.write_draft("pushback-42", b"v1").unwrap();
        assert_eq!(names(std::slice::from_ref(&first)), ["pushback-42:2,D"]);
        let second = md.write_draft("pushback-42", b"v2").unwrap();
        assert_eq!(first, second);
        assert_eq!(md.drafts().unwrap(), vec![second.clone()]);
        assert_eq!(fs::read(&second).unwrap(), b"v2");
    }

    #[test]
    fn write_draft_replaces_the_file_a_client_reflagged() {
        let (_dir, md) = maildir();
        let path = md.write_draft("pushback-7", b"v1").unwrap();
        let flagged = path.with_file_name("pushback-7:2,DS");
        fs::rename(&path, &flagged).unwrap();
        let written = md.write_draft("pushback-7", b"v2").unwrap();
        assert_eq!(written, flagged);
        assert_eq!(md.drafts().unwrap(), vec![flagged.clone()]);
        assert_eq!(fs::read(&flagged).unwrap(), b"v2");
        assert_eq!(md.find_draft("pushback-7").unwrap(), Some(flagged));
    }

    #[test]
    fn write_draft_collapses_copies_left_in_new_and_cur() {
        let (_dir, md) = maildir();
        md.write_draft("pushback-9", b"v1").unwrap();
        fs::write(md.drafts.join("new/pushback-9"), b"copy").unwrap();
        let path = md.write_draft("pushback-9", b"v2").unwrap();
        assert_eq!(md.drafts().unwrap(), vec![path.clone()]);
        assert_eq!(fs::read(path).unwrap(), b"v2");
    }

    #[test]
    fn remove_and_find_draft() {
        let (_dir, md) = maildir();
        assert_eq!(md.find_draft("d1").unwrap(), None);
        assert!(!md.remove_draft("d1").unwrap());
        md.write_draft("d1", b"x").unwrap();
        assert!(md.find_draft("d1").unwrap().is_some());
        assert!(md.remove_draft("d1").unwrap());
        assert!(md.drafts().unwrap().is_empty());
    }

    #[test]
    fn write_sent_is_idempotent_and_flagged_seen() {
        let (_dir, md) = maildir();
        md.write_sent("pushback-1", b"a").unwrap();
        let path = md.write_sent("pushback-1", b"b").unwrap();
        assert_eq!(names(&md.sent().unwrap()), ["pushback-1:2,S"]);
        assert_eq!(fs::read(path).unwrap(), b"b");
        assert!(md.drafts().unwrap().is_empty());
    }

    #[test]
    fn bad_names_are_refused() {
        let (_dir, md) = maildir();
        for name in ["", "../x", "a:2,S", ".hidden"] {
            let err = md.write_draft(name, b"x").unwrap_err();
            assert!(matches!(err, Error::BadName { .. }), "{name:?}");
        }
    }

    #[test]
    fn custom_folder_names() {
        let dir = tempfile::tempdir().unwrap();
        let folders = Folders {
            drafts: "Entwürfe".into(),
            sent: "Gesendet".into(),
        };
        let md = Maildir::create_with(dir.path(), &folders).unwrap();
        md.write_draft("x", b"x").unwrap();
        assert!(dir.path().join(".Entwürfe/cur/x:2,D").exists());
        assert!(Maildir::open_with(dir.path(), &folders).is_ok());
        // The default folders were never created, so opening with them fails.
        assert!(Maildir::open(dir.path()).is_err());
    }
}
