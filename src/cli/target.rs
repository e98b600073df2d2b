//! Which daemon the API verbs talk to, and with which token: from the flags, the state directory
//! (chosen as the daemon chooses it) and what can be read of the configuration. A broken
//! configuration never stops these verbs: they need only the API address and the token
//! (docs/cli.md).

use crate::config::{self, Config, Secret};
use crate::daemon::place::{self, StateDir};
use anyhow::{Result, bail};
use std::path::{Path, PathBuf};

/// What the API verbs could read of the configuration.
#[derive(Debug, Default)]
pub struct Known {
    /// The file, when there is one.
    pub file: Option<PathBuf>,
    /// `[api] listen`.
    pub listen: Option<String>,
    /// `[daemon] state_dir`.
    pub state_dir: Option<PathBuf>,
    /// `[api] token` / `token_file`, resolved.
    pub token: Option<Secret>,
}

impl Known {
    /// Everything from a valid configuration.
    fn from_config(c: &Config) -> Known {
        Known {
            file: c.source.clone(),
            // The default address is not "from [api] listen": messages say "the default".
            listen: (c.api.listen != config::ApiConfig::default().listen)
                .then(|| c.api.listen.clone()),
            state_dir: c.daemon.state_dir.clone(),
            token: c.api.token.clone(),
        }
    }
}

/// Reads what the API verbs need from the configuration at `path` (or the one found on the
/// search path). An invalid file costs one warning line on stderr: its `[api] listen` and
/// `[daemon] state_dir` are still used when the file is valid TOML; otherwise the defaults.
pub fn read_known(path: Option<&Path>) -> Known {
    let located = config::locate(path);
    match config::load(located.as_deref()) {
        Ok(c) => Known::from_config(&c),
        Err(errors) => {
            let file = located.unwrap_or_default();
            let salvaged = salvage(&file);
            let first = errors
                .0
                .first()
                .map(|e| e.message.lines().next().unwrap_or("").to_string())
                .unwrap_or_default();
            eprintln!(
                "lookout: warning: ignoring the invalid configuration {} ({first}; `lookout config check` lists every problem){}",
                file.display(),
                if salvaged.listen.is_some() || salvaged.state_dir.is_some() {
                    "; using only its [api] listen and [daemon] state_dir"
                } else {
                    ""
                }
            );
            salvaged
        }
    }
}

/// `[api] listen` and `[daemon] state_dir` of a file that does not validate, if it is TOML.
fn salvage(file: &Path) -> Known {
    let table: Option<toml::Table> = std::fs::read_to_string(file)
        .ok()
        .and_then(|s| toml::from_str(&s).ok());
    let get = |section: &str, key: &str| {
        table
            .as_ref()?
            .get(section)?
            .get(key)?
            .as_str()
            .map(str::to_string)
    };
    Known {
        file: Some(file.to_path_buf()),
        listen: get("api", "listen"),
        state_dir: get("daemon", "state_dir").map(PathBuf::from),
        token: None,
    }
}

/// Where the API token came from, for messages.
#[derive(Clone, Debug, PartialEq)]
pub enum TokenFrom {
    /// `[api] token` or `token_file` of this configuration file.
    Config(PathBuf),
    /// This file in the state directory.
    File(PathBuf),
}

/// The daemon to talk to.
#[derive(Debug)]
pub struct Target {
    /// The API's base URL, without a trailing `/`.
    pub base: String,
    /// Where the base URL came from.
    pub base_from: String,
    /// The bearer token, when one was found.
    pub token: Option<Secret>,
    /// Where the token came from or was looked for.
    pub token_from: TokenFrom,
    /// Why the token file could not be read, when it could not.
    pub token_missing: Option<String>,
    /// The state directory and why it was chosen.
    pub state_dir: StateDir,
}

impl Target {
    /// Resolves the daemon: `--api` (or `LOOKOUT_API`), else the address the daemon left in its
    /// state directory, else `[api] listen`, else the default `127.0.0.1:9330`.
    pub fn resolve(known: &Known, api: Option<&str>, state_dir: Option<&Path>) -> Result<Target> {
        let dir = place::choose_state_dir(state_dir, known.state_dir.as_deref());
        let address_file = dir.path.join(place::API_ADDRESS_FILE);
        let (base, base_from) = if let Some(api) = api {
            (api_base(api)?, "--api".to_string())
        } else if let Some(a) = place::remembered_api_address(&dir.path) {
            (
                api_base(&a)?,
                format!("{} (the daemon's last start)", absolute(&address_file)),
            )
        } else if let Some(l) = &known.listen {
            let from = match &known.file {
                Some(f) => format!("[api] listen in {}", f.display()),
                None => "[api] listen".to_string(),
            };
            (listen_base(l)?, from)
        } else {
            (
                listen_base(&config::ApiConfig::default().listen)?,
                "the default".to_string(),
            )
        };
        let token_file = dir.path.join("api-token");
        let (token, token_from, token_missing) = match (&known.token, &known.file) {
            (Some(t), Some(f)) => (Some(t.clone()), TokenFrom::Config(f.clone()), None),
            _ => match Secret::from_file(&token_file) {
                Ok(t) if !t.expose().trim().is_empty() => {
                    (Some(t), TokenFrom::File(token_file), None)
                }
                Ok(_) => (
                    None,
                    TokenFrom::File(token_file),
                    Some("it is empty".to_string()),
                ),
                Err(e) => (None, TokenFrom::File(token_file), Some(e)),
            },
        };
        Ok(Target {
            base,
            base_from,
            token,
            token_from,
            token_missing,
            state_dir: dir,
        })
    }

    /// Where the token was looked for, in words.
    pub fn token_source(&self) -> String {
        match &self.token_from {
            TokenFrom::Config(f) => format!("[api] token in {}", f.display()),
            TokenFrom::File(p) => {
                format!("{} (state directory: {})", absolute(p), self.state_dir.why)
            }
        }
    }

    /// The error for a verb that needs the token when none was found.
    pub fn no_token(&self) -> anyhow::Error {
        anyhow::anyhow!(
            "no API token: looked for {}{}; the daemon writes it into its state directory: \
             pass --state-dir DIR (or set LOOKOUT_STATE_DIR) to the daemon's, or run as a user \
             who may read it",
            self.token_source(),
            self.token_missing
                .as_ref()
                .map(|m| format!(" ({m})"))
                .unwrap_or_default()
        )
    }

    /// The error for a 401 answer.
    pub fn refused(&self, answer: &str) -> anyhow::Error {
        anyhow::anyhow!(
            "the daemon at {} refused the API token from {} ({answer}); is that the daemon's \
             state directory? pass --state-dir DIR (or set LOOKOUT_STATE_DIR) to the daemon's",
            self.base,
            self.token_source()
        )
    }
}

fn absolute(p: &Path) -> String {
    std::path::absolute(p)
        .unwrap_or_else(|_| p.to_path_buf())
        .display()
        .to_string()
}

/// The base URL for a listen address (`localhost:PORT` allowed; a wildcard means loopback).
fn listen_base(listen: &str) -> Result<String> {
    let addr = config::listen::parse(listen).map_err(anyhow::Error::msg)?;
    Ok(format!("http://{}", place::reachable(addr)))
}

/// The base URL of `--api`: `host:port` means `http://host:port`; an `http://` or `https://`
/// URL is taken as given (without a trailing `/`). Anything else is refused with what is wrong.
pub fn api_base(api: &str) -> Result<String> {
    let api = api.trim().trim_end_matches('/');
    let url = if api.contains("://") {
        api.to_string()
    } else {
        format!("http://{api}")
    };
    let parsed = reqwest::Url::parse(&url).map_err(|e| {
        anyhow::anyhow!("--api {api:?} is not an address ({e}): give host:port or http://host:port")
    })?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        bail!(
            "--api {api:?} is not an http:// or https:// address: give host:port or http://host:port"
        );
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_base_accepts_host_port_and_urls_and_names_what_is_wrong() {
        assert_eq!(api_base("127.0.0.1:9330").unwrap(), "http://127.0.0.1:9330");
        assert_eq!(
            api_base("https://lookout.example:443/").unwrap(),
            "https://lookout.example:443"
        );
        assert_eq!(api_base("http://[::1]:9330").unwrap(), "http://[::1]:9330");
        let e = api_base("ftp://host:21").unwrap_err().to_string();
        assert!(e.contains("not an http:// or https:// address"), "{e}");
        let e = api_base("127.0.0.1:port").unwrap_err().to_string();
        assert!(e.contains("give host:port"), "{e}");
    }

    #[test]
    fn a_file_that_is_toml_but_invalid_still_gives_its_listen_and_state_dir() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("lookout.toml");
        std::fs::write(
            &f,
            "[api]\nlisten = \"localhost:9444\"\n[daemon]\nstate_dir = \"/srv/lo\"\n[[probe]]\nid = \"x\"\nknd = \"disk\"\n",
        )
        .unwrap();
        let k = read_known(Some(&f));
        assert_eq!(k.listen.as_deref(), Some("localhost:9444"));
        assert_eq!(k.state_dir.as_deref(), Some(Path::new("/srv/lo")));
        std::fs::write(&f, "[api\nlisten = ").unwrap();
        let k = read_known(Some(&f));
        assert_eq!(k.listen, None);
        assert_eq!(
            listen_base("localhost:9444").unwrap(),
            "http://127.0.0.1:9444"
        );
        assert_eq!(
            listen_base("0.0.0.0:9330").unwrap(),
            "http://127.0.0.1:9330"
        );
    }
}
