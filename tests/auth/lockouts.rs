//! Lockouts: per account and client, per client, behind a trusted proxy, the race of parallel
//! guesses, and the sign-in rate.

use std::time::Duration;

use super::common::session::{Browser, Db, Env, PASSWORD};
use opsboard::auth::{AuditFilter, Role};

pub async fn lockout_per_account_grows_and_ends(db: Db) {
    let Some(env) = Env::start(db, "lockout", |c| {
        c.auth.max_failures_per_account = 3;
        c.auth.lockout = "1m".parse().unwrap();
    })
    .await
    else {
        return;
    };
    env.user("ann@acme.test", false, &[("acme", Role::Viewer)])
        .await;
    let b = env.browser().await;
    for _ in 0..3 {
        assert_eq!(
            b.login("ann@acme.test", "wrong password!").await.status(),
            401
        );
    }
    // Locked: even the right password is refused, with the wait in the message.
    let r = b.login("ann@acme.test", PASSWORD).await;
    assert_eq!(r.status(), 429);
    assert!(r.text().await.unwrap().contains("too many failed logins"));
    env.clock.advance(Duration::from_secs(61));
    assert_eq!(b.login("ann@acme.test", PASSWORD).await.status(), 303);

    // A success forgets the history; without one, each lockout lasts twice the one before.
    for _ in 0..3 {
        b.login("ann@acme.test", "wrong password!").await;
    }
    env.clock.advance(Duration::from_secs(61));
    for _ in 0..3 {
        assert_eq!(
            b.login("ann@acme.test", "wrong again!!").await.status(),
            401
        );
    }
    env.clock.advance(Duration::from_secs(61));
    assert_eq!(
        b.login("ann@acme.test", PASSWORD).await.status(),
        429,
        "second lockout is 2 minutes"
    );
    env.clock.advance(Duration::from_secs(61));
    assert_eq!(b.login("ann@acme.test", PASSWORD).await.status(), 303);

    let failures = env
        .auth
        .audit_entries(&AuditFilter {
            action: Some("login".into()),
            outcome: Some("failed".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(failures.len() >= 6);
    assert!(
        failures
            .iter()
            .all(|e| e.actor == "user:ann@acme.test" && e.ip.as_deref() == Some("127.0.0.1"))
    );
    env.server.stop().await;
}

/// Thirty wrong passwords at once: each attempt is counted before the slow password check, so
/// no more than the limit are checked and the rest are refused as locked out (before, every
/// one was checked: the counter was read and written after argon2).
pub async fn parallel_wrong_passwords_are_checked_no_more_than_the_limit(db: Db) {
    let Some(env) = Env::start(db, "lockout_race", |c| {
        c.auth.max_failures_per_account = 5;
        c.auth.max_failures_per_ip = 1000;
    })
    .await
    else {
        return;
    };
    env.user("race@acme.test", false, &[("acme", Role::Viewer)])
        .await;
    let browsers: Vec<_> = futures::future::join_all((0..30).map(|_| env.browser())).await;
    let statuses: Vec<u16> = futures::future::join_all(browsers.iter().map(|b| async {
        b.login("race@acme.test", "wrong password!")
            .await
            .status()
            .as_u16()
    }))
    .await;
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert!(checked <= 5, "at most the limit are checked: {statuses:?}");
    assert_eq!(checked + refused, 30, "{statuses:?}");
    env.server.stop().await;
}

pub async fn lockout_per_ip(db: Db) {
    let Some(env) = Env::start(db, "lockout_ip", |c| {
        c.auth.max_failures_per_ip = 4;
    })
    .await
    else {
        return;
    };
    env.user("bob@acme.test", false, &[("acme", Role::Viewer)])
        .await;
    let b = env.browser().await;
    // One guess per account, many accounts: the per-account limit never trips, the IP's does.
    for i in 0..4 {
        assert_eq!(
            b.login(&format!("guess{i}@acme.test"), "password123")
                .await
                .status(),
            401
        );
    }
    assert_eq!(b.login("bob@acme.test", PASSWORD).await.status(), 429);
    // No proxy is trusted, so a client cannot step out of its lockout by naming another address.
    let forged = Browser::forwarded_for(&env.server.url, "203.0.113.9");
    assert_eq!(forged.login("bob@acme.test", PASSWORD).await.status(), 429);
    env.clock.advance(Duration::from_secs(61));
    assert_eq!(b.login("bob@acme.test", PASSWORD).await.status(), 303);
    env.server.stop().await;
}

pub async fn lockout_per_forwarded_ip_behind_trusted_proxy(db: Db) {
    let Some(env) = Env::start(db, "lockout_proxy", |c| {
        c.auth.max_failures_per_ip = 3;
        c.auth.trusted_proxies = vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()];
    })
    .await
    else {
        return;
    };
    env.user("bob@acme.test", false, &[("acme", Role::Viewer)])
        .await;
    // Both clients reach the server through the same (trusted, loopback) proxy.
    let attacker = Browser::forwarded_for(&env.server.url, "203.0.113.7");
    let colleague = Browser::forwarded_for(&env.server.url, "198.51.100.20");
    for i in 0..3 {
        let r = attacker
            .login(&format!("guess{i}@acme.test"), "password123")
            .await;
        assert_eq!(r.status(), 401);
    }
    assert_eq!(
        attacker.login("bob@acme.test", PASSWORD).await.status(),
        429
    );
    assert_eq!(
        colleague.login("bob@acme.test", PASSWORD).await.status(),
        303,
        "the lockout is the forwarded client's, not the proxy's"
    );
    let entries = env
        .auth
        .audit_entries(&AuditFilter {
            action: Some("login".into()),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    let ips: Vec<_> = entries.iter().filter_map(|e| e.ip.as_deref()).collect();
    assert!(
        ips.contains(&"203.0.113.7") && ips.contains(&"198.51.100.20"),
        "{ips:?}"
    );
    assert!(!ips.contains(&"127.0.0.1"), "{ips:?}");
    env.server.stop().await;
}

/// Wrong passwords for someone's account lock that account for the client that sent them, not
/// for its owner; and all sign-ins together are held to `auth.logins_per_second` (429 with
/// Retry-After before any password is checked).
pub async fn a_stranger_locks_only_themselves_out_and_sign_ins_share_a_rate(db: Db) {
    let Some(env) = Env::start(db, "lockout_pair", |c| {
        c.auth.max_failures_per_account = 3;
        c.auth.trusted_proxies = vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()];
        c.auth.logins_per_second = 0.001;
        c.auth.login_burst = 8;
    })
    .await
    else {
        return;
    };
    env.user("cy@acme.test", false, &[("acme", Role::Viewer)])
        .await;
    let stranger = Browser::forwarded_for(&env.server.url, "203.0.113.7");
    let owner = Browser::forwarded_for(&env.server.url, "198.51.100.20");
    for _ in 0..3 {
        assert_eq!(
            stranger
                .login("cy@acme.test", "guess guess!")
                .await
                .status(),
            401
        );
    }
    assert_eq!(stranger.login("cy@acme.test", PASSWORD).await.status(), 429);
    assert_eq!(
        owner.login("cy@acme.test", PASSWORD).await.status(),
        303,
        "the owner is not locked out by a stranger's guesses"
    );
    // Five sign-ins so far; the burst of eight runs out within the next few, whoever sends them.
    let mut refused = None;
    for i in 0..4 {
        let b = Browser::forwarded_for(&env.server.url, &format!("192.0.2.{i}"));
        let r = b.login("cy@acme.test", PASSWORD).await;
        if r.status() == 429 {
            refused = Some(r);
            break;
        }
    }
    let refused = refused.expect("the sign-in rate runs out");
    assert!(refused.headers().contains_key("retry-after"));
    assert!(refused.text().await.unwrap().contains("rate limit"));
    env.server.stop().await;
}
