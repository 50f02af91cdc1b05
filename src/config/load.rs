//! Loading: built-in defaults < TOML file < `ICE_SYNC__SECTION__KEY` variables, and
//! which file to read.
//!
//! The `config` crate merges the layers into [`RawSettings`]; [`Settings::from_raw`]
//! gives them meaning. Loading has no side effects and keeps no state, so it can run
//! again at any time (a reload reads the same layers and compares with `reload`).

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail};

use super::parse_error::{check_toml_syntax, config_error_text};
use super::raw::RawSettings;
use super::settings::one_line;
use super::Settings;

pub const DEFAULT_CONFIG_PATH: &str = "/etc/ice-sync/config.toml";

/// Which file to read: `--config`, else `$ICE_SYNC_CONFIG`, else the system path if it
/// exists, else none (built-in defaults and variables only).
pub fn config_path(
    explicit: Option<&Path>,
    env: impl Fn(&str) -> Option<String>,
) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_path_buf());
    }
    if let Some(p) = env("ICE_SYNC_CONFIG").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let default = Path::new(DEFAULT_CONFIG_PATH);
    default.exists().then(|| default.to_path_buf())
}

/// Reads the layers. `env` is the list of variables to consider (the process
/// environment in production; a fixed list in tests).
pub fn load_from(
    path: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> anyhow::Result<Settings> {
    let vars: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with("ICE_SYNC__"))
        .collect();
    let error = match load_layers(path, vars.clone()) {
        Ok(settings) => return Ok(settings),
        Err(e) => e,
    };
    // The file alone loads: the variables are at fault, so name them, not the file.
    if path.is_some() && !vars.is_empty() && load_layers(path, Vec::new()).is_ok() {
        return Err(blame_variables(&error, &vars));
    }
    Err(error)
}

/// The error of a load that failed only because of `vars`, naming the variables whose
/// key the message mentions (all of them when it names none).
fn blame_variables(error: &anyhow::Error, vars: &[(String, String)]) -> anyhow::Error {
    let text = format!("{error:#}");
    let reason = text
        .split_once(": ")
        .map_or(text.as_str(), |(_, rest)| rest)
        .to_string();
    let key_of = |var: &str| {
        var.trim_start_matches("ICE_SYNC__")
            .to_ascii_lowercase()
            .replace("__", ".")
    };
    let mut named: Vec<&str> = vars
        .iter()
        .filter(|(k, _)| reason.contains(&key_of(k)))
        .map(|(k, _)| k.as_str())
        .collect();
    if named.is_empty() {
        named = vars.iter().map(|(k, _)| k.as_str()).collect();
    }
    anyhow!(
        "invalid configuration from the environment variable(s) {}: {reason}",
        named.join(", ")
    )
}

fn load_layers(path: Option<&Path>, vars: Vec<(String, String)>) -> anyhow::Result<Settings> {
    let mut builder = ::config::Config::builder();
    if let Some(path) = path {
        if !path.exists() {
            bail!("config file {} does not exist", path.display());
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow!("cannot read config file {}: {e}", path.display()))?;
        check_toml_syntax(path, &text).map_err(|e| anyhow!("invalid configuration: {e}"))?;
        builder = builder
            .add_source(::config::File::from_str(&text, ::config::FileFormat::Toml).required(true));
    }
    builder = with_environment(builder, vars)?;
    let where_ = path
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "environment".to_string());
    let raw: RawSettings = builder
        .build()
        .and_then(|c| c.try_deserialize())
        .map_err(|e| {
            anyhow!(
                "invalid configuration in {where_}: {}",
                config_error_text(&e)
            )
        })?;
    Settings::from_raw(raw).map_err(|e| {
        anyhow!(
            "invalid configuration in {where_}: {}",
            one_line(&e.to_string())
        )
    })
}

/// The `ICE_SYNC__*` variables as the top layer. Values stay strings, exactly as
/// written: `ICE_SYNC__SYNC__REPLICA_ID=007` is `"007"`, and a secret `0042` stays
/// `0042`. (The `config` crate's `try_parsing` would turn them into numbers first.)
/// Numeric and boolean keys still load, because the crate converts a string when the
/// key's type asks for a number or a bool. `sync.projects` is a comma-separated list.
/// (`ice-sync config` reads this layer alone through here, to say which key it set.)
pub(crate) fn with_environment(
    builder: ::config::ConfigBuilder<::config::builder::DefaultState>,
    env: impl IntoIterator<Item = (String, String)>,
) -> anyhow::Result<::config::ConfigBuilder<::config::builder::DefaultState>> {
    const PROJECTS: &str = "ICE_SYNC__SYNC__PROJECTS";
    let mut projects = None;
    let mut vars = ::config::Map::<String, String>::new();
    for (k, v) in env.into_iter().filter(|(k, _)| k.starts_with("ICE_SYNC__")) {
        if k.eq_ignore_ascii_case(PROJECTS) {
            projects = Some(v);
        } else {
            vars.insert(k, v);
        }
    }
    let mut builder = builder.add_source(
        ::config::Environment::with_prefix("ICE_SYNC")
            .prefix_separator("__")
            .separator("__")
            .try_parsing(false)
            .source(Some(vars)),
    );
    if let Some(list) = projects {
        let ids: Vec<String> = list.split(',').map(str::to_string).collect();
        builder = builder
            .set_override("sync.projects", ids)
            .map_err(|e| anyhow!("{PROJECTS}: {}", config_error_text(&e)))?;
    }
    Ok(builder)
}

/// Loads with the real process environment.
pub fn load(explicit: Option<&Path>) -> anyhow::Result<Settings> {
    let path = config_path(explicit, |k| std::env::var(k).ok());
    load_from(path.as_deref(), std::env::vars())
}

/// [`load_from`] with no file and these variables: the settings tests' one way in.
#[cfg(test)]
pub(crate) fn load_vars(pairs: &[(&str, &str)]) -> anyhow::Result<Settings> {
    load_from(
        None,
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>(),
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::DatabaseKind;

    #[test]
    fn a_bad_variable_is_blamed_on_the_variable_not_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("good.toml");
        std::fs::write(&path, "[sync]\nschedule = \"0 */5 * * * *\"\n").expect("write");
        let vars = vec![
            (
                "ICE_SYNC__SYNC__SCHEDULE".to_string(),
                "0 */5 * * *".to_string(),
            ),
            ("ICE_SYNC__LOG__LEVEL".to_string(), "info".to_string()),
        ];
        let text = format!("{:#}", load_from(Some(&path), vars).expect_err("refused"));
        assert!(
            text.contains("ICE_SYNC__SYNC__SCHEDULE") && !text.contains("good.toml"),
            "{text}"
        );
        assert!(!text.contains("ICE_SYNC__LOG__LEVEL"), "{text}");
        // A bad file is still the file's fault.
        std::fs::write(&path, "[sync]\nschedule = \"nope\"\n").expect("write");
        let text = format!(
            "{:#}",
            load_from(Some(&path), Vec::new()).expect_err("refused")
        );
        assert!(text.contains("good.toml"), "{text}");
    }

    fn load_toml(toml: &str) -> anyhow::Result<Settings> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.toml");
        std::fs::write(&path, toml).expect("write");
        load_from(Some(&path), Vec::new())
    }

    fn err(toml: &str) -> String {
        format!("{:#}", load_toml(toml).expect_err(toml))
    }

    #[test]
    fn defaults_match_the_spec() {
        let s = load_from(None, Vec::new()).expect("defaults");
        assert_eq!(
            s.database.url.expose_secret(),
            "sqlite://ice-sync.db?mode=rwc"
        );
        assert_eq!(s.database.max_connections, 5);
        assert_eq!(
            s.ice.endpoint.as_str(),
            "https://ice.cn-shanghai.aliyuncs.com/"
        );
        assert_eq!(s.ice.timeout, Duration::from_secs(10));
        assert_eq!(s.sync.schedule.expression, "0 */5 * * * *");
        assert_eq!(s.sync.schedule.period(), Duration::from_secs(300));
        assert_eq!(s.sync.concurrency, 16);
        assert_eq!(s.sync.max_qps.map(|q| q.get()), Some(20));
        assert_eq!(s.sync.max_retries, 5);
        assert_eq!(s.sync.shutdown_timeout, Duration::from_secs(20));
        assert_eq!(s.log.level, "info");
        assert!(s.metrics.listen.is_none());
    }

    #[test]
    fn file_then_environment() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "[ice]\nregion = \"cn-beijing\"\ntimeout = \"3s\"\n[sync]\nprojects = [\"aaa\"]\n",
        )
        .expect("write");
        let env = vec![
            ("ICE_SYNC__ICE__TIMEOUT".to_string(), "7s".to_string()),
            ("ICE_SYNC__SYNC__PROJECTS".to_string(), "p1,p2".to_string()),
            (
                "ICE_SYNC__DATABASE__URL".to_string(),
                "postgres://u@h/db".to_string(),
            ),
            ("ICE_SYNC_CONFIG".to_string(), "ignored".to_string()),
        ];
        let s = load_from(Some(&path), env).expect("loads");
        assert_eq!(
            s.ice.endpoint.as_str(),
            "https://ice.cn-beijing.aliyuncs.com/"
        );
        assert_eq!(s.ice.timeout, Duration::from_secs(7));
        assert_eq!(
            s.sync
                .projects
                .iter()
                .map(|p| p.as_str())
                .collect::<Vec<_>>(),
            vec!["p1", "p2"]
        );
        assert_eq!(s.database.kind, DatabaseKind::Postgres);
    }

    #[test]
    fn projects_file_ids_follow_the_inline_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ids = dir.path().join("projects.txt");
        std::fs::write(&ids, "# campaign\nf1\n\nf2 # launch\n").expect("write");
        let path = dir.path().join("c.toml");
        let toml = format!(
            "[sync]\nprojects = [\"aaa\"]\nprojects_file = {:?}\n",
            ids.display().to_string()
        );
        std::fs::write(&path, toml).expect("write");
        let s = load_from(Some(&path), Vec::new()).expect("loads");
        let got: Vec<&str> = s.sync.projects.iter().map(|p| p.as_str()).collect();
        assert_eq!(got, ["aaa", "f1", "f2"]);

        std::fs::write(&ids, "f1\nbad id!\n").expect("write");
        let e = load_from(Some(&path), Vec::new()).unwrap_err().to_string();
        assert!(e.contains("sync.projects_file") && e.contains(":2:"), "{e}");
        std::fs::remove_file(&ids).expect("remove");
        let e = load_from(Some(&path), Vec::new()).unwrap_err().to_string();
        assert!(
            e.contains("sync.projects_file") && e.contains("projects.txt"),
            "{e}"
        );
    }

    #[test]
    fn each_bad_input_names_its_key_and_value() {
        let cases = [
            ("[sync]\nshedule = \"x\"\n", "shedule"),
            ("[nope]\nx = 1\n", "nope"),
            (
                "[ice]\ntimeout = \"ten seconds\"\n",
                "ice.timeout = \"ten seconds\"",
            ),
            (
                "[sync]\nshutdown_timeout = \"0s\"\n",
                "sync.shutdown_timeout",
            ),
            (
                "[sync]\nschedule = \"every minute\"\n",
                "sync.schedule = \"every minute\"",
            ),
            (
                "[database]\nurl = \"mysql://x\"\n",
                "database.url = \"mysql://x\"",
            ),
            (
                "[ice]\nendpoint = \"not a url\"\n",
                "ice.endpoint = \"not a url\"",
            ),
            ("[ice]\nregion = \"CN Shanghai\"\n", "ice.region"),
            ("[sync]\nprojects = [\"ok1\", \"bad id!\"]\n", "bad id!"),
            (
                "[metrics]\nlisten = \"localhost\"\n",
                "metrics.listen = \"localhost\"",
            ),
            ("[log]\nformat = \"xml\"\n", "log.format = \"xml\""),
            (
                "[ice]\nrequest_source = \"Console\"\n",
                "ice.request_source",
            ),
            ("[sync]\nconcurrency = 0\n", "sync.concurrency"),
            (
                "[sync.intervals]\nProduced = \"often\"\n",
                "sync.intervals.Produced",
            ),
            ("[sync]\nlease_ttl = \"-1s\"\n", "sync.lease_ttl"),
            ("[sync]\nmode = \"poll\"\n", "sync.mode = \"poll\""),
            ("[sync]\ndiscover = true\n", "sync.discover"),
            (
                "[sync]\nlist_sweep_share = 1.0\n",
                "sync.list_sweep_share = 1",
            ),
            ("[sync]\nlist_sweep_share = -0.1\n", "sync.list_sweep_share"),
            (
                "[sync.list]\ncreated_within = \"ages\"\n",
                "sync.list.created_within",
            ),
        ];
        for (toml, needle) in cases {
            let e = err(toml);
            assert!(
                e.contains(needle),
                "{toml:?} gave {e:?}, which does not name {needle:?}"
            );
            assert!(!e.contains('\n'), "one line please: {e:?}");
        }
    }

    #[test]
    fn interval_keys_from_the_environment_keep_the_status_spelling() {
        // The environment layer lowercases keys; the policy matches statuses exactly.
        let env = vec![
            (
                "ICE_SYNC__SYNC__INTERVALS__Producing".to_string(),
                "1m".to_string(),
            ),
            (
                "ICE_SYNC__SYNC__INTERVALS__LIVEFINISHED".to_string(),
                "2h".to_string(),
            ),
            (
                "ICE_SYNC__SYNC__INTERVALS__SomeFutureStatus".to_string(),
                "3m".to_string(),
            ),
        ];
        let s = load_from(None, env).expect("loads");
        assert_eq!(
            s.sync.intervals.get("Producing"),
            Some(&Duration::from_secs(60))
        );
        assert_eq!(
            s.sync.intervals.get("LiveFinished"),
            Some(&Duration::from_secs(7200))
        );
        assert_eq!(
            s.sync.intervals.get("somefuturestatus"),
            Some(&Duration::from_secs(180))
        );
    }

    #[test]
    fn environment_strings_are_kept_verbatim_and_numbers_still_load() {
        let s = load_vars(&[
            ("ICE_SYNC__SYNC__REPLICA_ID", "007"),
            ("ICE_SYNC__ICE__ACCESS_KEY_ID", "0042"),
            ("ICE_SYNC__ICE__ACCESS_KEY_SECRET", "0042"),
            ("ICE_SYNC__CALLBACK__AUTH_KEY", "00Ab12"),
            ("ICE_SYNC__SYNC__PROJECTS", "0123"),
            ("ICE_SYNC__SYNC__CONCURRENCY", "3"),
            ("ICE_SYNC__SYNC__MAX_QPS", "0"),
            ("ICE_SYNC__SYNC__LIST_SWEEP_SHARE", "0.25"),
            ("ICE_SYNC__SYNC__MODE", "list"),
            ("ICE_SYNC__SYNC__DISCOVER", "true"),
            ("ICE_SYNC__CALLBACK__TRACK_UNKNOWN", "false"),
            ("ICE_SYNC__DATABASE__MAX_CONNECTIONS", "7"),
        ])
        .expect("loads");
        assert_eq!(s.sync.replica_id, "007");
        assert_eq!(s.ice.credentials.access_key_id.as_deref(), Some("0042"));
        use secrecy::ExposeSecret;
        let secret = s
            .ice
            .credentials
            .access_key_secret
            .as_ref()
            .expect("secret");
        assert_eq!(secret.expose_secret(), "0042");
        assert_eq!(s.callback.auth_keys[0].expose_secret(), "00Ab12");
        assert_eq!(s.sync.projects[0].as_str(), "0123");
        assert_eq!(s.sync.concurrency, 3);
        assert!(s.sync.max_qps.is_none());
        assert_eq!(s.sync.list_sweep_share, 0.25);
        assert!(s.sync.discover && !s.callback.track_unknown);
        assert_eq!(s.database.max_connections, 7);
        let e = format!(
            "{:#}",
            load_vars(&[("ICE_SYNC__SYNC__CONCURRENCY", "many")]).expect_err("not a number")
        );
        assert!(e.contains("sync.concurrency"), "{e}");
    }

    #[test]
    fn a_toml_syntax_error_never_prints_the_line() {
        // A backslash in a TOML basic string starts an escape: `\q` is not one.
        let e = err("[ice]\naccess_key_secret = \"hunter2\\qsecret\"\n");
        assert!(!e.contains("hunter2") && !e.contains("qsecret"), "{e}");
        assert!(
            e.contains(":2:") && e.contains("ice.access_key_secret"),
            "{e}"
        );
        let e = err("[database]\nurl = \"postgres://u:pw\\zsecret@h/db\"\n");
        assert!(!e.contains("zsecret") && !e.contains("postgres://"), "{e}");
        assert!(e.contains("database.url"), "{e}");
    }

    #[test]
    fn a_type_error_on_a_secret_key_leaves_the_value_out() {
        let e = err("[callback]\nauth_key = { nested = \"Topsecret9\" }\n");
        assert!(!e.contains("Topsecret9"), "{e}");
        assert!(e.contains("callback.auth_key"), "{e}");
    }

    #[test]
    fn unknown_environment_key_is_rejected() {
        let env = vec![("ICE_SYNC__SYNC__CONCURENCY".to_string(), "3".to_string())];
        let e = format!("{:#}", load_from(None, env).expect_err("typo"));
        assert!(e.contains("concurency"), "{e}");
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let s = load_toml("[ice]\naccess_key_id = \"AK\"\naccess_key_secret = \"hunter2\"\nsecurity_token = \"tok-xyz\"\n")
            .expect("loads");
        let debug = format!("{s:?}");
        assert!(
            !debug.contains("hunter2") && !debug.contains("tok-xyz"),
            "{debug}"
        );
    }

    #[test]
    fn a_refresh_token_needs_the_metrics_listener() {
        let e = err("[metrics]\nrefresh_token_file = \"/etc/ice-sync/refresh-token\"\n");
        assert!(
            e.contains("metrics.refresh_token_file") && e.contains("metrics.listen"),
            "{e}"
        );
        let s = load_toml(
            "[metrics]\nlisten = \"127.0.0.1:9187\"\nrefresh_token_file = \"/run/token\"\n",
        )
        .expect("loads");
        assert_eq!(
            s.metrics.refresh_token_file.as_deref(),
            Some(Path::new("/run/token"))
        );
    }

    #[test]
    fn jobs_enabled_defaults_on_and_rejects_non_booleans() {
        assert!(load_toml("").expect("defaults").jobs.enabled);
        assert!(
            !load_toml("[jobs]\nenabled = false\n")
                .expect("off")
                .jobs
                .enabled
        );
        let e = err("[jobs]\nenabled = \"sometimes\"\n");
        assert!(e.contains("enabled"), "{e}");
        let e = err("[jobs]\nenable = true\n");
        assert!(e.contains("enable"), "{e}");
    }

    #[test]
    fn the_annotated_example_config_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/ice-sync.example.toml");
        let s = load_from(Some(&path), Vec::new()).expect("example config is valid");
        assert_eq!(s.database.kind, DatabaseKind::Sqlite);
    }

    #[test]
    fn database_passwords_are_redacted_in_debug_and_errors() {
        let env = vec![(
            "ICE_SYNC__DATABASE__URL".to_string(),
            "postgres://u:pw1secret@h/db?password=pw2secret".to_string(),
        )];
        let s = load_from(None, env).expect("loads");
        let debug = format!("{s:?}");
        assert!(
            !debug.contains("pw1secret") && !debug.contains("pw2secret"),
            "{debug}"
        );
        let e = err("[database]\nurl = \"mysql://u:pw1secret@h/db?password=pw2secret\"\n");
        assert!(!e.contains("pw1secret") && !e.contains("pw2secret"), "{e}");
        assert!(e.contains("mysql://u:***@h/db?password=***"), "{e}");
    }
}
