//! `pushback install`: puts the systemd unit in place with ExecStart pointing at this binary, and
//! says how to start it. The units are the files in `systemd/`, embedded at build time. An
//! existing unit that differs (edited by hand, or from another version) is only replaced with
//! `--force`. Running systemctl is left to the rep.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

const USER_UNIT: &str = include_str!("../../systemd/pushback.service");
const TEMPLATE_UNIT: &str = include_str!("../../systemd/pushback@.service");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `pushback.service` in the rep's own user manager.
    User,
    /// `pushback@.service` in the system manager, one instance per rep on a shared host.
    System,
}

impl Scope {
    pub fn file_name(self) -> &'static str {
        match self {
            Scope::User => "pushback.service",
            Scope::System => "pushback@.service",
        }
    }

    /// Where systemd looks for the rep's or the administrator's own units.
    pub fn unit_dir(self) -> Result<PathBuf> {
        match self {
            Scope::User => crate::config::user_config_dir()
                .map(|dir| dir.join("systemd").join("user"))
                .context(
                    "cannot tell where user units go: neither XDG_CONFIG_HOME nor HOME is set",
                ),
            Scope::System => Ok(PathBuf::from("/etc/systemd/system")),
        }
    }

    fn template(self) -> &'static str {
        match self {
            Scope::User => USER_UNIT,
            Scope::System => TEMPLATE_UNIT,
        }
    }
}

/// The unit for `scope` with `ExecStart=` running `exe run`.
pub fn unit_text(scope: Scope, exe: &Path) -> Result<String> {
    let exec_start = format!("ExecStart={} run", exec_argument(exe)?);
    let mut replaced = false;
    let mut text = String::new();
    for line in scope.template().lines() {
        if line.starts_with("ExecStart=") {
            text.push_str(&exec_start);
            replaced = true;
        } else {
            text.push_str(line);
        }
        text.push('\n');
    }
    assert!(replaced, "the embedded units have an ExecStart line");
    Ok(text)
}

/// `exe` as one ExecStart argument: `%` is a specifier and `$` a variable to systemd, and a path
/// with spaces or quotes needs quoting.
fn exec_argument(exe: &Path) -> Result<String> {
    let Some(text) = exe.to_str().filter(|_| exe.is_absolute()) else {
        bail!(
            "cannot put {} in a unit: systemd needs an absolute path in UTF-8",
            exe.display()
        );
    };
    let escaped = text
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('%', "%%")
        .replace('$', "$$");
    Ok(
        if escaped.contains(char::is_whitespace) || escaped != text {
            format!("\"{escaped}\"")
        } else {
            escaped
        },
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Installed {
    Written,
    /// The same unit was already there.
    Unchanged,
}

/// Writes the unit for `scope` into `dir`, unless a different one is there and `force` is off.
pub fn install(scope: Scope, dir: &Path, exe: &Path, force: bool) -> Result<(PathBuf, Installed)> {
    let text = unit_text(scope, exe)?;
    let path = dir.join(scope.file_name());
    match std::fs::read_to_string(&path) {
        Ok(existing) if existing == text => return Ok((path, Installed::Unchanged)),
        Ok(_) if !force => bail!(
            "{} exists and differs from the unit this pushback writes (edited by hand, or from \
             another version); keep local changes in a drop-in (`systemctl{} edit {}`) and run \
             `pushback install{} --force` to replace it",
            path.display(),
            if scope == Scope::User { " --user" } else { "" },
            scope.file_name().replace('@', "@REP"),
            if scope == Scope::System {
                " --system"
            } else {
                ""
            },
        ),
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => {
            return Err(error).with_context(|| format!("cannot read {}", path.display()));
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::write(&path, text).with_context(|| match scope {
        Scope::System => format!(
            "cannot write {} (as root: sudo pushback install --system)",
            path.display()
        ),
        Scope::User => format!("cannot write {}", path.display()),
    })?;
    Ok((path, Installed::Written))
}

/// What to do next, for the rep to copy.
pub fn next_steps(scope: Scope, path: &Path, installed: Installed) -> String {
    let done = match installed {
        Installed::Written => format!("installed {}\n", path.display()),
        Installed::Unchanged => format!("{} is already installed and up to date\n", path.display()),
    };
    let steps = match scope {
        Scope::User => "Start it now and at every login:\n  \
             systemctl --user daemon-reload && systemctl --user enable --now pushback\n\
             Keep it running while you are logged out:\n  \
             loginctl enable-linger $USER\n\
             Then: `pushback status`, `systemctl --user reload pushback` after editing the config, \
             `journalctl --user -u pushback` for the log.\n"
            .to_owned(),
        Scope::System => "For each rep (REP: their user name), whose config must set \
             [state] path = \"/var/lib/pushback/REP\" (their home is read-only to the service):\n  \
             systemctl daemon-reload && systemctl enable --now pushback@REP\n\
             Then, as the rep: `pushback status`; as root: `systemctl reload pushback@REP` after \
             a config change, `journalctl -u pushback@REP` for the log.\n"
            .to_owned(),
    };
    done + &steps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_start_runs_the_given_binary() {
        let text = unit_text(Scope::User, Path::new("/opt/pushback/bin/pushback")).unwrap();
        let exec: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("ExecStart="))
            .collect();
        assert_eq!(exec, ["ExecStart=/opt/pushback/bin/pushback run"]);
        let text = unit_text(Scope::System, Path::new("/usr/bin/pushback")).unwrap();
        assert!(
            text.contains("\nExecStart=/usr/bin/pushback run\n"),
            "{text}"
        );
        assert!(text.contains("\nUser=%i\n"), "{text}");
    }

    #[test]
    fn odd_paths_are_quoted_and_escaped_for_systemd() {
        assert_eq!(
            exec_argument(Path::new("/home/a b/100%/pushback")).unwrap(),
            "\"/home/a b/100%%/pushback\""
        );
        assert_eq!(
            exec_argument(Path::new("/x/$HOME\"/pushback")).unwrap(),
            "\"/x/$$HOME\\\"/pushback\""
        );
        let err = exec_argument(Path::new("target/pushback")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot put target/pushback in a unit: systemd needs an absolute path in UTF-8"
        );
    }
}
