//! Clients nobody here wrote, installed from PyPI into `.venv` by scripts/setup, against
//! `quantpipe serve` on loopback fleets at 32 bits: the `openai` package's embeddings equal
//! single-process MiniLM inference within 1e-5, `prometheus_client` parses /metrics, and
//! `tritonclient.http` classifies Fashion-MNIST PNGs with the labels of single-process ViT
//! inference.

mod gateway_support;

use flate2::read::GzDecoder;
use gateway_support::{GatewayFleet, Shape};
use quantpipe_integration::{
    fmnist_vit_dir, minilm_dir, single_process_labels, single_process_outputs,
};
use std::io::Read;
use std::path::Path;

const TEXTS: [&str; 5] = [
    "The central bank raised interest rates again.",
    "A late goal settled the cup final.",
    "Parliament debated the budget until midnight.",
    "Shares fell after a profit warning.",
    "Researchers released a speech model.",
];

#[test]
fn openai_client_embeddings_equal_single_process_inference_and_prometheus_client_parses_metrics() {
    let f = GatewayFleet::start(Shape {
        tag: "gwpy",
        model: minilm_dir(),
        units: 24,
        devices: 2,
        ubatch: 4,
        slowdown: 1.0,
        gateway: "max_delay_ms = 20\nserved_name = \"minilm\"",
    });
    let texts = f.path("texts.txt");
    std::fs::write(&texts, TEXTS.join("\n")).unwrap();
    let mut procs = quantpipe_launcher::Procs::new(f.dir.path());
    let single = single_process_outputs(&mut procs, "infer", &f.bin, &f.model, &texts, 4);
    let expected = f.path("expected.json");
    std::fs::write(&expected, serde_json::to_string(&single).unwrap()).unwrap();
    f.python(
        "openai_embeddings.py",
        &[
            &f.url,
            "minilm",
            texts.to_str().unwrap(),
            expected.to_str().unwrap(),
        ],
    );
    f.python("prometheus_metrics.py", &[&f.url, "2", "minilm"]);
}

/// Writes the first `n` test images of Fashion-MNIST (the Debian package's IDX file) as
/// `dir/00000.png`, ... (lossless).
fn write_fashion_mnist_pngs(n: usize, dir: &Path) {
    let path = Path::new("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz");
    assert!(
        path.exists(),
        "{} is missing: run scripts/setup --tests",
        path.display()
    );
    let mut raw = Vec::new();
    GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_end(&mut raw)
        .unwrap();
    let side = 28usize;
    // IDX header: magic, count, rows, columns (big-endian u32 each).
    let pixels = &raw[16..];
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..n {
        let image = image::GrayImage::from_raw(
            side as u32,
            side as u32,
            pixels[i * side * side..(i + 1) * side * side].to_vec(),
        )
        .unwrap();
        image.save(dir.join(format!("{i:05}.png"))).unwrap();
    }
}

#[test]
fn tritonclient_classifies_fashion_mnist_pngs_with_the_labels_of_single_process_inference() {
    let f = GatewayFleet::start(Shape {
        tag: "gwvit",
        model: fmnist_vit_dir(),
        units: 16,
        devices: 2,
        ubatch: 8,
        slowdown: 1.0,
        gateway: "max_delay_ms = 20\nserved_name = \"fmnist-vit\"",
    });
    let images = f.path("pngs");
    write_fashion_mnist_pngs(32, &images);
    let mut procs = quantpipe_launcher::Procs::new(f.dir.path());
    let single = single_process_labels(&mut procs, "infer", &f.bin, &f.model, &images, 8);
    let expected = f.path("expected.json");
    std::fs::write(&expected, serde_json::to_string(&single).unwrap()).unwrap();
    let url = f.url.trim_start_matches("http://").to_owned();
    f.python(
        "triton_classify.py",
        &[
            &url,
            "fmnist-vit",
            images.to_str().unwrap(),
            expected.to_str().unwrap(),
        ],
    );
}
