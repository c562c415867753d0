//! Images through a fleet with `quantpipe run`: the trained Fashion-MNIST ViT over three nodes
//! on the data set's IDX files, and DeiT-tiny over two nodes on a folder of PNGs in class
//! subfolders, each at 32 bits. Every item's label (the argmax of its logits) must be the one
//! single-process `quantpipe infer` gives the same images, and the run reports accuracy since
//! the labels are known.

use flate2::read::GzDecoder;
use quantpipe_actors::runtime::config::{Role, Settings};
use quantpipe_integration::{
    fmnist_vit_dir, quantpipe_bin, read_outputs, single_process_labels, write_loopback_client,
};
use quantpipe_launcher::config_file::{self, loopback_peer};
use quantpipe_launcher::{
    free_ports, write_uniform_profile, ClientRun, Fleet, Launch, Place, Procs,
};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the Debian package `dataset-fashion-mnist` installs the data set.
const FASHION_MNIST: &str = "/usr/share/datasets/fashion-mnist";
/// Test images of the Fashion-MNIST run.
const FASHION_ITEMS: usize = 300;

/// The Fashion-MNIST test images file; panics naming the package when it is missing.
fn fashion_mnist_test_images() -> PathBuf {
    let path = Path::new(FASHION_MNIST).join("t10k-images-idx3-ubyte.gz");
    assert!(
        path.exists(),
        "{} is missing: install the Debian package dataset-fashion-mnist",
        path.display()
    );
    path
}

/// Writes the first `n` images of an IDX images file as `dir/00000.png`, ... (lossless, so
/// `quantpipe infer` reads the very pixels the fleet is given).
fn write_idx_images_as_png(images: &Path, n: usize, dir: &Path) {
    let mut bytes = Vec::new();
    GzDecoder::new(std::fs::File::open(images).unwrap())
        .read_to_end(&mut bytes)
        .unwrap();
    let word = |i: usize| u32::from_be_bytes(bytes[4 * i..4 * i + 4].try_into().unwrap());
    assert_eq!(word(0), 0x0803, "an IDX file of u8 images");
    let (h, w) = (word(2), word(3));
    let size = (h * w) as usize;
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..n {
        let pixels = bytes[16 + i * size..16 + (i + 1) * size].to_vec();
        image::GrayImage::from_raw(w, h, pixels)
            .unwrap()
            .save(dir.join(format!("{i:05}.png")))
            .unwrap();
    }
}

/// Starts a leader and one single-threaded device node per forced stage, on loopback, the
/// leader planning microbatches of `ubatch` at 32 bits; answers the client's settings file.
fn start_fleet(
    nodes: &mut Fleet,
    dir: &Path,
    model: &Path,
    stages: &[(&str, [usize; 2])],
    ubatch: usize,
) -> PathBuf {
    let units = stages.last().unwrap().1[1];
    let profile = dir.join("profile.json");
    write_uniform_profile(&profile, "m", units, ubatch, 1).unwrap();
    let ports = free_ports(stages.len() + 2).unwrap();
    let fleet = format!("img{}{}", stages.len(), std::process::id());
    let mut leader = loopback_peer(&fleet, "leader", Role::Leader, model, ports[0], None);
    leader.leader.expected = stages.iter().map(|(n, _)| n.to_string()).collect();
    leader.leader.wait_s = 60.0;
    leader.leader.ubatch = ubatch;
    leader.leader.bits = 32;
    leader.leader.stages = config_file::forced(stages);
    nodes.start(&leader, Place::Here).unwrap();
    for (i, (name, _)) in stages.iter().enumerate() {
        let mut device: Settings = loopback_peer(
            &fleet,
            name,
            Role::Device,
            model,
            ports[i + 1],
            Some(ports[0]),
        );
        device.device.threads = 1;
        device.device.profile_ubatch = ubatch;
        device.device.profile_file = Some(profile.clone());
        nodes.start(&device, Place::Here).unwrap();
    }
    write_loopback_client(dir, &fleet, model, ports[stages.len() + 1], ports[0])
}

/// `quantpipe run` over `input` (plus `extra` flags) to completion: its JSON report, and every
/// item's label (argmax of its output row).
fn run_labels(
    procs: &mut Procs,
    bin: &Path,
    client: &Path,
    input: &Path,
    extra: &[&str],
) -> (serde_json::Value, Vec<usize>) {
    let outputs = procs.dir().join("outputs.json");
    let mut args = ClientRun::new(client, input)
        .save_outputs(&outputs)
        .json()
        .args();
    args.extend(extra.iter().map(|a| a.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = procs
        .run_launch("client", &Launch::new(bin, &args), Duration::from_secs(240))
        .unwrap_or_else(|e| panic!("{e:#}"));
    let report: serde_json::Value = serde_json::from_str(out.trim()).expect("run --json output");
    let labels = read_outputs(&outputs).iter().map(|r| argmax(r)).collect();
    (report, labels)
}

fn argmax(row: &[f32]) -> usize {
    (0..row.len())
        .max_by(|&a, &b| row[a].total_cmp(&row[b]))
        .expect("an output row with values")
}

/// Panics naming the items whose labels differ.
fn assert_same_labels(fleet: &[usize], single: &[usize]) {
    assert_eq!(fleet.len(), single.len(), "number of items");
    let differ: Vec<usize> = (0..fleet.len())
        .filter(|&i| fleet[i] != single[i])
        .collect();
    assert!(
        differ.is_empty(),
        "items {differ:?} are labelled otherwise than by single-process inference"
    );
}

#[test]
fn fashion_mnist_vit_over_three_nodes_labels_test_images_as_single_process_inference() {
    let bin = quantpipe_bin();
    let model = fmnist_vit_dir();
    let images = fashion_mnist_test_images();
    let dir = tempfile::tempdir().unwrap();
    let pngs = dir.path().join("pngs");
    write_idx_images_as_png(&images, FASHION_ITEMS, &pngs);
    // 16 units: cuts after unit 3 (MLP in: two tensors, one post-GELU) and unit 9 (attention:
    // two tensors).
    let stages = [("a", [1, 3]), ("b", [4, 9]), ("c", [10, 16])];
    let mut nodes = Fleet::new(&bin, dir.path());
    let client = start_fleet(&mut nodes, dir.path(), &model, &stages, 16);
    let limit = FASHION_ITEMS.to_string();
    let procs = nodes.procs();
    let (report, fleet) = run_labels(procs, &bin, &client, &images, &["--limit", &limit]);
    assert_eq!(report["items"], FASHION_ITEMS);
    assert_eq!(report["plan"]["stages"].as_array().unwrap().len(), 3);
    let single = single_process_labels(procs, "infer-pngs", &bin, &model, &pngs, 16);
    assert_same_labels(&fleet, &single);
    // The labels come from the data set's labels file; the model scores 88% on the whole
    // test split.
    let accuracy = report["accuracy"]
        .as_f64()
        .expect("the run reports accuracy");
    eprintln!(
        "Fashion-MNIST ViT, 3 nodes, 32 bits: {FASHION_ITEMS} of {FASHION_ITEMS} labels equal \
         to single-process inference; accuracy {:.2}%",
        accuracy * 100.0
    );
    assert!(accuracy > 0.8, "accuracy {accuracy}");
}

#[test]
fn deit_over_two_nodes_labels_class_folders_of_pngs_as_single_process_inference() {
    let bin = quantpipe_bin();
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("deit");
    let mut nodes = Fleet::new(&bin, dir.path());
    let procs = nodes.procs();
    procs
        .run_to_end(
            "export",
            &bin,
            &[
                "export-preset",
                "--preset",
                "deit-tiny-distilled-patch16-224",
                "--out",
                model.to_str().unwrap(),
            ],
            Duration::from_secs(120),
        )
        .unwrap_or_else(|e| panic!("{e:#}"));
    // Two classes by index (the preset has no id2label), four images each: one microbatch
    // each. Odd, different sizes, so the preprocessor resizes every one to 224x224.
    let images = dir.path().join("images");
    for (class, seed) in [("3", 1u32), ("7", 2)] {
        std::fs::create_dir_all(images.join(class)).unwrap();
        for i in 0..4u32 {
            let (w, h) = (40 + 9 * i, 30 + 5 * seed);
            let img = image::RgbImage::from_fn(w, h, |x, y| {
                let v = |k: u32| ((x * (k + seed) + y * (3 + i) + k * 50) % 256) as u8;
                image::Rgb([v(1), v(2), v(3)])
            });
            img.save(images.join(class).join(format!("{i}.png")))
                .unwrap();
        }
    }
    // 48 units: the cut after unit 23 carries the post-GELU pair.
    let stages = [("a", [1, 23]), ("b", [24, 48])];
    let client = start_fleet(&mut nodes, dir.path(), &model, &stages, 4);
    let procs = nodes.procs();
    let (report, fleet) = run_labels(procs, &bin, &client, &images, &[]);
    assert_eq!(report["items"], 8);
    assert_eq!(report["plan"]["stages"].as_array().unwrap().len(), 2);
    // infer reads one folder at a time: the class folders in the order the run read them.
    let mut single = single_process_labels(procs, "infer-3", &bin, &model, &images.join("3"), 4);
    single.extend(single_process_labels(
        procs,
        "infer-7",
        &bin,
        &model,
        &images.join("7"),
        4,
    ));
    assert_same_labels(&fleet, &single);
    // Seeded random weights label at chance; what matters is that labels were known.
    let expected: Vec<usize> = [3, 3, 3, 3, 7, 7, 7, 7].to_vec();
    let correct = fleet.iter().zip(&expected).filter(|(a, b)| a == b).count();
    assert_eq!(report["accuracy"].as_f64(), Some(correct as f64 / 8.0));
}
