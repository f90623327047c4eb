//! `auth.oidc` in opsboard.yaml: the OpenID Connect providers people may sign in with
//! (Keycloak, Zitadel, …), and how the groups in their tokens become opsboard roles. Checked
//! at load with the `file:line:column` of the offending key.

use serde::{Deserialize, Serialize};

use super::locate::{Locator, Step};

/// One OpenID provider.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OidcProvider {
    /// In URLs (`/login/oidc/<name>`) and in the audit log: lowercase letters, digits, `-`, `_`.
    pub name: String,
    /// The login button's label; unset = the name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Where `/.well-known/openid-configuration` is found; https unless on loopback.
    pub issuer: String,
    pub client_id: String,
    /// The environment variable holding the client secret (secrets stay out of git). Unset: a
    /// public client, PKCE only.
    #[serde(default)]
    pub client_secret_env: Option<String>,
    /// Or a file holding it (container and Kubernetes secrets); surrounding whitespace is
    /// ignored.
    #[serde(default)]
    pub client_secret_file: Option<std::path::PathBuf>,
    /// Asked for besides `openid` (always asked).
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// The claim holding the user's email, their name in opsboard.
    #[serde(default = "default_email_claim")]
    pub email_claim: String,
    /// The claim listing the user's groups: a list of names, one name, or an object whose keys
    /// are the names (Zitadel's project roles).
    #[serde(default)]
    pub groups_claim: Option<String>,
    /// Group → tenant role. For each tenant named here the role is set at every sign-in from
    /// the groups (the highest matching role; none matching removes the membership). Tenants
    /// not named here keep the roles admins grant by hand.
    #[serde(default)]
    pub roles: Vec<GroupRole>,
    /// Members of any of these groups are global admins, the others are not (re-applied at
    /// every sign-in). Empty: global admin is granted by hand only.
    #[serde(default)]
    pub admin_groups: Vec<String>,
    /// Only emails in these domains may sign in; empty: any.
    #[serde(default)]
    pub allowed_domains: Vec<String>,
    /// A first sign-in with an email opsboard does not know creates the user; otherwise an
    /// admin creates users first.
    #[serde(default)]
    pub auto_create_users: bool,
    /// Refuse tokens whose `email_verified` is false.
    #[serde(default = "yes")]
    pub require_verified_email: bool,
    /// The callback URL registered at the provider; unset =
    /// `<alerts.external_url>/login/oidc/<name>/callback` (or the request's host).
    #[serde(default)]
    pub redirect_url: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GroupRole {
    pub group: String,
    pub tenant: String,
    /// viewer, editor or admin.
    pub role: String,
}

fn default_scopes() -> Vec<String> {
    vec!["email".into(), "profile".into()]
}

fn default_email_claim() -> String {
    "email".into()
}

fn yes() -> bool {
    true
}

pub const ROLES: [&str; 3] = ["viewer", "editor", "admin"];

impl OidcProvider {
    pub fn label(&self) -> &str {
        self.display_name.as_deref().unwrap_or(&self.name)
    }

    /// The scopes to ask for: `openid` first, then the configured ones.
    pub fn all_scopes(&self) -> Vec<String> {
        let mut scopes = vec!["openid".to_string()];
        for s in &self.scopes {
            if !scopes.contains(s) {
                scopes.push(s.clone());
            }
        }
        scopes
    }

    /// The client secret from its environment variable or file.
    pub fn client_secret(&self) -> Option<String> {
        if let Some(name) = self.client_secret_env.as_deref() {
            return std::env::var(name).ok();
        }
        let path = self.client_secret_file.as_deref()?;
        let text = std::fs::read_to_string(path).ok()?;
        Some(text.trim().to_string())
    }
}

/// Each problem with the providers: the key path (under `auth`) and the message.
pub fn problems(providers: &[OidcProvider], local_passwords: bool) -> Vec<(Vec<Step>, String)> {
    let mut out = vec![];
    if !local_passwords && providers.is_empty() {
        out.push((
            vec![Step::from("auth"), Step::from("local_passwords")],
            "local passwords are off and no auth.oidc provider is configured: nobody could \
             sign in"
                .to_string(),
        ));
    }
    for (i, p) in providers.iter().enumerate() {
        let mut found = identity_problems(p);
        found.extend(mapping_problems(p));
        if providers[..i].iter().any(|o| o.name == p.name) {
            found.push((
                vec![Step::from("name")],
                format!("provider {:?} is configured twice", p.name),
            ));
        }
        for (key, message) in found {
            let mut path = vec![Step::from("auth"), Step::from("oidc"), Step::from(i)];
            path.extend(key);
            out.push((path, message));
        }
    }
    out
}

fn slug(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Who the provider is and how opsboard reaches it: name, URLs, client and secret, email claim.
fn identity_problems(p: &OidcProvider) -> Vec<(Vec<Step>, String)> {
    let mut out: Vec<(&str, String)> = vec![];
    if !slug(&p.name) {
        out.push((
            "name",
            format!(
                "provider name {:?} must be lowercase letters, digits, - or _",
                p.name
            ),
        ));
    }
    if let Err(message) = check_url(&p.issuer) {
        out.push(("issuer", format!("issuer: {message}")));
    }
    if let Some(Err(message)) = p.redirect_url.as_deref().map(check_url) {
        out.push(("redirect_url", format!("redirect_url: {message}")));
    }
    if p.client_id.trim().is_empty() {
        out.push(("client_id", "client_id must not be empty".into()));
    }
    if let Some(var) = &p.client_secret_env
        && !std::env::var(var).is_ok_and(|v| !v.is_empty())
    {
        out.push((
            "client_secret_env",
            format!("the environment variable {var} (the client secret) is not set"),
        ));
    }
    if let Some(file) = &p.client_secret_file {
        if p.client_secret_env.is_some() {
            out.push((
                "client_secret_file",
                "set client_secret_env or client_secret_file, not both".into(),
            ));
        } else if p.client_secret().is_none_or(|s| s.is_empty()) {
            out.push((
                "client_secret_file",
                format!("cannot read the client secret from {}", file.display()),
            ));
        }
    }
    if p.email_claim.trim().is_empty() {
        out.push(("email_claim", "email_claim must not be empty".into()));
    }
    out.into_iter()
        .map(|(key, message)| (vec![Step::from(key)], message))
        .collect()
}

/// Who may sign in and with which roles: groups claim, role rules, domains.
fn mapping_problems(p: &OidcProvider) -> Vec<(Vec<Step>, String)> {
    let mut out = vec![];
    let maps_groups = !p.roles.is_empty() || !p.admin_groups.is_empty();
    if maps_groups
        && p.groups_claim
            .as_deref()
            .is_none_or(|c| c.trim().is_empty())
    {
        out.push((
            vec![Step::from("groups_claim")],
            "roles and admin_groups need groups_claim (the claim listing the groups)".into(),
        ));
    }
    for (j, rule) in p.roles.iter().enumerate() {
        let at = |key: &str| vec![Step::from("roles"), Step::from(j), Step::from(key)];
        if !ROLES.contains(&rule.role.as_str()) {
            out.push((
                at("role"),
                format!("unknown role {:?} (viewer, editor or admin)", rule.role),
            ));
        } else if !slug(&rule.tenant) {
            out.push((
                at("tenant"),
                format!("{:?} is not a tenant name", rule.tenant),
            ));
        }
    }
    for domain in &p.allowed_domains {
        if domain.is_empty() || domain.contains('@') || domain.trim() != domain {
            out.push((
                vec![Step::from("allowed_domains")],
                format!("{domain:?} is not a domain (example.com, without @)"),
            ));
        }
    }
    out
}

/// An absolute http(s) URL; plain http only to a loopback host (tokens must not cross a
/// network in the clear).
fn check_url(text: &str) -> Result<(), String> {
    let url = url::Url::parse(text).map_err(|e| format!("{text:?} is not a URL ({e})"))?;
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => return Err(format!("{text:?} has no host")),
    };
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        "http" => Err(format!("{text:?} must use https (http only on loopback)")),
        other => Err(format!("{text:?}: {other}:// is not http(s)")),
    }
}

/// The first problem as `line:column: message` positions in the file's text.
pub fn first_problem(
    text: &str,
    providers: &[OidcProvider],
    local_passwords: bool,
) -> Option<(usize, usize, String)> {
    let (path, message) = problems(providers, local_passwords).into_iter().next()?;
    let (line, column) = Locator::new(text).locate(&path);
    Some((line, column, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(yaml: &str) -> OidcProvider {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn defaults_ask_for_email_and_profile_after_openid() {
        let p = provider("name: kc\nissuer: https://kc.example/realms/ops\nclient_id: opsboard\n");
        assert_eq!(p.all_scopes(), ["openid", "email", "profile"]);
        assert_eq!(p.email_claim, "email");
        assert!(p.require_verified_email && !p.auto_create_users);
        assert_eq!(p.label(), "kc");
        assert!(problems(&[p], true).is_empty());
    }

    #[test]
    fn each_problem_names_its_key() {
        let text = "auth:\n  oidc:\n    - name: Key Cloak\n      issuer: http://kc.example\n      \
                    client_id: ''\n      roles:\n        - {group: ops, tenant: acme, role: owner}\n";
        let config: serde_yaml::Value = serde_yaml::from_str(text).unwrap();
        let providers: Vec<OidcProvider> =
            serde_yaml::from_value(config["auth"]["oidc"].clone()).unwrap();
        let found = problems(&providers, true);
        let messages: Vec<&str> = found.iter().map(|(_, m)| m.as_str()).collect();
        assert!(messages[0].contains("lowercase"), "{messages:?}");
        assert!(messages[1].contains("must use https"), "{messages:?}");
        assert!(messages[2].contains("client_id"), "{messages:?}");
        assert!(messages.iter().any(|m| m.contains("need groups_claim")));
        assert!(
            messages
                .iter()
                .any(|m| m.contains("unknown role \"owner\""))
        );
        let (line, column, _) = first_problem(text, &providers, true).unwrap();
        assert_eq!((line, column), (3, 7), "the name key");
        assert!(check_url("http://127.0.0.1:9/realms/x").is_ok());
        assert!(check_url("http://localhost/x").is_ok());
        assert!(check_url("ftp://kc.example").is_err());
    }

    #[test]
    fn no_way_to_sign_in_is_refused() {
        let found = problems(&[], false);
        assert!(found[0].1.contains("nobody could sign in"), "{found:?}");
        assert!(problems(&[], true).is_empty());
    }

    #[test]
    fn a_missing_secret_variable_is_named() {
        let p = provider(
            "name: kc\nissuer: https://kc.example\nclient_id: c\n\
             client_secret_env: OPSBOARD_TEST_SECRET_THAT_IS_NOT_SET\n",
        );
        let found = problems(&[p], true);
        assert!(
            found[0]
                .1
                .contains("OPSBOARD_TEST_SECRET_THAT_IS_NOT_SET (the client secret) is not set"),
            "{found:?}"
        );
    }
}
