//! The simulator's producing-job actions against the real client: the samples' shapes
//! (list rows with the list model's fields only, `MaxResults` a string), paging with
//! opaque tokens, the 30-day window rule, the not-found error, the rate limit shared
//! with project polls, and the per-job call counters.

use std::collections::HashSet;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use chrono::Utc;
use ice_sim::{SignedCaller, Simulator, SimulatorConfig};
use ice_sync::credentials::Credentials;
use ice_sync::ice::jobs_model::MediaProducingJob;
use ice_sync::ice::{ClientOptions, ErrorClass, IceClient};
use secrecy::SecretString;

fn client(sim: &Simulator, max_qps: Option<u32>) -> IceClient {
    let defaults = SimulatorConfig::default();
    IceClient::new(
        ClientOptions {
            endpoint: reqwest::Url::parse(&sim.endpoint()).expect("endpoint URL"),
            request_source: None,
            timeout: Duration::from_secs(5),
            max_qps: max_qps.and_then(NonZeroU32::new),
            max_retries: 0,
            backoff_base: Duration::from_millis(2),
            backoff_cap: Duration::from_millis(20),
            max_response_bytes: ice_sync::ice::DEFAULT_MAX_RESPONSE_BYTES,
        },
        Credentials {
            access_key_id: defaults.access_key_id,
            access_key_secret: SecretString::from(defaults.access_key_secret),
            security_token: None,
            source: "test".into(),
        },
    )
    .expect("client")
}

fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn sample_keys(name: &str, pointer: &str) -> HashSet<String> {
    let path = format!(
        "{}/tests/data/sample-responses/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("sample")).expect("JSON");
    value
        .pointer(pointer)
        .and_then(|v| v.as_object())
        .expect("an object")
        .keys()
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_actions_answer_in_the_samples_shapes() {
    let sim = Simulator::start(SimulatorConfig::default())
        .await
        .expect("sim");
    let id = sim.populate(1, 0).remove(0);
    // A template project, so the job carries TemplateId and ClipsParam as in the sample.
    let mut project = sim.project(&id).expect("exists");
    project.template_id = Some("IceSys_VETemplate_s100241".into());
    project.clips_param = Some(r#"{"Text1":"Hello"}"#.into());
    sim.insert(project);
    let job = sim.start_production(&id).expect("starts");
    sim.finish_production(&job, true);
    let c = client(&sim, None);

    let got = c.get_media_producing_job(&job).await.expect("found");
    assert_eq!(got.value, sim.job(&job).expect("truth"));
    assert_eq!(got.value.status.as_deref(), Some("Success"));
    assert!(got.value.media_url.is_some() && got.value.vod_media_id.is_some());
    // Every field the success sample has, and no other: the raw answer, signed as the
    // client signs it.
    let defaults = SimulatorConfig::default();
    let raw_caller = SignedCaller::new(
        &sim.endpoint(),
        &defaults.access_key_id,
        &defaults.access_key_secret,
    )
    .expect("caller");
    let raw = raw_caller
        .request("GetMediaProducingJob", &params(&[("JobId", &job)]))
        .send()
        .await
        .expect("sent")
        .bytes()
        .await
        .map(|b| serde_json::from_slice::<serde_json::Value>(&b).expect("JSON"))
        .expect("body");
    let keys: HashSet<String> = raw["MediaProducingJob"]
        .as_object()
        .expect("a job")
        .keys()
        .cloned()
        .collect();
    assert_eq!(
        keys,
        sample_keys("get-media-producing-job.success.json", "/MediaProducingJob")
    );

    let raw = raw_caller
        .request(
            "ListMediaProducingJobs",
            &params(&[("ProjectId", &id), ("MaxResults", "5")]),
        )
        .send()
        .await
        .expect("sent")
        .bytes()
        .await
        .map(|b| serde_json::from_slice::<serde_json::Value>(&b).expect("JSON"))
        .expect("body");
    assert_eq!(
        raw["MaxResults"], "5",
        "a string, as in the response models"
    );
    let item: HashSet<String> = raw["MediaProducingJobList"][0]
        .as_object()
        .expect("one row")
        .keys()
        .cloned()
        .collect();
    let list_model = sample_keys(
        "list-media-producing-jobs.page.json",
        "/MediaProducingJobList/0",
    );
    assert!(
        item.is_subset(&list_model),
        "{item:?} beyond {list_model:?}"
    );
    for missing in ["Progress", "VodMediaId", "Timeline", "SubJobMaterials"] {
        assert!(!item.contains(missing), "a list row has no {missing}");
    }
    assert_eq!(sim.job_calls(&job), 2);
    assert_eq!(sim.job_list_calls(&id), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_pages_windows_and_unknown_jobs() {
    let sim = Simulator::start(SimulatorConfig::default())
        .await
        .expect("sim");
    let id = sim.populate(1, 0).remove(0);
    let now = Utc::now();
    for n in 0..25u32 {
        let created = (now - chrono::Duration::minutes(i64::from(n))).format("%Y-%m-%dT%H:%M:%SZ");
        sim.insert_job(MediaProducingJob {
            job_id: Some(format!("{n:032x}")),
            project_id: Some(id.clone()),
            status: Some("Success".into()),
            create_time: Some(created.to_string()),
            ..Default::default()
        });
    }
    let c = client(&sim, None);
    let filter = params(&[("ProjectId", &id)]);
    let (mut seen, mut token, mut pages) = (Vec::new(), None::<String>, 0);
    loop {
        let page = c
            .list_media_producing_jobs(&filter, token.as_deref(), 10)
            .await
            .expect("page");
        pages += 1;
        assert_eq!(page.value.max_results.as_deref(), Some("10"));
        seen.extend(page.value.jobs.into_iter().filter_map(|j| j.job_id));
        token = page.value.next_token;
        if token.is_none() {
            break;
        }
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = (0..25u32).map(|n| format!("{n:032x}")).collect();
    assert_eq!(seen, expected, "newest first, each once");

    // EndTime - StartTime over 30 days is refused, as documented.
    let wide = params(&[
        ("ProjectId", &id),
        ("StartTime", "2024-01-01T00:00:00Z"),
        ("EndTime", "2024-02-01T00:00:01Z"),
    ]);
    let e = c
        .list_media_producing_jobs(&wide, None, 10)
        .await
        .expect_err("too wide");
    assert_eq!(
        (e.code(), e.class()),
        ("InvalidParameter", ErrorClass::Permanent)
    );

    // An unknown job: 404 ResourceNotFound, which the client calls "not found".
    let e = c
        .get_media_producing_job("ffffffffffffffffffffffffffffffff")
        .await
        .expect_err("unknown");
    assert_eq!(e.class(), ErrorClass::NotFound);
    assert_eq!(sim.job_calls("ffffffffffffffffffffffffffffffff"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_calls_share_the_rate_limit_with_project_polls() {
    let sim = Simulator::start(SimulatorConfig::default())
        .await
        .expect("sim");
    let id = sim.populate(1, 0).remove(0);
    let job = sim.start_production(&id).expect("starts");
    let c = client(&sim, Some(10));
    let started = Instant::now();
    let calls = (0..10).map(|i| {
        let c = c.clone();
        let (id, job) = (id.clone(), job.clone());
        async move {
            if i % 2 == 0 {
                c.get_editing_project(&id).await.map(|_| ())
            } else {
                c.get_media_producing_job(&job).await.map(|_| ())
            }
        }
    });
    for result in futures::future::join_all(calls).await {
        result.expect("answered");
    }
    // One limiter for both actions: 10 requests at 10 per second take ~0.9 s.
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "{:?}",
        started.elapsed()
    );
    assert!(sim.max_requests_in_any_window(Duration::from_secs(1)) <= 11);
}
