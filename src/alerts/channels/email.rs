//! Email channels: one message per group over SMTP to the configured relay (a local MTA or a
//! sink; plain SMTP, no credentials), from the channel's or the server's address. Plain text;
//! a group with event notices also gets an HTML part showing each event's thumbnail (inline,
//! `cid:`, so no mail client has to fetch a picture that needs signing in) and its link.

use async_trait::async_trait;
use lettre::message::header::ContentType;
use lettre::message::{Attachment, MultiPart, SinglePart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message as Email, Tokio1Executor};

use super::super::routing::text_lines;
use super::{Channel, ChannelError, Message};
use crate::config::ChannelConfig;
use crate::render::escape_html;

enum Body {
    Plain(String),
    Parts(MultiPart),
}

pub struct EmailChannel {
    /// `host:port`.
    pub smtp: String,
    pub from: String,
    pub to: Vec<String>,
    /// This server's address, for links.
    pub external_url: String,
}

impl EmailChannel {
    pub fn new(
        config: &ChannelConfig,
        default_smtp: &str,
        default_from: &str,
        external_url: &str,
    ) -> Self {
        Self {
            smtp: config.smtp.clone().unwrap_or_else(|| default_smtp.into()),
            from: config.from.clone().unwrap_or_else(|| default_from.into()),
            to: config.to.clone(),
            external_url: external_url.into(),
        }
    }

    /// The body: plain text, and for event notices also an HTML part with their thumbnails.
    fn body(&self, message: &Message<'_>) -> Body {
        let group = message.group;
        let text = text_lines(group);
        let links: Vec<String> = (group.alerts.iter())
            .filter_map(|a| a.event.as_ref())
            .map(|e| format!("{}{}", self.external_url, e.link))
            .collect();
        let mut plain = format!("{text}\n");
        for link in &links {
            plain.push_str(&format!("\n{link}"));
        }
        plain.push_str(&format!("\n\n({}, sent by opsboard)\n", group.status));
        if links.is_empty() {
            return Body::Plain(plain);
        }
        let plain = SinglePart::plain(plain);
        let mut html = String::from("<!doctype html><html><body>");
        let mut pictures = vec![];
        for (i, a) in group.alerts.iter().enumerate() {
            html.push_str(&format!(
                "<p><b>[{}] {} ({})</b>: {}</p>",
                group.status.to_uppercase(),
                escape_html(&a.rule),
                escape_html(&a.severity),
                escape_html(&a.message)
            ));
            let Some(event) = &a.event else {
                continue;
            };
            let link = escape_html(&format!("{}{}", self.external_url, event.link));
            if let Some(jpeg) = &event.thumbnail {
                let cid = format!("event{i}");
                html.push_str(&format!(
                    "<p><a href=\"{link}\"><img src=\"cid:{cid}\" alt=\"event picture\"></a></p>"
                ));
                let jpeg_type = ContentType::parse("image/jpeg").expect("a valid media type");
                pictures.push(Attachment::new_inline(cid).body(jpeg.to_vec(), jpeg_type));
            }
            html.push_str(&format!("<p><a href=\"{link}\">Open the event</a></p>"));
        }
        html.push_str("<p>sent by opsboard</p></body></html>");
        let mut related = MultiPart::related().singlepart(SinglePart::html(html));
        for picture in pictures {
            related = related.singlepart(picture);
        }
        Body::Parts(
            MultiPart::alternative()
                .singlepart(plain)
                .multipart(related),
        )
    }

    fn address(text: &str) -> Result<lettre::message::Mailbox, ChannelError> {
        text.parse()
            .map_err(|e: lettre::address::AddressError| ChannelError::Address {
                address: text.into(),
                message: e.to_string(),
            })
    }
}

#[async_trait]
impl Channel for EmailChannel {
    async fn send(&self, message: &Message<'_>) -> Result<(), ChannelError> {
        let smtp_error = |message: String| ChannelError::Smtp {
            server: self.smtp.clone(),
            message,
        };
        let (host, port) = self
            .smtp
            .rsplit_once(':')
            .ok_or_else(|| smtp_error("not host:port".into()))?;
        let port: u16 = port.parse().map_err(|_| smtp_error("bad port".into()))?;
        let text = text_lines(message.group);
        let first = text.lines().next().unwrap_or("alert");
        let mut email = Email::builder()
            .from(Self::address(&self.from)?)
            .subject(format!("[opsboard] {first}"));
        for to in &self.to {
            email = email.to(Self::address(to)?);
        }
        let email = match self.body(message) {
            Body::Parts(parts) => email.multipart(parts),
            Body::Plain(plain) => email.header(ContentType::TEXT_PLAIN).body(plain),
        }
        .map_err(|e| smtp_error(e.to_string()))?;
        let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(port)
            .build();
        transport
            .send(email)
            .await
            .map(|_| ())
            .map_err(|e| smtp_error(e.to_string()))
    }
}
