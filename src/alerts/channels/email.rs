//! Email channels: one plain-text message per group over SMTP to the configured relay (a local
//! MTA or a sink; plain SMTP, no credentials), from the channel's or the server's address.

use async_trait::async_trait;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message as Email, Tokio1Executor};

use super::super::routing::text_lines;
use super::{Channel, ChannelError, Message};
use crate::config::ChannelConfig;

pub struct EmailChannel {
    /// `host:port`.
    pub smtp: String,
    pub from: String,
    pub to: Vec<String>,
}

impl EmailChannel {
    pub fn new(config: &ChannelConfig, default_smtp: &str, default_from: &str) -> Self {
        Self {
            smtp: config.smtp.clone().unwrap_or_else(|| default_smtp.into()),
            from: config.from.clone().unwrap_or_else(|| default_from.into()),
            to: config.to.clone(),
        }
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
        let email = email
            .header(lettre::message::header::ContentType::TEXT_PLAIN)
            .body(format!(
                "{text}\n\n({}, sent by opsboard)\n",
                message.group.status
            ))
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
