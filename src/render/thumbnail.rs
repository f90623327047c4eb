//! A picture made small: at most [`EDGE`] pixels on its long side, as JPEG. Decoding runs with
//! limits on the picture's size and the memory it may take, so a small file that claims to be
//! a huge picture (a decompression bomb) is refused instead of filling the memory.

use std::io::Cursor;

use image::{ImageFormat, ImageReader, Limits};

use super::RenderError;

/// Longest side of a thumbnail, in pixels.
pub const EDGE: u32 = 320;
/// Widest and tallest picture decoded.
pub const MAX_SIDE: u32 = 12_000;
/// Most memory one decode may take.
const MAX_ALLOC: u64 = 256 * 1024 * 1024;

/// The thumbnail of a picture of `content_type`; None for types that are not pictures.
pub fn thumbnail(bytes: &[u8], content_type: &str) -> Option<Result<Vec<u8>, RenderError>> {
    let format = match content_type {
        "image/jpeg" => ImageFormat::Jpeg,
        "image/png" => ImageFormat::Png,
        "image/webp" => ImageFormat::WebP,
        "image/gif" => ImageFormat::Gif,
        _ => return None,
    };
    Some(draw(bytes, format))
}

/// What stands for a file that is no picture (a clip, a PDF): a page with its kind on it.
pub fn type_icon(content_type: &str) -> String {
    let kind = match content_type {
        "video/mp4" => "MP4",
        "application/pdf" => "PDF",
        "text/plain" => "TXT",
        _ => "FILE",
    };
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"96\" height=\"120\" viewBox=\"0 0 96 120\">\
         <rect x=\"4\" y=\"4\" width=\"88\" height=\"112\" rx=\"6\" fill=\"#F3F4F6\" stroke=\"#9CA3AF\"/>\
         <text x=\"48\" y=\"68\" font-family=\"sans-serif\" font-size=\"20\" text-anchor=\"middle\" \
         fill=\"#374151\">{kind}</text></svg>"
    )
}

fn draw(bytes: &[u8], format: ImageFormat) -> Result<Vec<u8>, RenderError> {
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_ALLOC);
    reader.limits(limits);
    let picture = reader
        .decode()
        .map_err(|e| RenderError::Image(format!("cannot read the picture: {e}")))?;
    let small = if picture.width().max(picture.height()) > EDGE {
        picture.thumbnail(EDGE, EDGE)
    } else {
        picture
    };
    let mut out = Cursor::new(Vec::new());
    small
        .to_rgb8()
        .write_to(&mut out, ImageFormat::Jpeg)
        .map_err(|e| RenderError::Image(format!("cannot write the thumbnail: {e}")))?;
    Ok(out.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32) -> Vec<u8> {
        let mut out = vec![];
        {
            let mut encoder = png::Encoder::new(&mut out, width, height);
            encoder.set_color(png::ColorType::Grayscale);
            encoder.set_depth(png::BitDepth::Eight);
            let mut writer = encoder.write_header().unwrap();
            writer
                .write_image_data(&vec![128; (width * height) as usize])
                .unwrap();
        }
        out
    }

    #[test]
    fn pictures_shrink_to_the_edge_keeping_their_shape() {
        let jpeg = thumbnail(&png(1000, 500), "image/png").unwrap().unwrap();
        let small = image::load_from_memory(&jpeg).unwrap();
        assert_eq!((small.width(), small.height()), (320, 160));
        let tiny = thumbnail(&png(20, 10), "image/png").unwrap().unwrap();
        let tiny = image::load_from_memory(&tiny).unwrap();
        assert_eq!((tiny.width(), tiny.height()), (20, 10), "never enlarged");
        assert!(thumbnail(b"%PDF-1.4", "application/pdf").is_none());
        assert!(type_icon("application/pdf").contains(">PDF</text>"));
    }

    #[test]
    fn a_broken_picture_is_refused() {
        let err = thumbnail(b"\x89PNG\r\n\x1a\nbroken", "image/png")
            .unwrap()
            .unwrap_err();
        assert!(err.to_string().contains("cannot read the picture"), "{err}");
    }
}
