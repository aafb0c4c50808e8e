//! Passwords and OAuth2 access tokens, fetched at login time from a command or an environment
//! variable and held only in memory. `Secret` never prints its value: Debug and Display show
//! `[redacted]`, so a secret cannot reach a log line, an error or the state store by accident.

use std::fmt;
use std::process::Command;

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value itself, for the one place that needs it (the login command on the wire).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// How a server login proves who the rep is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// IMAP LOGIN / SMTP AUTH PLAIN or LOGIN.
    Password { user: String, password: Secret },
    /// SASL XOAUTH2 with a bearer access token.
    XOAuth2 { user: String, token: Secret },
}

impl Auth {
    pub fn user(&self) -> &str {
        match self {
            Auth::Password { user, .. } | Auth::XOAuth2 { user, .. } => user,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot run the secret command {command:?}: {cause}")]
    Spawn {
        command: String,
        cause: std::io::Error,
    },
    // The command's stderr may echo what it was given but never its stdout, which holds the secret.
    #[error("the secret command {command:?} failed ({status}): {stderr}")]
    CommandFailed {
        command: String,
        status: std::process::ExitStatus,
        stderr: String,
    },
    #[error("the secret command {command:?} printed nothing")]
    Empty { command: String },
    #[error("environment variable {name} is not set (or not valid UTF-8)")]
    EnvMissing { name: String },
}

/// Runs `command` through the shell and takes its first output line, as mail clients do
/// (`pass show mail/work`, `secret-tool lookup ...`).
pub fn from_command(command: &str) -> Result<Secret, Error> {
    let output = Command::new("sh")
        .arg("-c")
        .arg(command)
        .output()
        .map_err(|cause| Error::Spawn {
            command: command.to_string(),
            cause,
        })?;
    if !output.status.success() {
        return Err(Error::CommandFailed {
            command: command.to_string(),
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let first_line = stdout.lines().next().unwrap_or("").trim_end_matches('\r');
    if first_line.is_empty() {
        return Err(Error::Empty {
            command: command.to_string(),
        });
    }
    Ok(Secret::new(first_line))
}

pub fn from_env(name: &str) -> Result<Secret, Error> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .map(Secret::new)
        .ok_or_else(|| Error::EnvMissing {
            name: name.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_prints_its_value() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?} {secret}"), "[redacted] [redacted]");
        let auth = Auth::Password {
            user: "alice".into(),
            password: secret,
        };
        assert!(!format!("{auth:?}").contains("hunter2"));
    }

    #[test]
    fn command_takes_the_first_line() {
        let secret = from_command("printf 'tok3n\\nsecond line\\n'").unwrap();
        assert_eq!(secret.expose(), "tok3n");
    }

    #[test]
    fn a_failing_command_says_so_without_its_output() {
        let error = from_command("echo $((40 + 2)); exit 3")
            .unwrap_err()
            .to_string();
        assert!(error.contains("failed"), "{error}");
        assert!(!error.contains("42"), "{error}");
        assert!(matches!(from_command("true"), Err(Error::Empty { .. })));
    }

    #[test]
    fn env_reports_the_missing_variable_by_name() {
        let error = from_env("PUSHBACK_TEST_NO_SUCH_VARIABLE").unwrap_err();
        assert!(error.to_string().contains("PUSHBACK_TEST_NO_SUCH_VARIABLE"));
    }
}
