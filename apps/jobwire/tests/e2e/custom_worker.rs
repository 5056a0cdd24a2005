//! A worker of your own, as the README builds and runs it: the example
//! `thumbnail-worker` (examples/custom-rust-worker) beside a real
//! `jobwire-api`, both processes, on one Postgres database and Redis prefix.

use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use image::{DynamicImage, ImageFormat, Rgb, RgbImage};
use serde_json::json;

use crate::processes::{command, create_via, start_api};
use crate::support::{Options, SpawnProc, Ws, job, spawn_app_with};

/// `thumbnail-worker` lies beside this package's binaries: another package's
/// binary has no `CARGO_BIN_EXE_`. `cargo test --workspace` builds it (its
/// own package's integration test needs it).
fn thumbnail_worker() -> String {
    let path = PathBuf::from(env!("CARGO_BIN_EXE_jobwire-api")).with_file_name("thumbnail-worker");
    assert!(
        path.is_file(),
        "{} is missing: build it with `cargo build -p jobwire-example-thumbnail` \
         (`cargo test --workspace` does)",
        path.display()
    );
    path.to_str().expect("a UTF-8 target directory").to_owned()
}

/// A `width`×`height` PNG whose red grows left to right and green top to bottom.
fn gradient_png(width: u32, height: u32) -> Vec<u8> {
    let image = RgbImage::from_fn(width, height, |x, y| {
        let red = x * 255 / (width - 1);
        let green = y * 255 / (height - 1);
        Rgb([red as u8, green as u8, 64])
    });
    let mut png = Vec::new();
    DynamicImage::ImageRgb8(image)
        .write_to(&mut std::io::Cursor::new(&mut png), ImageFormat::Png)
        .unwrap();
    png
}

#[tokio::test]
async fn a_custom_rust_worker_turns_a_real_image_into_a_thumbnail_with_progress() {
    let app = spawn_app_with(Options::without_worker()).await;
    let (_api, addr) = start_api(&app).await;
    let _worker = command(&thumbnail_worker(), &app).spawn_proc();
    let token = app.token("acme");
    let mut ws = Ws::connect(addr.parse().unwrap(), &token).await;

    let image = STANDARD.encode(gradient_png(640, 480));
    let body = job(
        "thumbnail",
        json!({"image": image, "maxWidth": 128, "maxHeight": 128}),
    );
    let id = create_via(&reqwest::Client::new(), &addr, &token, body).await;
    let updates = ws.until_status(&id, "succeeded").await;

    let progress: Vec<_> = updates
        .iter()
        .filter(|u| u["status"] == "running" && !u["progress"].is_null())
        .map(|u| u["progress"].clone())
        .collect();
    assert_eq!(
        progress,
        [
            json!({"percent": 40, "stage": "decoded"}),
            json!({"percent": 80, "stage": "resized"}),
            json!({"percent": 100, "stage": "encoded"}),
        ],
        "every stage is watched live: {updates:?}"
    );
    let result = &updates.last().unwrap()["result"];
    assert_eq!(
        (&result["width"], &result["height"]),
        (&json!(128), &json!(96))
    );
    assert_eq!(
        (&result["originalWidth"], &result["originalHeight"]),
        (&json!(640), &json!(480))
    );
    let png = STANDARD
        .decode(result["png"].as_str().expect("the PNG in base64"))
        .unwrap();
    let thumbnail = image::load_from_memory_with_format(&png, ImageFormat::Png)
        .expect("a PNG")
        .to_rgb8();
    assert_eq!(
        thumbnail.dimensions(),
        (128, 96),
        "the aspect ratio is kept"
    );
    // The picture itself, scaled: dark top left, red top right, green bottom left.
    let [red, green, _] = thumbnail.get_pixel(0, 0).0;
    assert!(red < 16 && green < 16, "top left {red}, {green}");
    let [red, green, _] = thumbnail.get_pixel(127, 0).0;
    assert!(red > 240 && green < 16, "top right {red}, {green}");
    let [red, green, _] = thumbnail.get_pixel(0, 95).0;
    assert!(red < 16 && green > 240, "bottom left {red}, {green}");
}
