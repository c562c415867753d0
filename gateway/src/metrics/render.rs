//! `/metrics` in the Prometheus text format: the plan, per-stage rates, per-link bandwidth and
//! bitwidth, the client's queue and microbatches, and the requests answered.

use super::rates::StageFigures;
use super::requests::RequestMetrics;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use quantpipe_client::ServiceSnapshot;
use quantpipe_messages::{NodeStats, PlanInfo};
use std::sync::atomic::AtomicU64;

type Labels = Vec<(String, String)>;
type FloatGauges = Family<Labels, Gauge<f64, AtomicU64>>;
type Counters = Family<Labels, Counter>;

/// Everything one scrape shows beside the request metrics.
#[derive(Debug, Clone, Default)]
pub struct FleetFigures {
    /// The fleet client's figures, the plan it sends under among them.
    pub client: ServiceSnapshot,
    pub stages: Vec<StageFigures>,
    /// Each node's stats as reported (for its links).
    pub nodes: Vec<NodeStats>,
}

fn labels(pairs: &[(&str, String)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn gauge(registry: &mut Registry, name: &str, help: &str, value: f64) {
    let g: Gauge<f64, AtomicU64> = Gauge::default();
    g.set(value);
    registry.register(name, help, g);
}

fn counter(registry: &mut Registry, name: &str, help: &str, value: u64) {
    let c: Counter = Counter::default();
    c.inc_by(value);
    registry.register(name, help, c);
}

fn register_plan(registry: &mut Registry, plan: &PlanInfo) {
    gauge(
        registry,
        "quantpipe_plan_epoch",
        "Epoch of the plan the gateway sends under",
        plan.epoch as f64,
    );
    gauge(
        registry,
        "quantpipe_plan_stages",
        "Stages of the plan",
        plan.stages.len() as f64,
    );
    gauge(
        registry,
        "quantpipe_plan_ubatch",
        "Items per microbatch of the plan",
        plan.ubatch as f64,
    );
    let units = FloatGauges::default();
    let bits = FloatGauges::default();
    for (i, s) in plan.stages.iter().enumerate() {
        let stage = labels(&[
            ("stage", i.to_string()),
            ("node", s.node.clone()),
            ("first_unit", s.l.to_string()),
            ("last_unit", s.r.to_string()),
        ]);
        units
            .get_or_create(&stage)
            .set((s.r + 1 - s.l.min(s.r + 1)) as f64);
        if i + 1 < plan.stages.len() {
            let link = labels(&[
                ("from_stage", i.to_string()),
                ("to_stage", (i + 1).to_string()),
                ("from", s.node.clone()),
                ("to", plan.stages[i + 1].node.clone()),
            ]);
            bits.get_or_create(&link).set(s.out_bits as f64);
        }
    }
    registry.register(
        "quantpipe_plan_stage_units",
        "Units each stage of the plan runs",
        units,
    );
    registry.register(
        "quantpipe_plan_link_bits",
        "Bitwidth the plan chose for each link",
        bits,
    );
}

fn register_stages(registry: &mut Registry, stages: &[StageFigures]) {
    let items_per_s = FloatGauges::default();
    let busy = FloatGauges::default();
    let items = Counters::default();
    let microbatches = Counters::default();
    for s in stages {
        let l = labels(&[
            ("node", s.node.clone()),
            ("stage", s.stage.map_or("none".into(), |x| x.to_string())),
        ]);
        if let Some(r) = s.items_per_s {
            items_per_s.get_or_create(&l).set(r);
        }
        if let Some(b) = s.busy_share {
            busy.get_or_create(&l).set(b);
        }
        items.get_or_create(&l).inc_by(s.items);
        microbatches.get_or_create(&l).inc_by(s.microbatches);
    }
    registry.register(
        "quantpipe_stage_items_per_second",
        "Items a stage forwarded per second since the previous scrape",
        items_per_s,
    );
    registry.register(
        "quantpipe_stage_busy_ratio",
        "Share of the time since the previous scrape a stage spent in forward passes and the codec",
        busy,
    );
    registry.register(
        "quantpipe_stage_items",
        "Items a stage forwarded since it started",
        items,
    );
    registry.register(
        "quantpipe_stage_microbatches",
        "Microbatches a stage forwarded since it started",
        microbatches,
    );
}

fn register_links(registry: &mut Registry, nodes: &[NodeStats]) {
    let mbps = FloatGauges::default();
    let bits = FloatGauges::default();
    for n in nodes {
        // Links a node sent activations on (into a stage; its own input is listed too, with
        // what arrived and no send time); acknowledgements and results have no bandwidth.
        for link in n
            .links
            .iter()
            .filter(|l| l.messages > 0 && l.put_s > 0.0 && is_stage_input(&l.to))
        {
            let l = labels(&[("node", n.node.clone()), ("to", link.to.clone())]);
            mbps.get_or_create(&l).set(link.mbps);
            bits.get_or_create(&l).set(link.bits_mean);
        }
    }
    registry.register(
        "quantpipe_link_bandwidth_mbps",
        "Measured bandwidth of each link while transmitting, Mbit/s",
        mbps,
    );
    registry.register(
        "quantpipe_link_bits",
        "Mean bitwidth of the activations sent on each link",
        bits,
    );
}

/// Whether `key` is a stage's input (`qp/<fleet>/stage/<n>/in`, [`quantpipe_messages::Keys::stage_in`]).
fn is_stage_input(key: &str) -> bool {
    let mut parts = key.rsplit('/');
    matches!(
        (parts.next(), parts.next(), parts.next()),
        (Some("in"), Some(n), Some("stage")) if n.parse::<u32>().is_ok()
    )
}

fn register_client(registry: &mut Registry, c: &ServiceSnapshot) {
    gauge(
        registry,
        "quantpipe_queue_items",
        "Items admitted and not yet in a microbatch",
        c.queued_items as f64,
    );
    gauge(
        registry,
        "quantpipe_inflight_microbatches",
        "Microbatches sent and not yet answered",
        c.in_flight_microbatches as f64,
    );
    gauge(
        registry,
        "quantpipe_microbatch_fill_ratio",
        "Mean items per microbatch over the plan's ubatch",
        c.mean_fill,
    );
    counter(
        registry,
        "quantpipe_items_answered",
        "Items answered by the fleet",
        c.items_answered,
    );
    counter(
        registry,
        "quantpipe_microbatches_sent",
        "Microbatches sent (first sends)",
        c.microbatches_sent,
    );
    counter(
        registry,
        "quantpipe_microbatches_resent",
        "Microbatches sent again after a re-plan",
        c.resent,
    );
    counter(
        registry,
        "quantpipe_items_refused_full",
        "Items refused because the queue was full",
        c.refused_full,
    );
    counter(
        registry,
        "quantpipe_items_expired",
        "Items whose deadline passed",
        c.expired,
    );
}

/// The text exposition of one scrape.
pub fn render(requests: &RequestMetrics, fleet: &FleetFigures) -> String {
    let mut registry = Registry::default();
    if let Some(plan) = &fleet.client.plan {
        register_plan(&mut registry, plan);
    }
    register_stages(&mut registry, &fleet.stages);
    register_links(&mut registry, &fleet.nodes);
    register_client(&mut registry, &fleet.client);
    registry.register(
        "quantpipe_gateway_requests",
        "Requests answered, by API and status",
        requests.requests.clone(),
    );
    registry.register(
        "quantpipe_gateway_request_duration_seconds",
        "Time from a request's arrival to its answer, by API and status",
        requests.latency.clone(),
    );
    let mut text = String::new();
    // Writing into a String cannot fail.
    encode(&mut text, &registry).expect("encoding metrics into a String");
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use quantpipe_messages::{LinkStats, PlanStage};
    use std::time::Duration;

    fn plan() -> PlanInfo {
        let stage = |node: &str, l, r, out_bits| PlanStage {
            node: node.into(),
            l,
            r,
            out_bits,
            compute_s: 0.0,
            transfer_s: 0.0,
        };
        PlanInfo {
            epoch: 3,
            model: "minilm".into(),
            ubatch: 8,
            source: "planner".into(),
            stages: vec![stage("a", 1, 10, 8), stage("b", 11, 24, 32)],
            predicted_items_per_s: 0.0,
        }
    }

    #[test]
    fn the_plan_shows_units_per_stage_and_bits_per_link() {
        let fleet = FleetFigures {
            client: ServiceSnapshot {
                plan: Some(plan()),
                ..ServiceSnapshot::default()
            },
            ..FleetFigures::default()
        };
        let text = render(&RequestMetrics::default(), &fleet);
        assert!(text.contains("quantpipe_plan_epoch 3"), "{text}");
        assert!(
            text.contains(r#"quantpipe_plan_stage_units{stage="1",node="b",first_unit="11",last_unit="24"} 14"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"quantpipe_plan_link_bits{from_stage="0",to_stage="1",from="a",to="b"} 8"#
            ),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn only_stage_inputs_are_activation_links() {
        assert!(is_stage_input("qp/f/stage/1/in"));
        assert!(!is_stage_input("qp/f/stage/0/ack"));
        assert!(!is_stage_input("qp/f/result/gateway"));
        assert!(!is_stage_input("qp/f/stage/x/in"));
    }

    #[test]
    fn requests_are_counted_by_api_and_status_with_a_histogram() {
        let r = RequestMetrics::default();
        r.observe("embeddings", 200, Duration::from_millis(3));
        r.observe("embeddings", 429, Duration::from_millis(1));
        let text = render(&r, &FleetFigures::default());
        assert!(
            text.contains(r#"quantpipe_gateway_requests_total{api="embeddings",status="429"} 1"#),
            "{text}"
        );
        assert!(
            text.contains("quantpipe_gateway_request_duration_seconds_bucket{"),
            "{text}"
        );
    }

    #[test]
    fn stage_rates_appear_only_once_measured_and_links_only_where_activations_went() {
        let fleet = FleetFigures {
            stages: vec![StageFigures {
                node: "a".into(),
                stage: Some(0),
                items_per_s: None,
                busy_share: None,
                items: 12,
                microbatches: 3,
            }],
            nodes: vec![NodeStats {
                node: "a".into(),
                links: vec![
                    LinkStats {
                        to: "qp/f/stage/1/in".into(),
                        messages: 3,
                        put_s: 0.01,
                        mbps: 900.0,
                        bits_mean: 8.0,
                        ..LinkStats::default()
                    },
                    LinkStats {
                        to: "qp/f/stage/0/in".into(),
                        messages: 3,
                        ..LinkStats::default()
                    },
                    LinkStats {
                        to: "qp/f/stage/0/ack".into(),
                        messages: 3,
                        put_s: 0.01,
                        ..LinkStats::default()
                    },
                ],
                ..NodeStats::default()
            }],
            ..FleetFigures::default()
        };
        let text = render(&RequestMetrics::default(), &fleet);
        assert!(
            !text.contains("quantpipe_stage_items_per_second{"),
            "{text}"
        );
        assert!(
            text.contains(r#"quantpipe_stage_microbatches_total{node="a",stage="0"} 3"#),
            "{text}"
        );
        assert!(
            text.contains(r#"quantpipe_link_bandwidth_mbps{node="a",to="qp/f/stage/1/in"} 900"#),
            "{text}"
        );
        assert!(!text.contains("stage/0/"), "{text}");
    }
}
