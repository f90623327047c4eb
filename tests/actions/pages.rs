//! Actions on pages: buttons per row for editors (admin-only ones for admins), none for
//! viewers; the confirmation page, its CSRF-guarded form, the run's page, and the panel's list
//! of runs with a failure in it.

use crate::common::session::{Browser, redirect_of};
use serde_json::json;

use super::{RANGE, Setup, finished};

fn unescape(html: &str) -> String {
    html.replace("&amp;", "&").replace("&#x2f;", "/")
}

/// The href of the first link whose URL starts with `prefix` and contains `part`.
fn link_with(html: &str, prefix: &str, part: &str) -> Option<String> {
    let html = unescape(html);
    html.split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .find(|href| href.starts_with(prefix) && href.contains(part))
        .map(str::to_string)
}

fn link(html: &str, prefix: &str) -> Option<String> {
    link_with(html, prefix, "")
}

fn form_fields(html: &str) -> Vec<(String, String)> {
    let html = unescape(html);
    html.split("<input type=\"hidden\" name=\"")
        .skip(1)
        .filter_map(|part| {
            let (name, rest) = part.split_once('"')?;
            let value = rest.split_once("value=\"")?.1.split('"').next()?;
            Some((name.to_string(), value.to_string()))
        })
        .collect()
}

/// The run a form's redirect leads to.
fn run_id(location: &str) -> String {
    let rest = location
        .strip_prefix("/t/acme/actions/runs/")
        .expect("a run page");
    rest.split('?').next().unwrap_or_default().to_string()
}

async fn post(browser: &Browser, path: &str, fields: &[(String, String)]) -> reqwest::Response {
    let form: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    browser.post_form(path, &form).await
}

pub async fn walk(setup: &Setup) {
    let (env, receiver) = (&setup.env, &setup.receiver);
    let board = format!("/t/acme/d/fleet?from={}&to={}", RANGE.0, RANGE.1);
    let viewer = env.signed_in("viewer@acme.test").await;
    let editor = env.signed_in("editor@acme.test").await;
    let admin = env.signed_in("admin@acme.test").await;

    let (status, page) = viewer.text(&board).await;
    assert_eq!(status, 200);
    assert!(
        page.contains("Hosts") && !page.contains("/actions/"),
        "a viewer sees no buttons"
    );
    let (_, page) = admin.text(&board).await;
    assert!(
        link(&page, "/t/acme/actions/wipe?").is_some(),
        "admins see admin-only actions"
    );
    let (_, page) = editor.text(&board).await;
    assert!(
        link(&page, "/t/acme/actions/wipe?").is_none(),
        "editors do not"
    );
    let restart =
        link_with(&page, "/t/acme/actions/restart?", "row.host=a").expect("a button per row");
    assert!(link_with(&page, "/t/acme/actions/restart?", "row.host=b").is_some());
    assert!(
        restart.contains("panel=hosts") && restart.contains("row.host=a"),
        "{restart}"
    );
    assert!(
        restart.contains("dashboard=fleet") && restart.contains("from=2024"),
        "{restart}"
    );
    let refresh = link(&page, "/t/acme/actions/refresh?").expect("the KPI's own button");

    // The confirmation names the row; its form carries CSRF and the row's key.
    let (status, confirm) = editor.text(&restart).await;
    assert_eq!(status, 200, "{confirm}");
    assert!(confirm.contains("Restart a?"), "{confirm}");
    let fields = form_fields(&confirm);
    assert!(
        fields.iter().any(|(k, v)| k == "row.host" && v == "a"),
        "{fields:?}"
    );
    let before = receiver.count();
    let without_csrf: Vec<(String, String)> = fields
        .iter()
        .filter(|(k, _)| k != "_csrf")
        .cloned()
        .collect();
    let response = post(&editor, "/t/acme/actions/restart", &without_csrf).await;
    assert_eq!(response.status(), 403, "no CSRF token");
    let (status, _) = viewer.text(&restart).await;
    assert_eq!(status, 403, "a viewer gets no confirmation");
    let mut as_viewer = without_csrf.clone();
    as_viewer.push(("_csrf".into(), viewer.csrf().await));
    assert_eq!(
        post(&viewer, "/t/acme/actions/restart", &as_viewer)
            .await
            .status(),
        403
    );
    assert_eq!(receiver.count(), before, "nothing sent");

    let response = post(&editor, "/t/acme/actions/restart", &fields).await;
    let (status, location) = redirect_of(&response);
    assert_eq!(status, 303, "{location}");
    assert!(location.starts_with("/t/acme/actions/runs/"), "{location}");
    finished(env, &run_id(&location)).await;
    let (status, run_page) = editor.text(&location).await;
    assert_eq!(status, 200);
    assert!(
        run_page.contains("succeeded") && run_page.contains("user:editor@acme.test"),
        "{run_page}"
    );
    assert!(
        unescape(&run_page).contains("href=\"/t/acme/d/fleet?"),
        "back to the dashboard: {run_page}"
    );
    assert!(
        !run_page.contains("http-equiv=\"refresh\""),
        "a finished run stops refreshing"
    );
    assert_eq!(receiver.last().path, "/hosts/a/restart");
    let sent: serde_json::Value = serde_json::from_str(&receiver.last().body).unwrap();
    assert_eq!(sent["by"], "editor@acme.test");
    let (status, body) = editor
        .text("/t/acme/actions/runs/x?back=https://evil.example/")
        .await;
    assert_eq!(status, 404, "{body}");

    // The panel's own action: no row, the panel in its template.
    let (status, confirm) = editor.text(&refresh).await;
    assert_eq!(status, 200);
    assert!(
        confirm.contains("Refresh inventory on inventory?"),
        "{confirm}"
    );
    let response = post(&editor, "/t/acme/actions/refresh", &form_fields(&confirm)).await;
    let (status, location) = redirect_of(&response);
    assert_eq!(status, 303);
    finished(env, &run_id(&location)).await;
    let call = receiver.last();
    assert_eq!(
        (call.method.as_str(), call.path.as_str()),
        ("PUT", "/panel/inventory")
    );

    // A failed run shows under its panel, to anyone who reads it.
    let key = env.key(Some("acme"), "act").await.1;
    let (_, run) = super::post_action(&key, env, "missing", super::on(json!({"host": "b"}))).await;
    finished(env, run["run"].as_str().unwrap()).await;
    let fragment = format!("/t/acme/p/hosts/fragment?from={}&to={}", RANGE.0, RANGE.1);
    let (status, html) = viewer.text(&fragment).await;
    assert_eq!(status, 200);
    assert!(
        html.contains("Missing") && html.contains("failed:") && html.contains("answered 404"),
        "{html}"
    );
    assert!(
        html.contains("Restart") && !html.contains("row-actions"),
        "runs listed, no buttons: {html}"
    );
}
