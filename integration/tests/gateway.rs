//! `quantpipe serve` in front of a MiniLM fleet on loopback at 32 bits: embeddings equal
//! single-process inference, bad requests are refused naming the problem without reaching a
//! stage, a full queue answers 429 with Retry-After, and a request past its deadline 504.

mod gateway_support;

use gateway_support::{GatewayFleet, Shape};
use quantpipe_integration::{minilm_dir, single_process_outputs};
use serde_json::{json, Value};
use std::time::Duration;

fn minilm_fleet(tag: &str, devices: usize, slowdown: f64, gateway: &str) -> GatewayFleet {
    GatewayFleet::start(Shape {
        tag,
        model: minilm_dir(),
        units: 24,
        devices,
        ubatch: 4,
        slowdown,
        gateway,
    })
}

const TEXTS: [&str; 6] = [
    "The central bank raised interest rates again.",
    "A late goal settled the cup final.",
    "Parliament debated the budget until midnight, and the vote was postponed to next week.",
    "Shares fell after a profit warning.",
    "Researchers released a speech model.",
    "Rain.",
];

fn rows(answer: &Value) -> Vec<Vec<f32>> {
    answer["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no data in {answer}"))
        .iter()
        .map(|d| serde_json::from_value(d["embedding"].clone()).unwrap())
        .collect()
}

fn assert_close(got: &[Vec<f32>], want: &[Vec<f32>]) {
    assert_eq!(got.len(), want.len(), "number of embeddings");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.len(), w.len(), "item {i}: length");
        let worst = g
            .iter()
            .zip(w)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            worst <= 1e-5,
            "item {i}: differs from single-process inference by {worst}"
        );
    }
}

#[test]
fn embeddings_from_one_request_and_from_concurrent_requests_equal_single_process_inference() {
    let f = minilm_fleet(
        "gwemb",
        2,
        1.0,
        "max_delay_ms = 20\nserved_name = \"minilm\"",
    );
    std::fs::write(f.path("texts.txt"), TEXTS.join("\n")).unwrap();
    let mut procs = quantpipe_launcher::Procs::new(f.dir.path());
    let single = single_process_outputs(
        &mut procs,
        "infer",
        &f.bin,
        &f.model,
        &f.path("texts.txt"),
        4,
    );

    let answer = f.post(
        "/v1/embeddings",
        &json!({"model": "minilm", "input": TEXTS}).to_string(),
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_close(&rows(&answer.body), &single);
    assert!(answer.body["usage"]["prompt_tokens"].as_u64().unwrap() >= TEXTS.len() as u64);

    // One text per request, all at once: the gateway packs them into shared microbatches.
    let concurrent: Vec<Vec<f32>> = std::thread::scope(|s| {
        let handles: Vec<_> = TEXTS
            .iter()
            .map(|t| {
                let f = &f;
                s.spawn(move || {
                    f.post(
                        "/v1/embeddings",
                        &json!({"model": "minilm", "input": t}).to_string(),
                    )
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                let a = h.join().unwrap();
                assert_eq!(a.status, 200, "{}", a.body);
                rows(&a.body).remove(0)
            })
            .collect()
    });
    assert_close(&concurrent, &single);

    // The same through the Open Inference Protocol.
    let infer = json!({"inputs": [{"name": "text", "shape": [TEXTS.len()], "datatype": "BYTES", "data": TEXTS}]});
    let answer = f.post("/v2/models/minilm/infer", &infer.to_string());
    assert_eq!(answer.status, 200, "{}", answer.body);
    let out = &answer.body["outputs"][0];
    assert_eq!(out["shape"], json!([TEXTS.len(), 384]));
    let flat: Vec<f32> = serde_json::from_value(out["data"].clone()).unwrap();
    let v2_rows: Vec<Vec<f32>> = flat.chunks(384).map(<[f32]>::to_vec).collect();
    assert_close(&v2_rows, &single);
}

#[test]
fn bad_requests_get_400_or_413_naming_the_problem_and_never_reach_a_stage() {
    let f = minilm_fleet(
        "gwbad",
        1,
        1.0,
        "max_body_bytes = 4096\nserved_name = \"minilm\"",
    );
    let ok = f.post(
        "/v1/embeddings",
        r#"{"model": "minilm", "input": "warm up"}"#,
    );
    assert_eq!(ok.status, 200, "{}", ok.body);
    let before = f.stage_microbatches();

    let long_text = vec!["word"; 300].join(" ");
    let cases: Vec<(&str, String, u16, &str)> = vec![
        ("/v1/embeddings", json!({"model": "gpt-4", "input": "x"}).to_string(), 400, "gpt-4"),
        ("/v1/embeddings", json!({"model": "minilm", "input": long_text}).to_string(), 400, "tokens"),
        ("/v1/embeddings", json!({"model": "minilm", "input": []}).to_string(), 400, "empty"),
        ("/v1/embeddings", json!({"model": "minilm", "input": [[101, 999999999]]}).to_string(), 400, "item 0"),
        ("/v1/embeddings", "{not json".to_string(), 400, "JSON"),
        ("/v1/embeddings", json!({"model": "minilm", "input": "x".repeat(5000)}).to_string(), 413, "4096"),
        (
            "/v2/models/bert/infer",
            json!({"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["x"]}]}).to_string(),
            400,
            "unknown model 'bert'",
        ),
        (
            "/v2/models/minilm/infer",
            json!({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [0.0, 1.0, 2.0, 3.0]}]}).to_string(),
            400,
            "BYTES texts or INT64 token ids",
        ),
        (
            "/v2/models/minilm/infer",
            json!({"inputs": [{"name": "text", "shape": [3], "datatype": "BYTES", "data": ["a", "b"]}]}).to_string(),
            400,
            "3 elements but 2",
        ),
        (
            "/v2/models/minilm/infer",
            json!({"inputs": [{"name": "text", "shape": [1], "datatype": "FP16", "data": [1]}]}).to_string(),
            400,
            "FP16",
        ),
    ];
    for (path, body, status, needle) in &cases {
        let a = f.post(path, body);
        assert_eq!(a.status, *status, "{path} {body:.80}: {}", a.body);
        let text = a.body.to_string();
        assert!(
            text.contains(needle),
            "{path}: the answer does not name '{needle}': {text}"
        );
    }
    // Every refusal happened before anything was queued: no stage ran another microbatch.
    assert_eq!(f.stage_microbatches(), before);
}

#[test]
fn a_full_queue_answers_429_with_retry_after_and_loses_nothing_accepted() {
    // One slowed stage: four items fill the queue for seconds.
    let f = minilm_fleet(
        "gwfull",
        1,
        20.0,
        "queue_items = 4\nmax_delay_ms = 1\nserved_name = \"minilm\"",
    );
    std::thread::scope(|s| {
        let first = s.spawn(|| {
            f.post(
                "/v1/embeddings",
                &json!({"model": "minilm", "input": ["a", "b", "c", "d"]}).to_string(),
            )
        });
        // Until the first request is admitted, a second one may still get in: retry briefly.
        let mut refused = None;
        for _ in 0..40 {
            std::thread::sleep(Duration::from_millis(100));
            let a = f.post(
                "/v1/embeddings",
                &json!({"model": "minilm", "input": "e"}).to_string(),
            );
            if a.status == 429 {
                refused = Some(a);
                break;
            }
        }
        let refused = refused.expect("no request was refused while the queue was full");
        let retry: u64 = refused
            .retry_after
            .as_deref()
            .expect("a Retry-After header")
            .parse()
            .unwrap();
        assert!(retry >= 1, "Retry-After {retry}");
        assert_eq!(
            refused.body["error"]["type"], "rate_limit_error",
            "{}",
            refused.body
        );
        let first = first.join().unwrap();
        assert_eq!(first.status, 200, "{}", first.body);
        assert_eq!(first.body["data"].as_array().unwrap().len(), 4);
    });
}

#[test]
fn a_request_past_its_deadline_answers_504_and_the_next_one_is_served() {
    let f = minilm_fleet("gwlate", 1, 10.0, "served_name = \"minilm\"");
    let late = json!({
        "parameters": {"timeout": 20_000},
        "inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["too late"]}],
    });
    let a = f.post("/v2/models/minilm/infer", &late.to_string());
    assert_eq!(a.status, 504, "{}", a.body);
    assert!(
        a.body["error"].as_str().unwrap().contains("deadline"),
        "{}",
        a.body
    );
    let on_time = json!({"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["on time"]}]});
    let a = f.post("/v2/models/minilm/infer", &on_time.to_string());
    assert_eq!(a.status, 200, "{}", a.body);
}
