//! Generated projects and their status lifecycles.
//!
//! Generated projects look like the samples in `tests/data/sample-responses/`: a regular
//! `EditingProject` carries a Timeline (JSON text), a whole-second Duration and a cover;
//! a `LiveEditingProject` carries a BusinessStatus and a BusinessConfig (JSON text).
//! Every random choice comes from the caller's seeded rng, so one seed gives the same
//! projects and the same lifecycle outcomes on every run (timestamps excepted: they are
//! relative to the wall clock, because the engine under test compares them with now).
//!
//! Lifecycles:
//! * regular: `Draft -> Editing -> Producing -> Produced`, or `ProduceFailed` (~20%);
//! * live (Status stays `Editing`): BusinessStatus `Reserving -> BroadCasting ->
//!   LiveFinished`, or `Reserving -> ReservationCanceled` (~10%).
//!
//! Any other value, including ones this module has never heard of, is terminal.

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use rand::rngs::StdRng;
use rand::Rng;

use ice_wire::model::Project;

pub(crate) const LIVE: &str = "LiveEditingProject";
const PRODUCE_FAILED_CHANCE: f64 = 0.2;
const RESERVATION_CANCELED_CHANCE: f64 = 0.1;

/// The API's timestamp format, `yyyy-MM-ddTHH:mm:ssZ`.
pub(crate) fn timestamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A 32-hex lowercase ID, the shape ICE uses for projects and media.
pub(crate) fn new_id(rng: &mut StdRng) -> String {
    format!("{:032x}", rng.gen::<u128>())
}

const TOPICS: [&str; 10] = [
    "Spring campaign",
    "Product launch",
    "Weekly recap",
    "Customer story",
    "Tutorial",
    "Event highlights",
    "Brand teaser",
    "Interview",
    "Behind the scenes",
    "Trailer",
];
const CUTS: [&str; 5] = ["cut", "edit", "draft", "v2", "final"];

/// Creation some time in the last 30 days, modification between creation and now.
fn times(rng: &mut StdRng, now: DateTime<Utc>) -> (String, String) {
    let age = rng.gen_range(3_600..30 * 86_400);
    let created = now - ChronoDuration::seconds(age);
    let modified = created + ChronoDuration::seconds(rng.gen_range(0..=age));
    (timestamp(created), timestamp(modified))
}

/// Timeline JSON text with one video track of 1-3 clips, written like the samples
/// (VideoTracks first), which a `serde_json::Value` would not preserve.
fn timeline(rng: &mut StdRng) -> String {
    let clips: Vec<String> = (0..rng.gen_range(1..=3))
        .map(|i| {
            let media = new_id(rng);
            if i == 0 {
                format!("{{\"MediaId\":\"{media}\"}}")
            } else {
                let start = rng.gen_range(0..10);
                let out = f64::from(start) + f64::from(rng.gen_range(1..40)) / 4.0;
                format!("{{\"MediaId\":\"{media}\",\"In\":{start},\"Out\":{out}}}")
            }
        })
        .collect();
    format!(
        "{{\"VideoTracks\":[{{\"VideoTrackClips\":[{}]}}],\"AudioTracks\":[]}}",
        clips.join(",")
    )
}

/// A valid Timeline of about `bytes` bytes: one clip whose title carries the padding.
pub(crate) fn inflated_timeline(media_id: &str, bytes: usize) -> String {
    let frame = format!(
        "{{\"VideoTracks\":[{{\"VideoTrackClips\":[{{\"MediaId\":\"{media_id}\",\"Title\":\"\"}}]}}],\"AudioTracks\":[]}}"
    );
    let padding = "x".repeat(bytes.saturating_sub(frame.len()));
    frame.replacen("\"Title\":\"\"", &format!("\"Title\":\"{padding}\""), 1)
}

/// A regular `EditingProject` in `Draft`.
pub(crate) fn regular(id: &str, rng: &mut StdRng, now: DateTime<Utc>) -> Project {
    let (create_time, modified_time) = times(rng, now);
    let seconds = rng.gen_range(5..=120);
    let title = format!(
        "{} {}",
        TOPICS[rng.gen_range(0..TOPICS.len())],
        CUTS[rng.gen_range(0..CUTS.len())]
    );
    Project {
        project_id: Some(id.to_string()),
        title: Some(title),
        description: Some(format!("{seconds}s teaser")),
        timeline: Some(timeline(rng)),
        cover_url: Some(format!(
            "https://example-bucket.oss-cn-shanghai.aliyuncs.com/covers/{id}.jpg"
        )),
        create_time: Some(create_time),
        modified_time: Some(modified_time),
        project_type: Some("EditingProject".into()),
        create_source: Some("OpenAPI".into()),
        modified_source: Some("OpenAPI".into()),
        template_type: Some("None".into()),
        timeline_convert_status: Some("Unconverted".into()),
        duration: Some(f64::from(seconds)),
        status: Some("Draft".into()),
        ..Default::default()
    }
}

/// A `LiveEditingProject` that is `Reserving` a broadcast some hours from now.
pub(crate) fn live(id: &str, rng: &mut StdRng, now: DateTime<Utc>) -> Project {
    let (create_time, modified_time) = times(rng, now);
    let reservation = timestamp(now + ChronoDuration::minutes(rng.gen_range(30..48 * 60)));
    let business_config = format!(
        "{{\"OutputMediaConfig\":{{\"StorageLocation\":\"example-bucket.oss-cn-shanghai.aliyuncs.com\",\
         \"Path\":\"live/{id}\"}},\"OutputMediaTarget\":\"oss-object\",\"ReservationTime\":\"{reservation}\"}}"
    );
    Project {
        project_id: Some(id.to_string()),
        title: Some(format!("Live desk {}", rng.gen_range(1..1000))),
        timeline: Some(timeline(rng)),
        create_time: Some(create_time),
        modified_time: Some(modified_time),
        project_type: Some(LIVE.into()),
        create_source: Some("LiveEditingOpenAPI".into()),
        modified_source: Some("LiveEditingOpenAPI".into()),
        duration: Some(0.0),
        status: Some("Editing".into()),
        business_status: Some("Reserving".into()),
        business_config: Some(business_config),
        ..Default::default()
    }
}

fn is_live(project: &Project) -> bool {
    project.project_type.as_deref() == Some(LIVE)
}

/// Whether [`advance`] would move this project.
pub(crate) fn can_advance(project: &Project) -> bool {
    if is_live(project) {
        matches!(
            project.business_status.as_deref(),
            Some("Reserving") | Some("BroadCasting")
        )
    } else {
        // A missing ProjectType means EditingProject, as the API documents.
        matches!(
            project.status.as_deref(),
            Some("Draft") | Some("Editing") | Some("Producing")
        )
    }
}

/// Moves the project one lifecycle step and bumps ModifiedTime; false if it is terminal.
pub(crate) fn advance(project: &mut Project, rng: &mut StdRng, now: DateTime<Utc>) -> bool {
    if !can_advance(project) {
        return false;
    }
    if is_live(project) {
        let next = match project.business_status.as_deref() {
            Some("Reserving") if rng.gen_bool(RESERVATION_CANCELED_CHANCE) => "ReservationCanceled",
            Some("Reserving") => "BroadCasting",
            _ => "LiveFinished",
        };
        project.business_status = Some(next.into());
        project.modified_source = Some("LiveEditingConsole".into());
    } else {
        let (next, source) = match project.status.as_deref() {
            Some("Draft") => ("Editing", "WebSDK"),
            Some("Editing") => ("Producing", "OpenAPI"),
            _ if rng.gen_bool(PRODUCE_FAILED_CHANCE) => ("ProduceFailed", "OpenAPI"),
            _ => {
                // Produced media rarely lasts a whole number of seconds (see the
                // produced-float-duration sample).
                let whole = project.duration.unwrap_or(30.0).trunc();
                let cents = f64::from(rng.gen_range(1..100u8));
                project.duration = Some(whole + cents / 100.0);
                ("Produced", "OpenAPI")
            }
        };
        project.status = Some(next.into());
        project.modified_source = Some(source.into());
    }
    project.modified_time = Some(timestamp(now));
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn regular_runs_to_a_terminal_status() {
        let mut rng = StdRng::seed_from_u64(3);
        let now = Utc::now();
        let mut outcomes = std::collections::HashMap::new();
        for _ in 0..200 {
            let mut p = regular("p", &mut rng, now);
            let mut seen = vec![p.status.clone().unwrap_or_default()];
            while advance(&mut p, &mut rng, now) {
                seen.push(p.status.clone().unwrap_or_default());
            }
            assert_eq!(seen[..3], ["Draft", "Editing", "Producing"]);
            assert_eq!(seen.len(), 4);
            assert_eq!(p.modified_time.as_deref(), Some(timestamp(now).as_str()));
            *outcomes.entry(seen[3].clone()).or_insert(0) += 1;
        }
        let failed = outcomes.get("ProduceFailed").copied().unwrap_or(0);
        assert!((20..70).contains(&failed), "{outcomes:?}");
        assert_eq!(outcomes.len(), 2, "{outcomes:?}");
    }

    #[test]
    fn live_runs_to_a_terminal_business_status() {
        let mut rng = StdRng::seed_from_u64(4);
        let now = Utc::now();
        let mut canceled = 0;
        for _ in 0..300 {
            let mut p = live("l", &mut rng, now);
            let mut seen = vec![p.business_status.clone().unwrap_or_default()];
            while advance(&mut p, &mut rng, now) {
                seen.push(p.business_status.clone().unwrap_or_default());
                assert_eq!(p.status.as_deref(), Some("Editing"));
            }
            match seen.as_slice() {
                [a, b] if a == "Reserving" && b == "ReservationCanceled" => canceled += 1,
                [a, b, c] => assert_eq!(
                    [a.as_str(), b.as_str(), c.as_str()],
                    ["Reserving", "BroadCasting", "LiveFinished"]
                ),
                other => panic!("{other:?}"),
            }
        }
        assert!((10..60).contains(&canceled), "{canceled}");
    }

    #[test]
    fn unknown_values_are_terminal_and_generation_is_seeded() {
        let mut p = Project {
            status: Some("Archived".into()),
            ..Default::default()
        };
        let mut rng = StdRng::seed_from_u64(0);
        assert!(!advance(&mut p, &mut rng, Utc::now()));
        assert!(p.modified_time.is_none());
        let now = Utc::now();
        let a = regular("x", &mut StdRng::seed_from_u64(9), now);
        let b = regular("x", &mut StdRng::seed_from_u64(9), now);
        assert_eq!(a, b);
        let timeline: serde_json::Value =
            serde_json::from_str(a.timeline.as_deref().unwrap_or_default()).expect("JSON text");
        assert!(timeline["VideoTracks"].is_array());
        let l = live("y", &mut rng, now);
        let config: serde_json::Value =
            serde_json::from_str(l.business_config.as_deref().unwrap_or_default())
                .expect("JSON text");
        assert_eq!(config["OutputMediaTarget"], "oss-object");
    }
}
