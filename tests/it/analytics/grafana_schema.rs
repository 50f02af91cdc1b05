//! dashboards/grafana/ice-sync.json against Grafana's published schema: the dashboard kind
//! and, for each panel, the options and custom field config of its panel plugin, all from
//! the npm package `@grafana/schema` (TypeScript generated from Grafana's CUE schemas).
//! `ts-json-schema-generator` turns those types into JSON Schema, with objects closed
//! (an unknown or misspelt key is an error), and `ajv` validates. Panel options are checked
//! as `Partial<Options>`: Grafana fills missing top-level options with defaults, but what is
//! written must have the schema's shape.
//!
//! A second test proves the check bites: mutated copies of the dashboard must each fail at
//! the place that was broken. (That every panel's SQL runs is tests/analytics/grafana.rs.)
//!
//! Needs Node.js and the npm packages that `scripts/systemd/prepare` installs into
//! `$ICE_SYNC_TEST_CACHE/grafana-schema` (default `/var/cache/ice-sync-test`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

const DASHBOARD: &str = include_str!("../../../dashboards/grafana/ice-sync.json");

/// Types the validator checks against, by name. A panel of type `foo` is checked against
/// `FooOptions` and `FooFieldConfig`; a panel type missing here fails the test.
const SCHEMAS_TS: &str = r#"
import type { Dashboard } from '@grafana/schema/dist/types/raw/dashboard/x/types.gen';
import type * as stat from '@grafana/schema/dist/types/raw/composable/stat/panelcfg/x/types.gen';
import type * as bargauge from '@grafana/schema/dist/types/raw/composable/bargauge/panelcfg/x/types.gen';
import type * as piechart from '@grafana/schema/dist/types/raw/composable/piechart/panelcfg/x/types.gen';
import type * as timeseries from '@grafana/schema/dist/types/raw/composable/timeseries/panelcfg/x/types.gen';
import type * as table from '@grafana/schema/dist/types/raw/composable/table/panelcfg/x/types.gen';
export type GrafanaDashboard = Dashboard;
export type StatOptions = Partial<stat.Options>;
export type BargaugeOptions = Partial<bargauge.Options>;
export type PiechartOptions = Partial<piechart.Options>;
export type PiechartFieldConfig = Partial<piechart.FieldConfig>;
export type TimeseriesOptions = Partial<timeseries.Options>;
export type TimeseriesFieldConfig = Partial<timeseries.FieldConfig>;
export type TableOptions = Partial<table.Options>;
export type TableFieldConfig = Partial<table.FieldConfig>;
"#;

/// `node validate.cjs schemas.ts DASHBOARD...`: prints `{"DASHBOARD": ["error", ...]}`.
const VALIDATE_CJS: &str = r#"
const fs = require('fs');
const tsj = require('ts-json-schema-generator');
const Ajv = require('ajv');
const [schemasTs, ...dashboards] = process.argv.slice(2);
const config = { path: schemasTs, type: '*', skipTypeCheck: true, expose: 'export', topRef: true };
const schema = tsj.createGenerator(config).createSchema(config.type);
const ajv = new Ajv({ allErrors: true, strict: false });
ajv.addSchema(schema, 'grafana');
const capitalized = (s) => s.charAt(0).toUpperCase() + s.slice(1);
const report = {};
for (const file of dashboards) {
  const errors = [];
  const check = (definition, value, where) => {
    const validate = ajv.getSchema('grafana#/definitions/' + definition);
    if (!validate) {
      errors.push(`${where}: no schema ${definition} (panel type without a panel schema?)`);
      return;
    }
    if (!validate(value)) {
      for (const e of validate.errors) {
        const at = `${where}${e.instancePath}` || '/';
        errors.push(`${at} [${definition}] ${e.message} ${JSON.stringify(e.params)}`);
      }
    }
  };
  const dashboard = JSON.parse(fs.readFileSync(file, 'utf8'));
  check('GrafanaDashboard', dashboard, '');
  const walk = (panels, base) => (Array.isArray(panels) ? panels : []).forEach((panel, i) => {
    const where = `${base}/${i}`;
    if (panel.type === 'row') return walk(panel.panels, `${where}/panels`);
    const kind = capitalized(String(panel.type));
    check(`${kind}Options`, panel.options || {}, `${where}/options`);
    const custom = panel.fieldConfig && panel.fieldConfig.defaults && panel.fieldConfig.defaults.custom;
    if (custom !== undefined) check(`${kind}FieldConfig`, custom, `${where}/fieldConfig/defaults/custom`);
  });
  walk(dashboard.panels, '/panels');
  report[file] = errors;
}
console.log(JSON.stringify(report));
"#;

fn tooling_dir() -> PathBuf {
    std::env::var_os("ICE_SYNC_TEST_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/ice-sync-test"))
        .join("grafana-schema")
}

/// Validates each dashboard; returns its errors (empty = valid), keyed by label.
fn validate(dashboards: &[(&str, Value)]) -> BTreeMap<String, Vec<String>> {
    let tooling = tooling_dir();
    let schema_package = tooling.join("node_modules/@grafana/schema/package.json");
    let version = std::fs::read_to_string(&schema_package)
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|v| v["version"].as_str().map(str::to_string))
        .unwrap_or_else(|| {
            panic!(
                "@grafana/schema is not installed in {}: run scripts/systemd/prepare \
                 (it installs Node.js if needed and the pinned npm packages)",
                tooling.display()
            )
        });
    // Inside the tooling folder, so that Node and TypeScript find its node_modules.
    let run = tempfile::Builder::new()
        .prefix("run-")
        .tempdir_in(&tooling)
        .expect("a run folder in the tooling cache");
    let write = |name: &str, text: &str| -> PathBuf {
        let path = run.path().join(name);
        std::fs::write(&path, text).expect(name);
        path
    };
    let schemas = write("schemas.ts", SCHEMAS_TS);
    let script = write("validate.cjs", VALIDATE_CJS);
    let mut files = BTreeMap::new();
    for (label, dashboard) in dashboards {
        let text = serde_json::to_string_pretty(dashboard).expect("JSON");
        files.insert(write(&format!("{label}.json"), &text), label.to_string());
    }
    let output = Command::new("node")
        .arg(&script)
        .arg(&schemas)
        .args(files.keys())
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run node ({e}): install Node.js, or run scripts/systemd/prepare")
        });
    assert!(
        output.status.success(),
        "the schema validator (@grafana/schema {version}) failed to run:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let report: BTreeMap<String, Vec<String>> = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| {
            panic!(
                "unreadable validator output ({e}):\n{}",
                String::from_utf8_lossy(&output.stdout)
            )
        });
    report
        .into_iter()
        .map(|(file, errors)| {
            let label = files
                .get(Path::new(&file))
                .cloned()
                .unwrap_or_else(|| panic!("the validator reported an unknown file {file}"));
            (label, errors)
        })
        .collect()
}

fn dashboard() -> Value {
    serde_json::from_str(DASHBOARD).expect("dashboards/grafana/ice-sync.json is JSON")
}

/// Index of the first panel of this type.
fn panel_of_type(d: &Value, kind: &str) -> usize {
    d["panels"]
        .as_array()
        .and_then(|panels| panels.iter().position(|p| p["type"] == kind))
        .unwrap_or_else(|| panic!("the dashboard has no {kind} panel to mutate"))
}

#[test]
fn the_dashboard_matches_grafanas_schema() {
    let report = validate(&[("ice-sync", dashboard())]);
    let errors = &report["ice-sync"];
    assert!(
        errors.is_empty(),
        "dashboards/grafana/ice-sync.json violates Grafana's dashboard schema:\n{}",
        errors.join("\n")
    );
}

#[test]
fn a_broken_dashboard_fails_validation() {
    let original = dashboard();
    let stat = panel_of_type(&original, "stat");
    let timeseries = panel_of_type(&original, "timeseries");
    let mutate = |f: &dyn Fn(&mut Value)| {
        let mut d = original.clone();
        f(&mut d);
        d
    };
    // (label, mutated dashboard, text the error must contain)
    let cases: Vec<(&str, Value, String)> = vec![
        (
            "misspelt-top-level-key",
            mutate(&|d| {
                let panels = d["panels"].take();
                let map = d.as_object_mut().expect("object");
                map.remove("panels");
                map.insert("panel".to_string(), panels);
            }),
            "\"additionalProperty\":\"panel\"".to_string(),
        ),
        (
            "graph-tooltip-out-of-range",
            mutate(&|d| d["graphTooltip"] = json!(7)),
            "/graphTooltip".to_string(),
        ),
        (
            "grid-position-without-width",
            mutate(&|d| {
                d["panels"][0]["gridPos"]
                    .as_object_mut()
                    .expect("gridPos")
                    .remove("w");
            }),
            "\"missingProperty\":\"w\"".to_string(),
        ),
        (
            "stat-color-mode-unknown",
            mutate(&|d| d["panels"][stat]["options"]["colorMode"] = json!("rainbow")),
            format!("/panels/{stat}/options/colorMode [StatOptions]"),
        ),
        (
            "timeseries-draw-style-unknown",
            mutate(&|d| {
                d["panels"][timeseries]["fieldConfig"]["defaults"]["custom"]["drawStyle"] =
                    json!("zigzag")
            }),
            format!("/panels/{timeseries}/fieldConfig/defaults/custom/drawStyle"),
        ),
        (
            "panel-type-without-schema",
            mutate(&|d| d["panels"][stat]["type"] = json!("no-such-panel")),
            format!("/panels/{stat}/options: no schema"),
        ),
    ];
    let inputs: Vec<(&str, Value)> = cases
        .iter()
        .map(|(label, d, _)| (*label, d.clone()))
        .collect();
    let report = validate(&inputs);
    for (label, _, expected) in &cases {
        let errors = &report[*label];
        assert!(
            errors.iter().any(|e| e.contains(expected.as_str())),
            "mutation {label}: expected an error containing {expected:?}, got:\n{}",
            errors.join("\n")
        );
    }
}
