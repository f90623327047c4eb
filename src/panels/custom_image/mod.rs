//! `custom_image`: a picture drawn by the Rust [`ImageFunction`](super::ImageFunction) the
//! panel names in `endpoint`.
//!
//! Answer: `{panel, type, title, description, range, content_type, image}` (`image` is the SVG
//! text, absent for other types; `/panels/{id}/image` serves the bytes).

use std::sync::LazyLock;

use async_trait::async_trait;
use bytes::Bytes;
use minijinja::{Environment, Value as Jinja, context};
use serde::{Deserialize, Serialize};

use super::answer::Header;
use super::functions::function_error;
use super::kind::{Endpoint, KindSpec};
use super::kinds::{PanelAnswer, PanelKind};
use super::{PanelError, Run};
use crate::render::{RenderError, fragment_environment, render_fragment};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageAnswer {
    #[serde(flatten)]
    pub header: Header,
    pub content_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The picture itself (served by the image route, never in JSON).
    #[serde(skip)]
    pub bytes: Bytes,
}

pub struct CustomImage;

static SPEC: KindSpec = KindSpec {
    name: "custom_image",
    display_keys: &["width", "height"],
    endpoint: Endpoint::Image,
    ..KindSpec::PLAIN
};

#[async_trait]
impl PanelKind for CustomImage {
    fn spec(&self) -> &'static KindSpec {
        &SPEC
    }

    async fn run(&self, run: &Run<'_>) -> Result<PanelAnswer, PanelError> {
        let name = run.panel.config.endpoint_name().unwrap_or_default();
        let function = run.functions.image(run, name)?;
        let (content_type, bytes) = function
            .render(run)
            .await
            .map_err(|m| function_error(run, m))?;
        let image = content_type
            .starts_with("image/svg")
            .then(|| String::from_utf8_lossy(&bytes).into_owned());
        Ok(PanelAnswer::CustomImage(ImageAnswer {
            header: run.header(),
            content_type,
            image,
            bytes,
        }))
    }
}

static TEMPLATE: LazyLock<Environment<'static>> =
    LazyLock::new(|| fragment_environment("custom_image.html", include_str!("fragment.html")));

impl ImageAnswer {
    pub fn fragment(&self) -> Result<String, RenderError> {
        // The SVG comes from our own drawing code, not from a request.
        let image = Jinja::from_safe_string(self.image.clone().unwrap_or_default());
        render_fragment(&TEMPLATE, "custom_image.html", context! { image })
    }
}
