//! The service client ([`quantpipe_client::FleetClient`]) against MiniLM fleets on loopback:
//! single texts submitted at once from several threads are packed into microbatches and each
//! answered with what single-process inference gives (32 bits, within 1e-5: items are padded
//! to their microbatch's longest, the reference runs each alone); a stage's node dying during a
//! burst loses no accepted item and answers none twice; a full queue and a passed deadline
//! are told apart and cost no item accepted before them.

use quantpipe_actors::runtime::config::{DeviceSettings, Role, Settings};
use quantpipe_client::{
    FleetClient, InputKind, Item, ItemError, ItemResult, ServiceOptions, SubmitError, Task,
};
use quantpipe_integration::{fmnist_vit_dir, minilm_dir, quantpipe_bin, single_process_outputs};
use quantpipe_launcher::minilm::long_texts;
use quantpipe_launcher::{config_file, free_ports, write_uniform_profile, Fleet, Place};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The plan's microbatch size in every fleet here.
const UBATCH: usize = 4;

/// A leader and device nodes of one test fleet on loopback, in a temporary folder.
struct ServiceFleet {
    bin: PathBuf,
    model: PathBuf,
    fleet: String,
    ports: Vec<u16>,
    nodes: Fleet,
    /// Last, so the processes are gone before their folder is.
    dir: tempfile::TempDir,
}

impl ServiceFleet {
    /// A MiniLM fleet: a leader planning microbatches of [`UBATCH`] at 32 bits over `devices`
    /// (slowed down `slowdown` times, so that work is still in flight when the test acts),
    /// once it logged a plan with one stage per device.
    fn start(tag: &str, devices: &[&str], slowdown: f64) -> Self {
        let stages: Vec<(&str, Option<[usize; 2]>)> = devices.iter().map(|&d| (d, None)).collect();
        Self::start_model(tag, minilm_dir(), 24, &stages, slowdown)
    }

    /// A fleet of `model` (`units` units) over `stages`: planned where no stage gives its
    /// units, forced otherwise.
    fn start_model(
        tag: &str,
        model: PathBuf,
        units: usize,
        stages: &[(&str, Option<[usize; 2]>)],
        slowdown: f64,
    ) -> Self {
        let bin = quantpipe_bin();
        let dir = tempfile::tempdir().unwrap();
        // Equal profiles: the planner spreads the units over every device.
        let profile = dir.path().join("profile.json");
        write_uniform_profile(&profile, "m", units, UBATCH, 1).unwrap();
        let mut f = ServiceFleet {
            nodes: Fleet::new(&bin, dir.path()),
            bin,
            model,
            dir,
            fleet: format!("{tag}{}", std::process::id()),
            ports: free_ports(stages.len() + 2).unwrap(),
        };
        let mut leader = f.settings("leader", Role::Leader, f.ports[0], None);
        leader.leader.expected = stages.iter().map(|(n, _)| n.to_string()).collect();
        leader.leader.wait_s = 60.0;
        leader.leader.ubatch = UBATCH;
        leader.leader.bits = 32;
        let forced: Option<Vec<(&str, [usize; 2])>> =
            stages.iter().map(|&(n, u)| u.map(|u| (n, u))).collect();
        if let Some(forced) = forced {
            leader.leader.stages = config_file::forced(&forced);
        }
        f.nodes.start(&leader, Place::Here).unwrap();
        for (i, (name, _)) in stages.iter().enumerate() {
            let mut s = f.settings(name, Role::Device, f.ports[i + 1], Some(f.ports[0]));
            s.device = DeviceSettings {
                threads: 1,
                slowdown,
                profile_ubatch: UBATCH,
                profile_file: Some(profile.clone()),
                ..DeviceSettings::default()
            };
            f.nodes.start(&s, Place::Here).unwrap();
        }
        let last = format!("stage {} =", stages.len() - 1);
        let log = f.dir.path().join("leader.log");
        f.nodes
            .procs()
            .wait_for_file(
                &log,
                "a plan over every device",
                Duration::from_secs(90),
                |t| t.contains(&last),
            )
            .unwrap_or_else(|e| panic!("{e:#}"));
        f
    }

    fn settings(&self, name: &str, role: Role, listen: u16, connect: Option<u16>) -> Settings {
        config_file::loopback_peer(&self.fleet, name, role, &self.model, listen, connect)
    }

    /// The service client of this fleet.
    fn client(&self, options: ServiceOptions) -> FleetClient {
        let port = *self.ports.last().unwrap();
        let mut s = self.settings("service", Role::Device, port, Some(self.ports[0]));
        s.client.plan_wait_s = 90.0;
        s.client.stall_s = 2.0;
        FleetClient::connect(&s, options)
            .unwrap_or_else(|e| panic!("connecting: {e:#}\n{}", self.nodes.logs()))
    }

    /// The node of stage `i` in the leader's latest logged plan.
    fn stage_node(&self, i: usize) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("leader.log")).unwrap();
        let needle = format!("stage {i} = ");
        log.lines()
            .rev()
            .find_map(|l| l.split(needle.as_str()).nth(1))
            .and_then(|rest| rest.split(' ').next())
            .unwrap_or_else(|| panic!("the leader logs no stage {i}:\n{log}"))
            .to_owned()
    }

    /// Single-process inference of each text alone (one thread, microbatches of one).
    fn single_process(&mut self, texts: &[String]) -> Vec<Vec<f32>> {
        let input = self.dir.path().join("texts.txt");
        std::fs::write(&input, texts.join("\n")).unwrap();
        self.infer(&input)
    }

    /// Single-process inference of `input` (a text file or an image folder), item by item.
    fn infer(&mut self, input: &Path) -> Vec<Vec<f32>> {
        let (bin, model) = (self.bin.clone(), self.model.clone());
        single_process_outputs(self.nodes.procs(), "infer", &bin, &model, input, 1)
    }
}

/// `n` texts of 4 to 33 words, so that microbatches hold items of different lengths.
fn texts(n: usize) -> Vec<String> {
    long_texts(n, 40)
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            let words = 4 + (i * 7) % 30;
            t.split(' ').take(words + 2).collect::<Vec<_>>().join(" ")
        })
        .collect()
}

/// Submits every text as its own request, `threads` threads at once (each submits its share
/// without waiting, then waits for all of it), and answers each text's result in order.
fn submit_singly(client: &FleetClient, texts: &[String], threads: usize) -> Vec<ItemResult> {
    let mut results: Vec<Option<ItemResult>> = vec![None; texts.len()];
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    let mine: Vec<usize> = (t..texts.len()).step_by(threads).collect();
                    let submitted: Vec<_> = mine
                        .iter()
                        .map(|&i| {
                            client
                                .submit(vec![Item::Text(texts[i].clone())], None)
                                .unwrap_or_else(|e| panic!("text {i} refused: {e}"))
                        })
                        .collect();
                    let answers: Vec<ItemResult> =
                        submitted.into_iter().map(|s| s.wait().remove(0)).collect();
                    mine.into_iter().zip(answers).collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            for (i, r) in h.join().unwrap() {
                results[i] = Some(r);
            }
        }
    });
    results.into_iter().map(Option::unwrap).collect()
}

/// Panics naming the first item whose output is missing or differs from `single` by more
/// than 1e-5 in a value.
fn assert_close(results: &[ItemResult], single: &[Vec<f32>]) {
    assert_eq!(results.len(), single.len(), "number of items");
    for (i, (r, want)) in results.iter().zip(single).enumerate() {
        let got = match r {
            Ok(o) => &o.values,
            Err(e) => panic!("item {i} got no output: {e}"),
        };
        assert_eq!(got.len(), want.len(), "item {i}: output width");
        let worst = got
            .iter()
            .zip(want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(
            worst <= 1e-5,
            "item {i} differs from single-process by {worst}"
        );
    }
}

#[test]
fn concurrent_single_texts_fill_microbatches_and_equal_single_process_inference() {
    let mut f = ServiceFleet::start("svcfill", &["a", "b"], 1.0);
    let client = f.client(ServiceOptions::default());
    let texts = texts(48);
    let results = submit_singly(&client, &texts, 4);
    let snap = client.snapshot();
    eprintln!("service figures: {snap:?}");
    client.close();
    assert_close(&results, &f.single_process(&texts));
    let items_per_microbatch = snap.mean_fill * UBATCH as f64;
    assert!(
        items_per_microbatch > 1.0,
        "microbatches did not fill: {snap:?}"
    );
    assert_eq!(snap.items_answered, texts.len() as u64, "{snap:?}");
    assert_eq!(snap.plan.unwrap().stages.len(), 2);
}

#[test]
fn a_stage_node_dying_during_a_burst_loses_no_accepted_item_and_answers_none_twice() {
    let mut f = ServiceFleet::start("svcreplan", &["a", "b", "c"], 3.0);
    let client = f.client(ServiceOptions {
        default_deadline: Duration::from_secs(240),
        ..ServiceOptions::default()
    });
    let first_epoch = client.snapshot().plan.unwrap().epoch;
    let texts = texts(40);
    let victim = f.stage_node(1);
    let results = std::thread::scope(|scope| {
        let burst = scope.spawn(|| submit_singly(&client, &texts, 4));
        // Killed once the burst is under way: some items answered, most still to come.
        let start = Instant::now();
        while client.snapshot().items_answered < UBATCH as u64 {
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "no result: {:?}",
                client.snapshot()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        f.nodes.procs().kill(&victim).unwrap();
        burst.join().unwrap()
    });
    let snap = client.snapshot();
    eprintln!("service figures: {snap:?}");
    client.close();
    let plan = snap.plan.clone().unwrap();
    assert!(plan.epoch > first_epoch, "no re-plan: {snap:?}");
    assert!(
        plan.stages.iter().all(|s| s.node != victim),
        "{victim} still planned: {plan:?}"
    );
    assert!(snap.resent > 0, "nothing was sent again: {snap:?}");
    // Every accepted item was answered, each once (a second answer would count twice).
    assert_eq!(snap.items_answered, texts.len() as u64, "{snap:?}");
    assert_close(&results, &f.single_process(&texts));
}

#[test]
fn a_full_queue_refuses_and_a_short_deadline_expires_without_losing_accepted_items() {
    let mut f = ServiceFleet::start("svcfull", &["a", "b"], 3.0);
    let client = f.client(ServiceOptions {
        queue_items: 2 * UBATCH + 1,
        ..ServiceOptions::default()
    });
    let texts = texts(2 * UBATCH + 2);
    let (accepted, extra) = texts.split_at(2 * UBATCH);
    let items = |t: &[String]| t.iter().cloned().map(Item::Text).collect::<Vec<_>>();
    let first = client.submit(items(accepted), None).unwrap();
    // One place is left: a request of two is refused whole, with a time to retry.
    match client.submit(items(extra), None) {
        Err(SubmitError::Full { retry_after }) => assert!(retry_after > Duration::ZERO),
        other => panic!("expected a full queue, got {other:?}"),
    }
    let short = client
        .submit(items(&extra[..1]), Some(Duration::from_millis(1)))
        .unwrap();
    assert_eq!(short.wait(), vec![Err(ItemError::Deadline)]);
    let mut results = first.wait();
    // Room again: the refused request goes through when retried.
    results.extend(client.submit(items(extra), None).unwrap().wait());
    let snap = client.snapshot();
    eprintln!("service figures: {snap:?}");
    client.close();
    assert_eq!((snap.refused_full, snap.expired), (1, 1), "{snap:?}");
    assert_close(&results, &f.single_process(&texts));
}

/// `n` seeded 28x28 grey images as PNG bytes (lossless: `quantpipe infer` reads the very pixels
/// the service is given).
fn grey_pngs(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let img = image::GrayImage::from_fn(28, 28, |x, y| {
                image::Luma([((x * 9 + y * 5 + i as u32 * 37) % 256) as u8])
            });
            let mut png = Vec::new();
            img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
                .unwrap();
            png
        })
        .collect()
}

#[test]
fn encoded_images_from_several_threads_are_classified_as_single_process_inference() {
    let model = fmnist_vit_dir();
    let stages = [("a", Some([1, 8])), ("b", Some([9, 16]))];
    let mut f = ServiceFleet::start_model("svcimg", model, 16, &stages, 1.0);
    let client = f.client(ServiceOptions::default());
    let m = client.model().clone();
    assert_eq!((m.input, m.task), (InputKind::Image, Task::Classification));
    assert_eq!((m.image_shape, m.labels.len()), (Some([1, 28, 28]), 10));
    let pngs = grey_pngs(24);
    let folder = f.dir.path().join("images");
    std::fs::create_dir_all(&folder).unwrap();
    for (i, png) in pngs.iter().enumerate() {
        std::fs::write(folder.join(format!("{i:05}.png")), png).unwrap();
    }
    let results: Vec<ItemResult> = std::thread::scope(|scope| {
        let handles: Vec<_> = pngs
            .chunks(6)
            .map(|chunk| {
                let client = &client;
                scope.spawn(move || {
                    let submitted: Vec<_> = chunk
                        .iter()
                        .map(|png| client.submit(vec![Item::Image(png.clone())], None).unwrap())
                        .collect();
                    submitted
                        .into_iter()
                        .map(|s| s.wait().remove(0))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    // Bytes that are no image are refused before any stage sees them.
    match client.submit(vec![Item::Image(b"not an image".to_vec())], None) {
        Err(SubmitError::BadItem { index: 0, reason }) => assert!(reason.contains("image")),
        other => panic!("expected a bad item, got {other:?}"),
    }
    let snap = client.snapshot();
    eprintln!("service figures: {snap:?}");
    client.close();
    assert!(results
        .iter()
        .all(|r| r.as_ref().is_ok_and(|o| o.tokens == 0)));
    assert_close(&results, &f.infer(&folder));
}
