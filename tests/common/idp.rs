//! A real OpenID provider for sign-in tests: `tests/e2e/idp.mjs` (the npm `oidc-provider`
//! package) in a child process, its test client as opsboard would configure it, and its test
//! endpoints (accounts, a changed next ID token).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use opsboard::config::{GroupRole, OidcProvider};
use serde_json::Value;

const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// The provider process; killed when dropped.
pub struct Idp {
    child: Child,
    pub issuer: String,
    client_id: String,
    secret_file: tempfile::NamedTempFile,
    http: reqwest::Client,
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Idp {
    /// None when node or the npm packages are missing here (and the test is not required).
    pub fn start(test: &str) -> Option<Idp> {
        let script = std::path::Path::new(REPO).join("tests/e2e/idp.mjs");
        let installed = std::path::Path::new(REPO).join("tests/e2e/node_modules/oidc-provider");
        let node = Command::new("node").arg("--version").output().is_ok();
        if !node || !installed.exists() {
            if std::env::var("OPSBOARD_E2E").as_deref() == Ok("required") {
                panic!("{test}: node and `npm ci` in tests/e2e are required");
            }
            eprintln!("SKIPPED {test}: node or tests/e2e/node_modules missing");
            return None;
        }
        let mut child = Command::new("node")
            .arg(script)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the OpenID provider");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the provider's first line");
        let started: Value = serde_json::from_str(&line).expect("the provider's JSON line");
        let secret_file = tempfile::NamedTempFile::new().expect("secret file");
        std::fs::write(
            secret_file.path(),
            format!("{}\n", started["client_secret"].as_str().unwrap()),
        )
        .unwrap();
        Some(Idp {
            child,
            issuer: started["issuer"].as_str().unwrap().to_string(),
            client_id: started["client_id"].as_str().unwrap().to_string(),
            secret_file,
            http: reqwest::Client::new(),
        })
    }

    /// The provider as opsboard.yaml would name it: groups `ops` → acme viewer, `ops-leads`
    /// → acme admin, `globex-team` → globex editor; `opsboard-admins` are global admins.
    pub fn provider(&self) -> OidcProvider {
        OidcProvider {
            name: "test".into(),
            display_name: Some("Test IdP".into()),
            issuer: self.issuer.clone(),
            client_id: self.client_id.clone(),
            client_secret_env: None,
            client_secret_file: Some(self.secret_file.path().to_path_buf()),
            scopes: vec!["email".into(), "profile".into(), "groups".into()],
            email_claim: "email".into(),
            groups_claim: Some("groups".into()),
            roles: vec![
                rule("ops", "acme", "viewer"),
                rule("ops-leads", "acme", "admin"),
                rule("globex-team", "globex", "editor"),
            ],
            admin_groups: vec!["opsboard-admins".into()],
            allowed_domains: vec!["example.com".into()],
            auto_create_users: true,
            require_verified_email: true,
            redirect_url: None,
        }
    }

    async fn post(&self, path: &str, body: Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.issuer))
            .json(&body)
            .send()
            .await
            .expect("provider test endpoint");
        assert_eq!(r.status(), 204);
    }

    /// Sets accounts: `{"alice": {"groups": [...], "email": ..., "email_verified": ...}}`.
    pub async fn accounts(&self, accounts: Value) {
        self.post("/test/accounts", accounts).await;
    }

    /// Changes the next ID token the provider issues.
    pub async fn tamper(&self, change: Value) {
        self.post("/test/tamper", change).await;
    }
}

fn rule(group: &str, tenant: &str, role: &str) -> GroupRole {
    GroupRole {
        group: group.into(),
        tenant: tenant.into(),
        role: role.into(),
    }
}
