//! `ice-sync config`: the effective configuration, every key with its value and the
//! layer that set it (built-in default, the TOML file, an `ICE_SYNC__*` variable, a
//! `*_file` or a systemd credential), secrets shown as `***`.
//!
//! It first loads the settings exactly as `run` does (`config::load_from`), so a
//! configuration `run` refuses is refused here with the same message and exit 2. Then it
//! reads each layer alone, the way the loader builds it (the file through the `config`
//! crate's TOML source, the variables through `config::load::with_environment`), to say
//! which one gave each key its value: the highest layer that sets a key wins, as in the
//! merge. The defaults are `RawSettings::default()` serialized: each section's file
//! declares its keys' defaults once, and a new key is listed here without a line of its
//! own. Values whose source is not a key
//! (`database.url_file`, systemd credentials, the AccessKey chain) are added as the
//! loader and start-up resolve them. What is secret is `config::secrets`' decision.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{json, Value};

use super::output::{self, json_document, OutputFormat, StreamTable};
use super::usage;
use crate::config::raw::RawSettings;
use crate::config::secrets::{hides_whole_value, is_secret_key};
use crate::config::url::redact_url;
use crate::config::{self, Settings};

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ConfigArgs {
    #[arg(long, short = 'o', value_enum, default_value_t)]
    pub(crate) output: OutputFormat,
}

/// Where a value came from (`source` in JSON: a contract, docs/cli.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Source {
    Default,
    File,
    Env,
    /// A file a `*_file` key names (`database.url_file`).
    SecretFile,
    /// A file in systemd's `$CREDENTIALS_DIRECTORY` (`LoadCredential=`).
    Credential,
    /// The AccessKey chain (`ALIBABA_CLOUD_*` variables, profiles, RAM roles, ...).
    CredentialChain,
}

/// One row: a key, its value as `run` uses it (secrets masked) and where it came from.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Entry {
    pub(crate) key: String,
    pub(crate) value: Value,
    pub(crate) source: Source,
    /// The file, variable or credential that set it; `null` for a default.
    pub(crate) origin: Option<String>,
    pub(crate) secret: bool,
}

pub(crate) async fn run(explicit: Option<&Path>, args: ConfigArgs) -> anyhow::Result<u8> {
    let env: Vec<(String, String)> = std::env::vars().collect();
    let lookup = |k: &str| env.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    let path = config::config_path(explicit, lookup);
    let entries = effective(path.as_deref(), &env).map_err(|e| usage(format!("{e:#}")))?;
    let mut out = output::stdout();
    match args.output {
        OutputFormat::Json => json_document(
            &mut out,
            &json!({
                "config_file": path.as_ref().map(|p| p.display().to_string()),
                "settings": entries,
            }),
        )?,
        OutputFormat::Table => {
            match &path {
                Some(p) => writeln!(out, "# config file: {}", p.display())?,
                None => writeln!(out, "# no config file: built-in defaults and variables")?,
            }
            let mut table = StreamTable::new(out, &["KEY", "VALUE", "SOURCE"]);
            for e in &entries {
                table.row(vec![e.key.clone(), show(&e.value), describe(e)])?;
            }
            table.finish()?.flush()?;
        }
    }
    Ok(0)
}

/// Every key's effective value and source, for the file at `path` and the variables
/// `env` (the process environment in production).
pub(crate) fn effective(
    path: Option<&Path>,
    env: &[(String, String)],
) -> anyhow::Result<Vec<Entry>> {
    let lookup = |k: &str| env.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    // What `run` would load, or its error.
    let settings = config::load_from(path, env.iter().cloned())?;
    let file = match path {
        Some(p) => file_layer(p)?,
        None => Vec::new(),
    };
    let vars: Vec<(String, String)> = env
        .iter()
        .filter(|(k, _)| k.starts_with("ICE_SYNC__"))
        .cloned()
        .collect();
    let environment = env_layer(&vars)?;
    let mut entries = merge(defaults()?, &file, &environment, path, &vars);
    computed_defaults(&mut entries, &settings);
    resolved_elsewhere(&mut entries, &settings, &lookup);
    for e in &mut entries {
        mask(e);
    }
    Ok(entries)
}

/// The file alone, as the loader reads it, flattened to dotted keys.
fn file_layer(path: &Path) -> anyhow::Result<Vec<(String, Value)>> {
    let text = std::fs::read_to_string(path)?;
    let layer = ::config::Config::builder()
        .add_source(::config::File::from_str(&text, ::config::FileFormat::Toml))
        .build()?;
    Ok(flatten(layer.try_deserialize()?))
}

/// The `ICE_SYNC__*` variables alone, as the loader reads them.
fn env_layer(vars: &[(String, String)]) -> anyhow::Result<Vec<(String, Value)>> {
    let builder = config::load::with_environment(::config::Config::builder(), vars.to_vec())?;
    Ok(flatten(builder.build()?.try_deserialize()?))
}

/// Nested tables to `section.key` (and `sync.intervals.Status`) pairs; lists stay whole.
fn flatten(map: ::config::Map<String, ::config::Value>) -> Vec<(String, Value)> {
    fn walk(
        prefix: &str,
        map: ::config::Map<String, ::config::Value>,
        out: &mut Vec<(String, Value)>,
    ) {
        for (k, v) in map {
            let key = if prefix.is_empty() {
                k
            } else {
                format!("{prefix}.{k}")
            };
            match v.kind {
                ::config::ValueKind::Table(t) => walk(&key, t, out),
                _ => out.push((key, to_json(v))),
            }
        }
    }
    let mut out = Vec::new();
    walk("", map, &mut out);
    out
}

fn to_json(v: ::config::Value) -> Value {
    use ::config::ValueKind as K;
    match v.kind {
        K::Nil => Value::Null,
        K::Boolean(b) => json!(b),
        K::I64(n) => json!(n),
        K::I128(n) => json!(n as f64),
        K::U64(n) => json!(n),
        K::U128(n) => json!(n as f64),
        K::Float(f) => json!(f),
        K::String(s) => json!(s),
        K::Array(items) => Value::Array(items.into_iter().map(to_json).collect()),
        K::Table(t) => Value::Object(
            t.into_iter()
                .map(|(k, v)| (k, to_json(v)))
                .collect::<serde_json::Map<_, _>>(),
        ),
    }
}

/// The merge: for every key the highest layer that sets it (variables over the file over
/// the defaults). Keys compare without case, as the loader's map keys do (the
/// environment layer lowercases them). A default map (`sync.intervals`) is listed only
/// while no layer sets an entry of it.
fn merge(
    defaults: Vec<(String, Value)>,
    file: &[(String, Value)],
    env: &[(String, Value)],
    path: Option<&Path>,
    vars: &[(String, String)],
) -> Vec<Entry> {
    let mut entries: Vec<Entry> = defaults
        .into_iter()
        .map(|(key, value)| Entry {
            key,
            value,
            source: Source::Default,
            origin: None,
            secret: false,
        })
        .collect();
    let file_origin = path.map(|p| p.display().to_string());
    let layers = [(file, Source::File), (env, Source::Env)];
    for (layer, source) in layers {
        for (key, value) in layer {
            let origin = match source {
                Source::Env => variable_of(key, vars),
                _ => file_origin.clone(),
            };
            let entry = Entry {
                key: key.clone(),
                value: value.clone(),
                source,
                origin,
                secret: false,
            };
            match entries.iter_mut().find(|e| e.key.eq_ignore_ascii_case(key)) {
                Some(existing) => *existing = entry,
                None => entries.push(entry),
            }
        }
    }
    let keys: Vec<String> = entries.iter().map(|e| e.key.to_ascii_lowercase()).collect();
    entries.retain(|e| {
        let prefix = format!("{}.", e.key.to_ascii_lowercase());
        !(e.value.is_object() && keys.iter().any(|k| k.starts_with(&prefix)))
    });
    entries.sort_by_key(|e| section_order(&e.key));
    entries
}

/// Sections in the order of the reference (docs/configuration.md), keys within them in
/// the order they were listed.
fn section_order(key: &str) -> usize {
    const SECTIONS: &[&str] = &[
        "database",
        "ice",
        "sync",
        "log",
        "metrics",
        "callback",
        "webhook",
        "retention",
        "jobs",
    ];
    let section = key.split('.').next().unwrap_or(key);
    SECTIONS
        .iter()
        .position(|s| s.eq_ignore_ascii_case(section))
        .unwrap_or(SECTIONS.len())
}

/// The variable that set `key` (`ICE_SYNC__SYNC__MAX_QPS` for `sync.max_qps`).
fn variable_of(key: &str, vars: &[(String, String)]) -> Option<String> {
    vars.iter()
        .map(|(k, _)| k)
        .find(|k| {
            k.trim_start_matches("ICE_SYNC__")
                .replace("__", ".")
                .eq_ignore_ascii_case(key)
        })
        .cloned()
}

/// Defaults the loader computes rather than declares: shown as `run` will use them.
fn computed_defaults(entries: &mut [Entry], settings: &Settings) {
    for e in entries.iter_mut().filter(|e| e.source == Source::Default) {
        match e.key.as_str() {
            "sync.replica_id" => e.value = json!(settings.sync.replica_id),
            "callback.track_unknown" => e.value = json!(settings.callback.track_unknown),
            "log.format" => e.value = json!("pretty on a terminal, json otherwise"),
            _ => {}
        }
    }
}

/// Values that come from somewhere other than a key: `database.url_file` (or its systemd
/// credential), the credentials start-up finds in `$CREDENTIALS_DIRECTORY`, and the
/// AccessKey chain.
fn resolved_elsewhere(
    entries: &mut Vec<Entry>,
    settings: &Settings,
    env: &dyn Fn(&str) -> Option<String>,
) {
    let url_file = entries
        .iter()
        .find(|e| e.key == "database.url_file")
        .and_then(|e| e.value.as_str().map(PathBuf::from));
    if let (Some(file), Some(url)) = (
        url_file,
        entries.iter_mut().find(|e| e.key == "database.url"),
    ) {
        let (source, origin) = match config::database::url_credential() {
            Some(credential) => (Source::Credential, credential),
            None => (Source::SecretFile, file),
        };
        url.value = json!(settings.database.url.expose_secret());
        url.source = source;
        url.origin = Some(origin.display().to_string());
    }
    let dir = env("CREDENTIALS_DIRECTORY")
        .map(|d| d.trim().to_string())
        .filter(|d| !d.is_empty())
        .map(PathBuf::from);
    if let Some(dir) = dir {
        credential_rows(entries, settings, &dir);
    }
    let chain = match crate::credentials::default_chain(&settings.ice.credentials, env) {
        Ok(provider) => provider.source(),
        Err(e) => format!("none usable: {e:#}"),
    };
    entries.push(Entry {
        key: "ice.credentials".to_string(),
        value: json!(chain),
        source: Source::CredentialChain,
        origin: None,
        secret: false,
    });
}

/// The systemd credentials start-up reads, each as the key it stands for.
fn credential_rows(entries: &mut Vec<Entry>, settings: &Settings, dir: &Path) {
    let set = |entries: &[Entry], key: &str| {
        entries
            .iter()
            .any(|e| e.key == key && !e.value.is_null() && e.source != Source::Default)
    };
    let mut found: Vec<(&str, &str)> = Vec::new();
    if settings.callback.listen.is_some() {
        found.push(("callback.auth_key", crate::callback::keys::CREDENTIAL_NAME));
    }
    if settings.webhook.url.is_some()
        && !set(entries.as_slice(), "webhook.secret")
        && !set(entries.as_slice(), "webhook.secret_file")
    {
        found.push(("webhook.secret", "webhook-secret"));
    }
    if settings.metrics.listen.is_some() && settings.metrics.refresh_token_file.is_none() {
        found.push(("metrics.refresh_token_file", "refresh-token"));
    }
    for (key, name) in [
        ("ice.access_key_id", "access_key_id"),
        ("ice.access_key_secret", "access_key_secret"),
        ("ice.security_token", "security_token"),
    ] {
        found.push((key, name));
    }
    for (key, name) in found {
        let path = dir.join(name);
        if !path.exists() {
            continue;
        }
        // A token file's path is what the key holds; the others are the secret itself.
        let value = if key.ends_with("_file") {
            json!(path.display().to_string())
        } else {
            json!("***")
        };
        let entry = Entry {
            key: key.to_string(),
            value,
            source: Source::Credential,
            origin: Some(path.display().to_string()),
            secret: !key.ends_with("_file"),
        };
        // In place of the key's row when no layer set it; beside it when one did (both
        // are read: the AuthKeys of a rotation, say).
        match entries
            .iter_mut()
            .find(|e| e.key == key && e.value.is_null())
        {
            Some(unset) => *unset = entry,
            None => entries.push(entry),
        }
    }
}

/// Secrets as `***`, URLs with their passwords and secret parameters masked.
fn mask(e: &mut Entry) {
    if e.value.is_null() {
        return;
    }
    if hides_whole_value(&e.key) || e.secret {
        e.value = json!("***");
        e.secret = true;
    } else if is_secret_key(&e.key) {
        if let Some(text) = e.value.as_str() {
            e.value = json!(redact_url(text));
        }
        e.secret = true;
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::Null => "(not set)".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn describe(e: &Entry) -> String {
    let origin = e.origin.as_deref().unwrap_or_default();
    match e.source {
        Source::Default => "default".to_string(),
        Source::File => format!("file {origin}"),
        Source::Env => format!("env {origin}"),
        Source::SecretFile => format!("file {origin} (database.url_file)"),
        Source::Credential => format!("systemd credential {origin}"),
        Source::CredentialChain => "credential chain (where run takes the AccessKey)".to_string(),
    }
}

/// The built-in defaults: `RawSettings::default()` serialized, each key as its section's
/// file declares it (`config::sync::RawSync`, ...; a secret as `***` or nothing), in the
/// order of the fields. A table is a row per key; a map without a default entry
/// (`sync.intervals`) is a row of its own.
fn defaults() -> anyhow::Result<Vec<(String, Value)>> {
    let text = serde_json::to_vec(&RawSettings::default())?;
    let tree: Ordered = serde_json::from_slice(&text)?;
    let mut out = Vec::new();
    tree.flatten("", &mut out);
    Ok(out)
}

/// A JSON value whose objects keep their keys in order (`serde_json::Map` sorts them,
/// and the rows follow the fields' order).
enum Ordered {
    Leaf(Value),
    Table(Vec<(String, Ordered)>),
}

impl Ordered {
    fn flatten(self, prefix: &str, out: &mut Vec<(String, Value)>) {
        match self {
            Ordered::Table(fields) if !fields.is_empty() => {
                for (k, v) in fields {
                    let key = if prefix.is_empty() {
                        k
                    } else {
                        format!("{prefix}.{k}")
                    };
                    v.flatten(&key, out);
                }
            }
            Ordered::Table(_) => out.push((prefix.to_string(), json!({}))),
            Ordered::Leaf(v) => out.push((prefix.to_string(), v)),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Ordered {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(OrderedVisitor)
    }
}

struct OrderedVisitor;

impl<'de> serde::de::Visitor<'de> for OrderedVisitor {
    type Value = Ordered;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Ordered, E> {
        Ok(Ordered::Leaf(json!(v)))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Ordered, E> {
        Ok(Ordered::Leaf(json!(v)))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Ordered, E> {
        Ok(Ordered::Leaf(json!(v)))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Ordered, E> {
        Ok(Ordered::Leaf(json!(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Ordered, E> {
        Ok(Ordered::Leaf(json!(v)))
    }

    fn visit_unit<E>(self) -> Result<Ordered, E> {
        Ok(Ordered::Leaf(Value::Null))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Ordered, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Value>()? {
            items.push(item);
        }
        Ok(Ordered::Leaf(Value::Array(items)))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Ordered, A::Error> {
        let mut fields = Vec::new();
        while let Some(entry) = map.next_entry::<String, Ordered>()? {
            fields.push(entry);
        }
        Ok(Ordered::Table(fields))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn entry<'a>(entries: &'a [Entry], key: &str) -> &'a Entry {
        entries
            .iter()
            .find(|e| e.key == key)
            .unwrap_or_else(|| panic!("no {key} in {entries:?}"))
    }

    #[test]
    fn each_key_names_the_layer_that_set_it_and_secrets_are_masked() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("config.toml");
        std::fs::write(
            &path,
            "[sync]\nmax_qps = 7\nconcurrency = 3\n[ice]\naccess_key_id = \"LTAIexample\"\n\
             access_key_secret = \"hunter2secret\"\n[sync.intervals]\nProducing = \"1m\"\n",
        )
        .expect("write");
        let env = vars(&[
            ("ICE_SYNC__SYNC__CONCURRENCY", "5"),
            (
                "ICE_SYNC__DATABASE__URL",
                "postgres://ice:pw9secret@db.example/ice?sslpassword=pw8secret",
            ),
            ("HOME", "/root"),
        ]);
        let entries = effective(Some(&path), &env).expect("loads");
        let text = serde_json::to_string(&entries).expect("json");
        assert!(
            !text.contains("hunter2secret")
                && !text.contains("pw9secret")
                && !text.contains("pw8secret"),
            "{text}"
        );
        let e = entry(&entries, "sync.max_qps");
        assert_eq!((e.source, e.value.clone()), (Source::File, json!(7)));
        assert_eq!(
            e.origin.as_deref(),
            Some(path.display().to_string().as_str())
        );
        let e = entry(&entries, "sync.concurrency");
        assert_eq!((e.source, e.value.clone()), (Source::Env, json!("5")));
        assert_eq!(e.origin.as_deref(), Some("ICE_SYNC__SYNC__CONCURRENCY"));
        let e = entry(&entries, "sync.schedule");
        assert_eq!(
            (e.source, e.value.clone()),
            (Source::Default, json!("0 */5 * * * *"))
        );
        let e = entry(&entries, "ice.access_key_secret");
        assert_eq!(
            (e.source, e.value.clone(), e.secret),
            (Source::File, json!("***"), true)
        );
        let e = entry(&entries, "database.url");
        assert_eq!(e.source, Source::Env);
        assert!(
            e.value
                .as_str()
                .is_some_and(|u| u.contains("db.example") && u.contains("***")),
            "{e:?}"
        );
        assert_eq!(
            entry(&entries, "sync.intervals.Producing").value,
            json!("1m")
        );
        assert!(!entries.iter().any(|e| e.key == "sync.intervals"));
        let e = entry(&entries, "sync.replica_id");
        assert!(
            e.value.as_str().is_some_and(|r| !r.is_empty()),
            "computed: {e:?}"
        );
    }

    #[test]
    fn a_database_url_file_is_the_source_of_the_url() {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("database-url");
        std::fs::write(&file, "postgres://u:filesecret@h/db\n").expect("write");
        let env = vars(&[("ICE_SYNC__DATABASE__URL_FILE", &file.display().to_string())]);
        let entries = effective(None, &env).expect("loads");
        let e = entry(&entries, "database.url");
        assert_eq!(e.source, Source::SecretFile);
        assert_eq!(e.value, json!("postgres://u:***@h/db"));
        assert_eq!(
            e.origin.as_deref(),
            Some(file.display().to_string().as_str())
        );
    }

    #[test]
    fn a_bad_configuration_is_refused_like_run_refuses_it() {
        let env = vars(&[("ICE_SYNC__SYNC__SCHEDULE", "every minute")]);
        let e = effective(None, &env).expect_err("refused");
        let run = config::load_from(None, env.iter().cloned()).expect_err("refused");
        assert_eq!(format!("{e:#}"), format!("{run:#}"));
    }
}
