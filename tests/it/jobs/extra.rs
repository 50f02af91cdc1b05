//! `editing_projects.extra`: the Project fields SPEC.md does not name.

use ice_sync::ice::Project;

use crate::on_both_backends;
use crate::support::{spawn_app, Backend};

on_both_backends!(extra_is_stored_updated_and_null_when_absent);

async fn extra_is_stored_updated_and_null_when_absent(backend: Backend) {
    let app = spawn_app(backend).await;
    let ids = app.sim.populate(2, 0);
    let (with, without) = (&ids[0], &ids[1]);
    let mut project: Project = app.sim.project(with).expect("exists");
    project
        .extra
        .insert("NewField".into(), serde_json::json!({"a": 1}));
    app.sim.insert(project.clone());
    app.track(&[with, without]).await;
    app.cycle().await;
    let extra = |id: &str| format!("SELECT extra FROM editing_projects WHERE project_id = '{id}'");
    assert_eq!(
        app.rows(&extra(with)).await,
        [[Some(r#"{"NewField":{"a":1}}"#.to_string())]]
    );
    assert_eq!(app.rows(&extra(without)).await, [[None]]);
    let history = |id: &str| {
        format!("SELECT count(*) FROM editing_project_history WHERE project_id = '{id}'")
    };
    assert_eq!(app.count(&history(with)).await, 1);

    // Only the unnamed field changes (not even ModifiedTime): the row follows, with no
    // history row.
    project
        .extra
        .insert("NewField".into(), serde_json::json!({"a": 2}));
    project
        .extra
        .insert("Later".into(), serde_json::json!([1.5, null]));
    app.sim.insert(project.clone());
    app.cycle().await;
    assert_eq!(
        app.rows(&extra(with)).await,
        [[Some(
            r#"{"Later":[1.5,null],"NewField":{"a":2}}"#.to_string()
        )]]
    );
    assert_eq!(app.count(&history(with)).await, 1);

    // Gone again: NULL.
    project.extra.clear();
    app.sim.insert(project);
    app.cycle().await;
    assert_eq!(app.rows(&extra(with)).await, [[None]]);
    assert_eq!(app.count(&history(with)).await, 1);
}
