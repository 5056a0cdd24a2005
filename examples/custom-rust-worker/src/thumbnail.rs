//! The `thumbnail` handler: an image in, a PNG that fits a box out.
//!
//! Payload: `{"image": "<base64>", "maxWidth": 128, "maxHeight": 128}`. The
//! image is a PNG or a JPEG in base64, standard or URL-safe, padded or not
//! (line breaks are ignored); both bounds default to 128 px. The result is
//! `{"png": "<base64>", "width", "height", "originalWidth", "originalHeight"}`:
//! the image scaled down, keeping its aspect ratio, to fit the box (one that
//! fits already keeps its size). Progress is reported after each stage.

use std::io::Cursor;

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use image::{DynamicImage, ImageFormat, ImageReader, Limits};
use jobwire_worker::{HandlerResult, JobContext, JobError};
use serde_json::{Value, json};

/// Largest image accepted, in bytes (the API's own payload limit is usually lower).
const MAX_BYTES: usize = 20 * 1024 * 1024;
/// Largest width or height accepted, in pixels, before any pixel is decoded.
const MAX_SIDE: u32 = 10_000;
const DEFAULT_BOX: u32 = 128;

/// Decodes with or without `=` padding, so clients need not care.
const LENIENT: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);

pub async fn thumbnail(ctx: JobContext, payload: Value) -> HandlerResult {
    let request = Request::parse(&payload)?;
    let original = blocking(move || decode(&request.image)).await?;
    let (original_width, original_height) = (original.width(), original.height());
    report(&ctx, 40, "decoded").await?;
    let small = blocking(move || Ok(fit(original, request.max_width, request.max_height))).await?;
    report(&ctx, 80, "resized").await?;
    let (width, height) = (small.width(), small.height());
    let png = blocking(move || encode_png(&small)).await?;
    report(&ctx, 100, "encoded").await?;
    Ok(json!({
        "png": base64::engine::general_purpose::STANDARD.encode(png),
        "width": width,
        "height": height,
        "originalWidth": original_width,
        "originalHeight": original_height,
    }))
}

/// A payload, checked.
#[derive(Debug)]
struct Request {
    image: Vec<u8>,
    max_width: u32,
    max_height: u32,
}

impl Request {
    fn parse(payload: &Value) -> Result<Self, JobError> {
        let text = payload
            .get("image")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                JobError::fatal(
                    "thumbnail needs a payload like {\"image\": \"<base64 PNG or JPEG>\", \
                 \"maxWidth\": 128, \"maxHeight\": 128}",
                )
            })?;
        Ok(Self {
            image: decode_base64(text)?,
            max_width: bound(payload, "maxWidth")?,
            max_height: bound(payload, "maxHeight")?,
        })
    }
}

/// `maxWidth` or `maxHeight`: 1 to [`MAX_SIDE`], [`DEFAULT_BOX`] when absent.
fn bound(payload: &Value, field: &str) -> Result<u32, JobError> {
    match payload.get(field) {
        None | Some(Value::Null) => Ok(DEFAULT_BOX),
        Some(value) => value
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| (1..=MAX_SIDE).contains(n))
            .ok_or_else(|| {
                JobError::fatal(format!(
                    "{field} must be a whole number of pixels from 1 to {MAX_SIDE}, not {value}"
                ))
            }),
    }
}

fn decode_base64(text: &str) -> Result<Vec<u8>, JobError> {
    let text: String = text.split_ascii_whitespace().collect();
    // Four characters carry three bytes: refuse before decoding anything.
    if text.len() / 4 * 3 > MAX_BYTES {
        return Err(JobError::fatal(format!(
            "the image is over {} MB",
            MAX_BYTES / 1024 / 1024
        )));
    }
    let engine = if text.contains(['-', '_']) {
        &URL_SAFE
    } else {
        &STANDARD
    };
    engine
        .decode(&text)
        .map_err(|e| JobError::fatal(format!("`image` is not base64 (standard or URL-safe): {e}")))
}

/// Reads the header first, so that a huge image is refused before its pixels
/// are allocated.
fn decode(bytes: &[u8]) -> Result<DynamicImage, JobError> {
    let reader = || {
        let reader = ImageReader::new(Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| JobError::fatal(format!("cannot read the image: {e}")))?;
        match reader.format() {
            Some(ImageFormat::Png | ImageFormat::Jpeg) => Ok(reader),
            _ => Err(JobError::fatal("`image` is not a PNG or JPEG image")),
        }
    };
    let (width, height) = reader()?
        .into_dimensions()
        .map_err(|e| JobError::fatal(format!("cannot read the image: {e}")))?;
    if width > MAX_SIDE || height > MAX_SIDE {
        return Err(JobError::fatal(format!(
            "the image is {width}×{height} px; at most {MAX_SIDE} px a side"
        )));
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    let mut reader = reader()?;
    reader.limits(limits);
    reader
        .decode()
        .map_err(|e| JobError::fatal(format!("cannot decode the image: {e}")))
}

/// Scales `image` down to fit `max_width`×`max_height`, keeping its aspect
/// ratio; a smaller image is kept as it is, never enlarged.
fn fit(image: DynamicImage, max_width: u32, max_height: u32) -> DynamicImage {
    if image.width() <= max_width && image.height() <= max_height {
        image
    } else {
        image.thumbnail(max_width, max_height)
    }
}

fn encode_png(image: &DynamicImage) -> Result<Vec<u8>, JobError> {
    let mut png = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
        .map_err(|e| JobError::retryable(format!("cannot encode the PNG: {e}")))?;
    Ok(png)
}

/// Runs CPU-bound work off the async threads, so the worker's heartbeats
/// and its other jobs go on meanwhile.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, JobError> + Send + 'static,
) -> Result<T, JobError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| JobError::retryable(format!("the image work stopped: {e}")))?
}

/// Publishes how far the job is; fails when the job is no longer running
/// (cancelled, or its lease lost), which ends this attempt.
async fn report(ctx: &JobContext, percent: u8, stage: &str) -> Result<(), JobError> {
    ctx.progress(json!({"percent": percent, "stage": stage}))
        .await
        .map_err(|e| JobError::retryable(e.to_string()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test fails right there")]

    use image::{Rgb, RgbImage};

    use super::*;

    fn png(width: u32, height: u32) -> Vec<u8> {
        let image = RgbImage::from_fn(width, height, |x, y| Rgb([x as u8, y as u8, 128]));
        encode_png(&DynamicImage::ImageRgb8(image)).unwrap()
    }

    /// Why `payload` is refused; bad input is never retried.
    fn error(payload: Value) -> String {
        let error = Request::parse(&payload)
            .and_then(|request| decode(&request.image))
            .unwrap_err();
        assert!(!error.is_retryable(), "{error}");
        error.into_message()
    }

    #[test]
    fn base64_is_taken_standard_or_url_safe_padded_or_not_and_wrapped() {
        // 0xfb 0xff encode to `+/8=` (standard) and `-_8=` (URL-safe).
        for text in ["+/8=", "+/8", "-_8=", "-_8", "+/\n8="] {
            assert_eq!(decode_base64(text).unwrap(), [0xfb, 0xff], "{text}");
        }
    }

    #[test]
    fn a_wide_image_fits_the_box_with_its_aspect_ratio() {
        let request = Request::parse(&json!({
            "image": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(png(640, 480)),
        }))
        .unwrap();
        let small = fit(decode(&request.image).unwrap(), 128, 128);
        assert_eq!((small.width(), small.height()), (128, 96));
        let tall = fit(DynamicImage::new_rgb8(300, 600), 100, 100);
        assert_eq!((tall.width(), tall.height()), (50, 100));
        let already_small = fit(DynamicImage::new_rgb8(20, 10), 128, 128);
        assert_eq!((already_small.width(), already_small.height()), (20, 10));
    }

    #[test]
    fn bad_input_is_a_clear_job_error() {
        assert!(error(json!({})).contains("needs a payload like"));
        assert!(error(json!({"image": 42})).contains("needs a payload like"));
        assert!(error(json!({"image": "not base64!"})).contains("not base64"));
        let text = STANDARD.encode(b"plain text, no image");
        assert!(error(json!({"image": text})).contains("not a PNG or JPEG"));
        let mut truncated = png(64, 64);
        truncated.truncate(60);
        let text = STANDARD.encode(truncated);
        assert!(error(json!({"image": text})).starts_with("cannot "));
        let text = STANDARD.encode(png(8, 8));
        for (field, value) in [("maxWidth", json!(0)), ("maxHeight", json!("big"))] {
            let message = error(json!({"image": text, field: value}));
            assert!(message.contains(field), "{message}");
        }
    }

    #[test]
    fn a_huge_image_is_refused_before_its_pixels_are_decoded() {
        // A 10001×1 PNG is tiny on the wire; its size is in the header.
        let mut bytes = Vec::new();
        let wide = image::GrayImage::new(MAX_SIDE + 1, 1);
        DynamicImage::ImageLuma8(wide)
            .write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png)
            .unwrap();
        let message = decode(&bytes).unwrap_err().into_message();
        assert!(message.contains("at most 10000 px a side"), "{message}");
        let too_long = "A".repeat(MAX_BYTES / 3 * 4 + 8);
        let message = decode_base64(&too_long).unwrap_err().into_message();
        assert!(message.contains("over 20 MB"), "{message}");
    }
}
