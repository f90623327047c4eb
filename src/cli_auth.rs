//! `opsboard user …` and `opsboard apikey …`: account and key management against the central
//! database, for the first admin and for scripts. Changes are audited as `cli:<os user>`.

use std::io::BufRead;

use anyhow::{Result, bail};
use clap::Subcommand;
use opsboard::auth::{Actor, Auth, NewKeyRequest, Role, Scope};
use opsboard::config::{HumanDuration, ServerConfig};

use super::Common;

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user; without --password-stdin a password is generated and printed.
    Create {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        email: String,
        #[arg(long, default_value = "")]
        name: String,
        /// Global admin: every tenant, users, keys, audit log.
        #[arg(long)]
        admin: bool,
        /// Read the password from the first line of stdin.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Give a user a role in a tenant (replaces an earlier role there).
    Grant {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        email: String,
        #[arg(long)]
        tenant: String,
        /// viewer, editor or admin.
        #[arg(long)]
        role: String,
    },
    /// List users with their roles.
    List {
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Create a key and print it (only the key, once) on stdout.
    Create {
        #[command(flatten)]
        common: Common,
        /// The tenant the key is bound to...
        #[arg(long, required_unless_present = "global", conflicts_with = "global")]
        tenant: Option<String>,
        /// ...or no tenant at all (an operator's key for every tenant).
        #[arg(long)]
        global: bool,
        /// Comma-separated: ingest, read, act (acknowledge, silence), admin (keys, members).
        #[arg(long)]
        scope: String,
        /// Lifetime, e.g. 90d; none = no expiry.
        #[arg(long)]
        expires: Option<HumanDuration>,
        #[arg(long, default_value = "")]
        name: String,
    },
    /// Revoke a key by id; it fails from the next request on.
    Revoke {
        #[command(flatten)]
        common: Common,
        id: String,
    },
    /// List keys (never their secrets).
    List {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        tenant: Option<String>,
    },
}

async fn open(common: &Common) -> Result<(ServerConfig, std::sync::Arc<Auth>)> {
    let config = common.load()?;
    let auth = Auth::open(&config, opsboard::clock::system()).await?;
    auth.sync_tenants(&opsboard::config::tenant_folders(&config.tenants_dir))
        .await?;
    Ok((config, auth))
}

fn date(ms: Option<i64>) -> String {
    ms.and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| t.format("%Y-%m-%dT%H:%MZ").to_string())
        .unwrap_or_else(|| "-".into())
}

pub async fn run_user(command: UserCommand) -> Result<()> {
    let actor = Actor::cli();
    match command {
        UserCommand::Create {
            common,
            email,
            name,
            admin,
            password_stdin,
        } => {
            let (_, auth) = open(&common).await?;
            let (password, generated) = if password_stdin {
                let mut line = String::new();
                std::io::stdin().lock().read_line(&mut line)?;
                (line.trim_end_matches(['\r', '\n']).to_string(), false)
            } else {
                (opsboard::auth::random_password(), true)
            };
            let user = auth
                .create_user(&actor, &email, &name, &password, admin)
                .await?;
            if generated {
                println!("{password}");
            }
            eprintln!(
                "user {} created{}",
                user.email,
                if admin { " (global admin)" } else { "" }
            );
        }
        UserCommand::Grant {
            common,
            email,
            tenant,
            role,
        } => {
            let (_, auth) = open(&common).await?;
            let user = auth.user_by_email(&email).await?;
            let role = Role::parse(&role)?;
            auth.grant(&actor, user.id, &tenant, role).await?;
            eprintln!("{} is {} of {tenant}", user.email, role.as_str());
        }
        UserCommand::List { common } => {
            let (_, auth) = open(&common).await?;
            println!(
                "{:<32} {:<6} {:<9} {:<4} roles",
                "email", "admin", "status", "mfa"
            );
            for u in auth.users().await? {
                let roles: Vec<String> = auth
                    .roles(u.id)
                    .await?
                    .iter()
                    .map(|(t, r)| format!("{t}:{}", r.as_str()))
                    .collect();
                println!(
                    "{:<32} {:<6} {:<9} {:<4} {}",
                    u.email,
                    if u.is_admin { "yes" } else { "no" },
                    if u.disabled { "disabled" } else { "active" },
                    if u.mfa_enabled { "on" } else { "off" },
                    roles.join(",")
                );
            }
        }
    }
    Ok(())
}

pub async fn run_key(command: KeyCommand) -> Result<()> {
    let actor = Actor::cli();
    match command {
        KeyCommand::Create {
            common,
            tenant,
            global,
            scope,
            expires,
            name,
        } => {
            let (_, auth) = open(&common).await?;
            if global == tenant.is_some() {
                bail!("give either --tenant T or --global");
            }
            let request = NewKeyRequest {
                name,
                tenant,
                scopes: Scope::parse_list(&scope)?,
                expires_at: expires.map(|d| auth.now_ms() + d.0.as_millis() as i64),
            };
            let (info, key) = auth.create_key(&actor, request).await?;
            println!("{key}");
            eprintln!(
                "key {} created ({}, {})",
                info.id,
                info.tenant.as_deref().unwrap_or("global"),
                Scope::join(&info.scopes)
            );
        }
        KeyCommand::Revoke { common, id } => {
            let (_, auth) = open(&common).await?;
            auth.revoke_key(&actor, &id).await?;
            eprintln!("key {id} revoked");
        }
        KeyCommand::List { common, tenant } => {
            let (_, auth) = open(&common).await?;
            println!(
                "{:<12} {:<16} {:<20} {:<18} {:<17} {:<17} {:<17} status",
                "id", "tenant", "name", "scopes", "created", "expires", "last used"
            );
            let now = auth.now_ms();
            for k in auth.keys(tenant.as_deref()).await? {
                let status = match (k.revoked_at, k.expires_at) {
                    (Some(_), _) => "revoked",
                    (None, Some(e)) if e <= now => "expired",
                    _ => "active",
                };
                println!(
                    "{:<12} {:<16} {:<20} {:<18} {:<17} {:<17} {:<17} {status}",
                    k.id,
                    k.tenant.as_deref().unwrap_or("(global)"),
                    k.name,
                    Scope::join(&k.scopes),
                    date(Some(k.created_at)),
                    date(k.expires_at),
                    date(k.last_used_at),
                );
            }
        }
    }
    Ok(())
}
