//! Two tenants (`acme`, `globex`) on one server with a chosen central database, users made
//! straight in that database, and browser-like clients that sign in through the login form.

use std::path::Path;
use std::sync::Arc;

use opsboard::auth::{Actor, Auth, NewKeyRequest, Role, Scope};
use opsboard::clock::ManualClock;
use opsboard::config::ServerConfig;
use opsboard::server::ServeOptions;

use super::fixture::{FIXTURE, write_fixture};
use super::{TestDirs, TestServer, copy_dir};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

pub const PASSWORD: &str = "correct horse battery";
/// Only globex's data carries this; no answer to an acme caller may contain it.
pub const GLOBEX_MARKER: &str = "globex-secret";

pub struct Env {
    pub dirs: TestDirs,
    pub config: ServerConfig,
    pub server: TestServer,
    /// The test's own handle on the central database.
    pub auth: Arc<Auth>,
    pub clock: Arc<ManualClock>,
}

impl Env {
    /// None when the backend is not available here (and not required).
    pub async fn start(
        db: Db,
        test: &str,
        configure: impl FnOnce(&mut ServerConfig),
    ) -> Option<Env> {
        if db == Db::Postgres && super::pg::skip_unless_available(test) {
            return None;
        }
        let dirs = TestDirs::new(&[]);
        for tenant in ["acme", "globex"] {
            copy_dir(Path::new(FIXTURE), &dirs.tenants().join(tenant));
        }
        std::fs::write(
            dirs.tenants().join("globex/tenant.yaml"),
            std::fs::read_to_string(dirs.tenants().join("acme/tenant.yaml"))
                .expect("tenant.yaml")
                .replace("name: Acme", &format!("name: {GLOBEX_MARKER}-corp")),
        )
        .expect("globex tenant.yaml");
        let mut config = dirs.config();
        if db == Db::Postgres {
            config.database_url = Some(super::pg::fresh_database().await);
        }
        configure(&mut config);
        let clock = ManualClock::new(chrono::Utc::now().timestamp_millis());
        let auth = Auth::open(&config, clock.clone()).await.expect("auth db");
        let options = ServeOptions {
            clock: clock.clone(),
            ..Default::default()
        };
        let server = TestServer::start_with(config.clone(), options).await;
        for tenant in ["acme", "globex"] {
            write_fixture(&server, tenant).await;
        }
        let marker = format!(
            "{{\"time\":\"2024-01-01T01:00:00Z\",\"host\":\"{GLOBEX_MARKER}-host\",\"cpu\":1,\"mem\":2}}\n"
        );
        let (status, _) = server
            .write("globex", "metrics", "application/x-ndjson", marker)
            .await;
        assert_eq!(status, 200);
        Some(Env {
            dirs,
            config,
            server,
            auth,
            clock,
        })
    }

    /// Stops the server (flushing) and starts a new one on the same folders, database and clock.
    pub async fn restart(self) -> Self {
        self.restart_with(|_| {}).await
    }

    /// [`Env::restart`] with a changed configuration.
    pub async fn restart_with(self, configure: impl FnOnce(&mut ServerConfig)) -> Self {
        let Env {
            dirs,
            mut config,
            server,
            auth,
            clock,
        } = self;
        server.stop().await;
        configure(&mut config);
        let options = ServeOptions {
            clock: clock.clone(),
            ..Default::default()
        };
        let server = TestServer::start_with(config.clone(), options).await;
        Env {
            dirs,
            config,
            server,
            auth,
            clock,
        }
    }

    pub fn clock_ms(&self) -> i64 {
        use opsboard::clock::Clock;
        self.clock.now_ms()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.url)
    }

    /// A user with `roles`, password [`PASSWORD`].
    pub async fn user(&self, email: &str, admin: bool, roles: &[(&str, Role)]) -> i64 {
        let actor = Actor::new("tests", None);
        let user = self
            .auth
            .create_user(&actor, email, "", PASSWORD, admin)
            .await
            .expect("create user");
        for (tenant, role) in roles {
            self.auth
                .grant(&actor, user.id, tenant, *role)
                .await
                .expect("grant");
        }
        user.id
    }

    pub async fn key(&self, tenant: Option<&str>, scopes: &str) -> (String, String) {
        let request = NewKeyRequest {
            name: "test".into(),
            tenant: tenant.map(String::from),
            scopes: Scope::parse_list(scopes).expect("scopes"),
            expires_at: None,
        };
        let (info, key) = self
            .auth
            .create_key(&Actor::new("tests", None), request)
            .await
            .expect("create key");
        (info.id, key)
    }

    pub async fn browser(&self) -> Browser {
        Browser::new(&self.server.url)
    }

    /// A browser signed in as `email` (password [`PASSWORD`]).
    pub async fn signed_in(&self, email: &str) -> Browser {
        let b = self.browser().await;
        let response = b.login(email, PASSWORD).await;
        assert_eq!(response.status(), 303, "login of {email}");
        b
    }
}

/// A cookie-keeping client that does not follow redirects, like a careful browser.
pub struct Browser {
    pub base: String,
    pub client: reqwest::Client,
    jar: Arc<reqwest::cookie::Jar>,
}

/// The value of the first `name="_csrf" value="…"` in a page.
pub fn csrf_in(html: &str) -> String {
    let start = html
        .find("name=\"_csrf\" value=\"")
        .expect("no _csrf field in page")
        + 20;
    html[start..]
        .split('"')
        .next()
        .unwrap_or_default()
        .to_string()
}

impl Browser {
    pub fn new(base: &str) -> Self {
        Self::with_headers(base, reqwest::header::HeaderMap::new())
    }

    /// A browser behind a proxy that says it forwards for `client`.
    pub fn forwarded_for(base: &str, client: &str) -> Self {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            format!("{client}, 127.0.0.1")
                .parse()
                .expect("header value"),
        );
        Self::with_headers(base, headers)
    }

    fn with_headers(base: &str, headers: reqwest::header::HeaderMap) -> Self {
        let jar = Arc::new(reqwest::cookie::Jar::default());
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        Self {
            base: base.to_string(),
            client,
            jar,
        }
    }

    /// The session token the browser holds, if any.
    pub fn session_token(&self) -> Option<String> {
        self.cookie("opsboard_session")
    }

    /// The value of the cookie `name` the browser holds for the server, if any.
    pub fn cookie(&self, name: &str) -> Option<String> {
        use reqwest::cookie::CookieStore;
        let url = self.base.parse().ok()?;
        let cookies = self.jar.cookies(&url)?;
        let prefix = format!("{name}=");
        cookies
            .to_str()
            .ok()?
            .split("; ")
            .find_map(|c| c.strip_prefix(prefix.as_str()))
            .map(String::from)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("get")
    }

    pub async fn text(&self, path: &str) -> (u16, String) {
        let r = self.get(path).await;
        (r.status().as_u16(), r.text().await.unwrap_or_default())
    }

    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.base))
            .form(form)
            .send()
            .await
            .expect("post")
    }

    pub async fn login(&self, email: &str, password: &str) -> reqwest::Response {
        let (_, page) = self.text("/login").await;
        let csrf = csrf_in(&page);
        self.post_form(
            "/login",
            &[
                ("_csrf", &csrf),
                ("email", email),
                ("password", password),
                ("next", "/"),
            ],
        )
        .await
    }

    /// The session's CSRF token, as the account page's forms carry it.
    pub async fn csrf(&self) -> String {
        let (status, page) = self.text("/account").await;
        assert_eq!(status, 200, "{page}");
        csrf_in(&page)
    }
}

/// `(status, location)` of a response.
pub fn redirect_of(r: &reqwest::Response) -> (u16, String) {
    let location = r
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (r.status().as_u16(), location)
}
